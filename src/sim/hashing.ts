// Builds each request's block hasher from src/vllm, so the simulator and the indexer hash blocks
// with the same code: vLLM 0.33's sha256_cbor chain with its tagged LoRA and cache_salt extra keys.

import { VllmBlockHasher } from '../vllm/block-hash.ts';
import type { LoraAdapter, RequestBlockHasher } from './request.ts';

export interface PodHashConfig {
  blockSize: number;
  /** PYTHONHASHSEED as the simulated vLLM would see it; null = unset. */
  hashSeed: string | null;
}

export function requestHasher(config: PodHashConfig, lora: LoraAdapter | null, cacheSalt: string | null): RequestBlockHasher {
  return new VllmBlockHasher({
    blockSize: config.blockSize,
    hashSeed: config.hashSeed,
    loraName: lora?.name ?? null,
    loraPath: lora?.path ?? null,
    cacheSalt,
  });
}
