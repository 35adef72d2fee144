// KV-event ingestion over ZMQ: subscribes (central bind or per-pod connect), decodes each message,
// orders batches per source (pod + data-parallel rank), recovers gaps through vLLM's replay protocol
// or resets the source, and hands batches to the sink through per-source fair queues.

import { Subscriber, type Dealer } from 'zeromq';
import { Registry } from 'prom-client';
import type { Logger } from '../../common/log.ts';
import { sourceKey, type EventSource, type KvEventSink } from '../types.ts';
import { type EventBatch } from '../../vllm/events/types.ts';
import { decodeEventBatch, KvEventDecodeError, type SkippedItems } from '../../vllm/events/decode.ts';
import { FairQueue } from './fair-queue.ts';
import { ingestMetrics, type IngestMetrics } from './metrics.ts';
import { fetchReplay } from './replay.ts';
import { SequenceTracker } from './sequence.ts';
import type { SourceTrust } from './source-trust.ts';
import { endpointForRank, parseSequenceFrame, parseTopicFrame, TopicError, type TopicParts } from '../../vllm/events/topic.ts';

export interface EventIngestorOptions {
  sink: KvEventSink;
  log: Logger;
  registry?: Registry;
  /** replay endpoint per pod id for central mode, when known */
  replayEndpoints?: (podId: string) => string | undefined;
  /** Longest wait for a replay connection and for each replayed batch (default 2000 ms). */
  replayTimeoutMs?: number;
  /** Batches queued for one source before further ones are dropped and later recovered as a gap (default 4096). */
  maxQueuedPerSource?: number;
  /** Wall clock in ms, for the lag metric and source expiry. */
  now?: () => number;
  /**
   * A source that sent nothing for this long is forgotten, here and in the sink, so that pod churn in
   * central mode does not grow per-source state. Default 0, never: vLLM publishes only when its cache
   * changes, so a pod serving only cache hits is silent while its blocks stay valid.
   */
  sourceIdleTimeoutMs?: number;
  /** How often idle sources are looked for (default a quarter of the timeout, at most 60 s). */
  expirySweepMs?: number;
  /** Larger payloads are dropped undecoded and counted (reason too_large); default 16 MiB. */
  maxBatchBytes?: number;
  /** Batches of more events are dropped before decoding them and counted (reason too_many_events); default 65536. */
  maxBatchEvents?: number;
  /**
   * libzmq's hard bound on one received frame (ZMQ_MAXMSGSIZE): a peer sending a larger one is
   * disconnected before it is buffered, and the loss is recovered as a sequence gap. Default 64 MiB.
   */
  zmqMaxMessageBytes?: number;
}

/** Defaults of the ingestion bounds (the indexer's flags document them). */
const INGEST_LIMIT_DEFAULTS = { maxBatchBytes: 16 * 1024 * 1024, maxBatchEvents: 65_536, zmqMaxMessageBytes: 64 * 1024 * 1024 };

export interface IngestStats {
  batches: number;
  events: number;
  malformed: number;
  gaps: number;
  replays: number;
  replayFailures: number;
  /** Catch-up replays on first contact with a source (or after its publisher restarted) that ended / failed. */
  catchUps: number;
  catchUpFailures: number;
  resets: number;
  /** Sources forgotten after sending nothing for sourceIdleTimeoutMs. */
  expired: number;
  /** Batches decoded and waiting to be applied now. */
  queued: number;
  /** Sources (pod x data-parallel rank) tracked now. */
  sources: number;
}

interface Connection {
  socket: Subscriber;
  endpoint: string;
  /** Set in per-pod mode: the pod is known from the connection, not the topic. */
  podId?: string;
  replayEndpoint?: string;
  /** Central mode with discovery: who may connect (ZAP) and which pods a topic may name. */
  trust?: SourceTrust;
  done: Promise<void>;
}

interface HeldBatch {
  seq: number;
  batch: EventBatch;
  /** What the sequence tracker said when it arrived live: the live stream went back (a restart). */
  restarted: boolean;
}

/** Why a replay runs: a gap in a known sequence, or learning what a newly seen publisher still buffers. */
type ReplayKind = 'gap' | 'catch_up';

interface SourceState {
  key: string;
  source: EventSource;
  tracker: SequenceTracker;
  /** Per-pod mode: the connection's replay endpoint (null: none). Central mode: undefined, ask `replayEndpoints`. */
  podReplayEndpoint: string | null | undefined;
  /** A replay is running; live batches wait in `held`, in arrival order. */
  recovering: boolean;
  held: HeldBatch[];
  /** The newest batch dropped because the source's queue was full, until that loss is dealt with. */
  overflowSeq: number | null;
  /** A batch that showed a publisher restart was dropped (queue or hold full): the next one carries the restart. */
  restartPending: boolean;
  gone: boolean;
  /** When the source last sent a well-formed message (ms, the ingestor's clock). */
  lastSeen: number;
}

const YIELD_EVERY_MS = 5;

export class EventIngestor {
  private readonly sink: KvEventSink;
  private readonly log: Logger;
  private readonly metrics: IngestMetrics;
  private readonly replayEndpoints: ((podId: string) => string | undefined) | undefined;
  private readonly replayTimeoutMs: number;
  private readonly maxQueuedPerSource: number;
  private readonly maxBatchBytes: number;
  private readonly maxBatchEvents: number;
  private readonly zmqMaxMessageBytes: number;
  private readonly now: () => number;
  private readonly idleTimeoutMs: number;
  private readonly expiryTimer: NodeJS.Timeout | null;
  private readonly queue: FairQueue;
  private readonly connections = new Set<Connection>();
  private readonly podConnections = new Map<string, Connection[]>();
  private readonly sources = new Map<string, SourceState>();
  private readonly replaySockets = new Set<Dealer>();
  private readonly replaysRunning = new Set<Promise<void>>();
  private readonly skipped: SkippedItems = { unknownFields: [], unknownEventTypes: [] };
  private closing = false;
  private readonly counts: Omit<IngestStats, 'queued' | 'sources'> = {
    batches: 0,
    events: 0,
    malformed: 0,
    gaps: 0,
    replays: 0,
    replayFailures: 0,
    catchUps: 0,
    catchUpFailures: 0,
    resets: 0,
    expired: 0,
  };

  constructor(opts: EventIngestorOptions) {
    this.sink = opts.sink;
    this.log = opts.log;
    this.metrics = ingestMetrics(opts.registry ?? new Registry());
    this.replayEndpoints = opts.replayEndpoints;
    this.replayTimeoutMs = opts.replayTimeoutMs ?? 2000;
    this.maxQueuedPerSource = opts.maxQueuedPerSource ?? 4096;
    this.maxBatchBytes = opts.maxBatchBytes ?? INGEST_LIMIT_DEFAULTS.maxBatchBytes;
    this.maxBatchEvents = opts.maxBatchEvents ?? INGEST_LIMIT_DEFAULTS.maxBatchEvents;
    this.zmqMaxMessageBytes = opts.zmqMaxMessageBytes ?? INGEST_LIMIT_DEFAULTS.zmqMaxMessageBytes;
    this.now = opts.now ?? Date.now;
    this.queue = new FairQueue({ onError: (key, err) => this.log.error('event task failed', { source: key, err }) });
    this.idleTimeoutMs = opts.sourceIdleTimeoutMs ?? 0;
    if (!Number.isFinite(this.idleTimeoutMs) || this.idleTimeoutMs < 0)
      throw new Error(`sourceIdleTimeoutMs must be >= 0, got ${this.idleTimeoutMs}`);
    const sweepMs = opts.expirySweepMs ?? Math.min(60_000, Math.max(1, Math.floor(this.idleTimeoutMs / 4)));
    this.expiryTimer = this.idleTimeoutMs > 0 ? setInterval(() => this.expireIdleSources(), sweepMs) : null;
    this.expiryTimer?.unref();
  }

  /**
   * Forgets every source idle for longer than the timeout and has the sink forget it too (queued
   * behind its pending batches). A source still applying batches or replaying is not idle. Returns
   * how many were forgotten; a timer calls it, tests may too.
   */
  expireIdleSources(): number {
    if (this.idleTimeoutMs <= 0 || this.closing) return 0;
    const cutoff = this.now() - this.idleTimeoutMs;
    let expired = 0;
    for (const state of [...this.sources.values()]) {
      if (state.lastSeen > cutoff || state.recovering || this.queue.size(state.key) > 0) continue;
      state.gone = true;
      this.sources.delete(state.key);
      this.metrics.lag.remove({ source: state.key });
      this.counts.expired++;
      this.metrics.expired.inc();
      const { source, key } = state;
      this.queue.push(key, () => this.callSink('forget', key, () => this.sink.forgetSource(source)));
      this.log.info('source idle: forgotten', { source: key, idleSeconds: Math.round((this.now() - state.lastSeen) / 1000) });
      expired++;
    }
    return expired;
  }

  /**
   * Central mode: binds a SUB socket that pods' publishers connect to; the pod comes from each topic.
   * Returns the endpoint as bound (a port 0 or * resolved to the port the kernel picked).
   */
  async bind(endpoint: string, trust?: SourceTrust): Promise<string> {
    const socket = this.newSubscriber(trust);
    await socket.bind(endpoint);
    this.start({ socket, endpoint, ...(trust ? { trust } : {}), done: Promise.resolve() });
    const bound = socket.lastEndpoint ?? endpoint;
    this.log.info('subscribed to KV events', { mode: 'central', endpoint: bound, publishers: trust ? 'ready-pods-only' : 'any' });
    return bound;
  }

  /**
   * Per-pod mode: connects to a pod's publisher. A pod may have several (one per data-parallel rank),
   * each with its own replay endpoint; connecting the same endpoint twice is a no-op.
   */
  async connectPod(podId: string, endpoint: string, replayEndpoint?: string): Promise<void> {
    if (this.closing) throw new Error('event ingestor is closed');
    if (podId.length === 0) throw new Error('connectPod: podId must not be empty');
    const existing = this.podConnections.get(podId) ?? [];
    if (existing.some((c) => c.endpoint === endpoint)) return;
    const socket = this.newSubscriber();
    socket.connect(endpoint);
    const conn: Connection = { socket, endpoint, podId, replayEndpoint, done: Promise.resolve() };
    this.podConnections.set(podId, [...existing, conn]);
    this.start(conn);
    this.log.info('subscribed to KV events', { mode: 'per-pod', podId, endpoint, replayEndpoint });
  }

  /** Stops listening to a pod and has the sink forget its sources (in order, after their queued batches). */
  async disconnectPod(podId: string): Promise<void> {
    const conns = this.podConnections.get(podId) ?? [];
    this.podConnections.delete(podId);
    for (const c of conns) this.stop(c);
    await Promise.all(conns.map((c) => c.done));
    for (const state of [...this.sources.values()]) {
      if (state.source.podId !== podId) continue;
      state.gone = true;
      this.sources.delete(state.key);
      this.metrics.lag.remove({ source: state.key });
      // Forget, not reset: the pod is gone for good, so the sink frees its source ids too, and a batch
      // still queued from before the disconnect cannot leave an empty source behind.
      const { source, key } = state;
      this.queue.push(key, () => this.callSink('forget', key, () => this.sink.forgetSource(source)));
    }
    this.log.info('unsubscribed from KV events', { podId });
  }

  stats(): IngestStats {
    return { ...this.counts, queued: this.queue.pending, sources: this.sources.size };
  }

  /** Stops receiving, abandons running replays, and applies every batch already queued. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    for (const c of this.connections) this.stop(c);
    for (const d of this.replaySockets) if (!d.closed) d.close();
    await Promise.all([...this.connections].map((c) => c.done));
    await Promise.all([...this.replaysRunning]);
    await this.queue.idle();
  }

  private newSubscriber(trust?: SourceTrust): Subscriber {
    // With a trust, the socket lives in the trust's context and every connection is put to its ZAP
    // handler; enforcing the domain makes a missing handler refuse, never admit.
    const guarded = trust ? { context: trust.context, zapDomain: trust.zapDomain, zapEnforceDomain: true } : {};
    const socket = new Subscriber({ linger: 0, receiveHighWaterMark: 100_000, maxMessageSize: this.zmqMaxMessageBytes, ...guarded });
    // Everything, not just "kv@": a misconfigured topic is then counted and logged, not invisible.
    socket.subscribe();
    return socket;
  }

  private start(conn: Connection): void {
    this.connections.add(conn);
    conn.done = this.receiveLoop(conn);
  }

  private stop(conn: Connection): void {
    this.connections.delete(conn);
    if (!conn.socket.closed) conn.socket.close();
  }

  private async receiveLoop(conn: Connection): Promise<void> {
    let sliceStart = performance.now();
    try {
      for (;;) {
        let frames: Buffer[];
        try {
          frames = await conn.socket.receive();
        } catch (err) {
          if (conn.socket.closed || this.closing) return;
          this.log.limited('zmq-receive', 'warn', 'receiving KV events failed', { endpoint: conn.endpoint, err });
          // A persistent socket error must not become a busy loop.
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        try {
          this.onMessage(conn, frames);
        } catch (err) {
          // A bug, not bad input: count and keep ingesting rather than lose every later event.
          this.malformed('internal', (err as Error).message, { endpoint: conn.endpoint });
        }
        // A flooded socket resolves receive() without a macrotask in between: yield now and then.
        if (performance.now() - sliceStart > YIELD_EVERY_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          sliceStart = performance.now();
        }
      }
    } catch (err) {
      this.log.error('KV-event receive loop stopped', { endpoint: conn.endpoint, err });
    }
  }

  private malformed(reason: string, message: string, fields: Record<string, unknown>): void {
    this.counts.malformed++;
    this.metrics.malformed.inc({ reason });
    this.log.limited(`malformed:${reason}`, 'warn', 'malformed KV-event message dropped', { reason, problem: message, ...fields });
  }

  private onMessage(conn: Connection, frames: Buffer[]): void {
    if (frames.length !== 3) {
      this.malformed('frame_count', `message has ${frames.length} frames: expected [topic, seq, payload]`, { endpoint: conn.endpoint });
      return;
    }
    const [topicFrame, seqFrame, payload] = frames as [Buffer, Buffer, Buffer];
    let parts: TopicParts;
    let seq: number;
    try {
      parts = conn.podId ? this.podTopic(conn.podId, topicFrame) : parseTopicFrame(topicFrame);
    } catch (err) {
      this.malformed('topic', (err as Error).message, { endpoint: conn.endpoint });
      return;
    }
    if (conn.trust && !conn.trust.admitsTopic(parts.podId, conn.endpoint)) return;
    try {
      seq = parseSequenceFrame(seqFrame);
      if (seq < 0) throw new TopicError(`sequence number ${seq} is negative`);
    } catch (err) {
      this.malformed('seq', (err as Error).message, { endpoint: conn.endpoint, podId: parts.podId });
      return;
    }
    const batch = this.decode(payload, parts.podId, seq);
    if (!batch) return;
    const source: EventSource = { podId: parts.podId, model: parts.model, dpRank: batch.dpRank ?? 0 };
    const state = this.sourceState(source, conn);
    // Noted on arrival, before any hold or drop: the live stream's own order tells a restart apart.
    const restarted = state.tracker.arrivedLive(seq) || state.restartPending;
    state.restartPending = false;
    if (this.queue.size(state.key) >= this.maxQueuedPerSource && !state.recovering) {
      // Not accepted: the next accepted batch reveals the gap, or, if none comes, the drained queue does.
      state.overflowSeq = seq;
      state.restartPending = restarted;
      this.metrics.dropped.inc({ reason: 'queue_full' });
      this.log.limited(`queue-full:${state.key}`, 'warn', 'source is behind: batch dropped, will be recovered as a gap', {
        source: state.key,
      });
      return;
    }
    this.offer(state, seq, batch, restarted, true);
  }

  /** In per-pod mode the connection names the pod; the topic only contributes the model, if it has one. */
  private podTopic(podId: string, frame: Buffer): TopicParts {
    try {
      return { podId, model: parseTopicFrame(frame).model };
    } catch {
      return { podId, model: '' };
    }
  }

  private decode(payload: Uint8Array, podId: string, seq: number): EventBatch | null {
    const skipped = this.skipped;
    if (payload.byteLength > this.maxBatchBytes) {
      this.malformed('too_large', `payload of ${payload.byteLength} bytes exceeds the batch limit of ${this.maxBatchBytes}`, {
        podId,
        seq,
      });
      return null;
    }
    try {
      const batch = decodeEventBatch(payload, skipped, this.maxBatchEvents);
      if (skipped.unknownFields.length > 0 || skipped.unknownEventTypes.length > 0) {
        this.metrics.skipped.inc({ kind: 'field' }, skipped.unknownFields.length);
        this.metrics.skipped.inc({ kind: 'event_type' }, skipped.unknownEventTypes.length);
        this.log.limited('unknown-kv-event-items', 'info', 'skipped unknown KV-event fields or types', {
          podId,
          fields: [...new Set(skipped.unknownFields)],
          eventTypes: [...new Set(skipped.unknownEventTypes)],
        });
        skipped.unknownFields.length = 0;
        skipped.unknownEventTypes.length = 0;
      }
      return batch;
    } catch (err) {
      skipped.unknownFields.length = 0;
      skipped.unknownEventTypes.length = 0;
      if (err instanceof KvEventDecodeError) {
        this.malformed(err.reason, err.message, { podId, seq });
        return null;
      }
      throw err;
    }
  }

  private sourceState(source: EventSource, conn: Connection): SourceState {
    const key = sourceKey(source);
    let state = this.sources.get(key);
    if (!state) {
      state = {
        key,
        source,
        tracker: new SequenceTracker(),
        podReplayEndpoint: conn.podId ? (conn.replayEndpoint ?? null) : undefined,
        recovering: false,
        held: [],
        overflowSeq: null,
        restartPending: false,
        gone: false,
        lastSeen: 0,
      };
      this.sources.set(key, state);
    }
    state.lastSeen = this.now();
    return state;
  }

  /**
   * Routes one well-formed live batch through the source's sequence state. `restarted` is the
   * tracker's word on its arrival; `fresh` is false for a batch released from the hold after a replay.
   */
  private offer(state: SourceState, seq: number, batch: EventBatch, restarted: boolean, fresh: boolean): void {
    if (state.recovering) {
      if (state.held.length >= this.maxQueuedPerSource) {
        // Lost like a queue-full drop: a later batch reveals the gap, or the drained queue recovers it.
        state.overflowSeq = seq;
        state.restartPending = restarted;
        this.metrics.dropped.inc({ reason: 'held_full' });
        this.log.limited(`held-full:${state.key}`, 'warn', 'source is behind during a replay: batch dropped, will be recovered as a gap', {
          source: state.key,
        });
        return;
      }
      state.held.push({ seq, batch, restarted });
      return;
    }
    const firstContact = state.tracker.expected === null;
    const verdict = state.tracker.classify(seq, restarted);
    switch (verdict.kind) {
      case 'next':
        if (firstContact && fresh && this.catchUp(state, seq, batch)) return;
        this.enqueueApply(state, seq, batch);
        return;
      case 'duplicate':
        // A replayed copy, or a live batch whose replayed copy was applied first (the replay read the
        // publisher's buffer before PUB delivered it).
        this.metrics.dropped.inc({ reason: 'duplicate' });
        return;
      case 'restart':
        this.log.info('publisher restarted: resetting source', { source: state.key, expected: state.tracker.expected, got: seq });
        this.resetSource(state, 'restart');
        if (fresh && this.catchUp(state, seq, batch)) return;
        this.enqueueApply(state, seq, batch);
        return;
      case 'gap': {
        state.overflowSeq = null;
        this.counts.gaps++;
        this.metrics.gaps.inc();
        const replayEndpoint = this.replayEndpointOf(state);
        if (replayEndpoint && !this.closing) {
          this.log.info('sequence gap: replaying', { source: state.key, from: verdict.from, to: verdict.to, endpoint: replayEndpoint });
          state.held.unshift({ seq, batch, restarted: false });
          this.recover(state, replayEndpoint, verdict.from, 'gap');
        } else {
          this.log.limited(`gap:${state.key}`, 'warn', 'sequence gap without a replay endpoint: resetting source', {
            source: state.key,
            from: verdict.from,
            to: verdict.to,
          });
          this.resetSource(state, 'gap');
          this.enqueueApply(state, seq, batch);
        }
      }
    }
  }

  /** Batches were dropped for a full queue and nothing has come since: recover them now. */
  private recoverOverflow(state: SourceState): void {
    // A replay in flight keeps the marker: batches it holds back may be the ones to recover after it.
    if (state.recovering) return;
    const lastDropped = state.overflowSeq;
    state.overflowSeq = null;
    const from = state.tracker.expected;
    if (lastDropped === null || from === null || lastDropped < from || state.gone || this.closing) return;
    this.counts.gaps++;
    this.metrics.gaps.inc();
    const replayEndpoint = this.replayEndpointOf(state);
    if (replayEndpoint) {
      this.log.info('source queue overflowed: replaying dropped batches', { source: state.key, from, to: lastDropped });
      this.recover(state, replayEndpoint, from, 'gap');
    } else {
      this.log.limited(`overflow:${state.key}`, 'warn', 'source queue overflowed without a replay endpoint: resetting source', {
        source: state.key,
        from,
        to: lastDropped,
      });
      this.resetSource(state, 'overflow');
    }
  }

  private enqueueApply(state: SourceState, seq: number, batch: EventBatch): void {
    state.tracker.accept(seq);
    this.queue.push(state.key, () => this.apply(state, batch));
    this.metrics.queued.set(this.queue.pending);
  }

  private apply(state: SourceState, batch: EventBatch): void {
    const { source, key } = state;
    if (state.overflowSeq !== null && this.queue.size(key) === 0) this.recoverOverflow(state);
    try {
      this.sink.apply(source, batch);
    } catch (err) {
      this.metrics.sinkErrors.inc();
      this.log.limited(`sink-error:${key}`, 'error', 'index failed to apply a batch: resetting source', { source: key, err });
      this.callReset(source, key);
      return;
    }
    this.counts.batches++;
    this.counts.events += batch.events.length;
    this.metrics.batches.inc();
    // Counted per batch, not per event: a labelled prom-client inc costs more than decoding a block.
    let stored = 0;
    let removed = 0;
    let cleared = 0;
    let storedBlocks = 0;
    let removedBlocks = 0;
    for (const e of batch.events) {
      if (e.type === 'BlockStored') {
        stored++;
        storedBlocks += e.blockHashes.length;
      } else if (e.type === 'BlockRemoved') {
        removed++;
        removedBlocks += e.blockHashes.length;
      } else {
        cleared++;
      }
    }
    const m = this.metrics;
    if (stored > 0) {
      m.events.inc({ type: 'BlockStored' }, stored);
      m.blocks.inc({ type: 'BlockStored' }, storedBlocks);
    }
    if (removed > 0) {
      m.events.inc({ type: 'BlockRemoved' }, removed);
      m.blocks.inc({ type: 'BlockRemoved' }, removedBlocks);
    }
    if (cleared > 0) m.events.inc({ type: 'AllBlocksCleared' }, cleared);
    this.metrics.lag.set({ source: key }, Math.max(0, this.now() / 1000 - batch.ts));
    this.metrics.queued.set(this.queue.pending);
  }

  /** Queues a reset behind the source's pending batches and starts its sequence afresh. */
  private resetSource(state: SourceState, reason: string): void {
    state.tracker.forget();
    this.counts.resets++;
    this.metrics.resets.inc({ reason });
    const { source, key } = state;
    this.queue.push(key, () => this.callReset(source, key));
  }

  private callReset(source: EventSource, key: string): void {
    this.callSink('reset', key, () => this.sink.resetSource(source));
  }

  private callSink(what: 'reset' | 'forget', key: string, call: () => void): void {
    try {
      call();
    } catch (err) {
      this.metrics.sinkErrors.inc();
      this.log.limited(`sink-${what}-error`, 'error', `index failed to ${what} a source`, { source: key, err });
    }
  }

  /** Asked at each gap, so an endpoint learned after the first batch (pod discovery) is used. */
  private replayEndpointOf(state: SourceState): string | undefined {
    if (state.podReplayEndpoint !== undefined) return state.podReplayEndpoint ?? undefined;
    const base = this.replayEndpoints?.(state.source.podId);
    if (!base) return undefined;
    try {
      return endpointForRank(base, state.source.dpRank);
    } catch (err) {
      // vLLM cannot bind such an endpoint for this rank either: the gap is counted, not replayed.
      this.log.limited('replay-endpoint-invalid', 'warn', 'no replay endpoint for this data-parallel rank', { source: state.key, err });
      return undefined;
    }
  }

  /**
   * First contact with a publisher (a new source, a restarted indexer, a restarted publisher): its
   * batches before `seq` are not lost, only unseen, and its replay buffer may still hold them. Asks
   * for everything from 0 (vLLM answers with every buffered batch numbered at or above it) and holds
   * `seq` until then. Returns false, and the caller applies the batch, when there is nothing before
   * it or no replay endpoint to ask.
   */
  private catchUp(state: SourceState, seq: number, batch: EventBatch): boolean {
    if (seq === 0 || this.closing) return false;
    const endpoint = this.replayEndpointOf(state);
    if (!endpoint) return false;
    this.log.info('new publisher: replaying what it still buffers', { source: state.key, to: seq - 1, endpoint });
    state.held.unshift({ seq, batch, restarted: false });
    this.recover(state, endpoint, 0, 'catch_up');
    return true;
  }

  private recover(state: SourceState, endpoint: string, from: number, kind: ReplayKind): void {
    state.recovering = true;
    const run = this.replay(state, endpoint, from, kind).finally(() => this.replaysRunning.delete(run));
    this.replaysRunning.add(run);
  }

  private async replay(state: SourceState, endpoint: string, from: number, kind: ReplayKind): Promise<void> {
    let problem: string | null = null;
    let ended = false;
    let dealer: Dealer | undefined;
    try {
      for await (const reply of fetchReplay(endpoint, from, {
        timeoutMs: this.replayTimeoutMs,
        onSocket: (d) => {
          dealer = d;
          this.replaySockets.add(d);
        },
      })) {
        if (state.gone || this.closing) {
          problem = 'abandoned';
          break;
        }
        const batch = this.decode(reply.payload, state.source.podId, reply.seq);
        if (!batch) {
          problem = `replayed batch ${reply.seq} is malformed`;
          break;
        }
        if ((batch.dpRank ?? 0) !== state.source.dpRank) continue;
        // On a catch-up the tracker is fresh, so the oldest batch still buffered is taken as the start.
        const verdict = state.tracker.classify(reply.seq);
        if (verdict.kind === 'duplicate') continue;
        if (verdict.kind === 'gap') {
          problem = `publisher no longer buffers batches ${verdict.from}..${verdict.to}`;
          break;
        }
        this.enqueueApply(state, reply.seq, batch);
      }
      ended = problem === null;
    } catch (err) {
      problem = (err as Error).message;
    } finally {
      if (dealer) this.replaySockets.delete(dealer);
    }
    if (state.gone) return;
    if (kind === 'catch_up') this.endCatchUp(state, ended, problem);
    else if (ended) {
      this.counts.replays++;
      this.metrics.replays.inc({ result: 'ok' });
      this.log.info('sequence gap recovered by replay', { source: state.key, from, next: state.tracker.expected });
    } else {
      this.counts.replayFailures++;
      this.metrics.replays.inc({ result: 'failed' });
      this.log.warn('replay failed: resetting source', { source: state.key, from, problem });
      this.resetSource(state, 'replay_failed');
    }
    state.recovering = false;
    // Batches that arrived live meanwhile, in order; a new gap among them starts another replay.
    while (state.held.length > 0 && !state.recovering) {
      const held = state.held.shift()!;
      this.offer(state, held.seq, held.batch, held.restarted, false);
    }
  }

  private endCatchUp(state: SourceState, ended: boolean, problem: string | null): void {
    const learned = state.tracker.expected;
    if (ended) {
      this.counts.catchUps++;
      this.metrics.catchUps.inc({ result: 'ok' });
      this.log.info('new publisher caught up by replay', { source: state.key, next: learned });
      return;
    }
    this.counts.catchUpFailures++;
    this.metrics.catchUps.inc({ result: 'failed' });
    // Nothing applied: the source simply starts at the held batch, as without a replay endpoint.
    // Part applied: what follows may not join it, so start afresh.
    if (learned === null) {
      this.log.warn('catch-up replay failed: starting from the live stream', { source: state.key, problem });
      return;
    }
    this.log.warn('catch-up replay failed: resetting source', { source: state.key, problem });
    this.resetSource(state, 'replay_failed');
  }
}
