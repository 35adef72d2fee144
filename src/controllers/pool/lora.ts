// The LoRA adapters a pool serves, derived from its accepted InferenceModels: a target model other than
// the pool's base model (its name or served name) is an adapter, loaded from the target's `source`, or
// from its name (a Hugging Face repo id). vLLM's --lora-modules and the indexer's `loras` both come
// from this one list, so the indexer hashes adapter blocks with the path vLLM was given.

import type { InferenceModel } from '../../api/inference-model.ts';
import type { InferencePool } from '../../api/inference-pool.ts';

export interface LoraAdapter {
  /** The name requests use and vLLM serves the adapter under. */
  name: string;
  /** What vLLM loads: a Hugging Face repo id or a path in the pod. */
  source: string;
}

/** The base model's names: what vLLM loads and what it serves it as. */
function baseNames(pool: InferencePool): Set<string> {
  const m = pool.spec.model;
  return new Set(m ? [m.name, ...(m.servedName ? [m.servedName] : [])] : []);
}

/**
 * The adapters of `models` (the pool's accepted InferenceModels), sorted by name. When two models name
 * one adapter with different sources, the model that sorts first by metadata.name decides, so the
 * result does not depend on list order.
 */
export function poolAdapters(pool: InferencePool, models: readonly InferenceModel[]): LoraAdapter[] {
  // Without spec.model (a poolRef pool) no target can be told from the base model.
  if (!pool.spec.model) return [];
  const base = baseNames(pool);
  const byName = new Map<string, string>();
  const ordered = [...models].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const m of ordered) {
    for (const t of m.spec.targetModels ?? []) {
      if (base.has(t.name) || byName.has(t.name)) continue;
      byName.set(t.name, t.source ?? t.name);
    }
  }
  return [...byName].map(([name, source]) => ({ name, source })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
