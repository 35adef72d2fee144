import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { HashInputError, parseTokenIds, vllmHashReport } from './hash-report.ts';
import type { ExtraKeysFormat, VllmHashAlgo, VllmMmFeature } from './block-hash.ts';

/** A vector vLLM 0.33 itself computed (hack/golden generates testdata/vllm-block-hashes.json). */
interface GoldenVector {
  name: string;
  hashAlgo: VllmHashAlgo;
  blockSize: number;
  hashSeed: string | null;
  extraKeysFormat: ExtraKeysFormat;
  loraName: string | null;
  loraPath: string | null;
  cacheSalt: string | null;
  mmFeatures: VllmMmFeature[];
  tokens: number[];
  hashes: string[];
  uint64: string[];
}

const golden = JSON.parse(readFileSync(new URL('./testdata/vllm-block-hashes.json', import.meta.url), 'utf8')) as {
  vectors: GoldenVector[];
};

describe('parseTokenIds', () => {
  it('accepts a JSON array of non-negative integers, including an empty one', () => {
    expect(parseTokenIds(' [0, 1, 151645, 4294967296]\n')).toEqual([0, 1, 151645, 4294967296]);
    expect(parseTokenIds('[]')).toEqual([]);
  });

  it.each([
    ['', /empty/],
    ['[1,', /not valid JSON/],
    ['42', /JSON array .* got number/],
    ['null', /got null/],
    ['[1, 2.5]', /index 1 .* got 2.5/],
    ['[true]', /index 0 .* got true/],
    ['[1e300]', /index 0/],
    ['[18446744073709551615]', /2\^53-1/],
  ])('rejects %j with a message naming the problem', (text, message) => {
    expect(() => parseTokenIds(text)).toThrow(HashInputError);
    expect(() => parseTokenIds(text)).toThrow(message);
  });
});

describe('vllmHashReport', () => {
  it('has golden vectors from vLLM to compare with, including one shorter than a block', () => {
    expect(golden.vectors.length).toBeGreaterThan(20);
    expect(golden.vectors.some((v) => v.tokens.length < v.blockSize)).toBe(true);
    // The golden file itself: one digest per full block, the engine key its low 8 bytes.
    for (const v of golden.vectors) {
      expect({ name: v.name, blocks: v.hashes.length }).toEqual({ name: v.name, blocks: Math.floor(v.tokens.length / v.blockSize) });
      expect(v.uint64).toEqual(v.hashes.map((h) => BigInt(`0x${h.slice(48)}`).toString()));
    }
  });

  it.each(golden.vectors.map((v) => [v.name, v] as const))(
    'lists the hex digests and decimal engine keys vLLM computed: %s',
    (_name, v) => {
      const report = vllmHashReport(v.tokens, {
        blockSize: v.blockSize,
        hashSeed: v.hashSeed,
        loraName: v.loraName,
        loraPath: v.loraPath,
        cacheSalt: v.cacheSalt,
        mmFeatures: v.mmFeatures,
        extraKeysFormat: v.extraKeysFormat,
        hashAlgo: v.hashAlgo,
      });
      expect(report).toEqual({ hashes: v.hashes, uint64: v.uint64 });
    },
  );
});
