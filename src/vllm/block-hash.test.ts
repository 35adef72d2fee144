import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import {
  DEFAULT_NONE_HASH_SEED,
  VllmBlockHasher,
  digestToUint64,
  noneHash,
  vllmBlockHashes,
  vllmEngineKeys,
  type ExtraKeysFormat,
  type VllmHashAlgo,
  type VllmMmFeature,
} from './block-hash.ts';

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

interface GoldenFile {
  vllmVersion: string;
  defaultNoneHashSeed: string;
  noneHashes: Array<{ hashSeed: string | null; hashAlgo: VllmHashAlgo; digest: string }>;
  vectors: GoldenVector[];
}

const golden = JSON.parse(readFileSync(new URL('./testdata/vllm-block-hashes.json', import.meta.url), 'utf8')) as GoldenFile;

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function optionsOf(v: GoldenVector) {
  return {
    blockSize: v.blockSize,
    hashSeed: v.hashSeed,
    loraName: v.loraName,
    loraPath: v.loraPath,
    cacheSalt: v.cacheSalt,
    mmFeatures: v.mmFeatures,
    extraKeysFormat: v.extraKeysFormat,
    hashAlgo: v.hashAlgo,
  };
}

describe('vLLM block hashes (sha256_cbor and pickle sha256) against vectors from vLLM 0.33 itself', () => {
  it('uses the golden file of the vLLM version this module targets', () => {
    expect(golden.vllmVersion).toBe('0.33.0');
    expect(golden.defaultNoneHashSeed).toBe(DEFAULT_NONE_HASH_SEED);
    expect(golden.vectors.filter((v) => v.hashAlgo === 'sha256_cbor').length).toBeGreaterThan(20);
    expect(golden.vectors.filter((v) => v.hashAlgo === 'sha256').length).toBeGreaterThan(10);
  });

  it.each(golden.noneHashes.map((n) => [n.hashAlgo, JSON.stringify(n.hashSeed)?.slice(0, 20), n] as const))(
    'derives NONE_HASH (%s) for seed %s',
    (_algo, _seed, n) => {
      expect(hex(noneHash(n.hashSeed, n.hashAlgo))).toBe(n.digest);
    },
  );

  it.each(golden.vectors.map((v) => [v.name, v] as const))('reproduces every block digest: %s', (_name, v) => {
    const hashes = vllmBlockHashes(v.tokens, optionsOf(v));
    expect(hashes.map(hex)).toEqual(v.hashes);
  });

  it.each(golden.vectors.map((v) => [v.name, v] as const))('reproduces every engine key: %s', (_name, v) => {
    const keys = vllmEngineKeys(v.tokens, optionsOf(v));
    expect(Array.from(keys, String)).toEqual(v.uint64);
  });

  it.each(golden.vectors.map((v) => [v.name, v] as const))(
    'hashes block by block from the parent digest like the simulator does: %s',
    (_name, v) => {
      const hasher = new VllmBlockHasher(optionsOf(v));
      let parent: Uint8Array | null = null;
      const digests: string[] = [];
      for (let i = 0; (i + 1) * v.blockSize <= v.tokens.length; i++) {
        parent = hasher.hashBlock(parent, v.tokens.slice(i * v.blockSize, (i + 1) * v.blockSize), i);
        digests.push(hex(parent));
      }
      expect(digests).toEqual(v.hashes);
    },
  );

  it('accepts token ids in a Uint32Array as well as a plain array', () => {
    const v = golden.vectors.find((g) => g.name === 'vocab above 2^16')!;
    expect(vllmBlockHashes(Uint32Array.from(v.tokens), optionsOf(v)).map(hex)).toEqual(v.hashes);
  });
});

describe('digestToUint64', () => {
  it('reads the last 8 bytes big-endian', () => {
    const digest = new Uint8Array(32);
    digest.set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xff], 24);
    digest[0] = 0xaa;
    expect(digestToUint64(digest)).toBe(0x01020304050607ffn);
  });

  it('matches vllmEngineKeys for the same digests', () => {
    const tokens = Array.from({ length: 64 }, (_, i) => i * 7919);
    const opts = { blockSize: 16, hashSeed: '0' };
    expect(vllmBlockHashes(tokens, opts).map(digestToUint64)).toEqual(Array.from(vllmEngineKeys(tokens, opts)));
  });
});

describe('input checking', () => {
  it('rejects a negative or fractional token id naming its index', () => {
    expect(() => vllmBlockHashes([1, 2, -3, 4], { blockSize: 2, hashSeed: '0' })).toThrow(/index 2 .* got -3/);
    expect(() => vllmBlockHashes([1, 2.5], { blockSize: 2, hashSeed: '0' })).toThrow(/index 1 .* got 2.5/);
    expect(() => vllmBlockHashes([2 ** 53, 0], { blockSize: 2, hashSeed: '0' })).toThrow(/index 0/);
  });

  it('requires the adapter path with a LoRA name in the tagged (0.33) form only', () => {
    expect(() => new VllmBlockHasher({ blockSize: 16, hashSeed: '0', loraName: 'a' })).toThrow(/loraPath is required/);
    expect(() => new VllmBlockHasher({ blockSize: 16, hashSeed: '0', loraName: 'a', extraKeysFormat: 'untagged' })).not.toThrow();
  });

  it('rejects a bad block size and unsorted multimodal items', () => {
    expect(() => new VllmBlockHasher({ blockSize: 0, hashSeed: null })).toThrow(/blockSize/);
    const mmFeatures = [
      { identifier: 'b', offset: 10, length: 5 },
      { identifier: 'a', offset: 2, length: 3 },
    ];
    expect(() => new VllmBlockHasher({ blockSize: 16, hashSeed: null, mmFeatures })).toThrow(/mmFeatures\[1\]/);
  });

  it('hashes only full blocks and rejects a partial block given to hashBlock', () => {
    expect(vllmBlockHashes([1, 2, 3], { blockSize: 2, hashSeed: '0' })).toHaveLength(1);
    const hasher = new VllmBlockHasher({ blockSize: 4, hashSeed: '0' });
    expect(() => hasher.hashBlock(null, [1, 2, 3], 0)).toThrow(/exactly 4 tokens/);
  });

  it('treats an empty cache_salt as no salt, as vLLM does', () => {
    const tokens = [5, 6, 7, 8];
    expect(vllmBlockHashes(tokens, { blockSize: 2, hashSeed: '0', cacheSalt: '' }).map(hex)).toEqual(
      vllmBlockHashes(tokens, { blockSize: 2, hashSeed: '0' }).map(hex),
    );
  });
});
