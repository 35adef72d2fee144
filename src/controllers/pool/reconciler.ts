// Reconciles one InferencePool: reads it and its models from the informer caches, server-side-applies
// the desired objects under one field manager, prunes optional objects it no longer wants, places the
// gateway's EnvoyFilter (and cleans it up across namespaces on deletion), and writes status through the
// /status subresource. Level-triggered: the key is all it is told.

import type { V1Deployment, V1Pod, KubernetesObject } from '@kubernetes/client-node';
import { InferenceModel } from '../../api/inference-model.ts';
import { InferencePool } from '../../api/inference-pool.ts';
import { describeIssues, GROUP_VERSION } from '../../api/meta.ts';
import type { Logger } from '../../common/log.ts';
import { mergeConditions } from '../conditions.ts';
import { resolveModels } from '../model/resolve.ts';
import { FIELD_MANAGER, names } from '../objects.ts';
import type { ReconcileResult } from '../runtime/controller.ts';
import type { Informer } from '../../common/kube/informer.ts';
import type { EventRecorder } from '../runtime/events.ts';
import { KubeApiError, resourcePath, type KubeClient } from '../../common/kube/kube-client.ts';
import { fingerprint, stableJson } from '../stable-json.ts';
import { desiredPoolObjects, type DesiredObject, type DesiredOptions } from './desired.ts';
import { EnvoyFilterSync } from './envoy-filter-sync.ts';
import type { EnvoyFilter } from './gateway.ts';
import { computePoolStatus } from './status.ts';

export interface PoolCaches {
  pools: Informer<KubernetesObject>;
  models: Informer<KubernetesObject>;
  pods: Informer<V1Pod>;
  /** Owned objects by kind, for drift detection: a cached resourceVersion that moved means re-apply. */
  owned: Record<string, Informer<KubernetesObject>>;
  gatewayCrd: Informer<KubernetesObject>;
  /** Namespaces, to tell a pool namespace that is being deleted (and where creating objects is refused). */
  namespaces?: Informer<KubernetesObject>;
  /** Cluster-wide EnvoyFilters, absent in namespaced mode: a filter changed by hand is re-applied at once. */
  envoyFilters?: Informer<KubernetesObject>;
}

/** The namespace controller marks a namespace it is emptying; the API server refuses new objects in it. */
export function namespaceTerminating(ns: KubernetesObject | undefined): boolean {
  return ns?.metadata?.deletionTimestamp !== undefined || (ns as { status?: { phase?: string } } | undefined)?.status?.phase === 'Terminating';
}

export interface PoolReconcilerOptions {
  client: KubeClient;
  caches: PoolCaches;
  log: Logger;
  desired: Omit<DesiredOptions, 'gatewayInferencePoolCrd'>;
  events?: EventRecorder;
  now?: () => Date;
}

const MISSING_API_RECHECK_MS = 30_000;
/** A missing gateway namespace is usually a matter of install order; look again soon. */
const MISSING_NAMESPACE_RECHECK_MS = 10_000;

interface Applied {
  fingerprint: string;
  resourceVersion: string | undefined;
}

const objectKey = (o: { apiVersion: string; kind: string; metadata: { namespace: string; name: string } }) =>
  `${o.apiVersion}/${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;

export function parseModels(objects: readonly KubernetesObject[], log: Logger): InferenceModel[] {
  const out: InferenceModel[] = [];
  for (const o of objects) {
    const parsed = InferenceModel.safeParse(o);
    if (parsed.success) out.push(parsed.data);
    else log.limited(`bad-model:${o.metadata?.namespace}/${o.metadata?.name}`, 'warn', 'ignoring InferenceModel that does not match its schema', {
      model: `${o.metadata?.namespace}/${o.metadata?.name}`,
      issues: describeIssues(parsed.error),
    });
  }
  return out;
}

export class PoolReconciler {
  private readonly o: PoolReconcilerOptions;
  private readonly applied = new Map<string, Applied>();
  private readonly envoyFilters: EnvoyFilterSync;

  constructor(options: PoolReconcilerOptions) {
    this.o = options;
    this.envoyFilters = new EnvoyFilterSync({
      client: options.client,
      log: options.log,
      ...(options.caches.envoyFilters ? { cache: options.caches.envoyFilters } : {}),
    });
  }

  /** Forgets what was applied so the next reconcile re-applies everything (drift in unwatched kinds). */
  forgetApplied(): void {
    this.applied.clear();
    this.envoyFilters.forget();
  }

  private upToDate(obj: DesiredObject, fp: string): boolean {
    const prev = this.applied.get(objectKey(obj));
    if (!prev || prev.fingerprint !== fp) return false;
    const cache = this.o.caches.owned[obj.kind];
    if (!cache) return true;
    return cache.get(obj.metadata.name, obj.metadata.namespace)?.metadata?.resourceVersion === prev.resourceVersion;
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const [namespace, name] = key.split('/') as [string, string];
    const { client, caches, log } = this.o;
    const raw = caches.pools.get(name, namespace);
    if (!raw) {
      // Deleted: the garbage collector removes what it owned; filters elsewhere went before the finalizer did.
      this.envoyFilters.forgetPool(key);
      return;
    }
    const finalizers = raw.metadata?.finalizers ?? [];
    // Being deleted (e.g. foreground deletion waits for the children): re-applying them would fight the
    // collector; only the filters it cannot reach are removed, then the pool is released. A pool whose
    // namespace is terminating is about to be deleted, and any create there is refused with a 403.
    const terminating = namespaceTerminating(caches.namespaces?.get(namespace));
    if (raw.metadata?.deletionTimestamp || terminating) {
      if (terminating) log.info('pool namespace is terminating; not applying its objects, only removing its gateway filters', { pool: key });
      await this.envoyFilters.finalize({ namespace, name, ...(raw.metadata?.uid ? { uid: raw.metadata.uid } : {}) }, finalizers);
      return;
    }
    const parsed = InferencePool.safeParse(raw);
    const now = this.o.now?.() ?? new Date();
    if (!parsed.success) {
      const message = `spec does not match the InferencePool schema: ${describeIssues(parsed.error)}`;
      const prev = (raw as { status?: { conditions?: [] } }).status?.conditions;
      await client.apply(
        {
          apiVersion: GROUP_VERSION,
          kind: 'InferencePool',
          metadata: { name, namespace },
          status: { conditions: mergeConditions(prev, [{ type: 'Degraded', status: 'True', reason: 'InvalidSpec', message }], raw.metadata?.generation, now) },
        } as never,
        { fieldManager: FIELD_MANAGER, force: true, subresource: 'status' },
      );
      return;
    }
    const pool = parsed.data;
    const models = parseModels(caches.models.list(namespace), log);
    const resolution = resolveModels(models, (n) => caches.pools.get(n, namespace) !== undefined);
    const accepted = models.filter((m) => m.spec.poolRef.name === name && resolution.get(m.metadata.name)?.accepted);
    const desired = desiredPoolObjects(pool, accepted, { ...this.o.desired, gatewayInferencePoolCrd: caches.gatewayCrd.list().length > 0 });

    const errors: string[] = [];
    const missingKinds: string[] = [];
    // Applies run concurrently, in two waves: without the "bind" verb the API server only lets the
    // operator create a RoleBinding whose Role already exists (and grants nothing it lacks itself).
    const applyOne = async (obj: DesiredObject) => {
      const fp = fingerprint(obj);
      if (this.upToDate(obj, fp)) return;
      try {
        const live = await client.apply<KubernetesObject>(obj, { fieldManager: FIELD_MANAGER, force: true });
        this.applied.set(objectKey(obj), { fingerprint: fp, resourceVersion: live.metadata?.resourceVersion });
      } catch (err) {
        this.applied.delete(objectKey(obj));
        errors.push(`${obj.kind} ${obj.metadata.name}: ${(err as Error).message}`);
      }
    };
    // The EnvoyFilter may live in another namespace and needs a finalizer and a sweep: it has its own path.
    const isEnvoyFilter = (o: { kind: string }) => o.kind === 'EnvoyFilter';
    const envoyFilter = desired.apply.find(isEnvoyFilter) as EnvoyFilter | undefined;
    const owned = desired.apply.filter((o) => !isEnvoyFilter(o));
    const secondWave = (o: DesiredObject) => o.kind === 'RoleBinding';
    await Promise.all(owned.filter((o) => !secondWave(o)).map(applyOne));
    await Promise.all(owned.filter(secondWave).map(applyOne));
    const gateway = await this.envoyFilters.sync(pool, finalizers, envoyFilter);
    errors.push(...gateway.errors);
    if (gateway.missingKind) missingKinds.push(gateway.missingKind);
    for (const ref of desired.prune.filter((r) => !isEnvoyFilter(r))) {
      try {
        const live = await client.get<KubernetesObject>(resourcePath(ref.apiVersion, ref.kind, ref.namespace, ref.name));
        const owner = live.metadata?.ownerReferences?.find((r) => r.kind === 'InferencePool' && r.uid === pool.metadata.uid);
        if (owner) {
          await client.delete(resourcePath(ref.apiVersion, ref.kind, ref.namespace, ref.name), live.metadata?.uid);
          log.info('deleted object the pool no longer wants', { pool: key, kind: ref.kind, name: ref.name });
        }
        this.applied.delete(`${ref.apiVersion}/${ref.kind}/${ref.namespace}/${ref.name}`);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404)) errors.push(`delete ${ref.kind} ${ref.name}: ${(err as Error).message}`);
      }
    }

    const deployments = caches.owned.Deployment;
    const status = computePoolStatus(
      pool,
      {
        pods: caches.pods.list(namespace),
        routerDeployment: deployments?.get(names.router(name), namespace) as V1Deployment | undefined,
        modelServerDeployment: deployments?.get(names.vllm(name), namespace) as V1Deployment | undefined,
        ...(errors.length ? { applyError: errors.join('; ') } : {}),
        missingKinds,
        ...(gateway.gatewayNamespaceMissing ? { gatewayNamespaceMissing: gateway.gatewayNamespaceMissing } : {}),
      },
      now,
    );
    if (stableJson(status) !== stableJson(pool.status ?? {})) {
      await client.apply(
        { apiVersion: GROUP_VERSION, kind: 'InferencePool', metadata: { name, namespace }, status } as never,
        { fieldManager: FIELD_MANAGER, force: true, subresource: 'status' },
      );
      this.o.events?.recordConditionChanges(
        { apiVersion: GROUP_VERSION, kind: 'InferencePool', name, namespace, ...(pool.metadata.uid ? { uid: pool.metadata.uid } : {}) },
        pool.status?.conditions,
        status.conditions ?? [],
      );
    }
    if (errors.length) throw new Error(`applying pool ${key} failed: ${errors.join('; ')}`);
    // A missing API (Istio not installed yet) or gateway namespace is not an error to back off from, but worth a re-check.
    if (gateway.gatewayNamespaceMissing) return { requeueAfterMs: MISSING_NAMESPACE_RECHECK_MS };
    if (missingKinds.length) return { requeueAfterMs: MISSING_API_RECHECK_MS };
  }
}
