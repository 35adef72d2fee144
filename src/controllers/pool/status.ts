// The observed state of an InferencePool, computed purely from its pods, its Deployments and the last
// apply result: endpoints, replica counts and the Ready, Progressing and Degraded conditions.

import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { InferencePool, InferencePoolStatus, PoolEndpoint } from '../../api/inference-pool.ts';
import { mergeConditions, type ConditionInput } from '../conditions.ts';
import { labelsMatch } from '../objects.ts';
import { ownSelection, type PoolSelection } from './selection.ts';

export interface ObservedPoolState {
  pods: readonly V1Pod[];
  /** The pool's pods' selector (its poolRef's, resolved); the pool's own when left out. */
  selection?: PoolSelection;
  /** Why a poolRef could not be resolved (the referenced InferencePool is missing or unusable); no pod is counted then. */
  poolRefProblem?: { reason: string; message: string };
  routerDeployment?: V1Deployment;
  modelServerDeployment?: V1Deployment;
  /** Set when applying desired objects failed in this reconcile. */
  applyError?: string;
  /** Set when desired objects cannot be applied because the cluster lacks a kind (e.g. Istio). */
  missingKinds?: string[];
  /** Set when the namespace the EnvoyFilter belongs in (the gateway's) does not exist. */
  gatewayNamespaceMissing?: string;
  /** Objects (`Kind namespace/name`) the pool wants that exist under another owner, left alone. */
  conflicts?: string[];
  /** Set when the pool's gateway namespace is outside the operator's allowlist. */
  gatewayNamespaceNotAllowed?: string;
}

function podReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Pods that belong to the pool: they match its selector and carry its serving label. */
function poolPods(pool: InferencePool, selection: PoolSelection | undefined, pods: readonly V1Pod[]): V1Pod[] {
  if (!selection) return [];
  const { key, value } = pool.spec.servingLabel;
  return pods.filter(
    (p) =>
      (p.metadata?.namespace ?? 'default') === (pool.metadata.namespace ?? 'default') &&
      p.metadata?.labels?.[key] === value &&
      labelsMatch(selection.selector, p.metadata?.labels),
  );
}

function rolledOut(d: V1Deployment | undefined): boolean {
  if (!d) return false;
  const want = d.spec?.replicas ?? 1;
  const s = d.status;
  return (
    (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) &&
    (s?.updatedReplicas ?? 0) >= want &&
    (s?.availableReplicas ?? 0) >= want &&
    (s?.replicas ?? 0) <= want
  );
}

export function computePoolStatus(pool: InferencePool, observed: ObservedPoolState, now: Date): InferencePoolStatus {
  const pods = poolPods(pool, observed.poolRefProblem ? undefined : (observed.selection ?? ownSelection(pool)), observed.pods);
  const endpoints: PoolEndpoint[] = pods
    .map((p) => ({ pod: p.metadata!.name!, address: p.status?.podIP ?? '', ready: podReady(p) }))
    .sort((a, b) => a.pod.localeCompare(b.pod));
  const readyReplicas = endpoints.filter((e) => e.ready && e.address !== '').length;
  const routerWanted = pool.spec.router.replicas > 0;
  const routerAvailable = (observed.routerDeployment?.status?.availableReplicas ?? 0) > 0;

  const ready: ConditionInput = observed.poolRefProblem
    ? { type: 'Ready', status: 'False', reason: observed.poolRefProblem.reason, message: observed.poolRefProblem.message }
    : readyReplicas === 0
      ? {
          type: 'Ready',
          status: 'False',
          reason: 'NoReadyEndpoints',
          message: `no ready pod matches the pool selector (${pods.length} selected)`,
        }
      : routerWanted && !routerAvailable
        ? { type: 'Ready', status: 'False', reason: 'RouterUnavailable', message: 'the router Deployment has no available replica' }
        : { type: 'Ready', status: 'True', reason: 'PoolReady', message: `${readyReplicas} of ${pods.length} endpoints ready` };

  const rolling: string[] = [];
  if (!rolledOut(observed.routerDeployment)) rolling.push('router');
  if (pool.spec.modelServer && !rolledOut(observed.modelServerDeployment)) rolling.push('model servers');
  const progressing: ConditionInput =
    rolling.length > 0
      ? { type: 'Progressing', status: 'True', reason: 'RollingOut', message: `waiting for ${rolling.join(' and ')} to roll out` }
      : { type: 'Progressing', status: 'False', reason: 'RolledOut', message: 'all Deployments are rolled out' };

  // Every problem is named in the message; the reason is the most pressing one's.
  const problems: { reason: string; message: string }[] = [];
  if (observed.poolRefProblem) problems.push(observed.poolRefProblem);
  if (observed.applyError) problems.push({ reason: 'ApplyFailed', message: observed.applyError });
  if (observed.conflicts?.length) {
    problems.push({
      reason: 'Conflict',
      message: `${observed.conflicts.join(', ')} already exist${observed.conflicts.length === 1 ? 's' : ''} and ${observed.conflicts.length === 1 ? 'is' : 'are'} not owned by this pool; rename or delete ${observed.conflicts.length === 1 ? 'it' : 'them'}, the operator never writes over another owner's object`,
    });
  }
  if (observed.gatewayNamespaceNotAllowed) {
    problems.push({
      reason: 'NotAllowed',
      message: `spec.gateway.namespace "${observed.gatewayNamespaceNotAllowed}" is not among the operator's --gateway-namespaces; nothing is written there`,
    });
  }
  if (observed.gatewayNamespaceMissing) {
    problems.push({
      reason: 'GatewayNamespaceNotFound',
      message: `spec.gateway.namespace "${observed.gatewayNamespaceMissing}" does not exist; the EnvoyFilter is created there once it does`,
    });
  }
  if (observed.missingKinds?.length) {
    problems.push({
      reason: 'MissingAPI',
      message: `the cluster does not serve ${observed.missingKinds.join(', ')}, which the pool's spec needs; the objects are created once it does`,
    });
  }
  const degraded: ConditionInput = problems.length
    ? { type: 'Degraded', status: 'True', reason: problems[0]!.reason, message: problems.map((p) => p.message).join('; ') }
    : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'all desired objects are applied' };

  return {
    observedGeneration: pool.metadata.generation ?? 0,
    replicas: pods.length,
    readyReplicas,
    endpoints,
    conditions: mergeConditions(pool.status?.conditions, [ready, progressing, degraded], pool.metadata.generation, now),
  };
}
