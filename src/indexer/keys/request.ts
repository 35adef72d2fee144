// Request keys: the fast 64-bit block keys the index stores, independent of how vLLM hashes blocks.
// key[i] = XXH64(little-endian uint32 token ids of block i, seed = key[i-1]); key[-1] is a root seed
// that is 0 for plain prompts and derived from the LoRA name and cache_salt otherwise, so keys differ
// exactly when vLLM's would (LoRA on every block through the chain, cache_salt on the first block).
// Keys are written as (lo, hi) uint32 pairs so nothing is allocated per block.

import { xxh64Bytes, xxh64TokenChain, xxh64WordChain } from './request-xxh64.ts';

/** Where a request-key chain starts: (lo, hi) of the seed for block 0. */
export interface RequestKeyRoot {
  lo: number;
  hi: number;
}

export interface RequestKeyScope {
  loraName?: string | null;
  cacheSalt?: string | null;
}

const PLAIN_ROOT: RequestKeyRoot = Object.freeze({ lo: 0, hi: 0 });
const encoder = new TextEncoder();
const rootCache = new Map<string, RequestKeyRoot>();
const ROOT_CACHE_MAX = 4096;

/**
 * The root seed for a LoRA name / cache_salt pair. Empty strings count as absent, as in vLLM (which
 * adds the salt only when it is truthy). Tagged, length-prefixed parts keep ("ab", null) and
 * (null, "ab") apart.
 */
export function requestKeyRoot(scope: RequestKeyScope = {}): RequestKeyRoot {
  const lora = scope.loraName || null;
  const salt = scope.cacheSalt || null;
  if (lora === null && salt === null) return PLAIN_ROOT;
  const cacheKey = `${lora === null ? '' : 'L' + lora}\u0000${salt === null ? '' : 'S' + salt}`;
  const cached = rootCache.get(cacheKey);
  if (cached) return cached;
  const parts: Uint8Array[] = [];
  for (const [tag, value] of [
    [1, lora],
    [2, salt],
  ] as const) {
    if (value === null) continue;
    const raw = encoder.encode(value);
    const head = new Uint8Array(5);
    head[0] = tag;
    new DataView(head.buffer).setUint32(1, raw.length, true);
    parts.push(head, raw);
  }
  const material = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    material.set(p, at);
    at += p.length;
  }
  const out = new Uint32Array(2);
  xxh64Bytes(material, 0, 0, out, 0);
  const root = Object.freeze({ lo: out[0]!, hi: out[1]! });
  if (rootCache.size >= ROOT_CACHE_MAX) rootCache.clear();
  rootCache.set(cacheKey, root);
  return root;
}

/**
 * Writes the request keys of every full block of `tokens[start, end)` into `out` as (lo, hi) pairs
 * from pair index `outAt`, chaining from (parentLo, parentHi). Returns the number of keys written.
 * `out` must have room for 2 * floor((end - start) / blockSize) more values.
 */
export function writeRequestKeys(
  tokens: Uint32Array,
  start: number,
  end: number,
  blockSize: number,
  parentLo: number,
  parentHi: number,
  out: Uint32Array,
  outAt = 0,
): number {
  const blocks = Math.floor((end - start) / blockSize);
  xxh64WordChain(tokens, start, blocks, blockSize, parentLo, parentHi, out, outAt);
  return blocks;
}

/**
 * Computes request keys for prompts into a reusable buffer (`keys`, grown as needed). Plain arrays
 * are checked as they are copied into the hashing module's memory.
 */
export class RequestKeyer {
  readonly blockSize: number;
  /** (lo, hi) pairs of the last computed keys. */
  keys = new Uint32Array(128);

  constructor(blockSize: number) {
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`blockSize must be a positive integer, got ${blockSize}`);
    this.blockSize = blockSize;
  }

  /**
   * Keys for all full blocks of `tokens`; returns the block count (keys are in `this.keys`). Throws
   * when a token id in a full block is not an integer in [0, 2^32), naming its index.
   */
  compute(tokens: ArrayLike<number>, scope?: RequestKeyScope): number {
    const blocks = Math.floor(tokens.length / this.blockSize);
    if (this.keys.length < blocks * 2) this.keys = new Uint32Array(Math.max(blocks * 2, this.keys.length * 2));
    const root = scope ? requestKeyRoot(scope) : PLAIN_ROOT;
    if (tokens instanceof Uint32Array) {
      return writeRequestKeys(tokens, 0, blocks * this.blockSize, this.blockSize, root.lo, root.hi, this.keys, 0);
    }
    const bad = xxh64TokenChain(tokens, blocks, this.blockSize, root.lo, root.hi, this.keys, 0);
    if (bad >= 0) throw new Error(`token ids must be integers in [0, 2^32), got ${String(tokens[bad])} at index ${bad}`);
    return blocks;
  }
}

/** A (lo, hi) pair as the unsigned 64-bit value it stands for (for logs, tests and JSON). */
export function keyToBigInt(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
