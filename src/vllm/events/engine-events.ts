// The KV cache events the simulated block pool records, in vLLM's own terms (full 32-byte digests),
// before they are encoded for the wire in one of the forms vLLM has shipped.

export interface SimBlockStored {
  type: 'BlockStored';
  /** sha256_cbor digests of the newly cached blocks, in chain order. */
  blockHashes: Uint8Array[];
  parentBlockHash: Uint8Array | null;
  tokenIds: number[];
  blockSize: number;
  loraId: number | null;
  loraName: string | null;
  /** One entry per block: the untagged extra keys vLLM publishes (LoRA name, cache salt), or null. */
  extraKeys: Array<string[] | null>;
}

export interface SimBlockRemoved {
  type: 'BlockRemoved';
  blockHash: Uint8Array;
}

interface SimAllBlocksCleared {
  type: 'AllBlocksCleared';
}

export type SimKvEvent = SimBlockStored | SimBlockRemoved | SimAllBlocksCleared;

/** `map`: vLLM >= 0.11 tagged maps with defaults omitted; `array`: the older positional arrays. */
export type KvEventsEncoding = 'map' | 'array';
/** `uint64`: low 8 digest bytes read big-endian (vLLM's default); `bytes`: the raw 32-byte digest. */
export type KvEventsHashForm = 'uint64' | 'bytes';

export const MEDIUM_GPU = 'GPU';
export const FULL_ATTENTION_KIND = 'full_attention';
