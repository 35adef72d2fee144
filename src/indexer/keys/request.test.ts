import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { xxh64Bytes, xxh64WordChain } from './request-xxh64.ts';
import { RequestKeyer, keyToBigInt, requestKeyRoot, writeRequestKeys } from './request.ts';

interface Vectors {
  bytes: Array<{ hex: string; seed: string; xxh64: string }>;
  words: Array<{ words: number[]; seed: string; xxh64: string }>;
  chains: Array<{ blockSize: number; tokens: number[]; loraName: string | null; cacheSalt: string | null; keys: string[] }>;
}
const vectors = JSON.parse(readFileSync(new URL('./testdata/request-xxh64-vectors.json', import.meta.url), 'utf8')) as Vectors;

function split(seed: string): [number, number] {
  const v = BigInt(seed);
  return [Number(v & 0xffffffffn), Number(v >> 32n)];
}

describe('xxh64 (WebAssembly)', () => {
  it('matches python-xxhash on byte inputs of every tail length and on edge seeds', () => {
    const out = new Uint32Array(2);
    for (const v of vectors.bytes) {
      const [lo, hi] = split(v.seed);
      xxh64Bytes(Uint8Array.from(Buffer.from(v.hex, 'hex')), lo, hi, out, 0);
      expect({ hex: v.hex, seed: v.seed, got: keyToBigInt(out[0]!, out[1]!).toString() }).toEqual({
        hex: v.hex,
        seed: v.seed,
        got: v.xxh64,
      });
    }
  });

  it('matches python-xxhash on little-endian uint32 words, also from an offset into a larger array', () => {
    const out = new Uint32Array(4);
    for (const v of vectors.words) {
      const [lo, hi] = split(v.seed);
      xxh64WordChain(Uint32Array.from(v.words), 0, 1, v.words.length, lo, hi, out, 0);
      const padded = Uint32Array.from([7, 8, 9, ...v.words, 10]);
      xxh64WordChain(padded, 3, 1, v.words.length, lo, hi, out, 1);
      expect([keyToBigInt(out[0]!, out[1]!).toString(), keyToBigInt(out[2]!, out[3]!).toString()]).toEqual([v.xxh64, v.xxh64]);
    }
  });
});

describe('request keys', () => {
  it('reproduce the reference chains for several block sizes, LoRA names and cache salts', () => {
    for (const c of vectors.chains) {
      const keyer = new RequestKeyer(c.blockSize);
      const n = keyer.compute(c.tokens, { loraName: c.loraName, cacheSalt: c.cacheSalt });
      const got = Array.from({ length: n }, (_, i) => keyToBigInt(keyer.keys[2 * i]!, keyer.keys[2 * i + 1]!).toString());
      expect(got).toEqual(c.keys);
    }
  });

  it('ignore the trailing partial block', () => {
    const keyer = new RequestKeyer(16);
    expect(keyer.compute(new Array(47).fill(3))).toBe(2);
    expect(keyer.compute(new Array(15).fill(3))).toBe(0);
  });

  it('differ for LoRA name, cache salt, and their swap, and not for empty strings', () => {
    const plain = requestKeyRoot({});
    expect(requestKeyRoot({ loraName: '', cacheSalt: '' })).toEqual(plain);
    const lora = requestKeyRoot({ loraName: 'ab' });
    const salt = requestKeyRoot({ cacheSalt: 'ab' });
    const both = requestKeyRoot({ loraName: 'ab', cacheSalt: 'ab' });
    const roots = [plain, lora, salt, both].map((r) => keyToBigInt(r.lo, r.hi));
    expect(new Set(roots).size).toBe(4);
  });

  it('continue a chain from a parent exactly as one long computation would', () => {
    const tokens = Uint32Array.from({ length: 64 }, (_, i) => i * 7919);
    const whole = new Uint32Array(8);
    writeRequestKeys(tokens, 0, 64, 16, 0, 0, whole, 0);
    const tail = new Uint32Array(4);
    writeRequestKeys(tokens, 32, 64, 16, whole[2]!, whole[3]!, tail, 0);
    expect(Array.from(tail)).toEqual(Array.from(whole.subarray(4, 8)));
  });

  it('reject token ids that are not uint32 integers with the offending index', () => {
    const keyer = new RequestKeyer(2);
    expect(() => keyer.compute([1, 2, -1, 4])).toThrow(/index 2/);
    expect(() => keyer.compute([1, 2.5])).toThrow(/index 1/);
  });
});
