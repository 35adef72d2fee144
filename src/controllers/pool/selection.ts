// Which pods are a pool's endpoints and on which ports, as the builders and status need it: the pool's
// own selection (spec.selector or the labels of the vLLM pods the operator runs, spec.targetPorts or the
// model servers' port), or, for a pool with spec.poolRef, the selector and ports of the referenced GIE
// InferencePool, which may be missing or malformed and then says why.

import { GieInferencePool } from '../../api/gie-inference-pool.ts';
import { poolTargetPorts, type InferencePool } from '../../api/inference-pool.ts';
import { describeIssues } from '../../api/meta.ts';
import { podSelector } from '../objects.ts';

/** The pods a pool's endpoints come from (besides its serving label) and the ports on each. */
export interface PoolSelection {
  selector: Record<string, string>;
  targetPorts: number[];
}

export type SelectionResult =
  | { selection: PoolSelection }
  /** The pool refers to a GIE InferencePool that is missing or unusable (PoolRefNotFound, PoolRefInvalid, MissingAPI). */
  | { problem: { reason: string; message: string } };

/** The pool's own selection; undefined for a pool with spec.poolRef. */
export function ownSelection(pool: InferencePool): PoolSelection | undefined {
  const targetPorts = poolTargetPorts(pool.spec);
  return targetPorts ? { selector: podSelector(pool), targetPorts } : undefined;
}

/**
 * The pool's selection: its own, or that of the GIE InferencePool `lookup` finds by name in the pool's
 * namespace (undefined when there is none).
 */
export function resolveSelection(pool: InferencePool, lookup: (name: string) => unknown): SelectionResult {
  const own = ownSelection(pool);
  if (own) return { selection: own };
  const ref = pool.spec.poolRef!;
  const ns = pool.metadata.namespace ?? 'default';
  const raw = lookup(ref.name);
  if (raw === undefined) {
    return {
      problem: {
        reason: 'PoolRefNotFound',
        message: `spec.poolRef: InferencePool "${ref.name}" (${ref.group}) does not exist in namespace "${ns}"; the router and indexer are set up once it does`,
      },
    };
  }
  const parsed = GieInferencePool.safeParse(raw);
  if (!parsed.success) {
    return {
      problem: {
        reason: 'PoolRefInvalid',
        message: `spec.poolRef: InferencePool "${ref.name}" (${ref.group}) is unusable: ${describeIssues(parsed.error)}`,
      },
    };
  }
  const spec = parsed.data.spec;
  return { selection: { selector: { ...spec.selector.matchLabels }, targetPorts: [...new Set(spec.targetPorts.map((p) => p.number))] } };
}
