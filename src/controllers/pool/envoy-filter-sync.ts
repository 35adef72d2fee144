// Keeps a pool's Istio EnvoyFilter where its gateway runs and removes the pool's other filters in any
// namespace; a filter of the wanted name that is not the pool's is reported, never written over. A
// filter outside the pool's namespace cannot carry an owner reference, so the pool holds a finalizer
// while it has one there, and this module deletes such filters when the pool goes.

import { GROUP_VERSION } from '../../api/meta.ts';
import type { InferencePool } from '../../api/inference-pool.ts';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { InformerCache } from '../../common/kube/informer.ts';
import type { Logger } from '../../common/log.ts';
import { FIELD_MANAGER, names } from '../objects.ts';
import { isConflict, isNotFound, resourcePath, type KubeApi } from '../../common/kube/kube-client.ts';
import { fingerprint } from '../stable-json.ts';
import type { EnvoyFilter } from './envoy-filter.ts';
import {
  ENVOY_FILTER_API_VERSION,
  GATEWAY_CLEANUP_FINALIZER,
  envoyFilterSelector,
  needsCleanupFinalizer,
  poolIdentity,
  staleEnvoyFilters,
} from './gateway.ts';
import { describeObject, ownedByPool, type LiveObject, type PoolIdentity } from './ownership.ts';

export interface EnvoyFilterSyncResult {
  /** The gateway namespace does not exist, so the filter could not be placed. */
  gatewayNamespaceMissing?: string;
  /** The cluster does not serve EnvoyFilters (Istio is not installed). */
  missingKind?: string;
  /** An EnvoyFilter of the wanted name exists and is not the pool's: named, and left alone. */
  conflict?: string;
  errors: string[];
}

const ENVOY_FILTER = `${ENVOY_FILTER_API_VERSION} EnvoyFilter`;
const filterPath = (namespace: string | undefined, name?: string) => resourcePath(ENVOY_FILTER_API_VERSION, 'EnvoyFilter', namespace, name);
interface PoolMeta {
  metadata?: { uid?: string; finalizers?: string[] };
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class EnvoyFilterSync {
  private readonly client: KubeApi;
  private readonly log: Logger;
  private readonly cache: InformerCache<KubernetesObject> | undefined;
  /** namespace/name of each applied filter -> fingerprint of what was applied and the version it produced. */
  private readonly applied = new Map<string, { fingerprint: string; resourceVersion: string | undefined }>();
  /** pool key -> the filter location (or '' for none) the last completed sweep kept. */
  private readonly swept = new Map<string, string>();

  /** `cache` is a cluster-wide EnvoyFilter informer, when the operator may watch them: with it a filter deleted or edited by hand counts as not applied. */
  constructor(options: { client: KubeApi; log: Logger; cache?: InformerCache<KubernetesObject> }) {
    this.client = options.client;
    this.log = options.log;
    this.cache = options.cache;
  }

  private isApplied(filter: EnvoyFilter, fp: string): boolean {
    const prev = this.applied.get(`${filter.metadata.namespace}/${filter.metadata.name}`);
    if (!prev || prev.fingerprint !== fp) return false;
    // Without a synced watch (namespaced mode, Istio not installed yet) the memo is all there is; the resync repairs drift.
    if (!this.cache?.synced) return true;
    return this.cache.get(filter.metadata.name, filter.metadata.namespace)?.metadata?.resourceVersion === prev.resourceVersion;
  }

  /** Forgets all memos so the next sync re-applies and re-sweeps (the periodic resync repairs drift this way). */
  forget(): void {
    this.applied.clear();
    this.swept.clear();
  }

  forgetPool(poolKey: string): void {
    this.swept.delete(poolKey);
  }

  /**
   * Places `wanted` (or nothing), then deletes the pool's other filters and drops the finalizer once no
   * filter outside the pool's namespace is left. Old filters are only deleted after the wanted one is in
   * place, so moving a gateway never leaves it without ext_proc.
   */
  async sync(pool: InferencePool, finalizers: readonly string[], wanted: EnvoyFilter | undefined): Promise<EnvoyFilterSyncResult> {
    const id = poolIdentity(pool);
    const poolKey = `${id.namespace}/${id.name}`;
    const result: EnvoyFilterSyncResult = { errors: [] };
    const hasFinalizer = finalizers.includes(GATEWAY_CLEANUP_FINALIZER);
    const wantFinalizer = needsCleanupFinalizer(id, wanted?.metadata);

    if (wanted) {
      const where = `${wanted.metadata.namespace}/${wanted.metadata.name}`;
      const fp = fingerprint(wanted);
      try {
        const current = this.isApplied(wanted, fp);
        if (wantFinalizer && !current && !(await this.namespaceExists(wanted.metadata.namespace))) {
          result.gatewayNamespaceMissing = wanted.metadata.namespace;
          return result;
        }
        // Someone else's filter of that name is never written over; the pool's earlier filters stay in place.
        const live = current ? 'owned' : await this.ownership(id, wanted);
        if (live === 'foreign') {
          result.conflict = describeObject(wanted);
          return result;
        }
        // The finalizer goes on before the filter exists, so no filter can outlive a pool unnoticed.
        if (wantFinalizer && !hasFinalizer) await this.setFinalizer(id, true);
        if (!current) {
          const applied = await this.apply(wanted, live === 'owned');
          if (applied === 'conflict') {
            this.applied.delete(where);
            result.conflict = describeObject(wanted);
            return result;
          }
          this.applied.set(where, { fingerprint: fp, resourceVersion: applied.resourceVersion });
        }
      } catch (err) {
        this.applied.delete(where);
        if (isNotFound(err)) result.missingKind = ENVOY_FILTER;
        else result.errors.push(`EnvoyFilter ${where}: ${message(err)}`);
        return result;
      }
    }

    const keep = wanted ? `${wanted.metadata.namespace}/${wanted.metadata.name}` : '';
    const dropFinalizer = hasFinalizer && !wantFinalizer;
    if (this.swept.get(poolKey) === keep && !dropFinalizer) return result;
    try {
      await this.deleteStale(id, wanted?.metadata);
      this.swept.set(poolKey, keep);
      if (dropFinalizer) await this.setFinalizer(id, false);
    } catch (err) {
      this.swept.delete(poolKey);
      result.errors.push(`removing stale EnvoyFilters: ${message(err)}`);
    }
    return result;
  }

  /** Cleanup for a pool being deleted: deletes all its filters, then releases the pool. Throws to retry. */
  async finalize(id: PoolIdentity, finalizers: readonly string[]): Promise<void> {
    if (!finalizers.includes(GATEWAY_CLEANUP_FINALIZER)) return;
    await this.deleteStale(id, undefined);
    await this.setFinalizer(id, false);
    this.forgetPool(`${id.namespace}/${id.name}`);
    this.log.info('removed the gateway filters of a deleted pool and released it', { pool: `${id.namespace}/${id.name}` });
  }

  private async namespaceExists(namespace: string): Promise<boolean> {
    try {
      await this.client.get(resourcePath('v1', 'Namespace', undefined, namespace));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Whether a filter of the wanted name exists, and whether it is the pool's. */
  private async ownership(id: PoolIdentity, filter: EnvoyFilter): Promise<'absent' | 'owned' | 'foreign'> {
    const live = await this.client.get<LiveObject>(filterPath(filter.metadata.namespace, filter.metadata.name)).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!live) return 'absent';
    return ownedByPool(id, live) ? 'owned' : 'foreign';
  }

  /**
   * Force (taking fields from other managers) only over the pool's own filter; a create is not forced, so
   * a filter someone makes in between conflicts instead of being taken over.
   */
  private async apply(filter: EnvoyFilter, exists: boolean): Promise<{ resourceVersion: string | undefined } | 'conflict'> {
    try {
      const applied = await this.client.apply<KubernetesObject>(filter, { fieldManager: FIELD_MANAGER, force: exists });
      return { resourceVersion: applied.metadata?.resourceVersion };
    } catch (err) {
      if (!exists && isConflict(err)) return 'conflict';
      throw err;
    }
  }

  /**
   * Server-side apply of only this finalizer under the operator's field manager: the finalizers list is a
   * set, so the operator owns its one entry and never touches entries others (or a GitOps tool) own.
   * Leaving the entry out releases it, and the API server removes it when no one else holds it. The live
   * pool is read first because an apply to a pool that is gone would try to create it.
   */
  private async setFinalizer(id: PoolIdentity, present: boolean): Promise<void> {
    const path = resourcePath(GROUP_VERSION, 'InferencePool', id.namespace, id.name);
    const live = await this.client.get<PoolMeta>(path).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    // Gone, or replaced by a new pool of the same name that its own reconcile will judge.
    if (!live || (id.uid !== undefined && live.metadata?.uid !== id.uid)) return;
    if ((live.metadata?.finalizers ?? []).includes(GATEWAY_CLEANUP_FINALIZER) === present) return;
    const applied = await this.client.apply<PoolMeta>(
      {
        apiVersion: GROUP_VERSION,
        kind: 'InferencePool',
        metadata: { name: id.name, namespace: id.namespace, ...(present ? { finalizers: [GATEWAY_CLEANUP_FINALIZER] } : {}) },
      },
      { fieldManager: FIELD_MANAGER, force: true },
    );
    const left = applied?.metadata?.finalizers?.indexOf(GATEWAY_CLEANUP_FINALIZER) ?? -1;
    if (!present && left >= 0) {
      // Another manager also holds the entry (an update that copied it, a restore): remove just that entry.
      await this.client.request('PATCH', path, {
        body: [
          { op: 'test', path: `/metadata/finalizers/${left}`, value: GATEWAY_CLEANUP_FINALIZER },
          { op: 'remove', path: `/metadata/finalizers/${left}` },
        ],
        contentType: 'application/json-patch+json',
      });
    }
    this.log.info(present ? 'added the gateway cleanup finalizer' : 'removed the gateway cleanup finalizer', {
      pool: `${id.namespace}/${id.name}`,
    });
  }

  private async deleteStale(id: PoolIdentity, keep: { namespace: string; name: string } | undefined): Promise<void> {
    let listed: LiveObject[];
    try {
      listed = (await this.client.list<LiveObject>(filterPath(undefined), { labelSelector: envoyFilterSelector(id) })).items;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return; // Istio is not installed: no filter can exist.
    }
    // A filter written before the pool labels existed is found at its old name by owner reference.
    const legacy = names.envoyFilter(id.name);
    const isLegacy = (f: { namespace?: string; name?: string } | undefined) => f?.namespace === id.namespace && f?.name === legacy;
    if (!isLegacy(keep) && !listed.some((f) => isLegacy(f.metadata))) {
      const old = await this.client.get<LiveObject>(filterPath(id.namespace, legacy)).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (old) listed.push(old);
    }
    for (const ref of staleEnvoyFilters(id, keep, listed)) {
      try {
        // Deleting a filter that is already gone (its namespace deleted, say) is success.
        if (await this.client.delete(filterPath(ref.namespace, ref.name), ref.uid)) {
          this.log.info('deleted an EnvoyFilter the pool no longer wants', {
            pool: `${id.namespace}/${id.name}`,
            envoyFilter: `${ref.namespace}/${ref.name}`,
          });
        }
      } catch (err) {
        // A UID precondition conflict means the object was replaced since the list; the next sweep judges the new one.
        if (!isConflict(err)) throw err;
      }
    }
  }
}
