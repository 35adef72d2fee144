// Fair, time-sliced execution of per-source work: each source has its own FIFO, sources are served
// round-robin a few tasks at a time, and the loop yields to the event loop after each slice, so a
// noisy or slow source delays only itself and HTTP/gRPC handlers keep running.

export type Task = () => void;

export interface FairQueueOptions {
  /** Longest run before yielding to the event loop. */
  sliceMs?: number;
  /** Tasks taken from one source before moving to the next. */
  burst?: number;
  /** Called when a task throws; the queue keeps going. */
  onError: (key: string, err: unknown) => void;
  now?: () => number;
  /** Defers the next slice; setImmediate by default, so I/O callbacks run in between. */
  defer?: (fn: () => void) => void;
}

export class FairQueue {
  private readonly queues = new Map<string, Task[]>();
  /** Keys with queued work, in service order; each key appears at most once. */
  private readonly ready: string[] = [];
  private total = 0;
  private scheduled = false;
  /** The key whose burst is running, if any. */
  private serving: string | null = null;
  private idleWaiters: Array<() => void> = [];
  private readonly sliceMs: number;
  private readonly burst: number;
  private readonly onError: (key: string, err: unknown) => void;
  private readonly now: () => number;
  private readonly defer: (fn: () => void) => void;

  constructor(options: FairQueueOptions) {
    this.sliceMs = options.sliceMs ?? 4;
    this.burst = options.burst ?? 8;
    this.onError = options.onError;
    this.now = options.now ?? (() => performance.now());
    this.defer = options.defer ?? ((fn) => void setImmediate(fn));
  }

  push(key: string, task: Task): void {
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = []));
    // A key being served goes back on `ready` after its burst if work remains, so not here.
    if (q.length === 0 && key !== this.serving) this.ready.push(key);
    q.push(task);
    this.total++;
    this.schedule();
  }

  /** Tasks waiting for `key`. */
  size(key: string): number {
    return this.queues.get(key)?.length ?? 0;
  }

  /** Tasks waiting in all queues. */
  get pending(): number {
    return this.total;
  }

  /** Resolves once every queued task has run. */
  idle(): Promise<void> {
    if (this.total === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(() => this.runSlice());
  }

  private runSlice(): void {
    this.scheduled = false;
    const start = this.now();
    let overdue = false;
    while (this.ready.length > 0 && !overdue) {
      const key = this.ready.shift()!;
      const q = this.queues.get(key)!;
      this.serving = key;
      for (let n = 0; n < this.burst && q.length > 0 && !overdue; n++) {
        const task = q.shift()!;
        this.total--;
        try {
          task();
        } catch (err) {
          this.onError(key, err);
        }
        overdue = this.now() - start >= this.sliceMs;
      }
      this.serving = null;
      if (q.length > 0) this.ready.push(key);
      else this.queues.delete(key);
    }
    if (this.ready.length > 0) {
      this.schedule();
    } else {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}
