// The ownership rule for every object a pool writes: an object is the pool's when it carries an owner
// reference to the pool (by UID) or, for objects outside the pool's namespace where owner references
// cannot point, both pool labels. A same-named object that is not the pool's is never written over.

import { isConflict, isNotFound, resourcePath, type KubeApi, type KubeObjectLike } from '../../common/kube/kube-client.ts';
import { FIELD_MANAGER } from '../objects.ts';

/** Labels that find a pool's objects in any namespace: owner references cannot cross namespaces. */
export const POOL_NAMESPACE_LABEL = 'inference.kvroute.io/pool-namespace';
export const POOL_NAME_LABEL = 'inference.kvroute.io/pool-name';

/** What identifies a pool to the objects it writes; enough to clean up after a pool whose spec no longer parses. */
export interface PoolIdentity {
  namespace: string;
  name: string;
  uid?: string;
}

/** An object as read from the API server: only the fields the rule reads. */
export interface LiveObject {
  metadata?: {
    name?: string;
    resourceVersion?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    ownerReferences?: { kind: string; uid: string }[];
  };
}

/** Whether `live` belongs to the pool. */
export function ownedByPool(pool: PoolIdentity, live: LiveObject): boolean {
  const labels = live.metadata?.labels;
  if (labels?.[POOL_NAMESPACE_LABEL] === pool.namespace && labels?.[POOL_NAME_LABEL] === pool.name) return true;
  return pool.uid !== undefined && (live.metadata?.ownerReferences ?? []).some((r) => r.kind === 'InferencePool' && r.uid === pool.uid);
}

/** How conditions and logs name an object: `Kind namespace/name`. */
export function describeObject(o: { kind: string; metadata: { namespace?: string; name: string } }): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

/** What an ownership-checked apply did: applied (with the resourceVersion it produced), or left someone else's object alone. */
export type OwnedApplyResult = { resourceVersion: string | undefined } | { conflict: string };

/**
 * Server-side applies `obj` only if no object of its name exists or the existing one is the pool's.
 * `cached` is the object from an informer, when the kind is watched: an owned one saves the read (a
 * foreign one may be stale, so it is read again). Force (taking fields other managers set on the pool's
 * own object) only when the object exists and is the pool's; a create is not forced, so an object
 * someone makes between the read and the apply conflicts instead of being taken over.
 */
export async function applyIfOwned(
  client: KubeApi,
  pool: PoolIdentity,
  obj: KubeObjectLike & { apiVersion: string; kind: string; metadata: { name: string; namespace: string } },
  cached?: LiveObject,
): Promise<OwnedApplyResult> {
  const { apiVersion, kind, metadata } = obj;
  let live: LiveObject | undefined = cached && ownedByPool(pool, cached) ? cached : undefined;
  if (!live) {
    live = await client.get<LiveObject>(resourcePath(apiVersion, kind, metadata.namespace, metadata.name)).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (live && !ownedByPool(pool, live)) return { conflict: describeObject(obj) };
  }
  try {
    const applied = await client.apply<LiveObject>(obj, { fieldManager: FIELD_MANAGER, force: live !== undefined });
    return { resourceVersion: applied.metadata?.resourceVersion };
  } catch (err) {
    if (live === undefined && isConflict(err)) return { conflict: describeObject(obj) };
    throw err;
  }
}
