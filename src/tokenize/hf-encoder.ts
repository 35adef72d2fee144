// Loads a Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) from a directory through
// @lenml/tokenizers, a dependency-free port of transformers.js's tokenizers, and describes it as a
// SegmentEncoder. Byte-level BPE tokenizers encode through a per-pre-token cache (pretoken-encoder.ts).

import fs from 'node:fs/promises';
import path from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { SAFE_CUT_SPLIT_PATTERNS, type ChatTemplateConfig, type SegmentEncoder } from './encoder.ts';
import { createPreTokenEncoder } from './pretoken-encoder.ts';

interface AddedTokenJson {
  id: number;
  content: string;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
  normalized?: boolean;
}

async function readJsonFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file} is not a valid tokenizer file: ${(err as Error).message}`);
  }
}

function sameIds(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** A special token in tokenizer_config.json is a string or an AddedToken object with `content`. */
function tokenString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** Byte-level BPE behind one of the GPT-style split regexes with at most NFC: text may be cut at safe places (isSafeCut). */
function hasGptSplit(tokenizerJson: Record<string, unknown>): boolean {
  const model = tokenizerJson.model as { type?: string } | undefined;
  const normalizer = tokenizerJson.normalizer as { type?: string } | null | undefined;
  const pre = tokenizerJson.pre_tokenizer as { type?: string; pretokenizers?: Array<Record<string, unknown>> } | null | undefined;
  if (model?.type !== 'BPE') return false;
  if (normalizer != null && normalizer.type !== 'NFC') return false;
  if (pre?.type !== 'Sequence' || pre.pretokenizers?.length !== 2) return false;
  const [split, byteLevel] = pre.pretokenizers as [Record<string, unknown>, Record<string, unknown>];
  const pattern = (split.pattern as { Regex?: string } | undefined)?.Regex;
  return (
    split.type === 'Split' &&
    split.behavior === 'Isolated' &&
    split.invert === false &&
    pattern !== undefined &&
    SAFE_CUT_SPLIT_PATTERNS.has(pattern) &&
    byteLevel.type === 'ByteLevel' &&
    byteLevel.use_regex === false &&
    byteLevel.add_prefix_space === false
  );
}

/**
 * The chat template as transformers resolves it: tokenizer_config.json's `chat_template` (a string, or
 * a list of named templates of which "default" is used), else a chat_template.jinja file beside it.
 */
async function findChatTemplate(dir: string, configured: unknown): Promise<string | undefined> {
  if (typeof configured === 'string') return configured;
  if (Array.isArray(configured)) {
    const named = configured.find((t: { name?: unknown; template?: unknown }) => t?.name === 'default');
    if (named && typeof named.template === 'string') return named.template;
  }
  try {
    return await fs.readFile(path.join(dir, 'chat_template.jinja'), 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Texts the cached encoder must encode exactly as the library does before it is used: letters of
 * several scripts, digits, contractions, whitespace runs, punctuation, emoji, combining marks and
 * unpaired surrogates. A mismatch means the library changed under us, so its own encode is used.
 */
const SELF_CHECK_TEXTS = [
  "Hello world! It's what we'd do; THEY'LL see.\n\n  Indented   code();\tx = 12345 + 6.78e9",
  'Système: réponds en français. Ünïcödé e\u0301 a\u030a \u1100\u1161 你好世界 こんにちは 🙂👍🏽 ../path/to.file',
  '   \r\n\r\n\t\t  trailing   \n',
  '\ud800 lone \udc00 surrogates \ud83d',
];

/** Reads tokenizer.json and tokenizer_config.json from `dir` (as mounted in a cluster). */
export async function loadHfEncoder(dir: string): Promise<SegmentEncoder> {
  const tokenizerJson = await readJsonFile(path.join(dir, 'tokenizer.json'));
  const tokenizerConfig = await readJsonFile(path.join(dir, 'tokenizer_config.json'));
  const tokenizer = TokenizerLoader.fromPreTrained({ tokenizerJSON: tokenizerJson, tokenizerConfig });

  const addedList = (tokenizerJson.added_tokens ?? []) as AddedTokenJson[];
  const addedTokens = new Map<string, number>();
  // Tokens that swallow neighbouring whitespace, or that match normalized rather than raw text, make
  // a split at their edges context-dependent; we then leave added-token handling to the library and
  // never cut text ourselves.
  const hasNormalizer = tokenizerJson.normalizer != null;
  let plainAddedTokens = true;
  for (const t of addedList) {
    addedTokens.set(t.content, t.id);
    if (t.lstrip || t.rstrip || t.single_word || (t.normalized && hasNormalizer)) plainAddedTokens = false;
  }

  const encode = (text: string, addSpecial: boolean): number[] => tokenizer.encode(text, { add_special_tokens: addSpecial });
  // Find what add_special_tokens=True wraps around a sequence by encoding a probe both ways.
  const probe = 'a';
  const bare = encode(probe, false);
  const wrapped = encode(probe, true);
  let at = -1;
  for (let i = 0; i + bare.length <= wrapped.length && at < 0; i++) {
    if (bare.every((id, j) => wrapped[i + j] === id)) at = i;
  }
  if (at < 0) throw new Error(`${dir}: cannot locate the sequence inside its special-token template`);
  const prefixIds = wrapped.slice(0, at);
  const suffixIds = wrapped.slice(at + bare.length);

  let chatTemplate: ChatTemplateConfig | null = null;
  const template = await findChatTemplate(dir, tokenizerConfig.chat_template);
  if (template !== undefined) {
    const specialTokens: Record<string, string> = {};
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const value = tokenString(tokenizerConfig[key]);
      if (value !== undefined) specialTokens[key] = value;
    }
    chatTemplate = { template, specialTokens };
  }

  // Only when added tokens are split out before encodeOrdinary sees the text: the cached encoder
  // knows nothing of them.
  const cached = plainAddedTokens ? createPreTokenEncoder(tokenizer, tokenizerJson) : null;
  const cachedAgrees = cached !== null && SELF_CHECK_TEXTS.every((t) => sameIds(cached.encode(t), encode(t, false)));

  return {
    addedTokens: plainAddedTokens ? addedTokens : new Map(),
    prefixIds,
    suffixIds,
    wordCutsAreSafe: plainAddedTokens && hasGptSplit(tokenizerJson),
    chatTemplate,
    preTokenCache: cachedAgrees,
    encodeOrdinary: cached && cachedAgrees ? (text) => cached.encode(text) : (text) => encode(text, false),
  };
}
