import { describe, it, expect } from '@jest/globals';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { testPool } from '../testing.ts';
import { computePoolStatus } from './status.ts';

const pool = testPool({ model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } } }, { generation: 3 });
const pod = (
  name: string,
  ready: boolean,
  labels: Record<string, string> = { app: 'vllm', 'llm-d.ai/inferenceServing': 'true' },
): V1Pod => ({
  metadata: { name, namespace: 'ml', labels },
  status: { podIP: `10.0.0.${name.length}`, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});
const available: V1Deployment = {
  metadata: { generation: 1 },
  spec: { replicas: 1, selector: {}, template: {} },
  status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
};

describe('computePoolStatus', () => {
  it('lists only selected pods that opt in to inference serving, and counts the ready ones', () => {
    const s = computePoolStatus(
      pool,
      {
        pods: [
          pod('b', true),
          pod('a', false),
          pod('x', true, { app: 'vllm' }),
          pod('y', true, { app: 'other', 'llm-d.ai/inferenceServing': 'true' }),
        ],
        routerDeployment: available,
      },
      new Date('2026-01-01T00:00:00Z'),
    );
    expect(s.endpoints).toEqual([
      { pod: 'a', address: '10.0.0.1', ready: false },
      { pod: 'b', address: '10.0.0.1', ready: true },
    ]);
    expect([s.replicas, s.readyReplicas, s.observedGeneration]).toEqual([2, 1, 3]);
    expect(s.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'PoolReady'],
      ['Progressing', 'False', 'RolledOut'],
      ['Degraded', 'False', 'AsExpected'],
    ]);
  });

  it('keeps lastTransitionTime while a condition holds and moves it when the status flips', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const first = computePoolStatus(pool, { pods: [], routerDeployment: available }, t1);
    const again = computePoolStatus(
      { ...pool, status: first },
      { pods: [], routerDeployment: available },
      new Date('2026-01-01T00:05:00Z'),
    );
    expect(again.conditions![0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    const flipped = computePoolStatus(
      { ...pool, status: again },
      { pods: [pod('a', true)], routerDeployment: available },
      new Date('2026-01-01T00:09:00Z'),
    );
    expect(flipped.conditions![0]).toMatchObject({ status: 'True', lastTransitionTime: '2026-01-01T00:09:00Z', observedGeneration: 3 });
  });

  it('reports apply failures as Degraded and an unavailable router as not Ready', () => {
    const s = computePoolStatus(pool, { pods: [pod('a', true)], applyError: 'Deployment x: forbidden' }, new Date());
    const byType = Object.fromEntries(s.conditions!.map((c) => [c.type, c]));
    expect(byType.Ready).toMatchObject({ status: 'False', reason: 'RouterUnavailable' });
    expect(byType.Degraded).toMatchObject({ status: 'True', reason: 'ApplyFailed', message: 'Deployment x: forbidden' });
    expect(byType.Progressing).toMatchObject({ status: 'True', reason: 'RollingOut' });
  });

  it("counts the pods carrying the pool's own serving label, not llm-d's default, when the pool names one", () => {
    const custom = testPool({
      model: { name: 'm' },
      selector: { matchLabels: { app: 'vllm' } },
      servingLabel: { key: 'llm-d.ai/inference-serving', value: 'yes' },
    });
    const s = computePoolStatus(
      custom,
      { pods: [pod('a', true), pod('b', true, { app: 'vllm', 'llm-d.ai/inference-serving': 'yes' })], routerDeployment: available },
      new Date(),
    );
    expect(s.endpoints!.map((e) => e.pod)).toEqual(['b']);
  });

  it('counts the pods of the resolved poolRef selection, and none while the referenced pool is missing, saying so in Ready and Degraded', () => {
    const ref = testPool({ poolRef: { name: 'gie' } });
    const labelled = pod('a', true, { app: 'gie-pods', 'llm-d.ai/inferenceServing': 'true' });
    const resolved = computePoolStatus(
      ref,
      { pods: [labelled], selection: { selector: { app: 'gie-pods' }, targetPorts: [8000] }, routerDeployment: available },
      new Date(),
    );
    expect(resolved.readyReplicas).toBe(1);
    const problem = { reason: 'PoolRefNotFound', message: 'spec.poolRef: InferencePool "gie" does not exist' };
    const missing = computePoolStatus(ref, { pods: [labelled], poolRefProblem: problem, routerDeployment: available }, new Date());
    expect(missing.endpoints).toEqual([]);
    const byType = Object.fromEntries(missing.conditions!.map((c) => [c.type, c]));
    expect(byType.Ready).toMatchObject({ status: 'False', ...problem });
    expect(byType.Degraded).toMatchObject({ status: 'True', ...problem });
  });

  it('reports a missing gateway namespace as Degraded with its own reason, naming the namespace', () => {
    const s = computePoolStatus(
      pool,
      { pods: [pod('a', true)], routerDeployment: available, gatewayNamespaceMissing: 'istio-system' },
      new Date(),
    );
    expect(s.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'GatewayNamespaceNotFound',
      message: expect.stringContaining('"istio-system" does not exist'),
    });
  });

  it('names every problem in Degraded, with the most pressing one as its reason: Conflict before NotAllowed before MissingAPI', () => {
    const degraded = (observed: Parameters<typeof computePoolStatus>[1]) =>
      computePoolStatus(pool, observed, new Date('2026-01-01T00:00:00Z')).conditions!.find((c) => c.type === 'Degraded')!;
    const all = degraded({
      pods: [],
      conflicts: ['Service ml/llama-router', 'InferencePool ml/llama'],
      gatewayNamespaceNotAllowed: 'istio-system',
      missingKinds: ['networking.istio.io/v1 DestinationRule'],
    });
    expect(all).toMatchObject({ status: 'True', reason: 'Conflict' });
    expect(all.message).toBe(
      "Service ml/llama-router, InferencePool ml/llama already exist and are not owned by this pool; rename or delete them, the operator never writes over another owner's object; " +
        'spec.gateway.namespace "istio-system" is not among the operator\'s --gateway-namespaces; nothing is written there; ' +
        "the cluster does not serve networking.istio.io/v1 DestinationRule, which the pool's spec needs; the objects are created once it does",
    );
    expect(degraded({ pods: [], gatewayNamespaceNotAllowed: 'istio-system', missingKinds: ['x'] }).reason).toBe('NotAllowed');
    expect(degraded({ pods: [], conflicts: [] })).toMatchObject({ status: 'False', reason: 'AsExpected' });
  });
});
