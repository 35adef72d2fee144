// A shared informer: client-node's ListWatch (list, then watch from the list's resourceVersion, relist
// on 410) plus what it lacks: restart with backoff after an error (logged once per streak of failures),
// and a synced flag for /readyz.
// Used by the operator's controllers and by the indexer's pod discovery.

import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import type { KubeApi } from './kube-client.ts';

export type InformerEvent = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (event: InformerEvent, obj: T) => void;

export interface InformerOptions {
  name: string;
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  log: Logger;
  /** Called each time a failed list/watch is scheduled to restart (for a restart counter). */
  onRestart?: () => void;
  /**
   * Called before each LIST: the first, then one per re-list (`relist` true), which follows a watch that
   * expired (410 Gone: its resourceVersion was compacted away) or a list that failed (for a counter).
   */
  onList?: (relist: boolean) => void;
  /** Restart delays after failures: the first, doubling up to the last (default 500 ms to 30 s). */
  backoff?: { initialMs: number; maxMs: number };
}

/** What a controller reads: the informer's cache and its event feed. */
export interface InformerCache<T> {
  readonly name: string;
  /** True once the first list has been delivered. */
  readonly synced: boolean;
  on(handler: InformerHandler<T>): void;
  list(namespace?: string): readonly T[];
  get(name: string, namespace?: string): T | undefined;
}

/** An informer the operator starts and stops; the controllers' unit tests pass an in-memory one. */
export interface SharedInformer<T> extends InformerCache<T> {
  start(): Promise<void>;
  stop(): Promise<void>;
}

const INITIAL_RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;

export class Informer<T extends KubernetesObject> implements SharedInformer<T> {
  readonly name: string;
  private readonly lw: ListWatch<T>;
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly log: Logger;
  private stopped = false;
  private readonly backoff: { initialMs: number; maxMs: number };
  private restartDelayMs: number;
  /** Consecutive failed (re)starts; 0 once a list and watch went through. */
  private failures = 0;
  private errorSeen = false;
  private restartTimer: NodeJS.Timeout | undefined;
  synced = false;

  constructor(kc: KubeConfig, client: KubeApi, options: InformerOptions) {
    this.name = options.name;
    this.log = options.log.child({ informer: options.name });
    this.backoff = options.backoff ?? { initialMs: INITIAL_RESTART_DELAY_MS, maxMs: MAX_RESTART_DELAY_MS };
    this.restartDelayMs = this.backoff.initialMs;
    const list = () => {
      // A list after the first sync replaces the cache: the watch could not resume where it left off.
      if (this.synced) this.log.info('re-listing: the watch expired (410 Gone) or could not resume');
      options.onList?.(this.synced);
      const listed = client.list<T>(options.path, { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector });
      // ListWatch re-lists on its own when its first watch is refused with 410, after start() has
      // returned: mark the cache synced once such a list has landed (ListWatch stores it synchronously
      // after the await), or start() would wait forever.
      listed.then(
        () => setImmediate(() => this.markSyncedIfListed()),
        () => {},
      );
      return listed as unknown as ReturnType<ConstructorParameters<typeof ListWatch<T>>[2]>;
    };
    this.lw = new ListWatch<T>(options.path, new Watch(kc), list, false, options.labelSelector, options.fieldSelector);
    this.lw.on('add', (o) => this.emit('add', o));
    this.lw.on('update', (o) => this.emit('update', o));
    this.lw.on('delete', (o) => this.emit('delete', o));
    this.lw.on('error', (err) => {
      this.errorSeen = true;
      if (this.stopped) return;
      this.failures += 1;
      // One warning per streak of failures: a kind that is not served (its CRD missing) or a watch the
      // API server refuses fails the same way every time, and the backoff already says when it retries.
      const fields = { err, attempt: this.failures, inMs: this.restartDelayMs };
      if (this.failures === 1) this.log.warn('list/watch failed; retrying with backoff', fields);
      else this.log.debug('list/watch failed again', fields);
      options.onRestart?.();
      this.restartTimer = setTimeout(() => {
        if (!this.stopped) void this.connect().catch((e: unknown) => this.log.warn('restart failed', { err: e }));
      }, this.restartDelayMs);
      this.restartTimer.unref();
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, this.backoff.maxMs);
    });
  }

  /**
   * Starts (or restarts) the list and watch. ListWatch reports a failed list or watch request through its
   * error event before start() resolves, so a start without one has listed and is watching: only then is
   * the backoff reset (ListWatch's own connect event fires before the list and says nothing of success).
   */
  private async connect(): Promise<void> {
    this.errorSeen = false;
    await this.lw.start();
    this.markSyncedIfListed();
    if (this.errorSeen || this.stopped) return;
    if (this.failures > 0) this.log.info('list/watch recovered', { failures: this.failures });
    this.failures = 0;
    this.restartDelayMs = this.backoff.initialMs;
  }

  private emit(event: InformerEvent, obj: T): void {
    for (const h of this.handlers) {
      try {
        h(event, obj);
      } catch (err) {
        this.log.error('informer handler failed', { err, event });
      }
    }
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  /** Resolves once the first list has succeeded (a failed list is retried with backoff first). */
  async start(): Promise<void> {
    const listed = new Promise<void>((resolve) => {
      this.onListed = resolve;
    });
    await this.connect();
    await listed;
  }

  private onListed: (() => void) | undefined;

  // ListWatch resolves start() even when its list failed; a resourceVersion means the list succeeded.
  private markSyncedIfListed(): void {
    if (this.synced || this.lw.latestResourceVersion() === '') return;
    this.synced = true;
    this.onListed?.();
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.onListed?.();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.lw.stop();
  }
}
