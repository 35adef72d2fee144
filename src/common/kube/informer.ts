// A shared informer: client-node's ListWatch (list, then watch from the list's resourceVersion, relist
// on 410) plus what it lacks: restart with backoff after an error, and a synced flag for /readyz.
// Used by the operator's controllers and by the indexer's pod discovery.

import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import type { KubeClient } from './kube-client.ts';

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
}

export class Informer<T extends KubernetesObject> {
  readonly name: string;
  private readonly lw: ListWatch<T>;
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly log: Logger;
  private stopped = false;
  private restartDelayMs = 500;
  private restartTimer: NodeJS.Timeout | undefined;
  synced = false;

  constructor(kc: KubeConfig, client: KubeClient, options: InformerOptions) {
    this.name = options.name;
    this.log = options.log.child({ informer: options.name });
    const list = () =>
      client.list<T>(options.path, { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector }) as unknown as ReturnType<
        ConstructorParameters<typeof ListWatch<T>>[2]
      >;
    this.lw = new ListWatch<T>(options.path, new Watch(kc), list, false, options.labelSelector, options.fieldSelector);
    this.lw.on('add', (o) => this.emit('add', o));
    this.lw.on('update', (o) => this.emit('update', o));
    this.lw.on('delete', (o) => this.emit('delete', o));
    this.lw.on('connect', () => {
      this.restartDelayMs = 500;
    });
    this.lw.on('error', (err) => {
      if (this.stopped) return;
      this.log.warn('list/watch failed; restarting', { err, inMs: this.restartDelayMs });
      options.onRestart?.();
      this.restartTimer = setTimeout(() => {
        if (!this.stopped) this.lw.start().then(() => this.markSyncedIfListed(), (e: unknown) => this.log.warn('restart failed', { err: e }));
      }, this.restartDelayMs);
      this.restartTimer.unref();
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
    });
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
    await this.lw.start();
    this.markSyncedIfListed();
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
