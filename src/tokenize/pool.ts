// Tokenization in worker threads. Jobs wait in a queue owned here rather than in the workers' message
// ports, so a job whose caller went away or whose deadline passed is dropped before it runs, and the
// queue can be bounded by the time it would take to drain. Each worker runs one job at a time; a model
// prefers one worker (its caches stay warm there) and spills to an idle one when that one is busy. A
// worker that dies is restarted with its job failed rather than lost.

import { Worker } from 'node:worker_threads';
import type { Registry } from 'prom-client';
import { silentLogger, type Logger } from '../common/log.ts';
import { TokenizeInputError } from './model-tokenizer.ts';
import type { WorkerReply, WorkerRequest, WorkerSetup } from './pool-protocol.ts';
import {
  TokenizeMetrics,
  type CacheBytes,
  UnknownModelError,
  shedError,
  shedReason,
  type TokenizeCall,
  type TokenizeInput,
  type TokenizeOutput,
  type Tokenization,
} from './tokenizers.ts';
import { registerWorkerHeapMetrics } from './worker-heap-metrics.ts';

export interface TokenizerPoolOptions extends WorkerSetup {
  workers: number;
  /**
   * Bound on the queue, as time: a job is refused (TokenizeShedError 'overloaded') when the work queued
   * and running ahead of it, plus its own, is estimated to take longer than this, or than is left of
   * its deadline. A job finding a worker idle is always taken. Default: unbounded.
   */
  maxQueueMs?: number;
  registry?: Registry;
  log?: Logger;
  /** Epoch milliseconds; the clock deadlines are read against. */
  now?: () => number;
}

interface Job {
  id: number;
  model: string;
  input: TokenizeInput;
  kind: 'prompt' | 'messages';
  chars: number;
  preferred: number;
  deadline: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Seconds this job is expected to hold a worker (fixed at admission, so the queue sum stays exact). */
  estimate: number;
  /** When a worker took it (the clock of `now`); null while queued. */
  startedAt: number | null;
  done: boolean;
  resolve: (out: TokenizeOutput) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  /** The worker's cache sizes as of its last result. */
  cacheBytes: CacheBytes;
}

function hashModel(model: string): number {
  let h = 2166136261;
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Text length of an input: what tokenizing it costs is roughly proportional to it. */
function inputChars(input: TokenizeInput): number {
  if (input.prompt !== undefined) return input.prompt.length;
  let chars = 0;
  for (const m of input.messages ?? []) {
    if (typeof m.content === 'string') chars += m.content.length;
    else if (Array.isArray(m.content)) for (const p of m.content) chars += p.text?.length ?? 0;
  }
  return chars;
}

/** What a job costs besides its text: the message round trip to the worker and back. */
const JOB_OVERHEAD_SECONDS = 0.0001;
/** Weight of the newest sample in the per-character cost average. */
const COST_SMOOTHING = 0.1;

export class TokenizerPool implements Tokenization {
  private readonly options: TokenizerPoolOptions;
  private readonly log: Logger;
  private readonly metrics: TokenizeMetrics;
  private readonly now: () => number;
  private readonly maxQueueSeconds: number;
  private readonly slots: Slot[] = [];
  /** Jobs not yet started, oldest first; settled ones are skipped when reached, taken ones cleared. */
  private queue: Array<Job | undefined> = [];
  private queueHead = 0;
  /** Sum of the estimates of queued, unsettled jobs. */
  private queuedSeconds = 0;
  /** Average tokenization seconds per character, from the workers' own timings; null until the first. */
  private secondsPerChar: number | null = null;
  private loadedModels: string[] = [];
  private nextId = 1;
  private closing = false;

  constructor(options: TokenizerPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1)
      throw new Error(`tokenizer pool: workers must be an integer >= 1, got ${options.workers}`);
    if (options.maxQueueMs !== undefined && !(options.maxQueueMs > 0))
      throw new Error(`tokenizer pool: maxQueueMs must be > 0, got ${options.maxQueueMs}`);
    this.options = options;
    this.log = options.log ?? silentLogger;
    this.metrics = new TokenizeMetrics(options.registry, () => this.cacheBytes());
    if (options.registry) registerWorkerHeapMetrics(options.registry, () => this.slots.map((s) => (s.ready ? s.worker : null)));
    this.now = options.now ?? Date.now;
    this.maxQueueSeconds = (options.maxQueueMs ?? Infinity) / 1000;
  }

  get models(): string[] {
    return this.loadedModels;
  }

  /** Jobs waiting for a worker (cancelled ones already left). */
  get queued(): number {
    let n = 0;
    for (let i = this.queueHead; i < this.queue.length; i++) if (this.queue[i]?.done === false) n++;
    return n;
  }

  /** Workers running a job now. */
  get busy(): number {
    return this.slots.filter((s) => s.job !== null).length;
  }

  /** Bytes each model's segment caches hold, summed over the workers running now. */
  cacheBytes(): CacheBytes {
    const total: CacheBytes = {};
    for (const slot of this.slots)
      if (slot.ready) for (const [model, bytes] of Object.entries(slot.cacheBytes)) total[model] = (total[model] ?? 0) + bytes;
    return total;
  }

  /** Starts every worker and waits until each has loaded every tokenizer. */
  async load(): Promise<void> {
    const started = performance.now();
    const models = await Promise.all(Array.from({ length: this.options.workers }, (_, i) => this.start(i)));
    this.loadedModels = models[0] ?? [];
    this.log.info('tokenizer workers ready', {
      workers: this.options.workers,
      models: this.loadedModels,
      ms: Math.round(performance.now() - started),
    });
  }

  private start(i: number): Promise<string[]> {
    const setup: WorkerSetup = {
      sources: this.options.sources,
      defaultSource: this.options.defaultSource,
      cacheMaxBytes: this.options.cacheMaxBytes,
      harmonyStartDate: this.options.harmonyStartDate,
    };
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: setup });
    const slot: Slot = { worker, ready: false, job: null, cacheBytes: {} };
    this.slots[i] = slot;
    return new Promise<string[]>((resolve, reject) => {
      worker.on('message', (reply: WorkerReply) => {
        if (reply.type === 'ready') {
          slot.ready = true;
          resolve(reply.models);
          this.pump();
          return;
        }
        if (reply.type === 'failed') {
          reject(new Error(reply.message));
          return;
        }
        const job = slot.job;
        if (!job || job.id !== reply.id) return;
        slot.job = null;
        if (reply.type === 'result') {
          slot.cacheBytes = reply.cacheBytes;
          this.metrics.record(reply.out, job.kind);
          this.learnCost(job.chars, reply.out.seconds);
          this.settle(job, () => job.resolve(reply.out));
        } else if (reply.kind === 'unknown-model') this.settle(job, () => job.reject(new UnknownModelError(reply.message)));
        else if (reply.kind === 'input') this.settle(job, () => job.reject(new TokenizeInputError(reply.message)));
        else this.settle(job, () => job.reject(new Error(`tokenizer worker: ${reply.message}`)));
        this.pump();
      });
      worker.on('error', (err) => {
        this.log.error('tokenizer worker failed', { worker: i, err });
        if (!slot.ready) reject(err);
      });
      worker.on('exit', (code) => {
        const wasReady = slot.ready;
        slot.ready = false;
        const lost = slot.job;
        slot.job = null;
        if (lost) this.settle(lost, () => lost.reject(new Error(`tokenizer worker exited (code ${code}) during the request`)));
        if (!wasReady) reject(new Error(`tokenizer worker exited with code ${code} before it was ready`));
        if (!this.closing && wasReady) {
          this.log.warn('restarting tokenizer worker', { worker: i, code, failedRequests: lost ? 1 : 0 });
          this.start(i).catch((err: unknown) => this.log.error('tokenizer worker restart failed', { worker: i, err }));
        }
      });
    });
  }

  tokenize(model: string, input: TokenizeInput, call?: TokenizeCall): Promise<TokenizeOutput> {
    if (this.closing) return Promise.reject(new Error('tokenizer pool is closed'));
    if (this.slots.length === 0) return Promise.reject(new Error('tokenizer pool is not loaded'));
    const now = this.now();
    const shed = shedReason(call, now);
    if (shed) return Promise.reject(shedError(shed));
    const chars = inputChars(input);
    const estimate = JOB_OVERHEAD_SECONDS + (this.secondsPerChar ?? 0) * chars;
    const deadline = call?.deadline ?? Infinity;
    if (!this.admits(estimate, (deadline - now) / 1000, now)) return Promise.reject(shedError('overloaded'));

    return new Promise<TokenizeOutput>((resolve, reject) => {
      const job: Job = {
        id: this.nextId++,
        model,
        input,
        kind: input.messages ? 'messages' : 'prompt',
        chars,
        preferred: hashModel(model) % this.slots.length,
        deadline,
        signal: call?.signal,
        onAbort: undefined,
        estimate,
        startedAt: null,
        done: false,
        resolve,
        reject,
      };
      if (job.signal) {
        // A queued job leaves the queue at once; a running one finishes in its worker, unheard.
        job.onAbort = () => {
          if (job.startedAt === null) this.queuedSeconds -= job.estimate;
          const reason = shedReason({ signal: job.signal, deadline: job.deadline }, this.now()) ?? 'cancelled';
          this.settle(job, () => job.reject(shedError(reason)));
        };
        job.signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.queuedSeconds += estimate;
      this.pump();
    });
  }

  /**
   * Whether a job estimated at `estimate` seconds, with `secondsLeft` until its deadline, can be queued:
   * always when a worker is idle and nothing waits; else when the work ahead of it, spread over the
   * workers, plus its own, fits both its deadline and the queue bound.
   */
  private admits(estimate: number, secondsLeft: number, now: number): boolean {
    const ready = this.slots.filter((s) => s.ready);
    if (this.queuedSeconds <= 0 && ready.some((s) => s.job === null)) return true;
    let running = 0;
    for (const s of ready) if (s.job) running += Math.max(0, s.job.estimate - (now - (s.job.startedAt ?? now)) / 1000);
    const wait = (this.queuedSeconds + running) / Math.max(1, ready.length);
    return wait + estimate <= Math.min(secondsLeft, this.maxQueueSeconds);
  }

  /** Starts queued jobs on idle workers, shedding those that expired or were cancelled while waiting. */
  private pump(): void {
    while (this.queueHead < this.queue.length) {
      const idle = this.slots.filter((s) => s.ready && s.job === null);
      if (idle.length === 0) break;
      const job = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined;
      if (!job || job.done) continue;
      this.queuedSeconds -= job.estimate;
      const now = this.now();
      const shed = shedReason({ signal: job.signal, deadline: job.deadline }, now);
      if (shed) {
        this.settle(job, () => job.reject(shedError(shed)));
        continue;
      }
      const preferred = this.slots[job.preferred];
      const slot = preferred && preferred.ready && preferred.job === null ? preferred : idle[0]!;
      job.startedAt = now;
      slot.job = job;
      slot.worker.postMessage({ id: job.id, model: job.model, input: job.input } satisfies WorkerRequest);
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
      // Floating-point drift of the running sum must not outlive an empty queue.
      this.queuedSeconds = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  /** Settles a job once (a reply may arrive after its caller went away). */
  private settle(job: Job, how: () => void): void {
    if (job.done) return;
    job.done = true;
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort);
    how();
  }

  private learnCost(chars: number, seconds: number): void {
    if (chars <= 0 || !(seconds >= 0)) return;
    const sample = seconds / chars;
    this.secondsPerChar = this.secondsPerChar === null ? sample : this.secondsPerChar + COST_SMOOTHING * (sample - this.secondsPerChar);
  }

  async close(): Promise<void> {
    this.closing = true;
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const job = this.queue[i];
      if (job) this.settle(job, () => job.reject(new Error('tokenizer pool is closed')));
    }
    this.queue = [];
    this.queueHead = 0;
    this.queuedSeconds = 0;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
