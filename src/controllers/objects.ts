// Names, labels and owner references every desired object of an InferencePool shares, so builders,
// reconcilers and tests agree on how an owned object is found.

import type { V1OwnerReference } from '@kubernetes/client-node';
import { GROUP_VERSION } from '../api/meta.ts';
import type { InferencePool } from '../api/inference-pool.ts';

export const FIELD_MANAGER = 'kvroute-operator';
const POOL_LABEL = 'inference.kvroute.io/pool';
const COMPONENT_LABEL = 'app.kubernetes.io/component';
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

/**
 * The labels that select the pool's model-server pods: spec.selector.matchLabels, or the labels the
 * operator puts on the vLLM pods it runs. A pool with spec.poolRef takes its selector from the referenced
 * GIE InferencePool instead (pool/selection.ts resolves both).
 */
export function podSelector(pool: InferencePool): Record<string, string> {
  const own = pool.spec.selector?.matchLabels;
  if (own && Object.keys(own).length > 0) return own;
  return { [POOL_LABEL]: pool.metadata.name, [COMPONENT_LABEL]: 'model-server' };
}

/** The model name clients send and vLLM serves; undefined for a poolRef pool that names no model. */
export function servedModelName(pool: InferencePool): string | undefined {
  return pool.spec.model ? (pool.spec.model.servedName ?? pool.spec.model.name) : undefined;
}

/** The pool's serving label as a `key=value` label selector term. */
export function servingLabelSelector(pool: Pick<InferencePool, 'spec'>): string {
  return `${pool.spec.servingLabel.key}=${pool.spec.servingLabel.value}`;
}

export function labelsMatch(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels?.[k] !== v) return false;
  return true;
}
