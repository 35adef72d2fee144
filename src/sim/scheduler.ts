// vLLM v1's scheduler loop as far as the prefix cache and timing are concerned: running requests
// first (decode or the next prefill chunk, preempting the newest running request when blocks run
// out), then waiting requests in FCFS order up to --max-num-seqs, all under one per-step token
// budget (chunked prefill). A step's outputs are applied after it "runs": sampled tokens are
// appended (hashing newly full blocks), finished requests are freed, and the step's KV events are
// taken as one batch.

import { KvCacheManager } from './cache/kv-cache-manager.ts';
import type { SimKvEvent } from '../vllm/events/engine-events.ts';
import type { SimRequest } from './request.ts';

export interface SchedulerConfig {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  blockSize: number;
  numBlocks: number;
}

export interface ScheduledStep {
  /** Requests scheduled this step with their token counts, in scheduling order. */
  scheduled: Array<{ request: SimRequest; numTokens: number }>;
  prefillTokens: number;
  decodeSeqs: number;
  preempted: SimRequest[];
  /** Requests admitted from the waiting queue this step. */
  admitted: SimRequest[];
}

export interface StepOutput {
  /** Requests that sampled a token this step, with that token. */
  sampled: Array<{ request: SimRequest; token: number }>;
  finished: SimRequest[];
  events: SimKvEvent[];
}

export type TokenSampler = (request: SimRequest) => number;

export class Scheduler {
  readonly kv: KvCacheManager;
  readonly config: SchedulerConfig;
  readonly running: SimRequest[] = [];
  readonly waiting: SimRequest[] = [];
  numPreemptionsTotal = 0;

  constructor(config: SchedulerConfig) {
    this.config = config;
    this.kv = new KvCacheManager({ numBlocks: config.numBlocks, blockSize: config.blockSize, maxModelLen: config.maxModelLen });
  }

  add(request: SimRequest): void {
    request.status = 'waiting';
    this.waiting.push(request);
  }

  hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  /** Removes a request wherever it is and frees its blocks (client went away). */
  abort(request: SimRequest): void {
    const r = this.running.indexOf(request);
    if (r >= 0) {
      this.running.splice(r, 1);
      this.kv.free(request);
    }
    const w = this.waiting.indexOf(request);
    if (w >= 0) {
      this.waiting.splice(w, 1);
      this.kv.free(request);
    }
    request.status = 'finished';
    request.finishReason = 'abort';
  }

  private preempt(request: SimRequest): void {
    this.kv.free(request);
    request.status = 'preempted';
    request.numComputedTokens = 0;
    request.numPreemptions++;
    this.numPreemptionsTotal++;
    this.waiting.unshift(request);
  }

  schedule(): ScheduledStep {
    const step: ScheduledStep = { scheduled: [], prefillTokens: 0, decodeSeqs: 0, preempted: [], admitted: [] };
    let budget = this.config.maxNumBatchedTokens;
    const planned = new Map<SimRequest, number>();

    let i = 0;
    while (i < this.running.length && budget > 0) {
      const request = this.running[i]!;
      let n = request.numTokens - request.numComputedTokens;
      n = Math.min(n, budget, this.config.maxModelLen - request.numComputedTokens - 1);
      if (n <= 0) {
        i++;
        continue;
      }
      let ok = false;
      for (;;) {
        ok = this.kv.allocateSlots(request, n, null, false);
        if (ok) break;
        const victim = this.running.pop()!;
        const restored = planned.get(victim);
        if (restored !== undefined) {
          planned.delete(victim);
          budget += restored;
        }
        this.preempt(victim);
        step.preempted.push(victim);
        if (victim === request) break;
      }
      if (!ok) break;
      planned.set(request, n);
      budget -= n;
      i++;
    }

    if (step.preempted.length === 0) {
      while (budget > 0 && this.waiting.length > 0 && this.running.length < this.config.maxNumSeqs) {
        const request = this.waiting[0]!;
        let hit = { blocks: [] as number[], numComputedTokens: 0 };
        if (request.numComputedTokens === 0) hit = this.kv.getComputedBlocks(request);
        const numComputed = hit.numComputedTokens;
        const n = Math.min(request.numTokens - numComputed, budget);
        if (!this.kv.allocateSlots(request, n, hit.blocks.length > 0 ? hit : null, true)) break;
        this.kv.recordPrefixCacheStats(request, numComputed);
        if (request.numPreemptions === 0) request.numCachedTokens = numComputed;
        this.waiting.shift();
        this.running.push(request);
        request.status = 'running';
        request.numComputedTokens = numComputed;
        step.admitted.push(request);
        planned.set(request, n);
        budget -= n;
      }
    }

    for (const [request, n] of planned) {
      const decoding = request.numComputedTokens >= request.numPromptTokens;
      if (decoding) step.decodeSeqs++;
      else step.prefillTokens += n;
      request.numComputedTokens += n;
      step.scheduled.push({ request, numTokens: n });
    }
    return step;
  }

  /** Applies a step's results: samples for requests whose computed tokens caught up, frees finished ones. */
  update(step: ScheduledStep, sample: TokenSampler): StepOutput {
    const out: StepOutput = { sampled: [], finished: [], events: [] };
    for (const { request } of step.scheduled) {
      if (request.status !== 'running') continue;
      if (request.numComputedTokens < request.numTokens) continue;
      const token = sample(request);
      request.appendOutputToken(token);
      out.sampled.push({ request, token });
      if (request.numOutputTokens >= request.maxTokens || request.numTokens >= this.config.maxModelLen) {
        request.status = 'finished';
        request.finishReason = 'length';
        this.running.splice(this.running.indexOf(request), 1);
        this.kv.free(request);
        out.finished.push(request);
      }
    }
    out.events = this.kv.pool.takeEvents();
    return out;
  }

  /**
   * vLLM's reset_prefix_cache: succeeds only when no block is in use; with `resetRunning`, every
   * running request is preempted first (newest first), as vLLM's reset_running_requests does.
   */
  resetPrefixCache(resetRunning = false): boolean {
    if (resetRunning) while (this.running.length > 0) this.preempt(this.running.pop()!);
    return this.kv.resetPrefixCache();
  }
}
