// The block index: which sources (pod, data-parallel rank) hold which blocks, in which tier, learned
// from KV events, and longest-prefix scores for prompts. Keys are request keys (keys/request.ts)
// derived from BlockStored token ids, so any vLLM hash algorithm, seed and block size works; or, in
// engine-key parity mode, vLLM's own engine keys (keys/vllm.ts). Memory-bounded, typed arrays only.

import type { Registry } from 'prom-client';
import { silentLogger, type Logger } from '../../common/log.ts';
import { requestKeyRoot, RequestKeyer, writeRequestKeys } from '../keys/request.ts';
import { xxh64Bytes } from '../keys/request-xxh64.ts';
import { vllmEngineKeys } from '../../vllm/block-hash.ts';
import { ScoreScratch, scoreLongestPrefix, type BlockHolderLookup } from '../scoring/score.ts';
import { sourceKey, type EventSource, type KvEventSink } from '../types.ts';
import { type BlockRemovedEvent, type BlockStoredEvent, type EventBatch } from '../../vllm/events/types.ts';
import { EngineTable } from './engine-table.ts';
import { EntryStore } from './entry-store.ts';
import { KeyTable } from './key-table.ts';
import { newCounters, registerIndexMetrics, type DropReason, type IndexCounters, type UnscoredReason } from './metrics.ts';
import { NO_MODEL, Sources } from './sources.ts';
import { Tiers } from './tiers.ts';

export interface BlockIndexOptions {
  /** Tokens per index block: the granularity of scores. */
  blockSize: number;
  /** Bound on distinct block keys; beyond it CLOCK evicts keys. Default 4M. */
  maxKeys?: number;
  /** Bound on entries (source x tier) per key; beyond it the oldest entry goes. Default 64. */
  maxPodsPerKey?: number;
  /** Tier weights by lowercase medium name; defaults gpu 1.0, cpu 0.8, disk 0.5. */
  tierWeights?: Record<string, number>;
  /** PYTHONHASHSEED of the pool (engine-key parity mode). */
  hashSeed?: string | null;
  /** Index by vLLM's sha256_cbor engine keys (same block size and seed everywhere); no parent lookups. */
  engineKeyParity?: boolean;
  /**
   * LoRA adapter name -> path, as the pool's `--lora-modules name=path`. vLLM 0.33 hashes
   * ("lora", name, path), so parity mode can score a LoRA request only when its path is known.
   */
  loraPaths?: Record<string, string>;
  /** Partial index blocks kept per source (FIFO) when engine blocks are smaller. Default 8192 (~2 MB). */
  maxPendingPerSource?: number;
  /**
   * Bound on entries one pod (all its data-parallel ranks) may hold: a BlockStored that would pass it
   * is dropped and counted (pod_block_limit), so one publisher cannot crowd every other pod out of
   * the index. Default 1Mi, above any real GPU plus CPU-offload cache.
   */
  maxBlocksPerPod?: number;
  registry?: Registry;
  log?: Logger;
}

export interface ScoreOptions {
  /**
   * Only sources publishing under this model (the topic's model) are scored, and sources whose topic
   * names none; absent or null: every source.
   */
  model?: string | null;
  loraName?: string | null;
  cacheSalt?: string | null;
  /** Only these pods are scored. */
  pods?: string[];
}

export interface BlockIndexStats {
  keys: number;
  entries: number;
  evictions: number;
  bytes: number;
  /** Entries per pod. */
  pods: Record<string, number>;
  dropped: Record<DropReason, number>;
  /** Score requests answered with no scores because the index could not key them, by reason. */
  unscored: Record<UnscoredReason, number>;
}

/** Tokens of an unfinished index block when engine blocks are smaller than index blocks. */
interface PendingRun {
  parentLo: number;
  parentHi: number;
  tokens: Uint32Array;
  taint: string;
}

const NO_PARENT = -1;
/** Default bound on one pod's entries (BlockIndexOptions.maxBlocksPerPod). */
const DEFAULT_MAX_BLOCKS_PER_POD = 1 << 20;
const MAX_PARTS = 255;
/** KV-cache group kinds (vLLM's KVCacheSpecKind) that keep only some blocks of a prefix. */
const SPARSE_GROUP_KINDS = new Set(['sliding_window', 'sliding_window_mla', 'mamba', 'chunked_local_attention']);

export class BlockIndex implements KvEventSink {
  readonly blockSize: number;
  readonly engineKeyParity: boolean;
  private readonly hashSeed: string | null;
  private readonly loraPaths: ReadonlyMap<string, string>;
  private readonly keys: KeyTable;
  private readonly entries: EntryStore;
  private readonly engine: EngineTable | null;
  private readonly sources = new Sources();
  private readonly tiers: Tiers;
  private readonly maxPodsPerKey: number;
  private readonly maxPending: number;
  private readonly maxBlocksPerPod: number;
  private readonly pending = new Map<number, Map<bigint, PendingRun>>();
  /** Per source id: KV-cache groups seen to skip blocks (sliding window, Mamba); not indexed. */
  private readonly sparseGroups = new Map<number, Set<number>>();
  private readonly counters: IndexCounters = newCounters();
  private readonly keyer: RequestKeyer;
  private readonly log: Logger;
  private keyBuf = new Uint32Array(256);
  private readonly runBuf: Uint32Array;
  private readonly oneKey = new Uint32Array(2);
  private readonly lookup: BlockHolderLookup;
  /** Reused by every score: scoring is synchronous, so one set of buffers serves all calls. */
  private readonly scratch = new ScoreScratch();

  constructor(opts: BlockIndexOptions) {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1)
      throw new Error(`blockSize must be a positive integer, got ${opts.blockSize}`);
    const maxKeys = opts.maxKeys ?? 4_000_000;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new Error(`maxKeys must be a positive integer, got ${maxKeys}`);
    const maxPods = opts.maxPodsPerKey ?? 64;
    if (!Number.isInteger(maxPods) || maxPods < 1 || maxPods > 65535)
      throw new Error(`maxPodsPerKey must be an integer in [1, 65535], got ${maxPods}`);
    this.blockSize = opts.blockSize;
    this.engineKeyParity = opts.engineKeyParity ?? false;
    this.hashSeed = opts.hashSeed ?? null;
    this.loraPaths = new Map(Object.entries(opts.loraPaths ?? {}));
    this.maxPodsPerKey = maxPods;
    this.maxPending = opts.maxPendingPerSource ?? 8192;
    if (!Number.isInteger(this.maxPending) || this.maxPending < 1)
      throw new Error(`maxPendingPerSource must be a positive integer, got ${this.maxPending}`);
    this.maxBlocksPerPod = opts.maxBlocksPerPod ?? DEFAULT_MAX_BLOCKS_PER_POD;
    if (!Number.isInteger(this.maxBlocksPerPod) || this.maxBlocksPerPod < 1)
      throw new Error(`maxBlocksPerPod must be a positive integer, got ${this.maxBlocksPerPod}`);
    this.keys = new KeyTable(maxKeys);
    this.entries = new EntryStore(!this.engineKeyParity);
    this.engine = this.engineKeyParity ? null : new EngineTable(this.entries);
    this.tiers = new Tiers(opts.tierWeights);
    this.keyer = new RequestKeyer(opts.blockSize);
    this.runBuf = new Uint32Array(opts.blockSize);
    this.log = (opts.log ?? silentLogger).child({ part: 'block-index' });
    this.lookup = (lo, hi, sources, weights) => this.holders(lo, hi, sources, weights);
    registerIndexMetrics(opts.registry, this.counters, {
      keys: () => this.keys.size,
      entries: () => this.entries.size,
      bytes: () => this.bytes(),
      podBlocks: () => this.podBlocks(),
    });
  }

  apply(source: EventSource, batch: EventBatch): void {
    const sid = this.sources.intern(source);
    if (sid < 0) {
      let blocks = 0;
      for (const ev of batch.events) if (ev.type === 'BlockStored') blocks += ev.blockHashes.length;
      this.counters.dropped.too_many_sources += blocks;
      this.log.limited('drop:too_many_sources', 'error', 'too many event sources; dropping batch', { source: sourceKey(source) });
      return;
    }
    this.entries.ensureSources(this.sources.limit);
    for (const ev of batch.events) {
      if (ev.type === 'BlockStored') this.store(sid, ev);
      else if (ev.type === 'BlockRemoved') this.removeBlocks(sid, ev);
      else this.clearSource(sid, ev.medium === null ? -1 : this.tiers.existing(ev.medium), ev.medium === null);
    }
  }

  resetSource(source: EventSource): void {
    const sid = this.sources.find(source);
    if (sid >= 0) this.clearSource(sid, -1, true);
  }

  forgetSource(source: EventSource): void {
    const sid = this.sources.find(source);
    if (sid >= 0) this.releaseSource(sid);
  }

  /** Drops every source (data-parallel rank) of a pod and frees their ids. */
  removePod(podId: string): void {
    for (const sid of this.sources.ofPod(podId)) this.releaseSource(sid);
  }

  /** Clears a source and frees its id, so its pod leaves the per-pod metrics once it has no source left. */
  private releaseSource(sid: number): void {
    this.clearSource(sid, -1, true);
    this.pending.delete(sid);
    this.sparseGroups.delete(sid);
    this.sources.release(sid);
  }

  /** Score per pod: consecutive index blocks from block 0 held, each weighted by its best tier. */
  scoreTokens(tokens: ArrayLike<number>, opts: ScoreOptions = {}): Record<string, number> {
    let keys: Uint32Array;
    let blocks: number;
    if (this.engineKeyParity) {
      const loraName = opts.loraName ?? null;
      const loraPath = loraName === null ? null : this.loraPaths.get(loraName);
      if (loraPath === undefined) {
        // Not the client's mistake but a gap in our config: no engine key can match, so nothing scores.
        this.counters.unscored.lora_path_unknown++;
        this.log.limited(
          'unscored:lora_path_unknown',
          'warn',
          'LoRA adapter has no path in the indexer config (loras): engine-key parity mode cannot hash it, scoring nothing',
          { loraName },
        );
        return {};
      }
      const engineKeys = vllmEngineKeys(tokens, {
        blockSize: this.blockSize,
        hashSeed: this.hashSeed,
        loraName,
        loraPath,
        cacheSalt: opts.cacheSalt ?? null,
      });
      keys = new Uint32Array(engineKeys.buffer, engineKeys.byteOffset, engineKeys.length * 2);
      blocks = engineKeys.length;
    } else {
      blocks = this.keyer.compute(tokens, opts);
      keys = this.keyer.keys;
    }
    const limit = this.sources.limit;
    const scratch = this.scratch;
    scratch.prepare(limit, this.maxPodsPerKey, blocks);
    let allowed: Uint8Array | undefined;
    const allowedIds: number[] = [];
    const byModel = opts.model !== undefined && opts.model !== null;
    if (opts.pods || byModel) {
      allowed = scratch.allowed;
      // -1 for a model no source ever named: only sources naming no model remain.
      const model = byModel ? this.sources.findModel(opts.model!) : -1;
      const models = this.sources.models;
      const servesModel = (sid: number) => !byModel || models[sid] === model || models[sid] === NO_MODEL;
      if (opts.pods) {
        for (const pod of opts.pods) for (const sid of this.sources.ofPod(pod)) if (servesModel(sid)) allowedIds.push(sid);
      } else {
        const keys = this.sources.keys;
        for (let sid = 0; sid < limit; sid++) if (keys[sid] !== '' && servesModel(sid)) allowedIds.push(sid);
      }
      if (allowedIds.length === 0) return {};
      for (const sid of allowedIds) allowed[sid] = 1;
    }
    const result = scoreLongestPrefix(keys, blocks, this.lookup, limit, this.maxPodsPerKey, allowed, scratch);
    for (const sid of allowedIds) scratch.allowed[sid] = 0;
    const scores: Record<string, number> = {};
    for (const sid of result.sources) {
      const pod = this.sources.pods[sid]!;
      const s = result.scores[sid]!;
      if (!(pod in scores) || s > scores[pod]!) scores[pod] = s;
    }
    return scores;
  }

  stats(): BlockIndexStats {
    return {
      keys: this.keys.size,
      entries: this.entries.size,
      evictions: this.counters.keyEvictions + this.counters.entryEvictions,
      bytes: this.bytes(),
      pods: this.podBlocks(),
      dropped: { ...this.counters.dropped },
      unscored: { ...this.counters.unscored },
    };
  }

  private bytes(): number {
    return this.keys.bytes() + this.entries.bytes() + (this.engine?.bytes() ?? 0);
  }

  /** Entries held by the pod of source `sid`, over all its data-parallel ranks. */
  private podEntries(sid: number): number {
    let n = 0;
    for (const other of this.sources.ofPod(this.sources.pods[sid]!)) n += this.entries.sourceCount[other] ?? 0;
    return n;
  }

  private podBlocks(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const pod of this.sources.podIds()) {
      let n = 0;
      for (const sid of this.sources.ofPod(pod)) n += this.entries.sourceCount[sid] ?? 0;
      out[pod] = n;
    }
    return out;
  }

  private holders(lo: number, hi: number, sources: Int32Array, weights: Float64Array): number {
    const id = this.keys.find(lo, hi);
    if (id < 0) return 0;
    // A hit is a use: a hot prefix only ever read must outlive blocks stored once and never asked for.
    this.keys.touch(id);
    const en = this.entries;
    const w = this.tiers.weights;
    let n = 0;
    for (let e = this.keys.head[id]!; e >= 0 && n < sources.length; e = en.nextInKey[e]!) {
      sources[n] = en.source[e]!;
      weights[n] = w[en.tier[e]!]!;
      n++;
    }
    return n;
  }

  private drop(reason: DropReason, blocks: number, sid: number, detail: Record<string, unknown> = {}): void {
    this.counters.dropped[reason] += blocks;
    this.log.limited(`drop:${reason}`, 'warn', 'dropped stored blocks', { reason, blocks, source: this.sources.keys[sid], ...detail });
  }

  // ---- BlockStored ----

  private store(sid: number, ev: BlockStoredEvent): void {
    const n = ev.blockHashes.length;
    if (n === 0) return;
    const bs = ev.blockSize;
    if (!Number.isInteger(bs) || bs < 1) return this.drop('invalid_block_size', n, sid, { blockSize: bs });
    if (this.isSparseGroup(sid, ev)) {
      // vLLM skips null and masked blocks of such groups but still sends the token ids of every block
      // in the range, so which tokens a hash covers is unknown; the full-attention group's event
      // carries the same hashes for all blocks, so nothing is lost by not indexing this one.
      return this.drop('sparse_group', n, sid, {
        groupIdx: ev.groupIdx,
        kind: ev.kvCacheSpecKind,
        blocks: n,
        blockSize: bs,
        tokens: ev.tokenIds.length,
      });
    }
    if (ev.tokenIds.length !== n * bs) {
      return this.drop('token_count_mismatch', n, sid, { blocks: n, blockSize: bs, tokens: ev.tokenIds.length });
    }
    const tier = this.tiers.idOf(ev.medium);
    if (tier < 0) return this.drop('too_many_media', n, sid, { medium: ev.medium });
    const held = this.podEntries(sid);
    const adds = bs >= this.blockSize ? n * Math.max(1, Math.floor(bs / this.blockSize)) : Math.ceil((n * bs) / this.blockSize);
    if (held + adds > this.maxBlocksPerPod)
      return this.drop('pod_block_limit', n, sid, { held, adding: adds, limit: this.maxBlocksPerPod });
    const hashes = new Uint32Array(ev.blockHashes.buffer, ev.blockHashes.byteOffset, n * 2);
    if (this.engineKeyParity) {
      if (bs !== this.blockSize)
        return this.drop('block_size_incompatible', n, sid, { blockSize: bs, indexBlockSize: this.blockSize, mode: 'engine-key-parity' });
      for (let i = 0; i < n; i++) this.addEntry(hashes[2 * i]!, hashes[2 * i + 1]!, sid, tier, 0, 0, 0);
      return;
    }
    if (bs >= this.blockSize && bs % this.blockSize === 0) this.storeWhole(sid, ev, tier, hashes, bs / this.blockSize);
    else if (bs < this.blockSize && this.blockSize % bs === 0) this.storePartial(sid, ev, tier, hashes);
    else this.drop('block_size_incompatible', n, sid, { blockSize: bs, indexBlockSize: this.blockSize });
  }

  /** Engine blocks of `parts` whole index blocks each (parts >= 1). */
  private storeWhole(sid: number, ev: BlockStoredEvent, tier: number, hashes: Uint32Array, parts: number): void {
    const n = ev.blockHashes.length;
    if (parts > MAX_PARTS) return this.drop('block_size_incompatible', n, sid, { blockSize: ev.blockSize, indexBlockSize: this.blockSize });
    let pLo: number;
    let pHi: number;
    if (ev.parentBlockHash === null) {
      const root = this.rootOf(ev);
      pLo = root.lo;
      pHi = root.hi;
    } else {
      const pe = this.findParent(ev.parentBlockHash, sid, tier, parts - 1);
      if (pe === NO_PARENT) return this.drop('unknown_parent', n, sid, { parent: ev.parentBlockHash });
      const keyId = this.entries.key[pe]!;
      pLo = this.keys.lo[keyId]!;
      pHi = this.keys.hi[keyId]!;
    }
    const total = n * parts;
    if (this.keyBuf.length < total * 2) this.keyBuf = new Uint32Array(total * 4);
    const keys = this.keyBuf;
    if (ev.extraKeys === null || !this.hasTaint(ev)) {
      writeRequestKeys(ev.tokenIds, 0, total * this.blockSize, this.blockSize, pLo, pHi, keys, 0);
    } else {
      for (let i = 0; i < n; i++) {
        for (let p = 0; p < parts; p++) {
          const k = i * parts + p;
          writeRequestKeys(ev.tokenIds, k * this.blockSize, (k + 1) * this.blockSize, this.blockSize, pLo, pHi, keys, k);
          if (p === 0) {
            const taint = this.taintOf(ev, i);
            if (taint !== '') this.mixTaint(keys, k, taint);
          }
          pLo = keys[2 * k]!;
          pHi = keys[2 * k + 1]!;
        }
      }
    }
    for (let i = 0; i < n; i++) {
      const eLo = hashes[2 * i]!;
      const eHi = hashes[2 * i + 1]!;
      for (let p = 0; p < parts; p++) {
        const k = i * parts + p;
        this.addEntry(keys[2 * k]!, keys[2 * k + 1]!, sid, tier, p, eLo, eHi);
      }
    }
  }

  /** Engine blocks smaller than index blocks: several engine blocks make one index block. */
  private storePartial(sid: number, ev: BlockStoredEvent, tier: number, hashes: Uint32Array): void {
    const n = ev.blockHashes.length;
    const bs = ev.blockSize;
    let run: PendingRun;
    let pendingOfSource = this.pending.get(sid);
    if (ev.parentBlockHash === null) {
      const root = this.rootOf(ev);
      run = { parentLo: root.lo, parentHi: root.hi, tokens: new Uint32Array(0), taint: '' };
    } else {
      const pendingParent = pendingOfSource?.get(ev.parentBlockHash);
      const pe = pendingParent ? NO_PARENT : this.findParent(ev.parentBlockHash, sid, tier, 0);
      if (pendingParent) run = pendingParent;
      else if (pe !== NO_PARENT) {
        const keyId = this.entries.key[pe]!;
        run = { parentLo: this.keys.lo[keyId]!, parentHi: this.keys.hi[keyId]!, tokens: new Uint32Array(0), taint: '' };
      } else return this.drop('unknown_parent', n, sid, { parent: ev.parentBlockHash });
    }
    for (let i = 0; i < n; i++) {
      const have = run.tokens.length;
      // A publisher that changed its block size mid-chain (never vLLM) leaves a run that no longer ends on an index block.
      if (have + bs > this.blockSize)
        return this.drop('block_size_incompatible', n - i, sid, { blockSize: bs, indexBlockSize: this.blockSize, pendingTokens: have });
      const buf = this.runBuf;
      buf.set(run.tokens, 0);
      buf.set(ev.tokenIds.subarray(i * bs, (i + 1) * bs), have);
      const taint = ev.extraKeys === null ? run.taint : run.taint + this.taintOf(ev, i);
      if (have + bs === this.blockSize) {
        writeRequestKeys(buf, 0, this.blockSize, this.blockSize, run.parentLo, run.parentHi, this.oneKey, 0);
        if (taint !== '') this.mixTaint(this.oneKey, 0, taint);
        const lo = this.oneKey[0]!;
        const hi = this.oneKey[1]!;
        this.addEntry(lo, hi, sid, tier, 0, hashes[2 * i]!, hashes[2 * i + 1]!);
        run = { parentLo: lo, parentHi: hi, tokens: new Uint32Array(0), taint: '' };
      } else {
        run = { parentLo: run.parentLo, parentHi: run.parentHi, tokens: buf.slice(0, have + bs), taint };
        if (!pendingOfSource) this.pending.set(sid, (pendingOfSource = new Map()));
        if (pendingOfSource.size >= this.maxPending) pendingOfSource.delete(pendingOfSource.keys().next().value!);
        pendingOfSource.set(ev.blockHashes[i]!, run);
      }
    }
  }

  /**
   * Whether a BlockStored comes from a KV-cache group that keeps only some blocks (sliding window,
   * Mamba): by its kind when the event names it, or because vLLM left skipped blocks out of its
   * hashes (more token ids than hashes x block size). Remembered per group, so the group's later
   * events, stores and removals, are not applied either.
   */
  private isSparseGroup(sid: number, ev: BlockStoredEvent): boolean {
    const known = ev.groupIdx === null ? undefined : this.sparseGroups.get(sid);
    if (known?.has(ev.groupIdx!)) return true;
    const total = ev.tokenIds.length;
    const skipped = total > ev.blockHashes.length * ev.blockSize && total % ev.blockSize === 0;
    if (!skipped && !(ev.kvCacheSpecKind !== null && SPARSE_GROUP_KINDS.has(ev.kvCacheSpecKind))) return false;
    if (ev.groupIdx !== null) {
      if (known) known.add(ev.groupIdx);
      else this.sparseGroups.set(sid, new Set([ev.groupIdx]));
    }
    return true;
  }

  /** The entry of the parent engine block in this source: the event's tier first, then any other. */
  private findParent(parent: bigint, sid: number, tier: number, part: number): number {
    const engine = this.engine!;
    const lo = Number(parent & 0xffffffffn);
    const hi = Number(parent >> 32n);
    const e = engine.find(lo, hi, sid, tier, part);
    if (e >= 0) return e;
    for (let t = 0; t < this.tiers.names.length; t++) {
      if (t === tier) continue;
      const other = engine.find(lo, hi, sid, t, part);
      if (other >= 0) return other;
    }
    return NO_PARENT;
  }

  /**
   * The chain root of a BlockStored starting at block 0: LoRA name and cache_salt, as in request keys.
   * vLLM publishes extra keys untagged: the LoRA name first (when set), then multimodal pairs, the
   * cache_salt string, prompt-embedding digests. A publisher that sends only lora_id gets a root no
   * prompt can produce, so its LoRA blocks never match base-model prompts.
   */
  private rootOf(ev: BlockStoredEvent): { lo: number; hi: number } {
    let salt: string | null = null;
    const first = ev.extraKeys?.[0];
    if (Array.isArray(first)) {
      const items = ev.loraName !== null && first[0] === ev.loraName ? first.slice(1) : first;
      for (const item of items) if (typeof item === 'string') salt = item;
    }
    const loraName = ev.loraName ?? (ev.loraId !== null && ev.loraId !== 0 ? `\u0000lora-id:${ev.loraId}` : null);
    return requestKeyRoot({ loraName, cacheSalt: salt });
  }

  private hasTaint(ev: BlockStoredEvent): boolean {
    for (let i = 0; i < ev.blockHashes.length; i++) if (this.taintOf(ev, i) !== '') return true;
    return false;
  }

  /**
   * Extra keys of block i other than the LoRA name and block 0's cache_salt (multimodal items, prompt
   * embeddings) as a string, '' if none. Such blocks get keys no token-only prompt can produce.
   */
  private taintOf(ev: BlockStoredEvent, i: number): string {
    const extra = ev.extraKeys?.[i];
    if (!Array.isArray(extra) || extra.length === 0) return '';
    const items = ev.loraName !== null && extra[0] === ev.loraName ? extra.slice(1) : extra;
    const rest = i === 0 && ev.parentBlockHash === null ? items.filter((x) => typeof x !== 'string') : items;
    if (rest.length === 0) return '';
    return JSON.stringify(rest, (_k, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    );
  }

  private mixTaint(keys: Uint32Array, k: number, taint: string): void {
    xxh64Bytes(new TextEncoder().encode(taint), keys[2 * k]!, keys[2 * k + 1]!, keys, k * 2);
  }

  /** Records that `sid` holds key (hi:lo) in `tier`, learned from engine block (engHi:engLo). */
  private addEntry(lo: number, hi: number, sid: number, tier: number, part: number, engLo: number, engHi: number): void {
    const keys = this.keys;
    const en = this.entries;
    if (this.engine) {
      // One engine block per (source, tier, part): a re-store under the same engine hash replaces it.
      const prior = this.engine.find(engLo, engHi, sid, tier, part);
      if (prior >= 0) {
        const pk = en.key[prior]!;
        if (keys.lo[pk] === lo && keys.hi[pk] === hi) {
          keys.touch(pk);
          return;
        }
        this.removeEntry(prior);
      }
    }
    let id = keys.find(lo, hi);
    if (id < 0) {
      if (keys.size >= keys.maxKeys) this.evictKey(keys.victim());
      id = keys.insert(lo, hi);
    } else {
      keys.touch(id);
      let count = 0;
      let last = -1;
      for (let e = keys.head[id]!; e >= 0; e = en.nextInKey[e]!) {
        if (en.source[e] === sid && en.tier[e] === tier) {
          if (this.engine) {
            // Same block stored again under another engine hash (e.g. the engine restarted with a new seed).
            this.engine.remove(e);
            en.engLo[e] = engLo;
            en.engHi[e] = engHi;
            en.part[e] = part;
            this.engine.add(e);
          }
          return;
        }
        count++;
        last = e;
      }
      if (count >= this.maxPodsPerKey) {
        // Entries are pushed at the head, so the last one is the oldest.
        this.removeEntry(last);
        this.counters.entryEvictions++;
        if (keys.head[id] === -1 && !keys.isLive(id)) id = keys.insert(lo, hi);
      }
    }
    const e = en.allocate(id, keys.head[id]!, sid, tier, part, engLo, engHi);
    keys.head[id] = e;
    this.engine?.add(e);
  }

  /** Removes one entry, and its key when it was the key's last. */
  private removeEntry(e: number): void {
    const keys = this.keys;
    const en = this.entries;
    const id = en.key[e]!;
    const head = keys.head[id]!;
    if (head === e) keys.head[id] = en.nextInKey[e]!;
    else {
      let p = head;
      while (en.nextInKey[p] !== e) p = en.nextInKey[p]!;
      en.nextInKey[p] = en.nextInKey[e]!;
    }
    this.engine?.remove(e);
    en.release(e);
    if (keys.head[id] === -1) keys.remove(id);
  }

  private evictKey(id: number): void {
    const en = this.entries;
    for (let e = this.keys.head[id]!; e >= 0;) {
      const next = en.nextInKey[e]!;
      this.removeEntry(e);
      e = next;
    }
    this.counters.keyEvictions++;
  }

  // ---- BlockRemoved / AllBlocksCleared ----

  private removeBlocks(sid: number, ev: BlockRemovedEvent): void {
    // A sparse group evicting its copy of a block says nothing about the full-attention group's copy.
    if (ev.groupIdx !== null && this.sparseGroups.get(sid)?.has(ev.groupIdx)) return;
    const tier = this.tiers.existing(ev.medium);
    const n = ev.blockHashes.length;
    const hashes = new Uint32Array(ev.blockHashes.buffer, ev.blockHashes.byteOffset, n * 2);
    const pendingOfSource = this.pending.get(sid);
    for (let i = 0; i < n; i++) {
      const lo = hashes[2 * i]!;
      const hi = hashes[2 * i + 1]!;
      if (tier < 0) continue;
      if (!this.engine) {
        const id = this.keys.find(lo, hi);
        if (id < 0) continue;
        const en = this.entries;
        for (let e = this.keys.head[id]!; e >= 0; e = en.nextInKey[e]!) {
          if (en.source[e] === sid && en.tier[e] === tier) {
            this.removeEntry(e);
            break;
          }
        }
        continue;
      }
      pendingOfSource?.delete(ev.blockHashes[i]!);
      for (let p = 0; p < MAX_PARTS; p++) {
        const e = this.engine.find(lo, hi, sid, tier, p);
        if (e < 0) break;
        this.removeEntry(e);
      }
    }
  }

  /** Removes a source's entries in one tier (or all tiers), walking only that source's list. */
  private clearSource(sid: number, tier: number, allTiers: boolean): void {
    if (!allTiers && tier < 0) return;
    const en = this.entries;
    for (let e = en.sourceHead[sid] ?? -1; e >= 0;) {
      const next = en.nextInSource[e]!;
      if (allTiers || en.tier[e] === tier) this.removeEntry(e);
      e = next;
    }
    if (allTiers) this.pending.delete(sid);
  }
}
