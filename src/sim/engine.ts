// The simulated engine core: runs scheduler steps back to back on a SimClock while there is work,
// charges each step its modelled duration, delivers sampled tokens to the request's listener with
// simulated timestamps, and hands every non-empty step's KV events to the event sink as one batch.

import type { SimClock } from './clock.ts';
import type { SimKvEvent } from '../vllm/events/engine-events.ts';
import { stepDurationMs, type LatencyModel } from './latency.ts';
import type { SimRequest } from './request.ts';
import { Scheduler, type SchedulerConfig, type TokenSampler } from './scheduler.ts';

export interface RequestListener {
  onToken(token: number, simMs: number): void;
  onFinish(request: SimRequest, simMs: number): void;
}

export interface EngineObserver {
  onAdmitted?(request: SimRequest): void;
  onFirstToken?(request: SimRequest, ttftMs: number): void;
  onToken?(request: SimRequest, interTokenMs: number): void;
  onFinished?(request: SimRequest, simMs: number): void;
  onStep?(prefillTokens: number, decodeSeqs: number, durationMs: number): void;
}

/** Receives one step's events; `tsSeconds` is the simulated time the step ended. */
type EventBatchSink = (tsSeconds: number, events: SimKvEvent[]) => void;

export interface EngineOptions {
  scheduler: SchedulerConfig;
  latency: LatencyModel;
  clock: SimClock;
  sampler: TokenSampler;
  sink: EventBatchSink;
  observer?: EngineObserver;
  /**
   * Publishes AllBlocksCleared as soon as a reset succeeds. Not vLLM's behaviour (vLLM sends it with
   * the next step that runs); for demos and tests that need an idle pod's reset seen at once.
   */
  flushOnReset?: boolean;
}

export class Engine {
  readonly scheduler: Scheduler;
  private readonly options: EngineOptions;
  private observer: EngineObserver | undefined;
  private readonly listeners = new Map<SimRequest, RequestListener>();
  private wake: (() => void) | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private lastStepEnd = 0;
  /** True between a step's schedule() and update(): its events must stay in one batch. */
  private inStep = false;
  /** Requests accepted but still in their front-end delay. */
  private inFrontend = 0;

  constructor(options: EngineOptions) {
    this.options = options;
    this.scheduler = new Scheduler(options.scheduler);
    this.observer = options.observer;
  }

  /** Attaches the metrics observer, which needs the scheduler this engine creates. */
  setObserver(observer: EngineObserver): void {
    this.observer = observer;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  /** Requests being served or queued, including those still in the front-end delay. */
  get pendingRequests(): number {
    return this.inFrontend + this.scheduler.running.length + this.scheduler.waiting.length;
  }

  /** Accepts a request; it reaches the scheduler after the front-end overhead. */
  submit(request: SimRequest, listener: RequestListener): void {
    this.listeners.set(request, listener);
    this.inFrontend++;
    const ready = request.arrivalMs + this.options.latency.frontendOverheadMs;
    void this.options.clock.waitUntil(ready).then(() => {
      this.inFrontend--;
      if (request.status === 'finished') return;
      this.scheduler.add(request);
      this.wake?.();
    });
  }

  abort(request: SimRequest): void {
    if (request.status === 'finished') return;
    this.scheduler.abort(request);
    const listener = this.listeners.get(request);
    this.listeners.delete(request);
    listener?.onFinish(request, this.options.clock.now());
  }

  /**
   * vLLM's reset_prefix_cache. Like vLLM, the AllBlocksCleared event is published with the batch of
   * the next step that runs: an idle engine publishes nothing.
   */
  resetPrefixCache(resetRunning = false): boolean {
    const ok = this.scheduler.resetPrefixCache(resetRunning);
    if (ok && this.options.flushOnReset && !this.inStep) {
      const events = this.scheduler.kv.pool.takeEvents();
      if (events.length > 0) this.options.sink(this.options.clock.now() / 1000, events);
    }
    if (resetRunning) this.wake?.();
    return ok;
  }

  private async run(): Promise<void> {
    const { clock, latency } = this.options;
    while (!this.stopped) {
      if (!this.scheduler.hasWork()) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
        continue;
      }
      const start = Math.max(clock.now(), this.lastStepEnd);
      const step = this.scheduler.schedule();
      if (step.scheduled.length === 0) {
        // Preemption freed blocks: the next schedule() admits from the waiting queue.
        if (step.preempted.length > 0) continue;
        // Nothing fits right now (all blocks held by requests that cannot progress): wait for a change.
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
        continue;
      }
      for (const r of step.admitted) {
        r.firstScheduledMs ??= start;
        this.observer?.onAdmitted?.(r);
      }
      const duration = stepDurationMs(latency, step.prefillTokens, step.decodeSeqs);
      const end = start + duration;
      this.inStep = true;
      await clock.waitUntil(end);
      this.inStep = false;
      this.lastStepEnd = end;
      this.observer?.onStep?.(step.prefillTokens, step.decodeSeqs, duration);
      const out = this.scheduler.update(step, this.options.sampler);
      if (out.events.length > 0) this.options.sink(end / 1000, out.events);
      for (const { request, token } of out.sampled) {
        if (request.firstTokenMs === null) {
          request.firstTokenMs = end;
          this.observer?.onFirstToken?.(request, end - request.arrivalMs);
        } else if (request.lastTokenMs !== null) {
          this.observer?.onToken?.(request, end - request.lastTokenMs);
        }
        request.lastTokenMs = end;
        this.listeners.get(request)?.onToken(token, end);
      }
      for (const request of out.finished) {
        this.observer?.onFinished?.(request, end);
        this.listeners.get(request)?.onFinish(request, end);
        this.listeners.delete(request);
      }
    }
  }
}
