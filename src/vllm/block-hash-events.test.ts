import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { VllmBlockHasher, digestToUint64, type VllmHashOptions } from './block-hash.ts';

// The event goldens carry block hashes that vLLM 0.33 computed for the events' token ids; computing
// them here from the tokens alone is what the indexer's engine-key parity mode relies on.

interface ExpectedStored {
  type: 'BlockStored';
  blockHashes: string[];
  parentBlockHash: string | null;
  tokenIds: number[];
  blockSize: number;
  loraName: string | null;
}

interface GoldenBatch {
  name: string;
  encoding: string;
  expected: { events: Array<ExpectedStored | { type: 'BlockRemoved' | 'AllBlocksCleared' }> };
}

const golden = JSON.parse(readFileSync(new URL('./events/testdata/kv-events.json', import.meta.url), 'utf8')) as {
  hashSeed: string;
  batches: GoldenBatch[];
};

/** The request behind the LoRA batch: the adapter path is hashed by vLLM 0.33 but not published. */
const LORA_REQUEST = {
  loraName: 'sql-adapter',
  loraPath: '/adapters/sql-adapter',
  cacheSalt: 'tenant-7',
  mmFeatures: [{ identifier: 'img-a3f1', offset: 3, length: 20 }],
};

const vllmBatches = golden.batches.filter((b) => b.encoding.startsWith('vllm-'));

describe('block hashes in vLLM KV events are reproduced from their token ids', () => {
  it('has vLLM batches to check', () => {
    expect(vllmBatches.length).toBeGreaterThanOrEqual(5);
  });

  it.each(vllmBatches.map((b) => [`${b.encoding}: ${b.name}`, b] as const))('%s', (_name, batch) => {
    // Digests of blocks seen so far in this batch, by engine key, to follow parent links.
    const digestByKey = new Map<string, Uint8Array>();
    let checked = 0;
    for (const event of batch.expected.events) {
      if (event.type !== 'BlockStored') continue;
      const stored = event as ExpectedStored;
      const opts: VllmHashOptions = {
        blockSize: stored.blockSize,
        hashSeed: golden.hashSeed,
        ...(stored.loraName === LORA_REQUEST.loraName ? LORA_REQUEST : {}),
      };
      const hasher = new VllmBlockHasher(opts);
      let parent = stored.parentBlockHash === null ? null : digestByKey.get(stored.parentBlockHash);
      expect(parent).not.toBeUndefined();
      // A stored run continues its parent's chain, so block positions continue from it.
      const firstIndex = stored.parentBlockHash === null ? 0 : [...digestByKey.keys()].indexOf(stored.parentBlockHash) + 1;
      stored.blockHashes.forEach((expectedKey, i) => {
        const tokens = stored.tokenIds.slice(i * stored.blockSize, (i + 1) * stored.blockSize);
        const digest = hasher.hashBlock(parent ?? null, tokens, firstIndex + i);
        expect(digestToUint64(digest).toString()).toBe(expectedKey);
        digestByKey.set(expectedKey, digest);
        parent = digest;
        checked++;
      });
    }
    if (batch.expected.events.some((e) => e.type === 'BlockStored')) expect(checked).toBeGreaterThan(0);
  });
});
