// KV-cache events as vLLM publishes them, decoded into typed values (decode.ts produces them; the
// indexer applies them). One definition shared by every component that reads vLLM's events.

/**
 * Engine block hashes as vLLM puts them in events: uint64 values (for byte-string hashes, the low
 * 8 bytes read big-endian). A BigUint64Array holds them without one heap object per block; hot
 * paths read them as (lo, hi) uint32 pairs through a Uint32Array view of the same buffer.
 */
type EngineHashes = BigUint64Array;

export interface BlockStoredEvent {
  type: 'BlockStored';
  blockHashes: EngineHashes;
  parentBlockHash: bigint | null;
  /** Token ids of all stored blocks, concatenated: blockHashes.length * blockSize of them. */
  tokenIds: Uint32Array;
  blockSize: number;
  loraId: number | null;
  loraName: string | null;
  /** Storage tier as vLLM names it ("GPU", "CPU", ...); null means GPU. */
  medium: string | null;
  /** Per-block extra keys as decoded (LoRA, cache_salt, multimodal), or null. */
  extraKeys: unknown[] | null;
  groupIdx: number | null;
  kvCacheSpecKind: string | null;
}

export interface BlockRemovedEvent {
  type: 'BlockRemoved';
  blockHashes: EngineHashes;
  medium: string | null;
  groupIdx: number | null;
}

export interface AllBlocksClearedEvent {
  type: 'AllBlocksCleared';
  medium: string | null;
}

export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent;

export interface EventBatch {
  /** Publisher timestamp in seconds (vLLM sends time.time()). */
  ts: number;
  events: KvEvent[];
  dpRank: number | null;
}
