// The operator process: informers for pools, models, serving pods, owned objects, namespaces, the pools'
// EnvoyFilters and the Gateway API InferencePool CRD; the pool and model controllers they feed; leader
// election gating the controllers; a periodic resync; and the HTTP server for /healthz, /readyz and /metrics.

import { INFERENCE_SERVING_LABEL } from '../api/meta.ts';
import os from 'node:os';
import type { KubeConfig, KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { API_GROUP, API_VERSION } from '../api/meta.ts';
import { startHttpServer, type RunningHttpServer } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import { ModelReconciler } from './model/reconciler.ts';
import { labelsMatch, MANAGED_BY, MANAGED_BY_LABEL, podSelector } from './objects.ts';
import { ENVOY_FILTER_API_VERSION, GIE_INFERENCE_POOL_CRD, POOL_NAME_LABEL, POOL_NAMESPACE_LABEL, gatewayNamespace } from './pool/gateway.ts';
import { PoolReconciler } from './pool/reconciler.ts';
import { InferencePool } from '../api/inference-pool.ts';
import { Controller } from './runtime/controller.ts';
import { Informer } from '../common/kube/informer.ts';
import { KubeClient } from '../common/kube/kube-client.ts';
import { EventRecorder } from './runtime/events.ts';
import { LeaderElector } from './runtime/leader-election.ts';
import { createControllerMetrics } from './runtime/metrics.ts';

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  /** Namespace to watch; undefined watches all namespaces. */
  namespace?: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName?: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  defaultImage: string;
  clusterDomain: string;
  resyncMs: number;
  workers?: number;
  metricsPort?: number;
  healthPort?: number;
  host?: string;
  log: Logger;
  registry: Registry;
  /** Called when leadership is lost; the CLI exits so the pod restarts with clean caches. */
  onLostLeadership?: () => void;
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Operator {
  private readonly o: OperatorOptions;
  readonly client: KubeClient;
  private readonly informers: Informer<KubernetesObject>[] = [];
  private readonly pools: Informer<KubernetesObject>;
  private readonly models: Informer<KubernetesObject>;
  private readonly pods: Informer<V1Pod>;
  private readonly gatewayCrd: Informer<KubernetesObject>;
  private readonly namespaces: Informer<KubernetesObject>;
  /** Absent in namespaced mode. Not awaited for readiness: without Istio its list fails until the CRD appears. */
  private readonly envoyFilters: Informer<KubernetesObject> | undefined;
  readonly poolController: Controller;
  readonly modelController: Controller;
  private readonly poolReconciler: PoolReconciler;
  private readonly elector: LeaderElector | undefined;
  private servers: RunningHttpServer[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private controllersStarted = false;
  private electing: Promise<void> | undefined;
  private readonly podPools = new Map<string, Set<string>>();
  private readonly modelPools = new Map<string, string>();
  /** Pool key -> the labels its pods carry, kept from pool events so pod events need no parsing. */
  private readonly poolSelectors = new Map<string, Record<string, string>>();
  /** Gateway namespace -> keys of the pools whose EnvoyFilter belongs there, kept from pool events. */
  private readonly gatewayPools = new Map<string, Set<string>>();
  private readonly poolGateways = new Map<string, string>();

  constructor(options: OperatorOptions) {
    this.o = options;
    const { kubeConfig: kc, log, namespace } = options;
    this.client = new KubeClient(kc);
    const ns = namespace ? `/namespaces/${namespace}` : '';
    const crPath = (plural: string) => `/apis/${API_GROUP}/${API_VERSION}${ns}/${plural}`;
    const make = <T extends KubernetesObject>(name: string, path: string, sel: { labelSelector?: string; fieldSelector?: string } = {}) => {
      const inf = new Informer<T>(kc, this.client, { name, path, log, ...sel });
      this.informers.push(inf as unknown as Informer<KubernetesObject>);
      return inf;
    };
    this.pools = make('inferencepools', crPath('inferencepools'));
    this.models = make('inferencemodels', crPath('inferencemodels'));
    this.pods = make<V1Pod>('pods', `/api/v1${ns}/pods`, { labelSelector: `${INFERENCE_SERVING_LABEL}=true` });
    const managed = { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` };
    const owned = {
      Deployment: make('deployments', `/apis/apps/v1${ns}/deployments`, managed),
      Service: make('services', `/api/v1${ns}/services`, managed),
      ConfigMap: make('configmaps', `/api/v1${ns}/configmaps`, managed),
    };
    this.gatewayCrd = make('gateway-inferencepool-crd', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      fieldSelector: `metadata.name=${GIE_INFERENCE_POOL_CRD}`,
    });
    this.namespaces = make('namespaces', '/api/v1/namespaces');
    if (namespace) {
      log.info('namespaced mode: not watching EnvoyFilters cluster-wide; a filter changed by hand is repaired at the next resync', { namespace, resyncMs: options.resyncMs });
    } else {
      this.envoyFilters = new Informer<KubernetesObject>(kc, this.client, {
        name: 'envoyfilters',
        path: `/apis/${ENVOY_FILTER_API_VERSION}/envoyfilters`,
        labelSelector: `${POOL_NAMESPACE_LABEL},${POOL_NAME_LABEL}`,
        log,
      });
    }

    const metrics = createControllerMetrics(options.registry);
    const identity = options.identity ?? `${os.hostname()}_${process.pid}`;
    const events = new EventRecorder(this.client, log, identity);
    this.poolReconciler = new PoolReconciler({
      events,
      client: this.client,
      caches: {
        pools: this.pools,
        models: this.models,
        pods: this.pods,
        owned,
        gatewayCrd: this.gatewayCrd,
        namespaces: this.namespaces,
        ...(this.envoyFilters ? { envoyFilters: this.envoyFilters } : {}),
      },
      log,
      desired: { defaultImage: options.defaultImage, clusterDomain: options.clusterDomain },
    });
    const modelReconciler = new ModelReconciler({ client: this.client, pools: this.pools, models: this.models, log, events });
    this.poolController = new Controller({
      name: 'inferencepool',
      reconcile: (k) => this.poolReconciler.reconcile(k),
      workers: options.workers ?? 4,
      log,
      metrics,
    });
    this.modelController = new Controller({ name: 'inferencemodel', reconcile: (k) => modelReconciler.reconcile(k), workers: 2, log, metrics });
    this.wireEvents(owned);

    if (options.leaderElect) {
      this.elector = new LeaderElector(this.client, {
        namespace: options.leaseNamespace,
        name: options.leaseName ?? 'kvroute-operator',
        identity,
        ...(options.leaseDurationMs ? { leaseDurationMs: options.leaseDurationMs } : {}),
        ...(options.renewDeadlineMs ? { renewDeadlineMs: options.renewDeadlineMs } : {}),
        ...(options.retryPeriodMs ? { retryPeriodMs: options.retryPeriodMs } : {}),
        log,
      });
      metrics.leader.set(0);
    }
    this.leaderGauge = metrics.leader;
  }

  private readonly leaderGauge;

  private enqueueModelsOfPool(namespace: string, pool: string): void {
    for (const m of this.models.list(namespace)) {
      if ((m as { spec?: { poolRef?: { name?: string } } }).spec?.poolRef?.name === pool) this.modelController.enqueue(keyOf(m));
    }
  }

  private wireEvents(owned: Record<string, Informer<KubernetesObject>>): void {
    this.pools.on((event, pool) => {
      const parsed = InferencePool.safeParse(pool);
      if (event === 'delete' || !parsed.success) this.poolSelectors.delete(keyOf(pool));
      else this.poolSelectors.set(keyOf(pool), podSelector(parsed.data));
      this.indexGateway(keyOf(pool), event !== 'delete' && parsed.success ? gatewayNamespace(parsed.data) : undefined);
      this.poolController.enqueue(keyOf(pool));
      this.enqueueModelsOfPool(pool.metadata?.namespace ?? '', pool.metadata?.name ?? '');
    });
    this.models.on((event, model) => {
      const key = keyOf(model);
      const ns = model.metadata?.namespace ?? '';
      const poolName = (model as { spec?: { poolRef?: { name?: string } } }).spec?.poolRef?.name ?? '';
      const previous = this.modelPools.get(key);
      if (event === 'delete') this.modelPools.delete(key);
      else this.modelPools.set(key, poolName);
      for (const p of new Set([poolName, previous ?? poolName])) {
        this.poolController.enqueue(`${ns}/${p}`);
        this.enqueueModelsOfPool(ns, p);
      }
      this.modelController.enqueue(key);
    });
    this.pods.on((event, pod) => {
      const key = keyOf(pod);
      const ns = pod.metadata?.namespace ?? '';
      // Matches by the pod's current labels (its last state on delete) plus those it matched before,
      // so a pool it leaves recounts too.
      const now = new Set<string>();
      for (const [poolKey, selector] of this.poolSelectors) {
        if (poolKey.startsWith(`${ns}/`) && labelsMatch(selector, pod.metadata?.labels)) now.add(poolKey);
      }
      for (const p of new Set([...now, ...(this.podPools.get(key) ?? [])])) this.poolController.enqueue(p);
      if (event === 'delete') this.podPools.delete(key);
      else this.podPools.set(key, now);
    });
    for (const inf of Object.values(owned)) {
      inf.on((_e, obj) => {
        for (const ref of obj.metadata?.ownerReferences ?? []) {
          if (ref.kind === 'InferencePool' && ref.apiVersion.startsWith(`${API_GROUP}/`)) this.poolController.enqueue(`${obj.metadata?.namespace}/${ref.name}`);
        }
      });
    }
    // A gateway namespace appearing or going, or a pool namespace starting to terminate, changes what the pool can apply.
    this.namespaces.on((_e, ns) => {
      const name = ns.metadata?.name ?? '';
      for (const p of this.gatewayPools.get(name) ?? []) this.poolController.enqueue(p);
      for (const p of this.pools.list(name)) this.poolController.enqueue(keyOf(p));
    });
    this.envoyFilters?.on((_e, filter) => {
      const labels = filter.metadata?.labels ?? {};
      const ns = labels[POOL_NAMESPACE_LABEL];
      const name = labels[POOL_NAME_LABEL];
      if (ns && name) this.poolController.enqueue(`${ns}/${name}`);
    });
    this.gatewayCrd.on(() => {
      for (const p of this.pools.list()) this.poolController.enqueue(keyOf(p));
    });
  }

  private indexGateway(poolKey: string, gatewayNs: string | undefined): void {
    const previous = this.poolGateways.get(poolKey);
    if (previous === gatewayNs) return;
    if (previous !== undefined) {
      const set = this.gatewayPools.get(previous);
      set?.delete(poolKey);
      if (set?.size === 0) this.gatewayPools.delete(previous);
    }
    if (gatewayNs === undefined) {
      this.poolGateways.delete(poolKey);
      return;
    }
    this.poolGateways.set(poolKey, gatewayNs);
    let set = this.gatewayPools.get(gatewayNs);
    if (!set) this.gatewayPools.set(gatewayNs, (set = new Set()));
    set.add(poolKey);
  }

  ready(): boolean {
    return this.informers.every((i) => i.synced);
  }

  get isLeader(): boolean {
    return this.elector ? this.elector.isLeader : this.controllersStarted;
  }

  private startControllers(): void {
    if (this.controllersStarted) return;
    this.controllersStarted = true;
    this.leaderGauge.set(1);
    this.poolController.start();
    this.modelController.start();
    for (const p of this.pools.list()) this.poolController.enqueue(keyOf(p));
    for (const m of this.models.list()) this.modelController.enqueue(keyOf(m));
    this.resyncTimer = setInterval(() => {
      this.poolReconciler.forgetApplied();
      for (const p of this.pools.list()) this.poolController.enqueue(keyOf(p));
      for (const m of this.models.list()) this.modelController.enqueue(keyOf(m));
    }, this.o.resyncMs);
    this.resyncTimer.unref();
  }

  async start(): Promise<void> {
    const { log, registry } = this.o;
    const host = this.o.host ?? '0.0.0.0';
    if (this.o.healthPort !== undefined) {
      this.servers.push(await startHttpServer({ host, port: this.o.healthPort, log, ready: () => this.ready(), routes: {} }));
    }
    if (this.o.metricsPort !== undefined) {
      this.servers.push(await startHttpServer({ host, port: this.o.metricsPort, log, registry, routes: {} }));
    }
    this.envoyFilters?.start().catch((err: unknown) => log.warn('EnvoyFilter watch failed to start', { err }));
    await Promise.all(this.informers.map((i) => i.start()));
    log.info('caches synced', { informers: this.informers.map((i) => i.name) });
    if (!this.elector) {
      this.startControllers();
      return;
    }
    this.electing = this.elector.run(
      () => this.startControllers(),
      () => {
        this.leaderGauge.set(0);
        this.o.onLostLeadership?.();
      },
    );
  }

  /** Graceful stop: step down, drain in-flight reconciles, stop watches and servers. */
  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await Promise.all([this.poolController.stop(), this.modelController.stop()]);
    if (this.elector) {
      await this.elector.stop();
      await this.electing;
    }
    this.leaderGauge.set(0);
    await Promise.all([...this.informers, ...(this.envoyFilters ? [this.envoyFilters] : [])].map((i) => i.stop()));
    await Promise.all(this.servers.map((s) => s.close()));
    this.client.close();
  }
}
