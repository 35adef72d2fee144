// XXH64 through a small WebAssembly module (request-xxh64.wat): native 64-bit multiplies, one call
// per chain of blocks, seeds and keys as (lo, hi) uint32 halves so no BigInt or per-block object is
// created. Verified against python-xxhash vectors (testdata/request-xxh64-vectors.py).

import { REQUEST_XXH64_WASM_BASE64 } from './request-xxh64.wasm.ts';

interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
/** The slice of the WebAssembly JS API used here (tsconfig's libs do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

interface Xxh64Exports {
  memory: WasmMemory;
  hash(p: number, len: number, seedLo: number, seedHi: number, out: number): void;
  chain(p: number, blocks: number, blockBytes: number, seedLo: number, seedHi: number, out: number): void;
}

const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WasmApi };
const wasm = new wasmApi.Instance(new wasmApi.Module(Buffer.from(REQUEST_XXH64_WASM_BASE64, 'base64'))).exports as Xxh64Exports;
let bytesView = new Uint8Array(wasm.memory.buffer);
let wordsView = new Uint32Array(wasm.memory.buffer);

function reserve(bytes: number): void {
  const have = wasm.memory.buffer.byteLength;
  if (bytes <= have) return;
  wasm.memory.grow(Math.ceil((bytes - have) / 65536));
  bytesView = new Uint8Array(wasm.memory.buffer);
  wordsView = new Uint32Array(wasm.memory.buffer);
}

/** XXH64 of `bytes` with seed (seedHi:seedLo); writes lo at out[at], hi at out[at + 1]. */
export function xxh64Bytes(bytes: Uint8Array, seedLo: number, seedHi: number, out: Uint32Array, at: number): void {
  const outPtr = (bytes.length + 7) & ~7;
  reserve(outPtr + 8);
  bytesView.set(bytes, 0);
  wasm.hash(0, bytes.length, seedLo >>> 0, seedHi >>> 0, outPtr);
  out[at] = wordsView[outPtr >>> 2]!;
  out[at + 1] = wordsView[(outPtr >>> 2) + 1]!;
}

/** Module memory for a chain: `words` input words, then (8-aligned) `blocks` keys; returns where the keys go. */
function reserveChain(words: number, blocks: number): number {
  const outPtr = (words * 4 + 7) & ~7;
  reserve(outPtr + blocks * 8);
  return outPtr;
}

/** Chains the words already at offset 0 of module memory and copies the keys from outPtr into out. */
function chainInPlace(
  blocks: number,
  blockSize: number,
  seedLo: number,
  seedHi: number,
  outPtr: number,
  out: Uint32Array,
  outAt: number,
): void {
  wasm.chain(0, blocks, blockSize * 4, seedLo >>> 0, seedHi >>> 0, outPtr);
  out.set(wordsView.subarray(outPtr >>> 2, (outPtr >>> 2) + blocks * 2), outAt * 2);
}

/**
 * Chained XXH64 over `blocks` runs of `blockSize` uint32 words (little-endian bytes) starting at
 * words[start]: key[b] = XXH64(run b, key[b - 1]), key[-1] = (seedHi:seedLo). Keys are written as
 * (lo, hi) pairs into out from pair index outAt.
 */
export function xxh64WordChain(
  words: Uint32Array,
  start: number,
  blocks: number,
  blockSize: number,
  seedLo: number,
  seedHi: number,
  out: Uint32Array,
  outAt: number,
): void {
  if (blocks <= 0) return;
  const n = blocks * blockSize;
  const outPtr = reserveChain(n, blocks);
  wordsView.set(words.subarray(start, start + n), 0);
  chainInPlace(blocks, blockSize, seedLo, seedHi, outPtr, out, outAt);
}

/**
 * As xxh64WordChain for token ids given as plain numbers, checked while they are copied into the
 * module's memory. Returns the index of the first id that is not a uint32 integer (nothing is
 * written then), or -1.
 */
export function xxh64TokenChain(
  tokens: ArrayLike<number>,
  blocks: number,
  blockSize: number,
  seedLo: number,
  seedHi: number,
  out: Uint32Array,
  outAt: number,
): number {
  if (blocks <= 0) return -1;
  const n = blocks * blockSize;
  const outPtr = reserveChain(n, blocks);
  const words = wordsView;
  for (let i = 0; i < n; i++) {
    const t = tokens[i]!;
    // True exactly for integers in [0, 2^32): catches negatives, fractions, NaN and non-numbers.
    if (t >>> 0 !== t) return i;
    words[i] = t;
  }
  chainInPlace(blocks, blockSize, seedLo, seedHi, outPtr, out, outAt);
  return -1;
}
