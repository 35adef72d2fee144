import { describe, it, expect } from '@jest/globals';
import { Registry } from 'prom-client';
import { RequestKeyer, keyToBigInt } from '../keys/request.ts';
import { vllmEngineKeys } from '../../vllm/block-hash.ts';
import type { EventSource } from '../types.ts';
import type { BlockStoredEvent, EventBatch, KvEvent } from '../../vllm/events/types.ts';
import { BlockIndex } from './block-index.ts';

const src = (podId: string, dpRank = 0): EventSource => ({ podId, model: 'm', dpRank });
const batch = (...events: KvEvent[]): EventBatch => ({ ts: 0, events, dpRank: null });

/** Deterministic token ids: prompt `p`, tokens [from, to). */
function tokens(p: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => (p * 7919 + i * 31) % 150000);
}

interface StoreArgs {
  hashes: bigint[];
  parent?: bigint | null;
  tokens: number[];
  blockSize?: number;
  medium?: string | null;
  loraName?: string | null;
  extraKeys?: unknown[] | null;
  groupIdx?: number | null;
  kvCacheSpecKind?: string | null;
}

function stored(a: StoreArgs): BlockStoredEvent {
  return {
    type: 'BlockStored',
    blockHashes: BigUint64Array.from(a.hashes),
    parentBlockHash: a.parent ?? null,
    tokenIds: Uint32Array.from(a.tokens),
    blockSize: a.blockSize ?? 16,
    loraId: null,
    loraName: a.loraName ?? null,
    medium: a.medium ?? null,
    extraKeys: a.extraKeys ?? null,
    groupIdx: a.groupIdx ?? null,
    kvCacheSpecKind: a.kvCacheSpecKind ?? null,
  };
}

const removed = (hashes: bigint[], medium: string | null = null, groupIdx: number | null = null): KvEvent => ({
  type: 'BlockRemoved',
  blockHashes: BigUint64Array.from(hashes),
  medium,
  groupIdx,
});

/** Engine hashes as a vLLM with its own random seed would send them: opaque, distinct per pod. */
const engineHashes = (base: bigint, n: number): bigint[] => Array.from({ length: n }, (_, i) => base + BigInt(i));

describe('BlockIndex (request keys learned from events)', () => {
  it('scores a pod by the consecutive blocks it holds from block 0', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(1, 64);
    index.apply(src('a'), batch(stored({ hashes: engineHashes(100n, 4), tokens: t })));
    index.apply(src('b'), batch(stored({ hashes: engineHashes(900n, 2), tokens: t.slice(0, 32) })));
    expect(index.scoreTokens(t)).toEqual({ a: 4, b: 2 });
    expect(index.scoreTokens([...t.slice(0, 32), ...tokens(2, 32)])).toEqual({ a: 2, b: 2 });
    expect(index.scoreTokens(t.slice(0, 40))).toEqual({ a: 2, b: 2 });
  });

  it('leaves out pods that match nothing and gives nothing to a pod missing block 0', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(1, 64);
    index.apply(src('a'), batch(stored({ hashes: engineHashes(100n, 4), tokens: t })));
    index.apply(src('c'), batch(stored({ hashes: engineHashes(500n, 1), tokens: tokens(9, 16) })));
    index.apply(src('a'), batch(removed([100n])));
    expect(index.scoreTokens(t)).toEqual({});
    expect(index.stats().pods).toEqual({ a: 3, c: 1 });
  });

  it('chains a BlockStored onto its parent from an earlier batch', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(3, 64);
    index.apply(src('a'), batch(stored({ hashes: [11n, 12n], tokens: t.slice(0, 32) })));
    index.apply(src('a'), batch(stored({ hashes: [13n, 14n], parent: 12n, tokens: t.slice(32) })));
    expect(index.scoreTokens(t)).toEqual({ a: 4 });
  });

  it('drops a BlockStored whose parent is unknown and counts it, and so its children too', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(4, 96);
    index.apply(src('a'), batch(stored({ hashes: [11n, 12n], tokens: t.slice(0, 32) })));
    // The batch carrying 13, 14 was lost.
    index.apply(src('a'), batch(stored({ hashes: [15n, 16n], parent: 14n, tokens: t.slice(64) })));
    index.apply(src('a'), batch(stored({ hashes: [17n], parent: 16n, tokens: tokens(5, 16) })));
    expect(index.stats().dropped.unknown_parent).toBe(3);
    expect(index.stats().entries).toBe(2);
    expect(index.scoreTokens(t)).toEqual({ a: 2 });
    // Starting fresh would have keyed blocks 15, 16 as a prompt's first blocks: a false match.
    expect(index.scoreTokens(t.slice(64))).toEqual({});
  });

  it('finds a parent held by the same source only', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(6, 32);
    index.apply(src('a'), batch(stored({ hashes: [11n], tokens: t.slice(0, 16) })));
    index.apply(src('b'), batch(stored({ hashes: [12n], parent: 11n, tokens: t.slice(16) })));
    expect(index.stats().dropped.unknown_parent).toBe(1);
  });

  it('removes blocks named by BlockRemoved, only for the source and tier named', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(7, 48);
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n, 3n], tokens: t }), stored({ hashes: [1n, 2n, 3n], tokens: t, medium: 'CPU' })));
    index.apply(src('b'), batch(stored({ hashes: [1n, 2n, 3n], tokens: t })));
    index.apply(src('a'), batch(removed([3n])));
    expect(index.scoreTokens(t)).toEqual({ a: 2 + 0.8, b: 3 });
    index.apply(src('a'), batch(removed([2n, 3n], 'CPU')));
    expect(index.scoreTokens(t)).toEqual({ a: 2, b: 3 });
  });

  it('clears one pod on AllBlocksCleared and resetSource without touching others', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(8, 32);
    for (const pod of ['a', 'b', 'c']) index.apply(src(pod), batch(stored({ hashes: [1n, 2n], tokens: t })));
    index.apply(src('a'), batch({ type: 'AllBlocksCleared', medium: null }));
    index.resetSource(src('b'));
    expect(index.scoreTokens(t)).toEqual({ c: 2 });
    expect(index.stats()).toMatchObject({ keys: 2, entries: 2 });
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: t })));
    expect(index.scoreTokens(t)).toEqual({ a: 2, c: 2 });
  });

  it('clears only the named tier when AllBlocksCleared carries a medium', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(9, 32);
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: t }), stored({ hashes: [1n, 2n], tokens: t, medium: 'CPU' })));
    index.apply(src('a'), batch({ type: 'AllBlocksCleared', medium: 'GPU' }));
    expect(index.scoreTokens(t)).toEqual({ a: 1.6 });
  });

  it('weights tiers gpu 1.0 and cpu 0.8 by default, configurable, taking the best tier per block', () => {
    const t = tokens(10, 48);
    const index = new BlockIndex({ blockSize: 16, tierWeights: { cpu: 0.5, nvme: 0.25 } });
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n, 3n], tokens: t, medium: 'CPU' })));
    index.apply(src('a'), batch(stored({ hashes: [1n], tokens: t.slice(0, 16), medium: 'GPU' })));
    index.apply(src('b'), batch(stored({ hashes: [1n, 2n], tokens: t.slice(0, 32), medium: 'NVME' })));
    index.apply(src('c'), batch(stored({ hashes: [1n], tokens: t.slice(0, 16), medium: 'tape' })));
    expect(index.scoreTokens(t)).toEqual({ a: 1 + 0.5 + 0.5, b: 0.5, c: 0.5 });
    expect(new BlockIndex({ blockSize: 16 }).stats().keys).toBe(0);
    expect(() => new BlockIndex({ blockSize: 16, tierWeights: { cpu: -1 } })).toThrow(/tierWeights.cpu/);
  });

  it('keeps data-parallel ranks apart and reports the best rank per pod', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(11, 64);
    index.apply(src('a', 0), batch(stored({ hashes: [1n, 2n], tokens: t.slice(0, 32) })));
    index.apply(src('a', 1), batch(stored({ hashes: [5n, 6n, 7n, 8n], tokens: t })));
    expect(index.scoreTokens(t)).toEqual({ a: 4 });
    index.resetSource(src('a', 1));
    expect(index.scoreTokens(t)).toEqual({ a: 2 });
    expect(index.scoreTokens(t, { pods: ['b'] })).toEqual({});
    expect(index.scoreTokens(t, { pods: ['a'] })).toEqual({ a: 2 });
  });

  it('applies a pod filter to its own call only, with buffers reused across calls', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(25, 48);
    index.apply(src('a'), batch(stored({ hashes: engineHashes(100n, 3), tokens: t })));
    index.apply(src('b'), batch(stored({ hashes: engineHashes(200n, 2), tokens: t.slice(0, 32) })));
    expect(index.scoreTokens(t, { pods: ['b'] })).toEqual({ b: 2 });
    expect(index.scoreTokens(t)).toEqual({ a: 3, b: 2 });
    expect(index.scoreTokens(t.slice(0, 16), { pods: ['a', 'nope'] })).toEqual({ a: 1 });
    expect(index.scoreTokens(t)).toEqual({ a: 3, b: 2 });
  });

  it('forgets a source: its entries go, and its pod leaves the per-pod metric once no rank is left', async () => {
    const registry = new Registry();
    const index = new BlockIndex({ blockSize: 16, registry });
    const t = tokens(26, 32);
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: t })));
    index.apply(src('a', 1), batch(stored({ hashes: [3n], tokens: t.slice(0, 16) })));
    index.forgetSource(src('a'));
    expect(index.scoreTokens(t)).toEqual({ a: 1 });
    expect(await registry.metrics()).toContain('kvroute_indexer_pod_blocks{pod="a"} 1');
    index.forgetSource(src('a', 1));
    expect(index.scoreTokens(t)).toEqual({});
    expect(index.stats()).toMatchObject({ keys: 0, entries: 0, pods: {} });
    expect(await registry.metrics()).not.toContain('pod="a"');
  });

  it('drops all sources of a removed pod', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(12, 32);
    index.apply(src('a', 0), batch(stored({ hashes: [1n, 2n], tokens: t })));
    index.apply(src('a', 3), batch(stored({ hashes: [1n, 2n], tokens: t })));
    index.apply(src('b'), batch(stored({ hashes: [1n], tokens: t.slice(0, 16) })));
    index.removePod('a');
    expect(index.scoreTokens(t)).toEqual({ b: 1 });
    expect(index.stats().pods).toEqual({ b: 1 });
  });

  it('separates LoRA adapters and cache salts exactly as vLLM hashes would', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(13, 32);
    index.apply(src('lora'), batch(stored({ hashes: [1n, 2n], tokens: t, loraName: 'sql', extraKeys: [['sql'], ['sql']] })));
    index.apply(src('salted'), batch(stored({ hashes: [3n, 4n], tokens: t, extraKeys: [['tenant-a'], null] })));
    index.apply(src('both'), batch(stored({ hashes: [5n, 6n], tokens: t, loraName: 'sql', extraKeys: [['sql', 'tenant-a'], ['sql']] })));
    index.apply(src('plain'), batch(stored({ hashes: [7n], tokens: t.slice(0, 16) })));
    expect(index.scoreTokens(t)).toEqual({ plain: 1 });
    expect(index.scoreTokens(t, { loraName: 'sql' })).toEqual({ lora: 2 });
    expect(index.scoreTokens(t, { cacheSalt: 'tenant-a' })).toEqual({ salted: 2 });
    expect(index.scoreTokens(t, { loraName: 'sql', cacheSalt: 'tenant-a' })).toEqual({ both: 2 });
    expect(index.scoreTokens(t, { loraName: 'other' })).toEqual({});
  });

  it('keys blocks with multimodal extra keys so that token-only prompts never match them', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(14, 48);
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n, 3n], tokens: t, extraKeys: [null, [['img-hash', 0]], null] })));
    expect(index.scoreTokens(t)).toEqual({ a: 1 });
  });

  it('maps engine blocks 4x smaller than index blocks, across batches, and removes on the completing block', () => {
    const index = new BlockIndex({ blockSize: 64 });
    const t = tokens(15, 160);
    // 10 engine blocks of 16: index blocks end at engine blocks 4 and 8; 9 and 10 stay partial.
    index.apply(src('a'), batch(stored({ hashes: engineHashes(100n, 6), tokens: t.slice(0, 96) })));
    index.apply(src('a'), batch(stored({ hashes: engineHashes(106n, 4), parent: 105n, tokens: t.slice(96, 160) })));
    expect(index.scoreTokens(t)).toEqual({ a: 2 });
    const same = new BlockIndex({ blockSize: 64 });
    same.apply(src('b'), batch(stored({ hashes: [7n, 8n], tokens: t.slice(0, 128), blockSize: 64 })));
    expect(same.scoreTokens(t)).toEqual({ b: 2 });
    index.apply(src('a'), batch(removed([107n])));
    expect(index.scoreTokens(t)).toEqual({ a: 1 });
  });

  it('forgets the oldest partial index block beyond maxPendingPerSource, dropping a later child of it', () => {
    const index = new BlockIndex({ blockSize: 64, maxPendingPerSource: 1 });
    const a = tokens(24, 64);
    const b = tokens(25, 64);
    index.apply(src('a'), batch(stored({ hashes: [1n], tokens: a.slice(0, 16) })));
    index.apply(src('a'), batch(stored({ hashes: [2n], tokens: b.slice(0, 16) })));
    index.apply(src('a'), batch(stored({ hashes: [3n, 4n, 5n], parent: 2n, tokens: b.slice(16) })));
    index.apply(src('a'), batch(stored({ hashes: [6n, 7n, 8n], parent: 1n, tokens: a.slice(16) })));
    expect(index.scoreTokens(b)).toEqual({ a: 1 });
    expect(index.scoreTokens(a)).toEqual({});
    expect(index.stats().dropped.unknown_parent).toBe(3);
  });

  it('maps engine blocks 4x larger than index blocks and removes all four on BlockRemoved', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(16, 192);
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: t.slice(0, 128), blockSize: 64 })));
    index.apply(src('a'), batch(stored({ hashes: [3n], parent: 2n, tokens: t.slice(128), blockSize: 64 })));
    expect(index.scoreTokens(t)).toEqual({ a: 12 });
    expect(index.scoreTokens(t.slice(0, 40))).toEqual({ a: 2 });
    index.apply(src('a'), batch(removed([2n])));
    expect(index.scoreTokens(t)).toEqual({ a: 4 });
    expect(index.stats().entries).toBe(8);
  });

  it('drops blocks whose size neither divides nor is divided by the index block size', () => {
    const index = new BlockIndex({ blockSize: 16 });
    index.apply(src('a'), batch(stored({ hashes: [1n], tokens: tokens(1, 24), blockSize: 24 })));
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: tokens(1, 20) })));
    expect(index.stats().dropped).toMatchObject({ block_size_incompatible: 1, token_count_mismatch: 2 });
    expect(index.stats().entries).toBe(0);
  });

  it('evicts keys in CLOCK order, sparing a key stored again since the last sweep', () => {
    const index = new BlockIndex({ blockSize: 1, maxKeys: 3 });
    const held = (toks: number[]): number[] => toks.map((tok) => (Object.keys(index.scoreTokens([tok])).length > 0 ? 1 : 0));
    const put = (pod: string, h: bigint, tok: number): void =>
      index.apply(src(pod), batch(stored({ hashes: [h], tokens: [tok], blockSize: 1 })));
    put('a', 1n, 1);
    put('a', 2n, 2);
    put('a', 3n, 3);
    put('a', 4n, 4); // all three were referenced once: the sweep clears them and evicts the oldest, 1
    put('b', 22n, 2); // key 2 is stored again: referenced
    put('a', 5n, 5); // the hand passes 2 (second chance) and evicts 3
    // Checked only now: a lookup is a use too, so probing earlier would change what is evicted.
    expect(held([1, 2, 3, 4, 5])).toEqual([0, 1, 0, 1, 1]);
    expect(index.stats()).toMatchObject({ keys: 3, evictions: 2 });
  });

  it('spares a key matched by a lookup since the last sweep, evicting an unread one instead', () => {
    const index = new BlockIndex({ blockSize: 1, maxKeys: 3 });
    const put = (h: bigint, tok: number): void => index.apply(src('a'), batch(stored({ hashes: [h], tokens: [tok], blockSize: 1 })));
    put(1n, 1);
    put(2n, 2);
    put(3n, 3);
    put(4n, 4); // the sweep clears every reference bit and evicts 1; the hand now points at 2
    expect(index.scoreTokens([2])).toEqual({ a: 1 }); // a hit: 2 is referenced again
    put(5n, 5); // the hand passes 2 (second chance) and evicts 3, never read since it was stored
    expect(index.stats()).toMatchObject({ keys: 3, evictions: 2 });
    expect(index.scoreTokens([3])).toEqual({});
    expect(index.scoreTokens([2])).toEqual({ a: 1 });
  });

  it('scores only sources of the requested model, plus sources whose topic names no model', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(21, 48);
    index.apply({ podId: 'llama', model: 'meta-llama/Llama-3.1-8B', dpRank: 0 }, batch(stored({ hashes: [1n, 2n, 3n], tokens: t })));
    index.apply({ podId: 'qwen', model: 'Qwen/Qwen3-8B', dpRank: 0 }, batch(stored({ hashes: [1n, 2n], tokens: t.slice(0, 32) })));
    index.apply({ podId: 'qwen', model: 'Qwen/Qwen3-8B', dpRank: 1 }, batch(stored({ hashes: [7n], tokens: t.slice(0, 16) })));
    expect(index.scoreTokens(t, { model: 'meta-llama/Llama-3.1-8B' })).toEqual({ llama: 3 });
    expect(index.scoreTokens(t, { model: 'Qwen/Qwen3-8B' })).toEqual({ qwen: 2 });
    expect(index.scoreTokens(t, { model: 'Qwen/Qwen3-8B', pods: ['llama', 'qwen'] })).toEqual({ qwen: 2 });
    expect(index.scoreTokens(t, { model: 'no/such-model' })).toEqual({});
    expect(index.scoreTokens(t)).toEqual({ llama: 3, qwen: 2 });
    // Per-pod mode with vLLM's empty default topic: the model is unknown, so the pod serves any.
    index.apply({ podId: 'untitled', model: '', dpRank: 0 }, batch(stored({ hashes: [9n], tokens: t.slice(0, 16) })));
    expect(index.scoreTokens(t, { model: 'no/such-model' })).toEqual({ untitled: 1 });
    // A pod restarted under another model is scored under the new one only.
    index.apply({ podId: 'llama', model: 'Qwen/Qwen3-8B', dpRank: 0 }, batch());
    expect(index.scoreTokens(t, { model: 'meta-llama/Llama-3.1-8B' })).toEqual({ untitled: 1 });
    expect(index.scoreTokens(t, { model: 'Qwen/Qwen3-8B' })).toEqual({ llama: 3, qwen: 2, untitled: 1 });
  });

  it('keeps at most maxPodsPerKey entries per key, evicting the oldest', () => {
    const index = new BlockIndex({ blockSize: 16, maxPodsPerKey: 2 });
    const t = tokens(17, 16);
    for (const pod of ['a', 'b', 'c']) index.apply(src(pod), batch(stored({ hashes: [1n], tokens: t })));
    expect(index.scoreTokens(t)).toEqual({ b: 1, c: 1 });
    expect(index.stats().evictions).toBe(1);
  });

  it('chains a CPU-tier BlockStored onto a parent held in GPU by the same source', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(19, 32);
    index.apply(src('a'), batch(stored({ hashes: [1n], tokens: t.slice(0, 16) })));
    index.apply(src('a'), batch(stored({ hashes: [2n], parent: 1n, tokens: t.slice(16), medium: 'CPU' })));
    expect(index.scoreTokens(t)).toEqual({ a: 1.8 });
  });

  it('follows a block stored again under a new engine hash (engine restarted with another seed)', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(23, 32);
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: t })));
    index.apply(src('a'), batch(stored({ hashes: [51n, 52n], tokens: t })));
    expect(index.stats().entries).toBe(2);
    index.apply(src('a'), batch(removed([2n])));
    expect(index.scoreTokens(t)).toEqual({ a: 2 });
    index.apply(src('a'), batch(removed([52n])));
    expect(index.scoreTokens(t)).toEqual({ a: 1 });
  });

  it.each([false, true])(
    'indexes a hybrid model by its full-attention group, not a sliding-window group that skips blocks (parity %s)',
    (parity) => {
      const t = tokens(27, 64);
      const opts = { blockSize: 16, hashSeed: '0', engineKeyParity: parity };
      const index = new BlockIndex(opts);
      // vLLM hashes every group's blocks alike; the sliding-window group (1) left blocks 0-1 out as null
      // blocks but sent the token ids of all four.
      const hashes = parity ? Array.from(vllmEngineKeys(t, opts)) : engineHashes(500n, 4);
      index.apply(src('a'), batch(stored({ hashes, tokens: t, groupIdx: 0 }), stored({ hashes: hashes.slice(2), tokens: t, groupIdx: 1 })));
      expect(index.stats().dropped).toMatchObject({ sparse_group: 2, token_count_mismatch: 0 });
      expect(index.scoreTokens(t)).toEqual({ a: 4 });
      // The window moved on: group 1 evicts its copy, group 0 still holds the block.
      index.apply(src('a'), batch(removed([hashes[2]!], null, 1)));
      expect(index.scoreTokens(t)).toEqual({ a: 4 });
      // A later dense store of the same group is still that group's, and not indexed.
      index.apply(src('a'), batch(stored({ hashes: hashes.slice(0, 1), tokens: t.slice(0, 16), groupIdx: 1 })));
      expect(index.stats().dropped.sparse_group).toBe(3);
      index.apply(src('a'), batch(removed([hashes[2]!], null, 0)));
      expect(index.scoreTokens(t)).toEqual({ a: 2 });
    },
  );

  it('treats a group named sliding_window or mamba as sparse, and still drops a truly short token list as a mismatch', () => {
    const index = new BlockIndex({ blockSize: 16 });
    const t = tokens(28, 32);
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: t, groupIdx: 2, kvCacheSpecKind: 'mamba' })));
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: t.slice(0, 24), groupIdx: 0 })));
    expect(index.stats().dropped).toMatchObject({ sparse_group: 2, token_count_mismatch: 2 });
    expect(index.scoreTokens(t)).toEqual({});
  });

  it('drops and counts blocks of a 256th distinct medium instead of failing the batch', () => {
    const index = new BlockIndex({ blockSize: 1 });
    for (let m = 0; m < 256; m++) index.apply(src('a'), batch(stored({ hashes: [BigInt(m)], tokens: [m], blockSize: 1, medium: `m${m}` })));
    // gpu, cpu and disk are preconfigured, so 252 more media fit in 255 tier ids.
    expect(index.stats().dropped.too_many_media).toBe(4);
    expect(index.stats().entries).toBe(252);
  });

  it('exports size, evictions, drops and per-pod blocks as kvroute_indexer_* metrics', async () => {
    const registry = new Registry();
    const index = new BlockIndex({ blockSize: 16, registry, maxPodsPerKey: 1 });
    const t = tokens(18, 32);
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: t })));
    index.apply(src('b'), batch(stored({ hashes: [1n], tokens: t.slice(0, 16) })));
    index.apply(src('b'), batch(stored({ hashes: [9n], parent: 77n, tokens: t.slice(16) })));
    const text = await registry.metrics();
    expect(text).toContain('kvroute_indexer_keys 2');
    expect(text).toContain('kvroute_indexer_entries 2');
    expect(text).toContain('kvroute_indexer_pod_blocks{pod="a"} 1');
    expect(text).toContain('kvroute_indexer_pod_blocks{pod="b"} 1');
    expect(text).toContain('kvroute_indexer_evictions_total{kind="entry"} 1');
    expect(text).toContain('kvroute_indexer_dropped_blocks_total{reason="unknown_parent"} 1');
    index.removePod('a');
    expect(await registry.metrics()).not.toContain('pod="a"');
  });
});

describe('BlockIndex in engine-key parity mode', () => {
  const opts = { blockSize: 16, hashSeed: '0' };
  const engineKeys = (t: number[], extra: { loraName?: string; cacheSalt?: string } = {}): bigint[] =>
    Array.from(vllmEngineKeys(t, { ...opts, ...extra }));

  it('scores prompts by vLLM engine keys computed from their tokens', () => {
    const index = new BlockIndex({ ...opts, engineKeyParity: true });
    const t = tokens(20, 64);
    index.apply(src('a'), batch(stored({ hashes: engineKeys(t), tokens: t })));
    index.apply(src('b'), batch(stored({ hashes: engineKeys(t).slice(0, 1), tokens: t.slice(0, 16) })));
    expect(index.scoreTokens(t)).toEqual({ a: 4, b: 1 });
    expect(index.scoreTokens(t, { cacheSalt: 's' })).toEqual({});
  });

  it('indexes blocks after a lost batch, since it needs no parent lookups', () => {
    const t = tokens(21, 96);
    const keys = engineKeys(t);
    const events = [
      stored({ hashes: keys.slice(0, 2), tokens: t.slice(0, 32) }),
      stored({ hashes: keys.slice(4, 6), parent: keys[3]!, tokens: t.slice(64) }),
    ];
    const parity = new BlockIndex({ ...opts, engineKeyParity: true });
    parity.apply(src('a'), batch(...events));
    expect(parity.stats()).toMatchObject({ keys: 4, dropped: { unknown_parent: 0 } });
    // Once the lost blocks arrive again (the pod recomputes them), the whole prompt matches.
    parity.apply(src('a'), batch(stored({ hashes: keys.slice(2, 4), parent: keys[1]!, tokens: t.slice(32, 64) })));
    expect(parity.scoreTokens(t)).toEqual({ a: 6 });
    const learned = new BlockIndex(opts);
    learned.apply(src('a'), batch(...events));
    expect(learned.stats().dropped.unknown_parent).toBe(2);
  });

  it('scores LoRA requests with the adapter path from loraPaths, as vLLM 0.33 hashes ("lora", name, path)', () => {
    const index = new BlockIndex({ ...opts, engineKeyParity: true, loraPaths: { sql: '/adapters/sql' } });
    const t = tokens(23, 48);
    const loraKeys = Array.from(vllmEngineKeys(t, { ...opts, loraName: 'sql', loraPath: '/adapters/sql' }));
    index.apply(src('a'), batch(stored({ hashes: loraKeys, tokens: t, loraName: 'sql' })));
    index.apply(src('b'), batch(stored({ hashes: engineKeys(t), tokens: t })));
    expect(index.scoreTokens(t, { loraName: 'sql' })).toEqual({ a: 3 });
    expect(index.scoreTokens(t)).toEqual({ b: 3 });
  });

  it('scores nothing for a LoRA adapter without a configured path and counts it as unscored', async () => {
    const registry = new Registry();
    const index = new BlockIndex({ ...opts, engineKeyParity: true, loraPaths: { sql: '/adapters/sql' }, registry });
    const t = tokens(24, 32);
    index.apply(src('a'), batch(stored({ hashes: engineKeys(t), tokens: t })));
    expect(index.scoreTokens(t, { loraName: 'unknown-adapter' })).toEqual({});
    expect(index.stats().unscored.lora_path_unknown).toBe(1);
    expect(await registry.metrics()).toContain('kvroute_indexer_unscored_requests_total{reason="lora_path_unknown"} 1');
    expect(index.scoreTokens(t)).toEqual({ a: 2 });
  });

  it('removes by engine key and refuses other block sizes', () => {
    const index = new BlockIndex({ ...opts, engineKeyParity: true });
    const t = tokens(22, 32);
    const keys = engineKeys(t);
    index.apply(src('a'), batch(stored({ hashes: keys, tokens: t }), removed([keys[1]!])));
    expect(index.scoreTokens(t)).toEqual({ a: 1 });
    index.apply(src('a'), batch(stored({ hashes: [1n], tokens: tokens(1, 32), blockSize: 32 })));
    expect(index.stats().dropped.block_size_incompatible).toBe(1);
  });
});

describe('BlockIndex against a reference model', () => {
  it('agrees with a naive model through random stores, removals and clears over shared prefixes', () => {
    let seed = 7;
    const next = (n: number): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) >>> 8) % n;
    const BLOCKS = 8;
    const sources = [src('a', 0), src('a', 1), src('b'), src('c')];
    const media = [null, 'CPU'] as const;
    const weight = { gpu: 1, cpu: 0.8 } as const;
    // Prompt k shares its first k % 4 blocks with prompt 0.
    const base = tokens(100, BLOCKS * 16);
    const prompts = Array.from({ length: 5 }, (_, k) => [...base.slice(0, (k % 4) * 16), ...tokens(200 + k, (BLOCKS - (k % 4)) * 16)]);
    const keyer = new RequestKeyer(16);
    const contentKeys = prompts.map((p) => {
      keyer.compute(p);
      return Array.from({ length: BLOCKS }, (_, j) => keyToBigInt(keyer.keys[2 * j]!, keyer.keys[2 * j + 1]!));
    });
    // What one engine would publish for a block: its own hash of the content, distinct per source.
    const engineHash = (s: number, content: bigint): bigint => BigInt.asUintN(64, content ^ (BigInt(s + 1) * 0x9e3779b97f4a7c15n));
    const model = sources.map(() => new Map<bigint, Set<'gpu' | 'cpu'>>());
    const index = new BlockIndex({ blockSize: 16 });

    const expectedScores = (k: number): Record<string, number> => {
      const out: Record<string, number> = {};
      sources.forEach((source, s) => {
        let score = 0;
        for (const content of contentKeys[k]!) {
          const tiers = model[s]!.get(content);
          if (!tiers || tiers.size === 0) break;
          score += Math.max(...[...tiers].map((t) => weight[t]));
        }
        if (score > 0) out[source.podId] = Math.max(out[source.podId] ?? 0, score);
      });
      return out;
    };
    const round = (r: Record<string, number>): Record<string, number> =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v * 1e6) / 1e6]));

    for (let op = 0; op < 3000; op++) {
      const s = next(sources.length);
      const held = model[s]!;
      const medium = media[next(2)]!;
      const tier = medium === null ? 'gpu' : 'cpu';
      const kind = next(20);
      if (kind < 12) {
        const k = next(prompts.length);
        const from = next(BLOCKS);
        const to = from + 1 + next(BLOCKS - from);
        const parentContent = from > 0 ? contentKeys[k]![from - 1]! : null;
        const stored_ = stored({
          hashes: contentKeys[k]!.slice(from, to).map((c) => engineHash(s, c)),
          parent: parentContent === null ? null : engineHash(s, parentContent),
          tokens: prompts[k]!.slice(from * 16, to * 16),
          medium,
        });
        index.apply(sources[s]!, batch(stored_));
        if (parentContent === null || (held.get(parentContent)?.size ?? 0) > 0) {
          for (const c of contentKeys[k]!.slice(from, to)) {
            if (!held.has(c)) held.set(c, new Set());
            held.get(c)!.add(tier);
          }
        }
      } else if (kind < 17) {
        const k = next(prompts.length);
        const c = contentKeys[k]![next(BLOCKS)]!;
        index.apply(sources[s]!, batch(removed([engineHash(s, c)], medium)));
        held.get(c)?.delete(tier);
      } else if (kind < 18) {
        // With a medium only that tier goes; without one (vLLM's reset) the whole source does.
        index.apply(sources[s]!, batch({ type: 'AllBlocksCleared', medium }));
        if (medium === null) held.clear();
        else for (const tiers of held.values()) tiers.delete(tier);
      } else if (kind < 19) {
        index.apply(sources[s]!, batch({ type: 'AllBlocksCleared', medium: 'CPU' }));
        for (const tiers of held.values()) tiers.delete('cpu');
      } else {
        index.resetSource(sources[s]!);
        held.clear();
      }
      for (let k = 0; k < prompts.length; k++) {
        expect({ op, k, scores: round(index.scoreTokens(prompts[k]!)) }).toEqual({ op, k, scores: round(expectedScores(k)) });
      }
      const entries = model.reduce((n, m) => n + [...m.values()].reduce((a, t) => a + t.size, 0), 0);
      expect({ op, entries: index.stats().entries }).toEqual({ op, entries });
    }
  });
});

describe('BlockIndex bound on blocks per pod', () => {
  it('drops a BlockStored that would take a pod past maxBlocksPerPod, counts it, and stores again once blocks are removed', () => {
    const index = new BlockIndex({ blockSize: 4, maxBlocksPerPod: 3 });
    index.apply(src('a'), batch(stored({ hashes: [1n, 2n], tokens: tokens(1, 8), blockSize: 4 })));
    // Rank 1 of the same pod counts against the same bound.
    index.apply(src('a', 1), batch(stored({ hashes: [3n, 4n], tokens: tokens(2, 8), blockSize: 4 })));
    index.apply(src('b'), batch(stored({ hashes: [5n, 6n], tokens: tokens(3, 8), blockSize: 4 })));
    expect(index.stats()).toMatchObject({ pods: { a: 2, b: 2 }, dropped: { pod_block_limit: 2 } });
    index.apply(src('a'), batch({ type: 'BlockRemoved', blockHashes: BigUint64Array.of(2n), medium: null, groupIdx: null }));
    index.apply(src('a'), batch(stored({ hashes: [7n, 8n], tokens: tokens(4, 8), blockSize: 4 })));
    expect(index.stats().pods).toEqual({ a: 3, b: 2 });
  });

  it('refuses a non-positive maxBlocksPerPod', () => {
    expect(() => new BlockIndex({ blockSize: 4, maxBlocksPerPod: 0 })).toThrow(/maxBlocksPerPod must be a positive integer/);
  });
});
