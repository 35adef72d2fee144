// A rate-limited work queue with client-go's semantics: a key is queued at most once, processed by one
// worker at a time, re-added keys that arrive while processing are coalesced and run once afterwards,
// and failures back off exponentially per key (5 ms to 1000 s) under a global token bucket.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { unref?: () => void } | number | unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface RateLimiterOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Global bucket: sustained adds per second after failures, and the burst it allows. */
  qps?: number;
  burst?: number;
}

/** Per-key exponential backoff combined with a global token bucket; the longer delay wins. */
export class RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly base: number;
  private readonly max: number;
  private readonly qps: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;
  private readonly clock: Clock;

  constructor(clock: Clock, options: RateLimiterOptions = {}) {
    this.clock = clock;
    this.base = options.baseDelayMs ?? 5;
    this.max = options.maxDelayMs ?? 1_000_000;
    this.qps = options.qps ?? 10;
    this.burst = options.burst ?? 100;
    this.tokens = this.burst;
    this.last = clock.now();
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const backoff = Math.min(this.max, this.base * 2 ** n);
    const t = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.qps);
    this.last = t;
    this.tokens -= 1;
    const bucket = this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
    return Math.max(backoff, bucket);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

export interface WorkQueueHooks {
  onDepth?: (depth: number) => void;
  onAdd?: () => void;
  onRetry?: () => void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  /** Keys waiting for a delayed add: when each becomes ready, and the timer that will add it. */
  private readonly waiting = new Map<string, { readyAt: number; handle: unknown }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private readonly clock: Clock;
  readonly limiter: RateLimiter;
  private readonly hooks: WorkQueueHooks;

  constructor(clock: Clock = systemClock, limiter?: RateLimiter, hooks: WorkQueueHooks = {}) {
    this.clock = clock;
    this.limiter = limiter ?? new RateLimiter(clock);
    this.hooks = hooks;
  }

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.hooks.onAdd?.();
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
    this.hooks.onDepth?.(this.queue.length);
  }

  /**
   * Adds a key once delayMs has passed. A key already waiting keeps the earliest ready time, as
   * client-go's delaying queue does: a later request never postpones an earlier one.
   */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const readyAt = this.clock.now() + delayMs;
    const current = this.waiting.get(key);
    if (current) {
      if (current.readyAt <= readyAt) return;
      this.clock.clearTimeout(current.handle);
    }
    const handle = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, delayMs);
    this.waiting.set(key, { readyAt, handle });
  }

  addRateLimited(key: string): void {
    this.hooks.onRetry?.();
    this.addAfter(key, this.limiter.when(key));
  }

  forget(key: string): void {
    this.limiter.forget(key);
  }

  /** Resolves with the next key, marked as processing, or undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      this.hooks.onDepth?.(this.queue.length);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const w of this.waiting.values()) this.clock.clearTimeout(w.handle);
    this.waiting.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }
}
