// What the simulator needs from a tokenizer: vLLM-exact prompt and chat tokenization (delegated to
// indexer/tokenize, the same code the indexer uses), plus a vocabulary of plain word tokens to
// "generate" from and a byte-level BPE decoder to turn them back into text.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChatMessage } from '../indexer/types.ts';
import { loadModelTokenizer, type ModelTokenizer } from '../indexer/tokenize/model-tokenizer.ts';
import { parseTokenizerSource } from '../indexer/tokenize/source.ts';

export interface ChatOptions {
  addGenerationPrompt?: boolean;
  templateKwargs?: Record<string, unknown>;
}

export interface SimTokenizer {
  readonly source: string;
  tokenizePrompt(text: string): number[];
  tokenizeChat(messages: ChatMessage[], options?: ChatOptions): number[];
  /** Token ids generation draws from: ordinary words, so generated text reads as text. */
  readonly sampleableIds: Uint32Array;
  decode(ids: readonly number[]): string;
}

/** GPT-2's bytes_to_unicode table, inverted: the character a byte-level BPE token uses -> the byte. */
function byteDecoder(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Map<string, number>();
  bs.forEach((b, i) => out.set(String.fromCodePoint(cs[i]!), b));
  return out;
}

const WORD_TOKEN = /^\u0120?[a-z]{2,10}$/;

export class ByteLevelVocabulary {
  private readonly pieces: string[];
  private readonly bytes = byteDecoder();
  readonly sampleableIds: Uint32Array;

  constructor(vocab: Record<string, number>) {
    this.pieces = [];
    const words: number[] = [];
    for (const [piece, id] of Object.entries(vocab)) {
      this.pieces[id] = piece;
      if (WORD_TOKEN.test(piece)) words.push(id);
    }
    if (words.length === 0) throw new Error('tokenizer vocabulary has no plain word tokens to generate from');
    words.sort((a, b) => a - b);
    this.sampleableIds = Uint32Array.from(words);
  }

  decode(ids: readonly number[]): string {
    const out: number[] = [];
    for (const id of ids) {
      const piece = this.pieces[id];
      if (piece === undefined) continue;
      for (const ch of piece) {
        const b = this.bytes.get(ch);
        if (b !== undefined) out.push(b);
      }
    }
    return Buffer.from(out).toString('utf8');
  }
}

class IndexerBackedTokenizer implements SimTokenizer {
  readonly source: string;
  readonly sampleableIds: Uint32Array;
  private readonly model: ModelTokenizer;
  private readonly vocab: ByteLevelVocabulary;

  constructor(model: ModelTokenizer, vocab: ByteLevelVocabulary) {
    this.model = model;
    this.vocab = vocab;
    this.source = model.source;
    this.sampleableIds = vocab.sampleableIds;
  }

  tokenizePrompt(text: string): number[] {
    return this.model.tokenizePrompt(text);
  }

  tokenizeChat(messages: ChatMessage[], options: ChatOptions = {}): number[] {
    return this.model.tokenizeChat(messages, { addGenerationPrompt: options.addGenerationPrompt ?? true, templateKwargs: options.templateKwargs });
  }

  decode(ids: readonly number[]): string {
    return this.vocab.decode(ids);
  }
}

/** Loads a tokenizer from a source spec (npm:qwen3, dir:/path, ...) that has a byte-level BPE tokenizer.json. */
export async function loadSimTokenizer(model: string, spec: string): Promise<SimTokenizer> {
  const source = parseTokenizerSource(spec);
  if (source.kind === 'tiktoken') {
    throw new Error(`tokenizer "${spec}": the simulator needs a tokenizer.json source (npm:<name> or dir:<path>) to generate text`);
  }
  const json = JSON.parse(await readFile(path.join(source.dir, 'tokenizer.json'), 'utf8')) as { model?: { type?: string; vocab?: Record<string, number> } };
  if (json.model?.type !== 'BPE' || !json.model.vocab) {
    throw new Error(`tokenizer "${spec}": expected a byte-level BPE tokenizer.json with model.vocab, got model.type ${String(json.model?.type)}`);
  }
  const modelTokenizer = await loadModelTokenizer(model, source);
  return new IndexerBackedTokenizer(modelTokenizer, new ByteLevelVocabulary(json.model.vocab));
}
