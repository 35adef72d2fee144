// Reconciles one InferencePool: reads it and its models from the informer caches, server-side-applies
// the desired objects under one field manager (each only if no other owner holds its name: a Conflict
// otherwise), prunes optional objects it no longer wants, places the gateway's EnvoyFilter (and cleans it
// up across namespaces on deletion), and writes status through the /status subresource.
// Level-triggered: the key is all it is told.

import type { V1Deployment, V1Pod, KubernetesObject } from '@kubernetes/client-node';
import { InferenceModel } from '../../api/inference-model.ts';
import { InferencePool } from '../../api/inference-pool.ts';
import { describeIssues, GROUP_VERSION } from '../../api/meta.ts';
import type { Logger } from '../../common/log.ts';
import { mergeConditions } from '../conditions.ts';
import { resolveModels } from '../model/resolve.ts';
import { FIELD_MANAGER, names } from '../objects.ts';
import type { ReconcileResult } from '../runtime/controller.ts';
import type { InformerCache } from '../../common/kube/informer.ts';
import type { EventRecorder } from '../runtime/events.ts';
import { KubeApiError, resourcePath, type KubeApi } from '../../common/kube/kube-client.ts';
import { fingerprint, stableJson } from '../stable-json.ts';
import { desiredPoolObjects, type DesiredObject, type DesiredOptions } from './desired.ts';
import { EnvoyFilterSync } from './envoy-filter-sync.ts';
import type { EnvoyFilter } from './envoy-filter.ts';
import { poolIdentity } from './gateway.ts';
import { applyIfOwned, ownedByPool, type LiveObject } from './ownership.ts';
import { resolveSelection, type SelectionResult } from './selection.ts';
import { computePoolStatus } from './status.ts';
import { GIE_INFERENCE_POOL_API, apiName, type ServedApis } from '../runtime/optional-apis.ts';
import type { InferencePoolStatus } from '../../api/inference-pool.ts';

export interface PoolCaches {
  pools: InformerCache<KubernetesObject>;
  models: InformerCache<KubernetesObject>;
  pods: InformerCache<V1Pod>;
  /** Owned objects by kind, for drift detection: a cached resourceVersion that moved means re-apply. */
  owned: Record<string, InformerCache<KubernetesObject>>;
  /** Namespaces, to tell a pool namespace that is being deleted (and where creating objects is refused). */
  namespaces?: InformerCache<KubernetesObject>;
  /** Cluster-wide EnvoyFilters, absent in namespaced mode: a filter changed by hand is re-applied at once. */
  envoyFilters?: InformerCache<KubernetesObject>;
  /** GIE InferencePools (while that API is served), where a pool's spec.poolRef is resolved. */
  giePools?: InformerCache<KubernetesObject>;
}

/** The namespace controller marks a namespace it is emptying; the API server refuses new objects in it. */
function namespaceTerminating(ns: KubernetesObject | undefined): boolean {
  return (
    ns?.metadata?.deletionTimestamp !== undefined || (ns as { status?: { phase?: string } } | undefined)?.status?.phase === 'Terminating'
  );
}

export interface PoolReconcilerOptions {
  client: KubeApi;
  caches: PoolCaches;
  log: Logger;
  desired: Omit<DesiredOptions, 'apis'>;
  /** The optional APIs the cluster serves (the operator's discovery; a fixed answer in tests). */
  apis: ServedApis;
  events?: EventRecorder;
  now?: () => Date;
}

const MISSING_API_RECHECK_MS = 30_000;
/** How often an object in the way (a Conflict) is looked at again. */
const CONFLICT_RECHECK_MS = 30_000;
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
    else
      log.limited(
        `bad-model:${o.metadata?.namespace}/${o.metadata?.name}`,
        'warn',
        'ignoring InferenceModel that does not match its schema',
        {
          model: `${o.metadata?.namespace}/${o.metadata?.name}`,
          issues: describeIssues(parsed.error),
        },
      );
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

  /** The pool's pods and ports: its own, or those of the GIE InferencePool its spec.poolRef names. */
  private resolveSelection(pool: InferencePool): SelectionResult {
    const ns = pool.metadata.namespace ?? 'default';
    if (
      pool.spec.poolRef &&
      !this.o.apis.isServed(GIE_INFERENCE_POOL_API.group, GIE_INFERENCE_POOL_API.version, GIE_INFERENCE_POOL_API.kind)
    ) {
      return {
        problem: {
          reason: 'MissingAPI',
          message: `spec.poolRef names a GIE InferencePool, and the cluster does not serve ${apiName(GIE_INFERENCE_POOL_API)}; the pool is set up once it does`,
        },
      };
    }
    return resolveSelection(pool, (n) => this.o.caches.giePools?.get(n, ns));
  }

  /** Writes status through the /status subresource when it changed, with an Event per condition change. */
  private async writeStatus(pool: InferencePool, status: InferencePoolStatus): Promise<void> {
    if (stableJson(status) === stableJson(pool.status ?? {})) return;
    const { name } = pool.metadata;
    const namespace = pool.metadata.namespace ?? 'default';
    await this.o.client.apply({ apiVersion: GROUP_VERSION, kind: 'InferencePool', metadata: { name, namespace }, status } as never, {
      fieldManager: FIELD_MANAGER,
      force: true,
      subresource: 'status',
    });
    this.o.events?.recordConditionChanges(
      { apiVersion: GROUP_VERSION, kind: 'InferencePool', name, namespace, ...(pool.metadata.uid ? { uid: pool.metadata.uid } : {}) },
      pool.status?.conditions,
      status.conditions ?? [],
    );
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
      if (terminating)
        log.info('pool namespace is terminating; not applying its objects, only removing its gateway filters', { pool: key });
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
          status: {
            conditions: mergeConditions(
              prev,
              [{ type: 'Degraded', status: 'True', reason: 'InvalidSpec', message }],
              raw.metadata?.generation,
              now,
            ),
          },
        } as never,
        { fieldManager: FIELD_MANAGER, force: true, subresource: 'status' },
      );
      return;
    }
    const pool = parsed.data;
    const deployments = caches.owned.Deployment;
    const observedDeployments = {
      routerDeployment: deployments?.get(names.router(name), namespace) as V1Deployment | undefined,
      modelServerDeployment: deployments?.get(names.vllm(name), namespace) as V1Deployment | undefined,
    };
    // A pool riding on a GIE InferencePool (spec.poolRef) waits for it: without its selector the indexer
    // would not know which pods to follow. What was applied before stays as it is meanwhile.
    const resolved = this.resolveSelection(pool);
    if ('problem' in resolved) {
      await this.writeStatus(pool, computePoolStatus(pool, { pods: [], poolRefProblem: resolved.problem, ...observedDeployments }, now));
      return;
    }
    const selection = resolved.selection;
    const models = parseModels(caches.models.list(namespace), log);
    const resolution = resolveModels(models, (n) => caches.pools.get(n, namespace) !== undefined);
    const accepted = models.filter((m) => m.spec.poolRef.name === name && resolution.get(m.metadata.name)?.accepted);
    const desired = desiredPoolObjects(pool, accepted, { ...this.o.desired, apis: this.o.apis, selection });

    const errors: string[] = [];
    const missingKinds: string[] = [...desired.missingApis];
    // Applies run concurrently, in two waves: without the "bind" verb the API server only lets the
    // operator create a RoleBinding whose Role already exists (and grants nothing it lacks itself).
    // Every object goes through the ownership check: a same-named object the pool does not own (a GIE
    // pool, Service or DestinationRule someone else made) is named in a Conflict and left alone.
    const id = poolIdentity(pool);
    const conflicts: string[] = [];
    const applyOne = async (obj: DesiredObject) => {
      const fp = fingerprint(obj);
      if (this.upToDate(obj, fp)) return;
      try {
        const result = await applyIfOwned(client, id, obj, caches.owned[obj.kind]?.get(obj.metadata.name, obj.metadata.namespace));
        if ('conflict' in result) {
          this.applied.delete(objectKey(obj));
          conflicts.push(result.conflict);
          return;
        }
        this.applied.set(objectKey(obj), { fingerprint: fp, resourceVersion: result.resourceVersion });
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
    if (gateway.conflict) conflicts.push(gateway.conflict);
    for (const c of conflicts) {
      log.limited(`conflict:${key}:${c}`, 'warn', 'not applying an object the pool does not own; rename or delete it', {
        pool: key,
        object: c,
      });
    }
    if (desired.gatewayNotAllowed) {
      log.limited(
        `not-allowed:${key}:${desired.gatewayNotAllowed}`,
        'warn',
        'the pool asks for a gateway namespace the operator may not write to (--gateway-namespaces)',
        {
          pool: key,
          gatewayNamespace: desired.gatewayNotAllowed,
        },
      );
    }
    if (gateway.missingKind) missingKinds.push(gateway.missingKind);
    for (const ref of desired.prune.filter((r) => !isEnvoyFilter(r))) {
      try {
        const live = await client.get<KubernetesObject>(resourcePath(ref.apiVersion, ref.kind, ref.namespace, ref.name));
        if (ownedByPool(id, live as LiveObject)) {
          await client.delete(resourcePath(ref.apiVersion, ref.kind, ref.namespace, ref.name), live.metadata?.uid);
          log.info('deleted object the pool no longer wants', { pool: key, kind: ref.kind, name: ref.name });
        }
        this.applied.delete(`${ref.apiVersion}/${ref.kind}/${ref.namespace}/${ref.name}`);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404)) errors.push(`delete ${ref.kind} ${ref.name}: ${(err as Error).message}`);
      }
    }

    const status = computePoolStatus(
      pool,
      {
        pods: caches.pods.list(namespace),
        selection,
        ...observedDeployments,
        ...(errors.length ? { applyError: errors.join('; ') } : {}),
        missingKinds,
        ...(gateway.gatewayNamespaceMissing ? { gatewayNamespaceMissing: gateway.gatewayNamespaceMissing } : {}),
        conflicts,
        ...(desired.gatewayNotAllowed ? { gatewayNamespaceNotAllowed: desired.gatewayNotAllowed } : {}),
      },
      now,
    );
    await this.writeStatus(pool, status);
    if (errors.length) throw new Error(`applying pool ${key} failed: ${errors.join('; ')}`);
    // A missing API (Istio not installed yet) or gateway namespace is not an error to back off from, but worth a re-check.
    if (gateway.gatewayNamespaceMissing) return { requeueAfterMs: MISSING_NAMESPACE_RECHECK_MS };
    // Someone else's object is not watched: look again for it to be renamed or deleted.
    if (conflicts.length) return { requeueAfterMs: CONFLICT_RECHECK_MS };
    // An API discovery reports missing wakes the pool when it appears; one that discovery listed but the
    // apply did not find (removed in between) is looked at again soon.
    if (gateway.missingKind) return { requeueAfterMs: MISSING_API_RECHECK_MS };
  }
}
