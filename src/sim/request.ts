// One inference request inside the simulated engine: its tokens, the chained block hashes of its
// full blocks (extended as generated tokens fill blocks, like vLLM's Request.block_hashes), and
// its scheduling state.

/** Computes one block's chained digest; the pod builds it from indexer/keys for each request. */
export interface RequestBlockHasher {
  hashBlock(parent: Uint8Array | null, blockTokens: readonly number[], blockIndex: number): Uint8Array;
}

export interface LoraAdapter {
  name: string;
  /** vLLM's lora_int_id: 1-based, in --lora-modules order. */
  id: number;
  path: string;
}

export type RequestStatus = 'waiting' | 'running' | 'preempted' | 'finished';
export type FinishReason = 'length' | 'stop' | 'abort' | 'error';

export interface SimRequestInit {
  id: string;
  promptTokens: readonly number[];
  maxTokens: number;
  blockSize: number;
  hasher: RequestBlockHasher;
  lora?: LoraAdapter | null;
  cacheSalt?: string | null;
  arrivalMs: number;
}

/** A digest as a compact map key. */
function digestKey(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('latin1');
}

export class SimRequest {
  readonly id: string;
  readonly numPromptTokens: number;
  readonly maxTokens: number;
  readonly lora: LoraAdapter | null;
  readonly cacheSalt: string | null;
  readonly arrivalMs: number;
  readonly allTokens: number[];
  readonly blockHashes: Uint8Array[] = [];
  readonly blockHashKeys: string[] = [];
  numComputedTokens = 0;
  status: RequestStatus = 'waiting';
  finishReason: FinishReason | null = null;
  numPreemptions = 0;
  /** Prompt tokens served from the prefix cache at first admission (usage.cached_tokens). */
  numCachedTokens: number | null = null;
  firstScheduledMs: number | null = null;
  firstTokenMs: number | null = null;
  lastTokenMs: number | null = null;
  private readonly blockSize: number;
  private readonly hasher: RequestBlockHasher;

  constructor(init: SimRequestInit) {
    this.id = init.id;
    this.allTokens = [...init.promptTokens];
    this.numPromptTokens = init.promptTokens.length;
    this.maxTokens = init.maxTokens;
    this.lora = init.lora ?? null;
    this.cacheSalt = init.cacheSalt ?? null;
    this.arrivalMs = init.arrivalMs;
    this.blockSize = init.blockSize;
    this.hasher = init.hasher;
    this.updateBlockHashes();
  }

  get numTokens(): number {
    return this.allTokens.length;
  }

  get numOutputTokens(): number {
    return this.allTokens.length - this.numPromptTokens;
  }

  get outputTokens(): number[] {
    return this.allTokens.slice(this.numPromptTokens);
  }

  appendOutputToken(token: number): void {
    this.allTokens.push(token);
    this.updateBlockHashes();
  }

  /** Hashes every new full block, chaining from the last known hash (vLLM's request_block_hasher). */
  private updateBlockHashes(): void {
    const bs = this.blockSize;
    let start = this.blockHashes.length * bs;
    while (start + bs <= this.allTokens.length) {
      const parent = this.blockHashes.length > 0 ? this.blockHashes[this.blockHashes.length - 1]! : null;
      const digest = this.hasher.hashBlock(parent, this.allTokens.slice(start, start + bs), this.blockHashes.length);
      this.blockHashes.push(digest);
      this.blockHashKeys.push(digestKey(digest));
      start += bs;
    }
  }

  /** The untagged extra keys vLLM publishes for block `index` (LoRA name, then cache salt on block 0). */
  eventExtraKeys(index: number): string[] | null {
    const keys: string[] = [];
    if (this.lora) keys.push(this.lora.name);
    if (index === 0 && this.cacheSalt) keys.push(this.cacheSalt);
    return keys.length > 0 ? keys : null;
  }
}
