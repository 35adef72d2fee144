// tiktoken encodings (the `tiktoken` npm package, BPE ranks shipped inside it) as SegmentEncoders.
// o200k_harmony is o200k_base with gpt-oss's harmony special tokens, as OpenAI defines that encoding.

import { get_encoding } from 'tiktoken';
import type { SegmentEncoder } from './encoder.ts';
import type { TiktokenEncodingName } from './source.ts';

const HARMONY_NAMED_SPECIALS: Record<string, number> = {
  '<|startoftext|>': 199998,
  '<|endoftext|>': 199999,
  '<|return|>': 200002,
  '<|constrain|>': 200003,
  '<|channel|>': 200005,
  '<|start|>': 200006,
  '<|end|>': 200007,
  '<|message|>': 200008,
  '<|call|>': 200012,
  '<|endofprompt|>': 200018,
};
const HARMONY_RESERVED_END = 201088;

/** The harmony special-token table: the named tokens, and `<|reserved_N|>` for every other id up to 201087. */
function harmonySpecialTokens(): Map<string, number> {
  const specials = new Map(Object.entries(HARMONY_NAMED_SPECIALS));
  const named = new Set(specials.values());
  for (let id = 200000; id < HARMONY_RESERVED_END; id++) if (!named.has(id)) specials.set(`<|reserved_${id}|>`, id);
  return specials;
}

const BASE_SPECIALS: Record<'o200k_base' | 'cl100k_base', Record<string, number>> = {
  o200k_base: { '<|endoftext|>': 199999, '<|endofprompt|>': 200018 },
  cl100k_base: {
    '<|endoftext|>': 100257,
    '<|fim_prefix|>': 100258,
    '<|fim_middle|>': 100259,
    '<|fim_suffix|>': 100260,
    '<|endofprompt|>': 100276,
  },
};

export function loadTiktokenEncoder(name: TiktokenEncodingName): SegmentEncoder {
  const base = name === 'o200k_harmony' ? 'o200k_base' : name;
  // Special tokens are split out by the caller, so the wasm encoder only ever sees ordinary text.
  const encoding = get_encoding(base);
  const addedTokens = name === 'o200k_harmony' ? harmonySpecialTokens() : new Map(Object.entries(BASE_SPECIALS[base]));
  return {
    addedTokens,
    prefixIds: [],
    suffixIds: [],
    // o200k_base and cl100k_base split with GPT-style regexes (see encoder.ts); tiktoken applies no normalizer.
    wordCutsAreSafe: true,
    chatTemplate: null,
    // tiktoken's encoder is native (wasm) code: fast without one.
    preTokenCache: false,
    encodeOrdinary: (text) => Array.from(encoding.encode_ordinary(text)),
  };
}
