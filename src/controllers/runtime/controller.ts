// A controller: a work queue of namespace/name keys drained by a few workers, each key reconciled by one
// worker at a time; errors requeue with backoff, success forgets the key's failures.

import type { Logger } from '../../common/log.ts';
import type { ControllerMetrics } from './metrics.ts';
import { WorkQueue, systemClock, type Clock } from './workqueue.ts';

export interface ReconcileResult {
  requeueAfterMs?: number;
}

type Reconcile = (key: string) => Promise<ReconcileResult | void>;

export interface ControllerOptions {
  name: string;
  reconcile: Reconcile;
  workers?: number;
  log: Logger;
  metrics: ControllerMetrics;
  clock?: Clock;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly options: ControllerOptions;
  private readonly log: Logger;
  private running: Promise<void>[] = [];

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.options = options;
    this.log = options.log.child({ controller: options.name });
    const m = options.metrics;
    this.queue = new WorkQueue(options.clock ?? systemClock, undefined, {
      onDepth: (d) => m.queueDepth.set({ controller: options.name }, d),
      onAdd: () => m.queueAdds.inc({ controller: options.name }),
      onRetry: () => m.queueRetries.inc({ controller: options.name }),
    });
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  start(): void {
    const workers = this.options.workers ?? 2;
    for (let i = 0; i < workers; i++) this.running.push(this.work());
  }

  private async work(): Promise<void> {
    const { metrics, reconcile } = this.options;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const end = metrics.reconcileDuration.startTimer({ controller: this.name });
      try {
        const result = await reconcile(key);
        this.queue.forget(key);
        if (result?.requeueAfterMs !== undefined) {
          this.queue.addAfter(key, result.requeueAfterMs);
          metrics.reconciles.inc({ controller: this.name, result: 'requeue' });
        } else {
          metrics.reconciles.inc({ controller: this.name, result: 'success' });
        }
      } catch (err) {
        metrics.reconciles.inc({ controller: this.name, result: 'error' });
        metrics.reconcileErrors.inc({ controller: this.name });
        this.log.limited(`reconcile-error:${key}`, 'warn', 'reconcile failed; retrying with backoff', {
          key,
          err,
          retries: this.queue.limiter.retries(key),
        });
        this.queue.addRateLimited(key);
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }

  /** Stops taking keys and waits for in-flight reconciles to finish. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.running);
    this.running = [];
  }
}
