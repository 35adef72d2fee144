// vLLM v1's BlockPool for one full-attention KV cache group: a fixed set of blocks (block 0 is the
// null block), ref counts, the hash -> block map of cached full blocks, eviction in free-queue order,
// and the BlockStored / BlockRemoved / AllBlocksCleared events those transitions produce.

import type { SimKvEvent } from '../../vllm/events/engine-events.ts';
import type { SimRequest } from '../request.ts';
import { FreeBlockQueue } from './free-block-queue.ts';

export class BlockPool {
  readonly numBlocks: number;
  readonly nullBlock: number;
  private readonly refCnt: Int32Array;
  /** Per block: the cached digest, or null when the block holds no cacheable full block. */
  private readonly blockHash: Array<Uint8Array | null>;
  private readonly blockHashKey: Array<string | null>;
  /** Digest key -> block ids holding it, oldest first (vLLM does not de-duplicate). */
  private cached = new Map<string, number[]>();
  private readonly freeQueue: FreeBlockQueue;
  private events: SimKvEvent[] = [];

  constructor(numBlocks: number) {
    if (!Number.isInteger(numBlocks) || numBlocks < 2) throw new Error(`kv blocks must be an integer >= 2, got ${numBlocks}`);
    this.numBlocks = numBlocks;
    this.refCnt = new Int32Array(numBlocks);
    this.blockHash = new Array<Uint8Array | null>(numBlocks).fill(null);
    this.blockHashKey = new Array<string | null>(numBlocks).fill(null);
    this.freeQueue = new FreeBlockQueue(numBlocks);
    this.nullBlock = this.freeQueue.popleft();
  }

  get numFreeBlocks(): number {
    return this.freeQueue.numFree;
  }

  /** vLLM's kv_cache_usage: the share of non-null blocks not in the free queue. */
  usage(): number {
    const total = this.numBlocks - 1;
    return total === 0 ? 0 : 1 - this.freeQueue.numFree / total;
  }

  refCount(block: number): number {
    return this.refCnt[block]!;
  }

  isCached(block: number): boolean {
    return this.blockHash[block] !== null;
  }

  /** Free blocks in eviction order (head first). */
  freeBlocksInEvictionOrder(): number[] {
    return this.freeQueue.toArray();
  }

  /** Distinct cached digests (a digest held by several blocks counts once), for the debug dump. */
  cachedDigests(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const ids of this.cached.values()) if (ids.length > 0) out.push(this.blockHash[ids[0]!]!);
    return out;
  }

  getCachedBlock(hashKey: string): number {
    const ids = this.cached.get(hashKey);
    return ids && ids.length > 0 ? ids[0]! : -1;
  }

  /** Caches blocks[numCached..numFull) of a request and records one BlockStored for them. */
  cacheFullBlocks(request: SimRequest, blocks: readonly number[], numCachedBlocks: number, numFullBlocks: number, blockSize: number): void {
    if (numCachedBlocks >= numFullBlocks) return;
    const hashes: Uint8Array[] = [];
    const extraKeys: Array<string[] | null> = [];
    for (let i = numCachedBlocks; i < numFullBlocks; i++) {
      const blk = blocks[i]!;
      if (blk === this.nullBlock) continue;
      const digest = request.blockHashes[i]!;
      const key = request.blockHashKeys[i]!;
      this.insertHash(blk, digest, key);
      hashes.push(digest);
      extraKeys.push(request.eventExtraKeys(i));
    }
    this.events.push({
      type: 'BlockStored',
      blockHashes: hashes,
      parentBlockHash: numCachedBlocks === 0 ? null : request.blockHashes[numCachedBlocks - 1]!,
      tokenIds: request.allTokens.slice(numCachedBlocks * blockSize, numFullBlocks * blockSize),
      blockSize,
      loraId: request.lora ? request.lora.id : null,
      loraName: request.lora ? request.lora.name : null,
      extraKeys,
    });
  }

  private insertHash(block: number, digest: Uint8Array, key: string): void {
    if (this.blockHashKey[block] === key) return;
    const ids = this.cached.get(key);
    if (ids?.includes(block)) return;
    this.blockHash[block] = digest;
    this.blockHashKey[block] = key;
    if (ids) ids.push(block);
    else this.cached.set(key, [block]);
  }

  /** Takes n blocks from the head of the free queue, evicting any cached content they hold. */
  getNewBlocks(n: number): number[] {
    if (n > this.freeQueue.numFree) throw new Error(`cannot get ${n} free blocks from the pool`);
    const out = this.freeQueue.popleftN(n);
    for (const b of out) {
      this.evictCached(b);
      this.refCnt[b]!++;
    }
    return out;
  }

  private evictCached(block: number): void {
    const key = this.blockHashKey[block];
    if (key === null || key === undefined) return;
    const digest = this.blockHash[block]!;
    const ids = this.cached.get(key);
    let removed = false;
    if (ids) {
      const at = ids.indexOf(block);
      if (at >= 0) {
        ids.splice(at, 1);
        removed = true;
        if (ids.length === 0) this.cached.delete(key);
      }
    }
    this.blockHash[block] = null;
    this.blockHashKey[block] = null;
    if (removed) this.events.push({ type: 'BlockRemoved', blockHash: digest });
  }

  /** A prefix hit: takes the blocks out of the free queue if nobody referenced them. */
  touch(blocks: readonly number[]): void {
    for (const b of blocks) {
      if (b === this.nullBlock) continue;
      if (this.refCnt[b] === 0) this.freeQueue.remove(b);
      this.refCnt[b]!++;
    }
  }

  /**
   * Releases blocks given in eviction priority. Uncached blocks go to the front (reused first,
   * LIFO), cached ones to the back (LRU), as vLLM's free_blocks does.
   */
  freeBlocks(ordered: readonly number[]): void {
    const first: number[] = [];
    const last: number[] = [];
    for (const b of ordered) {
      if (b === this.nullBlock) continue;
      const rc = --this.refCnt[b]!;
      if (rc < 0) throw new Error(`block ${b} freed more often than allocated`);
      if (rc === 0) (this.blockHash[b] === null ? first : last).push(b);
    }
    this.freeQueue.prependN(first);
    this.freeQueue.appendN(last);
  }

  /** Drops every cached hash when no block is in use; false (and no event) otherwise. */
  resetPrefixCache(): boolean {
    const used = this.numBlocks - this.freeQueue.numFree;
    if (used !== 1) return false;
    this.cached = new Map();
    this.blockHash.fill(null);
    this.blockHashKey.fill(null);
    this.events.push({ type: 'AllBlocksCleared' });
    return true;
  }

  takeEvents(): SimKvEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }
}
