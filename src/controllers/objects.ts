// Names, labels and owner references every desired object of an InferencePool shares, so builders,
// reconcilers and tests agree on how an owned object is found.

import type { V1OwnerReference } from '@kubernetes/client-node';
import { GROUP_VERSION } from '../api/meta.ts';
import type { InferencePool } from '../api/inference-pool.ts';

export const FIELD_MANAGER = 'kvroute-operator';
export const POOL_LABEL = 'inference.kvroute.io/pool';
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'kvroute';

/** The object every builder starts from: a namespaced name plus the labels and owner of its pool. */
export interface Owned {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    ownerReferences: V1OwnerReference[];
    annotations?: Record<string, string>;
  };
}

export const names = {
  vllm: (pool: string) => `${pool}-vllm`,
  router: (pool: string) => `${pool}-router`,
  envoyFilter: (pool: string) => `${pool}-ext-proc`,
  gatewayPool: (pool: string) => pool,
};

export function ownerReference(pool: InferencePool): V1OwnerReference {
  if (!pool.metadata.uid) throw new Error(`InferencePool ${pool.metadata.name} has no uid; it must be read from the API server`);
  return {
    apiVersion: GROUP_VERSION,
    kind: 'InferencePool',
    name: pool.metadata.name,
    uid: pool.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function commonLabels(pool: InferencePool, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'kvroute',
    'app.kubernetes.io/instance': pool.metadata.name,
    [COMPONENT_LABEL]: component,
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [POOL_LABEL]: pool.metadata.name,
  };
}

export function ownedMeta(pool: InferencePool, name: string, component: string): Owned['metadata'] {
  return {
    name,
    namespace: pool.metadata.namespace ?? 'default',
    labels: commonLabels(pool, component),
    ownerReferences: [ownerReference(pool)],
  };
}

/** The labels that select the pool's model-server pods. */
export function podSelector(pool: InferencePool): Record<string, string> {
  if (pool.spec.selector && Object.keys(pool.spec.selector).length > 0) return pool.spec.selector;
  return { [POOL_LABEL]: pool.metadata.name, [COMPONENT_LABEL]: 'model-server' };
}

export function servedModelName(pool: InferencePool): string {
  return pool.spec.model.servedName ?? pool.spec.model.name;
}

export function labelsMatch(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels?.[k] !== v) return false;
  return true;
}
