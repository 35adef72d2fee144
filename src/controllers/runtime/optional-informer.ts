// An informer over an optional API: it runs only while discovery says the API is served (started when
// it appears, stopped when it goes, its objects reported deleted then), so a cluster without Istio has
// no EnvoyFilter watch failing in a loop. Never awaited for readiness: an absent API is a normal state.

import type { KubernetesObject } from '@kubernetes/client-node';
import type { InformerHandler, SharedInformer } from '../../common/kube/informer.ts';
import type { Logger } from '../../common/log.ts';
import { apiName, type ApiKind, type OptionalApiEvents } from './optional-apis.ts';

export interface OptionalInformerOptions<T> {
  name: string;
  api: ApiKind;
  apis: OptionalApiEvents;
  /** Makes a fresh informer each time the API turns served (a stopped informer is not restarted). */
  create: () => SharedInformer<T>;
  log: Logger;
}

export class OptionalInformer<T extends KubernetesObject> implements SharedInformer<T> {
  readonly name: string;
  private readonly o: OptionalInformerOptions<T>;
  private readonly handlers: InformerHandler<T>[] = [];
  private inner: SharedInformer<T> | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;

  constructor(options: OptionalInformerOptions<T>) {
    this.o = options;
    this.name = options.name;
  }

  /** True while the API is served and the watch has listed; false while the API is absent. */
  get synced(): boolean {
    return this.inner?.synced ?? false;
  }

  /** Whether the watch is running (the API is served). */
  get running(): boolean {
    return this.inner !== undefined;
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  list(namespace?: string): readonly T[] {
    return this.inner?.list(namespace) ?? [];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.inner?.get(name, namespace);
  }

  /** Starts the watch now if the API is served, and follows the API from then on. Resolves at once. */
  async start(): Promise<void> {
    if (this.unsubscribe || this.stopped) return;
    const { api, apis } = this.o;
    this.unsubscribe = apis.onChange((changed, served) => {
      if (changed.group !== api.group || changed.version !== api.version || changed.kind !== api.kind) return;
      if (served) this.startInner();
      else void this.stopInner();
    });
    if (apis.isServed(api.group, api.version, api.kind)) this.startInner();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    const inner = this.inner;
    this.inner = undefined;
    await inner?.stop();
  }

  private startInner(): void {
    if (this.inner || this.stopped) return;
    const inner = this.o.create();
    inner.on((event, obj) => {
      if (this.inner !== inner) return;
      for (const h of this.handlers) h(event, obj);
    });
    this.inner = inner;
    this.o.log.info('starting the watch of an optional API', { informer: this.name, api: apiName(this.o.api) });
    inner.start().catch((err: unknown) => this.o.log.warn('watch of an optional API failed to start', { informer: this.name, err }));
  }

  /** The API went away, and its objects with it: handlers hear a delete for each cached object. */
  private async stopInner(): Promise<void> {
    const inner = this.inner;
    if (!inner) return;
    this.inner = undefined;
    const gone = inner.list();
    await inner.stop();
    this.o.log.info('stopped the watch of an optional API that is no longer served', { informer: this.name, api: apiName(this.o.api) });
    for (const obj of gone) {
      for (const h of this.handlers) {
        try {
          h('delete', obj);
        } catch (err) {
          this.o.log.error('informer handler failed', { informer: this.name, err, event: 'delete' });
        }
      }
    }
  }
}
