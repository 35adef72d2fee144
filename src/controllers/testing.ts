// Builders of parsed API objects for unit tests: a pool or model as the API server would return it,
// with defaults applied by the same zod schemas the CRDs are generated from.

import { InferenceModel } from '../api/inference-model.ts';
import { InferencePool } from '../api/inference-pool.ts';
import { GROUP_VERSION } from '../api/meta.ts';

export function testPool(
  spec: Record<string, unknown>,
  meta: Partial<{ name: string; namespace: string; uid: string; generation: number }> = {},
): InferencePool {
  return InferencePool.parse({
    apiVersion: GROUP_VERSION,
    kind: 'InferencePool',
    metadata: { name: meta.name ?? 'llama', namespace: meta.namespace ?? 'ml', uid: meta.uid ?? 'uid-1', generation: meta.generation ?? 1 },
    spec,
  });
}

export function testModel(name: string, spec: Record<string, unknown>, creationTimestamp = '2026-01-01T00:00:00Z'): InferenceModel {
  return InferenceModel.parse({
    apiVersion: GROUP_VERSION,
    kind: 'InferenceModel',
    metadata: { name, namespace: 'ml', uid: `uid-${name}`, generation: 1, creationTimestamp },
    spec,
  });
}
