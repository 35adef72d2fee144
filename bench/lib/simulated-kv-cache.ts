// The KV cache of one in-bench upstream, as the indexer sees it: vLLM-format KV events over ZMQ for the
// blocks a served request leaves behind. A request whose shared prefix is not resident stores the
// prefix's blocks (its real token ids, so the indexer's keys match later prompts); every request
// stores its own tail blocks (token ids no prompt repeats). A fixed block capacity evicts the least
// recently used groups with BlockRemoved, so the index sees the steady store/evict churn of a full
// GPU cache rather than only growth. Events go out in batches every few milliseconds, as a scheduler
// step would send them.

import { encode } from '@msgpack/msgpack';
import { Publisher } from 'zeromq';
import { mulberry32 } from '../../src/common/random.ts';

export interface SimulatedKvCacheOptions {
  /** The indexer's central ZMQ endpoint (its SUB socket binds; this publisher connects). */
  endpoint: string;
  /** Pod id in the topic kv@<pod>@<model>: the upstream's host:port, as the router names the endpoint. */
  podId: string;
  model: string;
  blockSize: number;
  /** Token ids of each shared prefix, whole blocks only. */
  prefixTokens: number[][];
  /** Blocks each request's own tail stores. */
  tailBlocks: number;
  /** Blocks the cache holds before it evicts. */
  capacityBlocks: number;
  /** Distinguishes this pod's engine hashes from every other pod's. */
  podIndex: number;
  flushMs?: number;
}

export interface KvCacheStats {
  requests: number;
  /** Requests whose shared prefix was resident on the pod that served them (the router's prefix hit). */
  prefixHits: number;
  blocksStored: number;
  blocksRemoved: number;
  batches: number;
}

interface Group {
  hashes: bigint[];
}

export class SimulatedKvCache {
  readonly stats: KvCacheStats = { requests: 0, prefixHits: 0, blocksStored: 0, blocksRemoved: 0, batches: 0 };
  private readonly publisher = new Publisher({ sendHighWaterMark: 0, linger: 0 });
  private readonly topic: string;
  /** Resident groups in least-recently-used order (a Map iterates in insertion order). */
  private readonly groups = new Map<string, Group>();
  private resident = 0;
  private counter = 0;
  private seq = 0n;
  private pending: object[] = [];
  private readonly random: () => number;
  private readonly timer: NodeJS.Timeout;
  private sending = Promise.resolve();

  private readonly options: SimulatedKvCacheOptions;

  constructor(options: SimulatedKvCacheOptions) {
    this.options = options;
    this.topic = `kv@${options.podId}@${options.model}`;
    this.random = mulberry32(options.podIndex + 1);
    this.publisher.connect(options.endpoint);
    this.timer = setInterval(() => this.flush(), options.flushMs ?? 10);
  }

  /** Records that this pod served a request carrying shared prefix `prefix`. */
  serve(prefix: number): void {
    this.stats.requests++;
    const key = `p${prefix}`;
    const group = this.groups.get(key);
    if (group) {
      this.stats.prefixHits++;
      this.groups.delete(key);
      this.groups.set(key, group);
    } else {
      const tokens = this.options.prefixTokens[prefix];
      if (!tokens) throw new RangeError(`prefix ${prefix} out of range (0..${this.options.prefixTokens.length - 1})`);
      this.store(key, tokens, null);
    }
    const parent = this.groups.get(key)!.hashes.at(-1) ?? null;
    const tail: number[] = new Array(this.options.tailBlocks * this.options.blockSize);
    for (let i = 0; i < tail.length; i++) tail[i] = Math.floor(this.random() * 150_000);
    this.store(`t${this.counter}`, tail, parent);
    this.evict();
  }

  private store(key: string, tokens: number[], parent: bigint | null): void {
    const n = Math.floor(tokens.length / this.options.blockSize);
    if (n === 0) return;
    // Engine hashes as a vLLM with its own seed would publish them: opaque, unique to this pod.
    const hashes = Array.from({ length: n }, () => (BigInt(this.options.podIndex + 1) << 48n) | BigInt(++this.counter));
    this.groups.set(key, { hashes });
    this.resident += n;
    this.stats.blocksStored += n;
    this.pending.push({
      type: 'BlockStored',
      block_hashes: hashes,
      parent_block_hash: parent,
      token_ids: tokens.slice(0, n * this.options.blockSize),
      block_size: this.options.blockSize,
      lora_id: null,
      medium: 'GPU',
      lora_name: null,
    });
  }

  private evict(): void {
    const removed: bigint[] = [];
    for (const [key, group] of this.groups) {
      if (this.resident <= this.options.capacityBlocks) break;
      this.groups.delete(key);
      this.resident -= group.hashes.length;
      removed.push(...group.hashes);
    }
    if (removed.length === 0) return;
    this.stats.blocksRemoved += removed.length;
    this.pending.push({ type: 'BlockRemoved', block_hashes: removed, medium: 'GPU' });
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const events = this.pending;
    this.pending = [];
    const seq = Buffer.alloc(8);
    seq.writeBigInt64BE(this.seq++);
    const payload = encode([Date.now() / 1000, events, 0], { useBigInt64: true });
    this.stats.batches++;
    // One send at a time, in order: the indexer orders batches by sequence number.
    this.sending = this.sending.then(() => this.publisher.send([this.topic, seq, payload]));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.flush();
    await this.sending;
    this.publisher.close();
  }
}
