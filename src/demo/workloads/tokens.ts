// Seeded token-id content for synthetic workloads: ids drawn from a range every supported tokenizer
// (Qwen3's 151k vocabulary) treats as ordinary tokens, and per-item seeds so one item's content does
// not depend on how many other items were generated.

import { mulberry32 } from '../../common/random.ts';

/** Lowest token id drawn: skips the low ids (bytes, punctuation) a tokenizer may treat specially. */
export const TOKEN_ID_MIN = 1000;
/** One past the highest id drawn; below Qwen3's first special token (151643). */
export const TOKEN_ID_MAX = 150_000;

/** A 32-bit seed mixed from a base seed and integer parts (murmur3's finalizer per part). */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  const mix = (v: number): void => {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  };
  for (const part of parts) {
    // Parts can exceed 32 bits (trace hash ids): mix the high half too so they stay distinct.
    mix(part);
    mix(Math.floor(part / 4294967296));
  }
  return h >>> 0;
}

/** `length` token ids from a seeded generator, each in [TOKEN_ID_MIN, TOKEN_ID_MAX). */
export function randomTokenIds(rand: () => number, length: number): number[] {
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) out[i] = TOKEN_ID_MIN + Math.floor(rand() * (TOKEN_ID_MAX - TOKEN_ID_MIN));
  return out;
}

/** The token content of one item (a system prompt, a document, a question) named by its seed parts. */
export function seededTokens(length: number, seed: number, ...parts: number[]): number[] {
  return randomTokenIds(mulberry32(deriveSeed(seed, ...parts)), length);
}

/** Fisher-Yates shuffle of 0..n-1 with a seeded generator. */
export function seededPermutation(n: number, rand: () => number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Throws a message naming the option when `value` is not an integer within [min, max]. */
export function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw new Error(`${name}: expected ${range}, got ${value}`);
  }
}
