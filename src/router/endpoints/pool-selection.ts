// Which pods are a pool's endpoints, as pure decisions: the selector and target ports read from an
// InferencePool of any supported group (GIE v1, GIE's legacy v1alpha2, kvroute's v1alpha1), and the
// endpoints one pod contributes (Ready, Running, not terminating, labelled for serving and selected).

import type { V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';
import { InferencePoolSpec, poolTargetPorts } from '../../api/inference-pool.ts';
import { API_GROUP, API_VERSION, describeIssues } from '../../api/meta.ts';
import type { Endpoint } from '../types.ts';
import { formatAddress } from './address.ts';

/** The pods a pool selects and the ports on each that serve it: one endpoint per (pod, port). */
export interface PoolSelection {
  selector: Readonly<Record<string, string>>;
  targetPorts: readonly number[];
}

export interface ServingLabel {
  key: string;
  value: string;
}

export const GIE_GROUP = 'inference.networking.k8s.io';
const GIE_LEGACY_GROUP = 'inference.networking.x-k8s.io';

/** The API version the router reads InferencePools of each group at. */
const POOL_VERSIONS: Readonly<Record<string, string>> = {
  [GIE_GROUP]: 'v1',
  [GIE_LEGACY_GROUP]: 'v1alpha2',
  [API_GROUP]: API_VERSION,
};

/** The collection path of a group's InferencePools in a namespace; throws for an unsupported group. */
export function poolCollectionPath(group: string, namespace: string): string {
  const version = POOL_VERSIONS[group];
  if (!version) throw new Error(`--pool-group "${group}": expected one of ${Object.keys(POOL_VERSIONS).join(', ')}`);
  return `/apis/${group}/${version}/namespaces/${encodeURIComponent(namespace)}/inferencepools`;
}

// The labels the kvroute operator puts on the model-server pods it runs (src/controllers/objects.ts
// podSelector: the router may not import the operator, and e2e/router-endpoints-kube.test.ts checks
// the two agree).
const KVROUTE_POOL_LABEL = 'inference.kvroute.io/pool';
const KVROUTE_COMPONENT_LABEL = 'app.kubernetes.io/component';

const Port = z.int().min(1).max(65535);
const Labels = z.record(z.string(), z.string()).refine((m) => Object.keys(m).length > 0, { message: 'expected at least one label' });

const GiePool = z.object({
  spec: z.object({
    selector: z.object({ matchLabels: Labels }),
    targetPorts: z
      .array(z.object({ number: Port }))
      .min(1)
      .max(8),
  }),
});

const KvroutePool = z.object({ spec: InferencePoolSpec });

const GieLegacyPool = z.object({
  spec: z.object({ selector: Labels, targetPortNumber: Port }),
});

/**
 * The selection an InferencePool object of `group` describes; throws an Error naming the bad field.
 * kvroute pools without a selector select the model-server pods the operator runs for them.
 */
export function selectionFromPool(group: string, pool: unknown): PoolSelection {
  const name = (pool as { metadata?: { name?: string } } | null)?.metadata?.name ?? '(unnamed)';
  const fail = (why: string) => new Error(`InferencePool ${name} (${group}): ${why}`);
  switch (group) {
    case GIE_GROUP: {
      const r = GiePool.safeParse(pool);
      if (!r.success) throw fail(describeIssues(r.error));
      return { selector: r.data.spec.selector.matchLabels, targetPorts: [...new Set(r.data.spec.targetPorts.map((p) => p.number))] };
    }
    case GIE_LEGACY_GROUP: {
      const r = GieLegacyPool.safeParse(pool);
      if (!r.success) throw fail(describeIssues(r.error));
      return { selector: r.data.spec.selector, targetPorts: [r.data.spec.targetPortNumber] };
    }
    case API_GROUP: {
      // Only the spec decides; the status the operator writes is not the router's to validate.
      const r = KvroutePool.safeParse(pool);
      if (!r.success) throw fail(describeIssues(r.error));
      const spec = r.data.spec;
      const targetPorts = poolTargetPorts(spec);
      if (!targetPorts) {
        const ref = spec.poolRef!;
        throw fail(
          `spec.poolRef: the pods come from InferencePool ${ref.name} (${ref.group}); run the router with --pool-group=${ref.group} --pool-name=${ref.name}`,
        );
      }
      const selector = spec.selector?.matchLabels ?? { [KVROUTE_POOL_LABEL]: name, [KVROUTE_COMPONENT_LABEL]: 'model-server' };
      return { selector, targetPorts };
    }
    default:
      throw fail(`unsupported group; expected one of ${Object.keys(POOL_VERSIONS).join(', ')}`);
  }
}

/** Why a pod contributes no endpoints, or null when it serves. Pure: the pod's spec and status only. */
export function podNotServing(pod: V1Pod, selection: PoolSelection, servingLabel: ServingLabel): string | null {
  const labels = pod.metadata?.labels ?? {};
  if (labels[servingLabel.key] !== servingLabel.value) return `not labelled ${servingLabel.key}=${servingLabel.value}`;
  for (const [k, v] of Object.entries(selection.selector)) if (labels[k] !== v) return 'not selected by the pool';
  if (pod.metadata?.deletionTimestamp) return 'terminating';
  if (pod.status?.phase !== 'Running') return `phase ${pod.status?.phase ?? 'unknown'}`;
  if (!pod.status.podIP) return 'no pod IP';
  if (!pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) return 'not Ready';
  return null;
}

/** The endpoints a pod contributes: one per target port on its IP, or none when it does not serve. */
export function podEndpoints(pod: V1Pod, selection: PoolSelection, servingLabel: ServingLabel): Endpoint[] {
  if (podNotServing(pod, selection, servingLabel) !== null) return [];
  const ip = pod.status!.podIP!;
  const labels = { ...(pod.metadata?.labels ?? {}) };
  return selection.targetPorts.map((port) => ({
    address: formatAddress(ip, port),
    ip,
    port,
    name: pod.metadata?.name ?? ip,
    namespace: pod.metadata?.namespace ?? '',
    labels,
  }));
}
