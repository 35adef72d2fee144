// Tokenization in worker threads: each model is pinned to one worker (so its prefix cache stays
// warm there), requests are answered in order per worker, and a worker that dies is restarted with
// its in-flight requests failed rather than lost.

import { Worker } from 'node:worker_threads';
import type { Registry } from 'prom-client';
import { silentLogger, type Logger } from '../common/log.ts';
import { TokenizeInputError } from './model-tokenizer.ts';
import type { WorkerReply, WorkerRequest, WorkerSetup } from './pool-protocol.ts';
import { TokenizeMetrics, UnknownModelError, type TokenizeInput, type TokenizeOutput, type Tokenization } from './tokenizers.ts';

export interface TokenizerPoolOptions extends WorkerSetup {
  workers: number;
  registry?: Registry;
  log?: Logger;
}

interface Pending {
  resolve: (out: TokenizeOutput) => void;
  reject: (err: Error) => void;
  input: 'prompt' | 'messages';
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

function hashModel(model: string): number {
  let h = 2166136261;
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), 16777619);
  return h >>> 0;
}

export class TokenizerPool implements Tokenization {
  private readonly options: TokenizerPoolOptions;
  private readonly log: Logger;
  private readonly metrics: TokenizeMetrics;
  private readonly slots: Slot[] = [];
  private loadedModels: string[] = [];
  private nextId = 1;
  private closing = false;

  constructor(options: TokenizerPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) throw new Error(`tokenizer pool: workers must be an integer >= 1, got ${options.workers}`);
    this.options = options;
    this.log = options.log ?? silentLogger;
    this.metrics = new TokenizeMetrics(options.registry);
  }

  get models(): string[] {
    return this.loadedModels;
  }

  /** Starts every worker and waits until each has loaded every tokenizer. */
  async load(): Promise<void> {
    const started = performance.now();
    const models = await Promise.all(Array.from({ length: this.options.workers }, (_, i) => this.start(i)));
    this.loadedModels = models[0] ?? [];
    this.log.info('tokenizer workers ready', { workers: this.options.workers, models: this.loadedModels, ms: Math.round(performance.now() - started) });
  }

  private start(i: number): Promise<string[]> {
    const setup: WorkerSetup = { sources: this.options.sources, defaultSource: this.options.defaultSource, cacheMaxBytes: this.options.cacheMaxBytes, harmonyStartDate: this.options.harmonyStartDate };
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: setup });
    const slot: Slot = { worker, pending: new Map() };
    this.slots[i] = slot;
    return new Promise<string[]>((resolve, reject) => {
      let ready = false;
      worker.on('message', (reply: WorkerReply) => {
        if (reply.type === 'ready') {
          ready = true;
          resolve(reply.models);
          return;
        }
        if (reply.type === 'failed') {
          reject(new Error(reply.message));
          return;
        }
        const pending = slot.pending.get(reply.id);
        if (!pending) return;
        slot.pending.delete(reply.id);
        if (reply.type === 'result') {
          this.metrics.record(reply.out, pending.input);
          pending.resolve(reply.out);
        } else if (reply.kind === 'unknown-model') pending.reject(new UnknownModelError(reply.message));
        else if (reply.kind === 'input') pending.reject(new TokenizeInputError(reply.message));
        else pending.reject(new Error(`tokenizer worker: ${reply.message}`));
      });
      worker.on('error', (err) => {
        this.log.error('tokenizer worker failed', { worker: i, err });
        if (!ready) reject(err);
      });
      worker.on('exit', (code) => {
        const lost = [...slot.pending.values()];
        slot.pending.clear();
        for (const p of lost) p.reject(new Error(`tokenizer worker exited (code ${code}) during the request`));
        if (!ready) reject(new Error(`tokenizer worker exited with code ${code} before it was ready`));
        if (!this.closing && ready) {
          this.log.warn('restarting tokenizer worker', { worker: i, code, failedRequests: lost.length });
          this.start(i).catch((err: unknown) => this.log.error('tokenizer worker restart failed', { worker: i, err }));
        }
      });
    });
  }

  tokenize(model: string, input: TokenizeInput): Promise<TokenizeOutput> {
    if (this.closing) return Promise.reject(new Error('tokenizer pool is closed'));
    const slot = this.slots[hashModel(model) % this.slots.length];
    if (!slot) return Promise.reject(new Error('tokenizer pool is not loaded'));
    const id = this.nextId++;
    return new Promise<TokenizeOutput>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject, input: input.messages ? 'messages' : 'prompt' });
      slot.worker.postMessage({ id, model, input } satisfies WorkerRequest);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
