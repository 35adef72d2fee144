// Decides which InferenceModels a pool accepts: when several claim one modelName in a pool, the oldest
// (then the first by name) wins and the others get Accepted=False, never a crash or a silent drop.

import type { InferenceModel } from '../../api/inference-model.ts';
import type { ConditionInput } from '../conditions.ts';

export interface ModelResolution {
  model: InferenceModel;
  accepted: boolean;
  conditions: ConditionInput[];
}

function olderFirst(a: InferenceModel, b: InferenceModel): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.metadata.name.localeCompare(b.metadata.name);
}

/** Resolves every model of one namespace; `poolExists` says whether a poolRef names a live pool. */
export function resolveModels(models: readonly InferenceModel[], poolExists: (name: string) => boolean): Map<string, ModelResolution> {
  const winners = new Map<string, InferenceModel>();
  for (const m of [...models].sort(olderFirst)) {
    const key = `${m.spec.poolRef.name}\u0000${m.spec.modelName}`;
    if (!winners.has(key) && poolExists(m.spec.poolRef.name)) winners.set(key, m);
  }
  const out = new Map<string, ModelResolution>();
  for (const m of models) {
    const pool = m.spec.poolRef.name;
    if (!poolExists(pool)) {
      const message = `InferencePool "${pool}" does not exist in namespace "${m.metadata.namespace ?? 'default'}"`;
      out.set(m.metadata.name, {
        model: m,
        accepted: false,
        conditions: [
          { type: 'Accepted', status: 'False', reason: 'PoolNotFound', message },
          { type: 'ResolvedRefs', status: 'False', reason: 'PoolNotFound', message },
        ],
      });
      continue;
    }
    const winner = winners.get(`${pool}\u0000${m.spec.modelName}`)!;
    const resolved: ConditionInput = {
      type: 'ResolvedRefs',
      status: 'True',
      reason: 'ResolvedRefs',
      message: `InferencePool "${pool}" found`,
    };
    if (winner.metadata.name === m.metadata.name) {
      out.set(m.metadata.name, {
        model: m,
        accepted: true,
        conditions: [
          { type: 'Accepted', status: 'True', reason: 'Accepted', message: `modelName "${m.spec.modelName}" is served by pool "${pool}"` },
          resolved,
        ],
      });
    } else {
      out.set(m.metadata.name, {
        model: m,
        accepted: false,
        conditions: [
          {
            type: 'Accepted',
            status: 'False',
            reason: 'ModelNameInUse',
            message: `modelName "${m.spec.modelName}" is already claimed in pool "${pool}" by InferenceModel "${winner.metadata.name}", which is older`,
          },
          resolved,
        ],
      });
    }
  }
  return out;
}
