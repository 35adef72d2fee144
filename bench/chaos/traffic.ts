// Sustained traffic for the chaos suite: an open-loop stream of /v1/completions requests at a fixed
// rate through the gateway, each a shared-prefix prompt as token ids (one of `groups` system prompts
// plus a fresh suffix), so the hit rate shows whether routing is still cache-aware. Open loop, so a
// hung pod holding requests does not slow the arrivals down. Every request is recorded: when it was
// sent and ended (ms since the traffic started), the pod that served it, its usage, or why it failed.

import { setTimeout as delay } from 'node:timers/promises';
import { mulberry32 } from '../../src/common/random.ts';

export interface TrafficOptions {
  /** Where requests go (the gateway), or a function returning it per request (a gateway swap). */
  url: () => string;
  model: string;
  ratePerS: number;
  groups: number;
  prefixTokens: number;
  suffixTokens: number;
  maxTokens: number;
  timeoutMs: number;
  seed: number;
}

export interface RequestRecord {
  sentMs: number;
  endMs: number;
  ok: boolean;
  /** x-inference-pod of the answer (null when none came). */
  pod: string | null;
  status: number | null;
  promptTokens: number;
  cachedTokens: number;
  error?: string;
  /** The prompt, for index probes. */
  group: number;
}

export class Traffic {
  readonly records: RequestRecord[] = [];
  readonly started = performance.now();
  readonly #o: TrafficOptions;
  readonly #random: () => number;
  readonly #prefixes: number[][];
  /** In-flight requests and the gateway each went to. */
  readonly #inFlight = new Map<Promise<void>, string>();
  #running = false;
  #paused = false;
  #loop: Promise<void> | null = null;
  #suffixCounter = 0;
  /** Recent prompts (token ids) for index probes. */
  readonly recentPrompts: number[][] = [];

  constructor(o: TrafficOptions) {
    this.#o = o;
    this.#random = mulberry32(o.seed);
    // Token ids below 100k, distinct per group from the first block on.
    this.#prefixes = Array.from({ length: o.groups }, (_, g) =>
      Array.from({ length: o.prefixTokens }, (_, k) => 1000 + ((g * 7919 + k * 104729) % 90_000)),
    );
  }

  get prefixes(): readonly number[][] {
    return this.#prefixes;
  }

  /** ms since the traffic started. */
  now(): number {
    return performance.now() - this.started;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Stops sending new requests and waits for those in flight (the index is compared while nothing runs). */
  async pause(): Promise<void> {
    this.#paused = true;
    await Promise.all([...this.#inFlight.keys()]);
  }

  /** Waits for the requests in flight to `url`: a gateway swapped out is stopped only once they ended. */
  async drainTo(url: string): Promise<void> {
    await Promise.all([...this.#inFlight].filter(([, to]) => to === url).map(([p]) => p));
  }

  resume(): void {
    this.#paused = false;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    await Promise.all([...this.#inFlight.keys()]);
  }

  async #run(): Promise<void> {
    const intervalMs = 1000 / this.#o.ratePerS;
    let next = performance.now();
    while (this.#running) {
      next += intervalMs;
      const wait = next - performance.now();
      if (wait > 0) await delay(wait);
      else if (wait < -1000) next = performance.now(); // fell far behind (a stalled event loop): do not burst
      if (!this.#running) break;
      if (this.#paused) continue;
      const url = this.#o.url();
      const p = this.#send(url);
      this.#inFlight.set(p, url);
      void p.finally(() => this.#inFlight.delete(p));
    }
  }

  async #send(url: string): Promise<void> {
    const o = this.#o;
    const group = Math.floor(this.#random() * o.groups);
    const n = this.#suffixCounter++;
    const suffix = Array.from({ length: o.suffixTokens }, (_, k) => 100_000 + ((n * 31 + k * 7) % 50_000));
    const tokens = [...this.#prefixes[group]!, ...suffix];
    this.recentPrompts.push(tokens);
    if (this.recentPrompts.length > 16) this.recentPrompts.shift();
    const sentMs = this.now();
    const record: RequestRecord = {
      sentMs,
      endMs: sentMs,
      ok: false,
      pod: null,
      status: null,
      promptTokens: tokens.length,
      cachedTokens: 0,
      group,
    };
    try {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: o.model, prompt: tokens, max_tokens: o.maxTokens }),
        signal: AbortSignal.timeout(o.timeoutMs),
      });
      const text = await res.text();
      record.status = res.status;
      record.pod = res.headers.get('x-inference-pod');
      if (!res.ok) {
        record.error = `HTTP ${res.status}: ${text.slice(0, 160)}`;
      } else {
        const body = JSON.parse(text) as { usage?: { prompt_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null } };
        record.cachedTokens = body.usage?.prompt_tokens_details?.cached_tokens ?? 0;
        record.ok = record.pod !== null;
        if (!record.ok) record.error = 'no x-inference-pod in the answer';
      }
    } catch (err) {
      const e = err as Error;
      record.error =
        e.name === 'TimeoutError'
          ? `no answer within ${o.timeoutMs} ms`
          : `${e.message}${e.cause ? `: ${(e.cause as Error).message}` : ''}`;
    }
    record.endMs = this.now();
    this.records.push(record);
  }
}

/** Token hit rate (cached / prompt tokens) of the successful requests that ended in [fromMs, toMs). */
export function hitRate(records: readonly RequestRecord[], fromMs: number, toMs: number): number | null {
  let cached = 0;
  let prompt = 0;
  for (const r of records) {
    if (!r.ok || r.endMs < fromMs || r.endMs >= toMs) continue;
    cached += r.cachedTokens;
    prompt += r.promptTokens;
  }
  return prompt === 0 ? null : cached / prompt;
}
