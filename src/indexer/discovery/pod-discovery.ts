// Pod discovery for per-pod KV-event subscription: watches the pool's pods through the Kubernetes
// API and keeps the indexer connected to exactly the Ready ones (plus a NotReady grace), so every
// indexer replica sees every pod's events, on every data-parallel rank. Decisions live in
// plan.ts; this module owns the watch, the serialized connect/disconnect loop, the grace
// timer and the metrics.

import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { PodDiscoveryConfig } from '../../api/indexer-config.ts';
import { Informer, type InformerHandler } from '../../common/kube/informer.ts';
import { KubeClient } from '../../common/kube/kube-client.ts';
import type { Logger } from '../../common/log.ts';
import {
  observePod,
  planConnections,
  podLabelSelector,
  podRankEndpoints,
  trackPod,
  type DisconnectReason,
  type TrackedPod,
} from './plan.ts';

/** Where discovered pods are subscribed (the event ingestor, and the index for dropped pods). */
export interface PodSubscriptions {
  connect(podId: string, endpoint: string, replayEndpoint: string | undefined): Promise<void>;
  disconnect(podId: string): Promise<void>;
}

/** A stream of pod add/update/delete events whose start() resolves once the first list is applied. */
export interface PodSource {
  on(handler: InformerHandler<V1Pod>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface DiscoveryMetrics {
  pods: Gauge;
  connects: Counter;
  disconnects: Counter<'reason'>;
  connectErrors: Counter;
  watchRestarts: Counter;
}

export function discoveryMetrics(registry: Registry): DiscoveryMetrics {
  return {
    pods: new Gauge({
      name: 'kvroute_indexer_discovered_pods',
      help: 'Pods the indexer is subscribed to through discovery.',
      registers: [registry],
    }),
    connects: new Counter({
      name: 'kvroute_indexer_discovery_connects_total',
      help: 'Pod subscriptions opened by discovery.',
      registers: [registry],
    }),
    disconnects: new Counter({
      name: 'kvroute_indexer_discovery_disconnects_total',
      help: 'Pod subscriptions closed by discovery, with the pod entries dropped, by reason (gone, not_ready, terminating).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    connectErrors: new Counter({
      name: 'kvroute_indexer_discovery_errors_total',
      help: 'Connects or disconnects that failed (retried at the next change).',
      registers: [registry],
    }),
    watchRestarts: new Counter({
      name: 'kvroute_indexer_discovery_watch_restarts_total',
      help: 'Pod list/watch restarts after an error.',
      registers: [registry],
    }),
  };
}

export interface PodDiscoveryOptions {
  config: PodDiscoveryConfig;
  source: PodSource;
  subscriptions: PodSubscriptions;
  log: Logger;
  metrics: DiscoveryMetrics;
  now?: () => number;
}

export class PodDiscovery {
  private readonly config: PodDiscoveryConfig;
  private readonly source: PodSource;
  private readonly subs: PodSubscriptions;
  private readonly log: Logger;
  private readonly metrics: DiscoveryMetrics;
  private readonly now: () => number;
  private readonly graceMs: number;
  private readonly tracked = new Map<string, TrackedPod>();
  private readonly connectedPods = new Set<string>();
  private dirty = false;
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private listed = false;
  private firstListApplied = false;

  constructor(options: PodDiscoveryOptions) {
    this.config = options.config;
    this.source = options.source;
    this.subs = options.subscriptions;
    this.log = options.log;
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
    this.graceMs = options.config.notReadyGraceSeconds * 1000;
    this.source.on((event, pod) => this.observe(event, pod));
  }

  /** True once the first list has been applied: every pod Ready at that time is connected. */
  get synced(): boolean {
    return this.firstListApplied;
  }

  /**
   * Whether `ip` is the address of a pod of the pool in any state but terminating (Ready or not yet):
   * who may connect to a central-mode indexer, which then applies only what Ready pods publish.
   */
  hasPod(ip: string): boolean {
    for (const pod of this.tracked.values()) if (pod.ip === ip && !pod.terminating) return true;
    return false;
  }

  /** Pod ids (IPs) subscribed now, sorted. */
  connected(): string[] {
    return [...this.connectedPods].sort();
  }

  async start(): Promise<void> {
    await this.source.start();
    if (this.stopped) return;
    this.listed = true;
    await this.reconcile();
    this.firstListApplied = true;
    this.log.info('pod discovery synced', {
      namespace: this.config.namespace,
      selector: podLabelSelector(this.config.selector, this.config.servingLabel),
      pods: this.connectedPods.size,
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.source.stop();
    await this.drained;
  }

  private observe(event: 'add' | 'update' | 'delete', pod: V1Pod): void {
    const seen = observePod(pod);
    if (event === 'delete') this.tracked.delete(seen.key);
    else this.tracked.set(seen.key, trackPod(this.tracked.get(seen.key), seen, this.now()));
    // The first list is applied in one go once it is complete, so start() sees one plan.
    if (this.listed) void this.reconcile();
  }

  /**
   * Plans and applies until nothing changed meanwhile. One drain at a time, so a pod's connects and
   * disconnects stay ordered; the flag drops in the same step as the last check of dirty, so no
   * change made while a drain finishes is left unplanned.
   */
  private reconcile(): Promise<void> {
    this.dirty = true;
    if (!this.draining) this.drained = this.drain();
    return this.drained;
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        const plan = planConnections(this.tracked.values(), this.connectedPods, this.now(), this.graceMs);
        for (const { ip, reason } of plan.disconnect) await this.disconnect(ip, reason);
        for (const ip of plan.connect) await this.connect(ip);
        this.metrics.pods.set(this.connectedPods.size);
        this.armTimer(plan.recheckAt);
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * Subscribes every data-parallel rank of the pod, or none: if one rank fails, the ranks already
   * subscribed are dropped again, so a pod not marked connected leaves no subscription behind and the
   * next plan retries it whole.
   */
  private async connect(ip: string): Promise<void> {
    const ranks = podRankEndpoints(ip, this.config);
    let rank = 0;
    try {
      for (const r of ranks) {
        rank = r.rank;
        await this.subs.connect(ip, r.endpoint, r.replayEndpoint);
      }
      this.connectedPods.add(ip);
      this.metrics.connects.inc();
      this.log.info('pod discovered: subscribed', {
        podId: ip,
        endpoint: ranks[0]!.endpoint,
        replayEndpoint: ranks[0]!.replayEndpoint,
        ...(ranks.length > 1 ? { dataParallelRanks: ranks.length, endpoints: ranks.map((r) => r.endpoint) } : {}),
      });
    } catch (err) {
      this.metrics.connectErrors.inc();
      this.log.error('pod discovered but subscribing failed', { podId: ip, endpoint: ranks[rank]!.endpoint, dataParallelRank: rank, err });
      if (rank > 0)
        await this.subs
          .disconnect(ip)
          .catch((undo: unknown) => this.log.error('dropping a partly subscribed pod failed', { podId: ip, err: undo }));
    }
  }

  private async disconnect(ip: string, reason: DisconnectReason): Promise<void> {
    try {
      await this.subs.disconnect(ip);
      this.connectedPods.delete(ip);
      this.metrics.disconnects.inc({ reason });
      this.log.info('pod dropped: unsubscribed and entries removed', { podId: ip, reason });
    } catch (err) {
      this.metrics.connectErrors.inc();
      this.log.error('dropping a pod failed', { podId: ip, reason, err });
    }
  }

  private armTimer(at: number | null): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (at === null || this.stopped) return;
    this.timer = setTimeout(() => void this.reconcile(), Math.max(0, at - this.now()) + 1);
    this.timer.unref();
  }
}

export interface CreatePodDiscoveryOptions {
  kubeConfig: KubeConfig;
  config: PodDiscoveryConfig;
  subscriptions: PodSubscriptions;
  log: Logger;
  registry: Registry;
}

/**
 * Discovery over a pod informer for the configured namespace and selector, not yet started: start()
 * resolves once the first list is applied; list/watch failures are retried with backoff and counted.
 */
export function createPodDiscovery(options: CreatePodDiscoveryOptions): PodDiscovery {
  const { kubeConfig, config, log } = options;
  const metrics = discoveryMetrics(options.registry);
  const client = new KubeClient(kubeConfig);
  const informer = new Informer<V1Pod>(kubeConfig, client, {
    name: 'pods',
    path: `/api/v1/namespaces/${encodeURIComponent(config.namespace)}/pods`,
    labelSelector: podLabelSelector(config.selector, config.servingLabel),
    log,
    onRestart: () => metrics.watchRestarts.inc(),
  });
  const source: PodSource = {
    on: (handler) => informer.on(handler),
    start: () => informer.start(),
    stop: async () => {
      await informer.stop();
      client.close();
    },
  };
  return new PodDiscovery({ config, source, subscriptions: options.subscriptions, log, metrics });
}
