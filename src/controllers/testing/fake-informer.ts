// An informer over the in-memory API server: lists a collection, then follows its watch into a cache and
// to its handlers, like src/common/kube/informer.ts does over HTTP. A list that fails because the kind is
// not served yet (its CRD is missing) is retried when the served kinds change, as the real informer
// retries with backoff; `synced` stays false until a list succeeds.

import type { KubernetesObject } from '@kubernetes/client-node';
import type { InformerEvent, InformerHandler, SharedInformer } from '../../common/kube/informer.ts';
import type { FakeKube, WatchEventType } from './fake-kube.ts';

export interface FakeInformerOptions {
  name: string;
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
}

const EVENTS: Record<WatchEventType, InformerEvent> = { ADDED: 'add', MODIFIED: 'update', DELETED: 'delete' };
const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class FakeInformer<T> implements SharedInformer<T> {
  readonly name: string;
  synced = false;
  /** Errors thrown by handlers; the real informer logs and swallows them, tests can assert there are none. */
  readonly handlerErrors: unknown[] = [];
  private readonly kube: FakeKube;
  private readonly options: FakeInformerOptions;
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly cache = new Map<string, T>();
  private stopWatch: (() => void) | undefined;
  private stopRetry: (() => void) | undefined;
  private onSynced: (() => void) | undefined;

  constructor(kube: FakeKube, options: FakeInformerOptions) {
    this.kube = kube;
    this.options = options;
    this.name = options.name;
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  list(namespace?: string): readonly T[] {
    return [...this.cache.values()].filter((o) => namespace === undefined || (o as KubernetesObject).metadata?.namespace === namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(`${namespace ?? ''}/${name}`);
  }

  /** Resolves once the first list has succeeded. */
  start(): Promise<void> {
    const synced = new Promise<void>((resolve) => {
      this.onSynced = resolve;
    });
    this.stopRetry = this.kube.onTypesChanged(() => void this.tryList());
    void this.tryList();
    return synced;
  }

  async stop(): Promise<void> {
    this.stopWatch?.();
    this.stopRetry?.();
    this.stopWatch = this.stopRetry = undefined;
    this.onSynced?.();
  }

  private async tryList(): Promise<void> {
    if (this.synced || !this.stopRetry) return;
    const { path, labelSelector, fieldSelector } = this.options;
    const selectors = { ...(labelSelector ? { labelSelector } : {}), ...(fieldSelector ? { fieldSelector } : {}) };
    // Watch from before the list: the fake serves the list synchronously, so events after it are buffered, none missed.
    const buffered: [InformerEvent, T][] = [];
    let listed = false;
    const stopWatch = this.kube.watch(path, selectors, (type, obj) => {
      if (listed) this.deliver(EVENTS[type], obj as unknown as T);
      else buffered.push([EVENTS[type], obj as unknown as T]);
    });
    let items: T[];
    try {
      items = (await this.kube.list<T>(path, selectors)).items;
    } catch {
      stopWatch();
      return; // not served yet: retried when the served kinds change
    }
    if (this.synced || !this.stopRetry) {
      stopWatch();
      return;
    }
    this.stopWatch = stopWatch;
    for (const o of items) this.deliver('add', o);
    for (const [event, o] of buffered) this.deliver(event, o);
    listed = true;
    this.synced = true;
    this.onSynced?.();
  }

  private deliver(event: InformerEvent, obj: T): void {
    const key = keyOf(obj as KubernetesObject);
    if (event === 'delete') this.cache.delete(key);
    else this.cache.set(key, obj);
    for (const h of this.handlers) {
      try {
        h(event, obj);
      } catch (err) {
        this.handlerErrors.push(err);
      }
    }
  }
}
