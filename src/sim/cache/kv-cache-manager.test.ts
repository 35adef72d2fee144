import { describe, expect, it } from '@jest/globals';
import { requestHasher } from '../hashing.ts';
import { SimRequest } from '../request.ts';
import { KvCacheManager } from './kv-cache-manager.ts';

const BS = 4;
let n = 0;
function req(tokens: number[], opts: { lora?: { name: string; id: number; path: string }; salt?: string } = {}): SimRequest {
  return new SimRequest({
    id: `r${n++}`,
    promptTokens: tokens,
    maxTokens: 4,
    blockSize: BS,
    hasher: requestHasher({ blockSize: BS, hashSeed: '0' }, opts.lora ?? null, opts.salt ?? null),
    lora: opts.lora ?? null,
    cacheSalt: opts.salt ?? null,
    arrivalMs: 0,
  });
}
const range = (a: number, k: number) => Array.from({ length: k }, (_, i) => a + i);

/** Admits a request like the scheduler does (lookup, then full prefill) and returns its hit. */
function admit(kv: KvCacheManager, r: SimRequest): number {
  const hit = kv.getComputedBlocks(r);
  expect(kv.allocateSlots(r, r.numTokens - hit.numComputedTokens, hit.blocks.length ? hit : null, true)).toBe(true);
  r.numComputedTokens = r.numTokens;
  return hit.numComputedTokens;
}

describe('KvCacheManager', () => {
  it('never counts the last prompt token as cached: a fully cached prompt recomputes its last block', () => {
    const kv = new KvCacheManager({ numBlocks: 10, blockSize: BS, maxModelLen: 64 });
    const a = req(range(1, 8));
    admit(kv, a);
    kv.free(a);
    expect(admit(kv, req(range(1, 8)))).toBe(4);
    expect(admit(kv, req(range(1, 9)))).toBe(8);
  });

  it('evicts freed blocks tail first and least recently used first', () => {
    const kv = new KvCacheManager({ numBlocks: 7, blockSize: BS, maxModelLen: 24 });
    const a = req(range(1, 8));
    const b = req(range(100, 8));
    admit(kv, a);
    admit(kv, b);
    const [a0, a1] = kv.blocksOf(a.id);
    const [b0, b1] = kv.blocksOf(b.id);
    kv.free(a);
    kv.free(b);
    // Unused blocks 5, 6 first; then a's tail, a's head, b's tail, b's head.
    expect(kv.pool.freeBlocksInEvictionOrder()).toEqual([5, 6, a1, a0, b1, b0]);
    kv.pool.takeEvents();
    const c = req(range(500, 16));
    admit(kv, c);
    const removed = kv.pool.takeEvents().filter((e) => e.type === 'BlockRemoved');
    expect(removed).toHaveLength(2);
    expect(kv.getComputedBlocks(req(range(1, 9))).numComputedTokens).toBe(0);
    expect(kv.getComputedBlocks(req(range(100, 9))).numComputedTokens).toBe(8);
  });

  it('takes a hit block out of the free queue so it cannot be evicted while in use', () => {
    const kv = new KvCacheManager({ numBlocks: 6, blockSize: BS, maxModelLen: 20 });
    const a = req(range(1, 8));
    admit(kv, a);
    kv.free(a);
    const b = req(range(1, 9));
    expect(admit(kv, b)).toBe(8);
    for (const blk of kv.blocksOf(b.id).slice(0, 2)) {
      expect(kv.pool.refCount(blk)).toBe(1);
      expect(kv.pool.freeBlocksInEvictionOrder()).not.toContain(blk);
    }
  });

  it('gives LoRA and cache_salt requests their own hashes', () => {
    const kv = new KvCacheManager({ numBlocks: 20, blockSize: BS, maxModelLen: 64 });
    const base = req(range(1, 9));
    admit(kv, base);
    kv.free(base);
    expect(admit(kv, req(range(1, 9), { lora: { name: 'ad', id: 1, path: '/a' } }))).toBe(0);
    expect(admit(kv, req(range(1, 9), { salt: 'tenant' }))).toBe(0);
    expect(admit(kv, req(range(1, 9)))).toBe(8);
  });

  it('reports usage over non-null blocks and refuses a reset while blocks are in use', () => {
    const kv = new KvCacheManager({ numBlocks: 5, blockSize: BS, maxModelLen: 16 });
    const a = req(range(1, 8));
    admit(kv, a);
    expect(kv.usage()).toBeCloseTo(0.5);
    expect(kv.resetPrefixCache()).toBe(false);
    kv.free(a);
    expect(kv.usage()).toBe(0);
    kv.pool.takeEvents();
    expect(kv.resetPrefixCache()).toBe(true);
    expect(kv.pool.takeEvents()).toEqual([{ type: 'AllBlocksCleared' }]);
    expect(kv.getComputedBlocks(req(range(1, 9))).numComputedTokens).toBe(0);
  });

  it('refuses to admit a request whose full prompt does not fit', () => {
    const kv = new KvCacheManager({ numBlocks: 3, blockSize: BS, maxModelLen: 16 });
    const r = req(range(1, 12));
    expect(kv.allocateSlots(r, 4, null, true)).toBe(false);
  });
});
