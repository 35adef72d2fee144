// vLLM v1's KVCacheManager for one full-attention group whose block size equals the hash block
// size: longest-prefix lookup capped at prompt_len - 1, slot allocation (with the full-sequence
// admission check vLLM applies to waiting requests), caching of newly full blocks, and freeing in
// reverse block order so a request's tail blocks are evicted first.

import type { SimRequest } from '../request.ts';
import { BlockPool } from './block-pool.ts';

export interface ComputedBlocks {
  blocks: number[];
  numComputedTokens: number;
}

export interface PrefixCacheCounters {
  queries: number;
  hits: number;
}

export class KvCacheManager {
  readonly pool: BlockPool;
  readonly blockSize: number;
  readonly maxModelLen: number;
  private readonly reqBlocks = new Map<string, number[]>();
  private readonly numCachedBlock = new Map<string, number>();
  /** Cumulative token counts as vLLM's prefix cache stats count them (preempted requests excluded). */
  readonly prefixCache: PrefixCacheCounters = { queries: 0, hits: 0 };

  constructor(options: { numBlocks: number; blockSize: number; maxModelLen: number }) {
    this.pool = new BlockPool(options.numBlocks);
    this.blockSize = options.blockSize;
    this.maxModelLen = options.maxModelLen;
  }

  usage(): number {
    return this.pool.usage();
  }

  blocksOf(requestId: string): readonly number[] {
    return this.reqBlocks.get(requestId) ?? [];
  }

  /** The longest run of cached full blocks from block 0, never covering the last prompt token. */
  getComputedBlocks(request: SimRequest): ComputedBlocks {
    const maxHit = request.numTokens - 1;
    const limit = Math.min(Math.floor(maxHit / this.blockSize), request.blockHashKeys.length);
    const blocks: number[] = [];
    for (let i = 0; i < limit; i++) {
      const b = this.pool.getCachedBlock(request.blockHashKeys[i]!);
      if (b < 0) break;
      blocks.push(b);
    }
    return { blocks, numComputedTokens: blocks.length * this.blockSize };
  }

  recordPrefixCacheStats(request: SimRequest, numHits: number): void {
    if (request.numPreemptions > 0) return;
    this.prefixCache.queries += request.numTokens;
    this.prefixCache.hits += numHits;
  }

  private numBlocksToAllocate(requestId: string, numTokens: number, newComputed: readonly number[]): number {
    const required = Math.ceil(numTokens / this.blockSize);
    const held = this.reqBlocks.get(requestId)?.length ?? 0;
    if (this.numCachedBlock.has(requestId)) return Math.max(required - held, 0);
    let evictable = 0;
    for (const b of newComputed) if (this.pool.refCount(b) === 0 && b !== this.pool.nullBlock) evictable++;
    return Math.max(required - (newComputed.length + held), 0) + evictable;
  }

  /**
   * Reserves slots for `numNewTokens` more tokens (after adopting `newComputed` prefix-hit blocks)
   * and caches the blocks those tokens complete. Returns false when the pool cannot fit it.
   */
  allocateSlots(request: SimRequest, numNewTokens: number, newComputed: ComputedBlocks | null, fullSequenceMustFit: boolean): boolean {
    const computedBlocks = newComputed?.blocks ?? [];
    const numNewComputed = newComputed?.numComputedTokens ?? 0;
    if (numNewTokens === 0 && numNewComputed === 0) throw new Error('allocateSlots needs new tokens or computed tokens to adopt');
    const totalComputed = Math.min(request.numComputedTokens + numNewComputed, this.maxModelLen);
    if (fullSequenceMustFit) {
      const full = Math.min(request.numTokens, this.maxModelLen);
      if (this.numBlocksToAllocate(request.id, full, computedBlocks) > this.pool.numFreeBlocks) return false;
    }
    const needSlot = Math.min(totalComputed + numNewTokens, this.maxModelLen);
    if (this.numBlocksToAllocate(request.id, needSlot, computedBlocks) > this.pool.numFreeBlocks) return false;

    let blocks = this.reqBlocks.get(request.id);
    if (!blocks) {
      blocks = [];
      this.reqBlocks.set(request.id, blocks);
    }
    if (computedBlocks.length > 0) {
      this.pool.touch(computedBlocks);
      blocks.push(...computedBlocks);
      this.numCachedBlock.set(request.id, blocks.length);
    }
    const required = Math.ceil(needSlot / this.blockSize);
    if (required > blocks.length) blocks.push(...this.pool.getNewBlocks(required - blocks.length));

    this.cacheBlocks(request, Math.min(totalComputed + numNewTokens, request.numTokens));
    return true;
  }

  private cacheBlocks(request: SimRequest, numTokens: number): void {
    const numCached = this.numCachedBlock.get(request.id) ?? 0;
    const numFull = Math.floor(Math.min(numTokens, request.blockHashes.length * this.blockSize) / this.blockSize);
    if (numCached >= numFull) return;
    this.pool.cacheFullBlocks(request, this.reqBlocks.get(request.id)!, numCached, numFull, this.blockSize);
    this.numCachedBlock.set(request.id, numFull);
  }

  /** Returns a finished or preempted request's blocks, tail first. */
  free(request: SimRequest): void {
    const blocks = this.reqBlocks.get(request.id) ?? [];
    this.reqBlocks.delete(request.id);
    this.numCachedBlock.delete(request.id);
    this.pool.freeBlocks([...blocks].reverse());
  }

  resetPrefixCache(): boolean {
    return this.pool.resetPrefixCache();
  }
}
