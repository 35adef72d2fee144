// The serving pods the operator watches for pool status: one pod informer per serving label in use
// (llm-d's llm-d.ai/inferenceServing=true always, plus any other a pool names in spec.servingLabel), so
// a cluster where every pool uses one label watches only the pods that carry it, never every pod.
// Seen from the outside it is one cache: list() and get() answer across all of them.

import type { V1Pod } from '@kubernetes/client-node';
import type { InformerHandler, SharedInformer } from '../common/kube/informer.ts';
import type { Logger } from '../common/log.ts';

export interface ServingPodsOptions {
  /** The selector (`key=value`) watched from the start and never stopped. */
  defaultSelector: string;
  /** Makes a pod informer for a label selector. */
  create: (labelSelector: string) => SharedInformer<V1Pod>;
  log: Logger;
}

const podKey = (p: V1Pod) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;

export class ServingPods implements SharedInformer<V1Pod> {
  readonly name = 'pods';
  private readonly o: ServingPodsOptions;
  private readonly informers = new Map<string, SharedInformer<V1Pod>>();
  private readonly handlers: InformerHandler<V1Pod>[] = [];
  private started = false;

  constructor(options: ServingPodsOptions) {
    this.o = options;
    this.add(options.defaultSelector);
  }

  /** Synced once every watch has listed (a newly added label is not synced until its first list). */
  get synced(): boolean {
    return [...this.informers.values()].every((i) => i.synced);
  }

  /** The label selectors watched now. */
  get selectors(): string[] {
    return [...this.informers.keys()].sort();
  }

  on(handler: InformerHandler<V1Pod>): void {
    this.handlers.push(handler);
  }

  list(namespace?: string): readonly V1Pod[] {
    if (this.informers.size === 1) return this.informers.values().next().value!.list(namespace);
    // A pod carrying two watched labels is in two caches; list it once.
    const out = new Map<string, V1Pod>();
    for (const inf of this.informers.values()) for (const p of inf.list(namespace)) out.set(podKey(p), p);
    return [...out.values()];
  }

  get(name: string, namespace?: string): V1Pod | undefined {
    for (const inf of this.informers.values()) {
      const p = inf.get(name, namespace);
      if (p) return p;
    }
    return undefined;
  }

  /** Resolves once the default label's pods are listed. */
  async start(): Promise<void> {
    this.started = true;
    await Promise.all([...this.informers.values()].map((i) => i.start()));
  }

  async stop(): Promise<void> {
    this.started = false;
    const all = [...this.informers.values()];
    await Promise.all(all.map((i) => i.stop()));
  }

  /**
   * Watches exactly the default selector plus `selectors` (the serving labels the pools name now),
   * starting new watches and stopping those no pool uses any more.
   */
  retain(selectors: Iterable<string>): void {
    const wanted = new Set([this.o.defaultSelector, ...selectors]);
    for (const s of wanted) if (!this.informers.has(s)) this.add(s);
    for (const [s, inf] of this.informers) {
      if (wanted.has(s)) continue;
      this.informers.delete(s);
      this.o.log.info('stopped watching pods of a serving label no pool uses', { labelSelector: s });
      void inf.stop();
    }
  }

  private add(selector: string): void {
    const inf = this.o.create(selector);
    inf.on((event, pod) => {
      if (this.informers.get(selector) !== inf) return;
      for (const h of this.handlers) h(event, pod);
    });
    this.informers.set(selector, inf);
    if (this.started) {
      this.o.log.info('watching pods of a serving label a pool names', { labelSelector: selector });
      inf.start().catch((err: unknown) => this.o.log.warn('pod watch failed to start', { labelSelector: selector, err }));
    }
  }
}
