// The operator process: informers for pools, models, serving pods (one watch per serving label in use),
// owned objects, namespaces, the pools' EnvoyFilters and the GIE InferencePools a spec.poolRef names; the
// optional APIs found through discovery (Istio, GIE, ServiceMonitor), with the CRDs that would serve them
// watched as a hint to look again; the pool and model controllers they feed; leader election gating the
// controllers; a periodic resync; and the HTTP server for /healthz, /readyz and /metrics.

import os from 'node:os';
import type { KubeConfig, KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { API_GROUP, API_VERSION, DEFAULT_SERVING_LABEL } from '../api/meta.ts';
import { startHttpServer, type RunningHttpServer } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import { ModelReconciler } from './model/reconciler.ts';
import { labelsMatch, MANAGED_BY, MANAGED_BY_LABEL, servingLabelSelector } from './objects.ts';
import { ENVOY_FILTER_API_VERSION, gatewayNamespace } from './pool/gateway.ts';
import { POOL_NAME_LABEL, POOL_NAMESPACE_LABEL } from './pool/ownership.ts';
import { PoolReconciler } from './pool/reconciler.ts';
import { resolveSelection } from './pool/selection.ts';
import { ServingPods } from './serving-pods.ts';
import { InferencePool } from '../api/inference-pool.ts';
import { Controller } from './runtime/controller.ts';
import { Informer, type InformerOptions, type SharedInformer } from '../common/kube/informer.ts';
import { KubeClient, type KubeApi } from '../common/kube/kube-client.ts';
import { EventRecorder } from './runtime/events.ts';
import { LeaderElector } from './runtime/leader-election.ts';
import { createControllerMetrics } from './runtime/metrics.ts';
import { ENVOY_FILTER_API, GIE_INFERENCE_POOL_API, OPTIONAL_APIS, OptionalApis, crdName } from './runtime/optional-apis.ts';
import { OptionalInformer } from './runtime/optional-informer.ts';
import { createInformerMetrics, withInformerMetrics } from './runtime/informer-metrics.ts';
import { OPERATOR_INFORMER_BACKOFF } from './runtime/informer-backoff.ts';
import type { NetworkPolicyOptions } from './pool/network-policy.ts';

/** Where the operator talks to the API server: over HTTP by default; unit tests pass an in-memory fake. */
export interface OperatorKube {
  client: KubeApi;
  informer<T extends KubernetesObject>(options: InformerOptions): SharedInformer<T>;
  close(): void;
}

function httpKube(kc: KubeConfig): OperatorKube {
  const client = new KubeClient(kc);
  return {
    client,
    informer: (options) => new Informer(kc, client, { backoff: OPERATOR_INFORMER_BACKOFF, ...options }),
    close: () => client.close(),
  };
}

export interface OperatorOptions {
  /** The cluster to talk to; ignored when `kube` is given. */
  kubeConfig?: KubeConfig;
  kube?: OperatorKube;
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
  /** Namespaces besides a pool's own where pools may place gateway objects (EnvoyFilters); none when absent. */
  gatewayNamespaces?: readonly string[];
  /** The pools' NetworkPolicies; on, with the default gateway peers, when absent. */
  networkPolicy?: NetworkPolicyOptions;
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
  private readonly kube: OperatorKube;
  readonly client: KubeApi;
  private readonly informers: SharedInformer<KubernetesObject>[] = [];
  private readonly pools: SharedInformer<KubernetesObject>;
  private readonly models: SharedInformer<KubernetesObject>;
  private readonly pods: ServingPods;
  private readonly namespaces: SharedInformer<KubernetesObject>;
  /**
   * The optional APIs (runtime/optional-apis.ts OPTIONAL_APIS) as discovery last saw them; builders and
   * reconcilers read `optionalApis.isServed(group, version, kind)`.
   */
  readonly optionalApis: OptionalApis;
  /** Absent in namespaced mode. Runs only while Istio's API is served; never awaited for readiness. */
  private readonly envoyFilters: OptionalInformer<KubernetesObject> | undefined;
  /** GIE InferencePools, while that API is served: where spec.poolRef is resolved. */
  private readonly giePools: OptionalInformer<KubernetesObject>;
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
  /**
   * Pool key -> the labels its pods carry (its selector, or its poolRef's, plus its serving label), kept
   * from pool and GIE pool events so pod events need no parsing. Absent while a poolRef is unresolved.
   */
  private readonly poolSelectors = new Map<string, Record<string, string>>();
  /** Pool key -> its serving label selector, for the set of pod watches to keep. */
  private readonly poolServingLabels = new Map<string, string>();
  /** Gateway namespace -> keys of the pools whose EnvoyFilter belongs there, kept from pool events. */
  private readonly gatewayPools = new Map<string, Set<string>>();
  private readonly poolGateways = new Map<string, string>();

  constructor(options: OperatorOptions) {
    this.o = options;
    const { log, namespace } = options;
    const kube = options.kube ?? (options.kubeConfig ? httpKube(options.kubeConfig) : undefined);
    if (!kube) throw new Error('the operator needs a kubeConfig (or, in tests, a kube backend)');
    this.kube = withInformerMetrics(kube, createInformerMetrics(options.registry));
    this.client = this.kube.client;
    const ns = namespace ? `/namespaces/${namespace}` : '';
    const crPath = (plural: string) => `/apis/${API_GROUP}/${API_VERSION}${ns}/${plural}`;
    const make = <T extends KubernetesObject>(name: string, path: string, sel: { labelSelector?: string; fieldSelector?: string } = {}) => {
      const inf = this.kube.informer<T>({ name, path, log, ...sel });
      this.informers.push(inf as unknown as SharedInformer<KubernetesObject>);
      return inf;
    };
    this.pools = make('inferencepools', crPath('inferencepools'));
    this.models = make('inferencemodels', crPath('inferencemodels'));
    this.pods = new ServingPods({
      defaultSelector: `${DEFAULT_SERVING_LABEL.key}=${DEFAULT_SERVING_LABEL.value}`,
      create: (labelSelector) =>
        this.kube.informer<V1Pod>({ name: `pods(${labelSelector})`, path: `/api/v1${ns}/pods`, labelSelector, log }),
      log,
    });
    this.informers.push(this.pods as unknown as SharedInformer<KubernetesObject>);
    const managed = { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` };
    const owned = {
      Deployment: make('deployments', `/apis/apps/v1${ns}/deployments`, managed),
      Service: make('services', `/api/v1${ns}/services`, managed),
      ConfigMap: make('configmaps', `/api/v1${ns}/configmaps`, managed),
      // Watched so a policy deleted or loosened by hand is put back at once: it is what keeps the pool closed.
      NetworkPolicy: make('networkpolicies', `/apis/networking.k8s.io/v1${ns}/networkpolicies`, managed),
    };
    this.namespaces = make('namespaces', '/api/v1/namespaces');
    this.optionalApis = new OptionalApis({ client: this.client, log });
    // Each optional API's CRD, watched by name: one appearing or going triggers a discovery check at once.
    for (const api of OPTIONAL_APIS) {
      const crd = make(`crd-${api.plural}.${api.group}`, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
        fieldSelector: `metadata.name=${crdName(api)}`,
      });
      // A CRD is served once Established; its status updates are the events that say when.
      crd.on(() => this.optionalApis.recheck(api));
    }
    const gie = GIE_INFERENCE_POOL_API;
    this.giePools = new OptionalInformer<KubernetesObject>({
      name: 'gie-inferencepools',
      api: gie,
      apis: this.optionalApis,
      log,
      create: () =>
        this.kube.informer<KubernetesObject>({
          name: 'gie-inferencepools',
          path: `/apis/${gie.group}/${gie.version}${ns}/${gie.plural}`,
          log,
          onRestart: () => this.optionalApis.recheck(gie),
        }),
    });
    if (namespace) {
      log.info('namespaced mode: not watching EnvoyFilters cluster-wide; a filter changed by hand is repaired at the next resync', {
        namespace,
        resyncMs: options.resyncMs,
      });
    } else {
      this.envoyFilters = new OptionalInformer<KubernetesObject>({
        name: 'envoyfilters',
        api: ENVOY_FILTER_API,
        apis: this.optionalApis,
        log,
        create: () =>
          this.kube.informer<KubernetesObject>({
            name: 'envoyfilters',
            path: `/apis/${ENVOY_FILTER_API_VERSION}/envoyfilters`,
            labelSelector: `${POOL_NAMESPACE_LABEL},${POOL_NAME_LABEL}`,
            log,
            // A watch failing may mean Istio was removed: ask discovery now rather than at its next check.
            onRestart: () => this.optionalApis.recheck(ENVOY_FILTER_API),
          }),
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
        namespaces: this.namespaces,
        ...(this.envoyFilters ? { envoyFilters: this.envoyFilters } : {}),
        giePools: this.giePools,
      },
      log,
      apis: this.optionalApis,
      desired: {
        defaultImage: options.defaultImage,
        clusterDomain: options.clusterDomain,
        gatewayNamespaces: new Set(options.gatewayNamespaces ?? []),
        ...(options.networkPolicy ? { networkPolicy: options.networkPolicy } : {}),
      },
    });
    const modelReconciler = new ModelReconciler({ client: this.client, pools: this.pools, models: this.models, log, events });
    this.poolController = new Controller({
      name: 'inferencepool',
      reconcile: (k) => this.poolReconciler.reconcile(k),
      workers: options.workers ?? 4,
      log,
      metrics,
    });
    this.modelController = new Controller({
      name: 'inferencemodel',
      reconcile: (k) => modelReconciler.reconcile(k),
      workers: 2,
      log,
      metrics,
    });
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

  private wireEvents(owned: Record<string, SharedInformer<KubernetesObject>>): void {
    this.pools.on((event, pool) => {
      const parsed = InferencePool.safeParse(pool);
      this.indexPool(keyOf(pool), event !== 'delete' && parsed.success ? parsed.data : undefined);
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
          if (ref.kind === 'InferencePool' && ref.apiVersion.startsWith(`${API_GROUP}/`))
            this.poolController.enqueue(`${obj.metadata?.namespace}/${ref.name}`);
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
    // A GIE pool that a kvroute pool refers to (spec.poolRef) decides that pool's pods; one a kvroute
    // pool owns (its GIE path) is re-applied when changed by hand.
    this.giePools.on((_e, gie) => {
      const ns = gie.metadata?.namespace ?? '';
      for (const raw of this.pools.list(ns)) {
        const parsed = InferencePool.safeParse(raw);
        if (!parsed.success || parsed.data.spec.poolRef?.name !== gie.metadata?.name) continue;
        this.indexPool(keyOf(raw), parsed.data);
        this.poolController.enqueue(keyOf(raw));
      }
      for (const ref of gie.metadata?.ownerReferences ?? []) {
        if (ref.kind === 'InferencePool' && ref.apiVersion.startsWith(`${API_GROUP}/`)) this.poolController.enqueue(`${ns}/${ref.name}`);
      }
    });
    // What a pool can apply, and the conditions it reports, follow the optional APIs.
    this.optionalApis.onChange(() => {
      for (const p of this.pools.list()) this.poolController.enqueue(keyOf(p));
    });
  }

  /** Records the labels a pool's pods carry (undefined: the pool is gone or unresolved) and keeps the pod watches to match. */
  private indexPool(poolKey: string, pool: InferencePool | undefined): void {
    if (!pool) {
      this.poolSelectors.delete(poolKey);
      this.poolServingLabels.delete(poolKey);
    } else {
      const ns = pool.metadata.namespace ?? 'default';
      const resolved = resolveSelection(pool, (n) => this.giePools.get(n, ns));
      const serving = pool.spec.servingLabel;
      if ('selection' in resolved) this.poolSelectors.set(poolKey, { ...resolved.selection.selector, [serving.key]: serving.value });
      else this.poolSelectors.delete(poolKey);
      this.poolServingLabels.set(poolKey, servingLabelSelector(pool));
    }
    this.pods.retain(this.poolServingLabels.values());
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
      this.servers.push(
        await startHttpServer({
          host,
          port: this.o.healthPort,
          log: log.child({ server: 'health' }),
          ready: () => this.ready(),
          routes: {},
        }),
      );
    }
    if (this.o.metricsPort !== undefined) {
      this.servers.push(
        await startHttpServer({ host, port: this.o.metricsPort, log: log.child({ server: 'metrics' }), registry, routes: {} }),
      );
    }
    // Discovery first, so the first reconciles already know which optional APIs the cluster serves.
    await this.optionalApis.start();
    await this.envoyFilters?.start();
    await this.giePools.start();
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
    this.optionalApis.stop();
    await Promise.all([...this.informers, this.giePools, ...(this.envoyFilters ? [this.envoyFilters] : [])].map((i) => i.stop()));
    await Promise.all(this.servers.map((s) => s.close()));
    this.kube.close();
  }
}
