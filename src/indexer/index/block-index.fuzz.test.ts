// Fuzzes the block index with hostile but decodable batches: random block sizes and token counts,
// parents that were never stored, hashes reused across pods and tiers, unknown media, extra keys,
// sparse groups, interleaved with resets, forgets and pod removals, under small key and entry bounds
// so eviction runs often. The index must never throw and its books must balance after every step:
// entries equal the per-pod counts, every key holds an entry, no pod passes its bound, and clearing
// every source leaves nothing behind.

import { describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { fuzzParams, fuzzTimeout, readCorpus } from '../../../test/support/fuzz.ts';
import type { EventSource } from '../types.ts';
import type { BlockStoredEvent, EventBatch, KvEvent } from '../../vllm/events/types.ts';
import { BlockIndex } from './block-index.ts';

const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata', 'fuzz');
const PODS = ['pod-a', 'pod-b', 'pod-c'];
const MAX_BLOCKS_PER_POD = 40;

const source = fc.record({ podId: fc.constantFrom(...PODS), model: fc.constantFrom('m', ''), dpRank: fc.constantFrom(0, 1) });
/** Few distinct hashes, so parents, re-stores and removals hit blocks that exist. */
const engineHash = fc.bigInt({ min: 0n, max: 24n }).map((h) => (h === 24n ? 2n ** 64n - 1n : (h * 0x9e3779b97f4a7c15n) % 2n ** 64n));
const medium = fc.constantFrom(null, 'GPU', 'CPU', 'disk', 'TAPE', '');

const stored: fc.Arbitrary<BlockStoredEvent> = fc
  .record({
    hashes: fc.array(engineHash, { maxLength: 6 }),
    parent: fc.option(engineHash),
    blockSize: fc.constantFrom(1, 2, 3, 4, 8, 16, 32, 0, -4),
    tokenSlack: fc.constantFrom(0, 0, 0, 1, -1, 4),
    medium,
    loraName: fc.option(fc.constantFrom('lora-a', '')),
    loraId: fc.option(fc.integer({ min: -2, max: 3 })),
    extra: fc.option(
      fc.array(fc.option(fc.array(fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant(2n ** 70n)), { maxLength: 3 })), {
        maxLength: 7,
      }),
    ),
    groupIdx: fc.option(fc.nat({ max: 2 })),
    kind: fc.option(fc.constantFrom('full_attention', 'sliding_window', 'mamba')),
  })
  .map((r) => {
    const tokens = Math.max(0, r.hashes.length * Math.max(r.blockSize, 0) + r.tokenSlack);
    return {
      type: 'BlockStored',
      blockHashes: BigUint64Array.from(r.hashes),
      parentBlockHash: r.parent,
      tokenIds: Uint32Array.from({ length: tokens }, (_, i) => (i * 7919) % 50),
      blockSize: r.blockSize,
      loraId: r.loraId,
      loraName: r.loraName,
      medium: r.medium,
      extraKeys: r.extra,
      groupIdx: r.groupIdx,
      kvCacheSpecKind: r.kind,
    } satisfies BlockStoredEvent;
  });

const kvEvent: fc.Arbitrary<KvEvent> = fc.oneof(
  { weight: 4, arbitrary: stored },
  {
    weight: 2,
    arbitrary: fc
      .record({ hashes: fc.array(engineHash, { maxLength: 4 }), medium, groupIdx: fc.option(fc.nat({ max: 2 })) })
      .map((r) => ({ type: 'BlockRemoved' as const, blockHashes: BigUint64Array.from(r.hashes), medium: r.medium, groupIdx: r.groupIdx })),
  },
  { weight: 1, arbitrary: medium.map((m) => ({ type: 'AllBlocksCleared' as const, medium: m })) },
);

type Step =
  | { op: 'apply'; source: EventSource; batch: EventBatch }
  | { op: 'reset'; source: EventSource }
  | { op: 'forget'; source: EventSource }
  | { op: 'removePod'; podId: string }
  | { op: 'score'; tokens: number[]; pods?: string[]; model?: string };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant('apply' as const),
      source,
      batch: fc.array(kvEvent, { maxLength: 4 }).map((events) => ({ ts: 1, events, dpRank: 0 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('reset' as const, 'forget' as const), source }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('removePod' as const), podId: fc.constantFrom(...PODS) }) },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        op: fc.constant('score' as const),
        tokens: fc.array(fc.nat({ max: 49 }), { maxLength: 40 }),
        pods: fc.array(fc.constantFrom(...PODS, 'ghost')),
        model: fc.constantFrom('m', 'other'),
      },
      { requiredKeys: ['op', 'tokens'] },
    ),
  },
);

function checkBooks(index: BlockIndex): void {
  const stats = index.stats();
  const perPod = Object.values(stats.pods);
  expect(perPod.reduce((a, b) => a + b, 0)).toBe(stats.entries);
  expect(stats.keys).toBeLessThanOrEqual(stats.entries);
  for (const n of perPod) expect(n).toBeLessThanOrEqual(MAX_BLOCKS_PER_POD);
}

describe('BlockIndex under hostile batches (fast-check, fixed seed)', () => {
  for (const mode of [
    { name: 'request keys, index block 4', blockSize: 4, engineKeyParity: false },
    { name: 'request keys, index block 2', blockSize: 2, engineKeyParity: false },
    { name: 'engine-key parity', blockSize: 4, engineKeyParity: true },
  ]) {
    it(
      `never throws and keeps its books balanced (${mode.name})`,
      () => {
        fc.assert(
          fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), (steps) => {
            const index = new BlockIndex({
              blockSize: mode.blockSize,
              engineKeyParity: mode.engineKeyParity,
              maxKeys: 32,
              maxPodsPerKey: 2,
              maxPendingPerSource: 4,
              maxBlocksPerPod: MAX_BLOCKS_PER_POD,
              tierWeights: { gpu: 1, cpu: 0.8 },
            });
            const seen: EventSource[] = [];
            for (const s of steps) {
              if (s.op === 'apply') {
                index.apply(s.source, s.batch);
                seen.push(s.source);
              } else if (s.op === 'reset') index.resetSource(s.source);
              else if (s.op === 'forget') index.forgetSource(s.source);
              else if (s.op === 'removePod') index.removePod(s.podId);
              else if (s.op === 'score') {
                const scores = index.scoreTokens(s.tokens, { ...(s.pods ? { pods: s.pods } : {}), ...(s.model ? { model: s.model } : {}) });
                for (const v of Object.values(scores)) expect(Number.isFinite(v) && v >= 0).toBe(true);
              }
              checkBooks(index);
            }
            for (const src of seen) index.resetSource(src);
            expect(index.stats()).toMatchObject({ entries: 0, keys: 0 });
          }),
          fuzzParams(300),
        );
      },
      fuzzTimeout(300, 60_000),
    );
  }
});

// ---- recorded corpus ------------------------------------------------------------------------------

interface CorpusEvent {
  type: 'BlockStored' | 'BlockRemoved' | 'AllBlocksCleared';
  blockHashes?: string[];
  parentBlockHash?: string | null;
  tokenIds?: number[];
  blockSize?: number;
  medium?: string | null;
}
interface IndexCorpusCase {
  about: string;
  blockSize: number;
  steps: Array<{ op: 'apply'; source: EventSource; events: CorpusEvent[] } | { op: 'reset'; source: EventSource }>;
  /** Dropped-block counts by reason after the steps. */
  expectDropped: Record<string, number>;
}

/** A corpus event (uint64 hashes as decimal strings) as the decoder would produce it. */
function revive(e: CorpusEvent): KvEvent {
  const hashes = BigUint64Array.from((e.blockHashes ?? []).map(BigInt));
  if (e.type === 'BlockRemoved') return { type: e.type, blockHashes: hashes, medium: e.medium ?? null, groupIdx: null };
  if (e.type === 'AllBlocksCleared') return { type: e.type, medium: e.medium ?? null };
  return {
    type: 'BlockStored',
    blockHashes: hashes,
    parentBlockHash: e.parentBlockHash === null || e.parentBlockHash === undefined ? null : BigInt(e.parentBlockHash),
    tokenIds: Uint32Array.from(e.tokenIds ?? []),
    blockSize: e.blockSize ?? 16,
    loraId: null,
    loraName: null,
    medium: e.medium ?? null,
    extraKeys: null,
    groupIdx: null,
    kvCacheSpecKind: null,
  };
}

describe('BlockIndex recorded corpus (testdata/fuzz)', () => {
  const corpus = readCorpus<IndexCorpusCase>(CORPUS);
  it('has recorded inputs', () => expect(corpus.length).toBeGreaterThan(0));
  for (const { file, value } of corpus) {
    it(`${file}: ${value.about}`, () => {
      const index = new BlockIndex({ blockSize: value.blockSize });
      for (const s of value.steps) {
        if (s.op === 'apply') index.apply(s.source, { ts: 1, events: s.events.map(revive), dpRank: 0 });
        else index.resetSource(s.source);
        checkBooks(index);
      }
      expect(index.stats().dropped).toMatchObject(value.expectDropped);
    });
  }
});
