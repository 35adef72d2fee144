// The operator process wired to the in-memory API server: informer events reach the controllers, the
// controllers' writes come back as events, and leader election gates who reconciles. The same paths run
// against a real kube-apiserver in e2e/operator*.test.ts.

import { afterEach, describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { GROUP_VERSION, INFERENCE_SERVING_LABEL } from '../api/meta.ts';
import { resourcePath } from '../common/kube/kube-client.ts';
import { silentLogger } from '../common/log.ts';
import { Operator } from './manager.ts';
import { names } from './objects.ts';
import { GATEWAY_INFERENCE_POOL_CRD, fakeCluster, watchUntil } from './testing/cluster.ts';
import type { FakeKube } from './testing/fake-kube.ts';

type Obj = KubernetesObject & {
  metadata: NonNullable<KubernetesObject['metadata']>;
  spec?: Record<string, any>;
  status?: { conditions?: { type: string; status: string; reason: string }[] } & Record<string, unknown>;
};

const poolPath = (name: string) => resourcePath(GROUP_VERSION, 'InferencePool', 'ml', name);
const deploymentPath = (name: string) => resourcePath('apps/v1', 'Deployment', 'ml', name);
const leasePath = resourcePath('coordination.k8s.io/v1', 'Lease', 'kvroute-system', 'kvroute-operator');
const conditionIs = (type: string, status: string) => (o: Obj | undefined) =>
  o?.status?.conditions?.some((c) => c.type === type && c.status === status) ?? false;

let running: Operator[] = [];
afterEach(async () => {
  await Promise.all(running.map((o) => o.stop()));
  running = [];
});

async function startOperator(kube: FakeKube, identity: string, leaderElect = false): Promise<Operator> {
  const op = new Operator({
    kube: { client: kube, informer: (options) => kube.informer(options), close: () => {} },
    leaderElect,
    leaseNamespace: 'kvroute-system',
    identity,
    leaseDurationMs: 2_000,
    renewDeadlineMs: 1_000,
    retryPeriodMs: 20,
    defaultImage: 'kvroute:test',
    clusterDomain: 'cluster.local',
    resyncMs: 60_000,
    log: silentLogger,
    registry: new Registry(),
  });
  running.push(op);
  await op.start();
  return op;
}

const createPool = (kube: FakeKube, name: string) =>
  kube.create({
    apiVersion: GROUP_VERSION,
    kind: 'InferencePool',
    metadata: { name, namespace: 'ml' },
    spec: { model: { name: 'm' }, selector: { matchLabels: { app: name } } },
  });

describe('Operator on the in-memory API server', () => {
  it('reconciles a new pool through its informers, then follows its pods and Deployment to Ready', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const op = await startOperator(kube, 'op');
    expect(op.ready()).toBe(true);
    await createPool(kube, 'llama');
    await watchUntil<Obj>(kube, deploymentPath(names.router('llama')), 'router Deployment', (d) => d !== undefined);
    await watchUntil<Obj>(kube, poolPath('llama'), 'Ready=False', conditionIs('Ready', 'False'));

    await kube.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'llama-0', namespace: 'ml', labels: { app: 'llama', [INFERENCE_SERVING_LABEL]: 'true' } },
      spec: {},
    });
    await kube.apply(
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'llama-0', namespace: 'ml' },
        status: { podIP: '10.0.0.9', conditions: [{ type: 'Ready', status: 'True' }] },
      },
      { fieldManager: 'kubelet', subresource: 'status' },
    );
    const router = kube.peek<Obj>(deploymentPath(names.router('llama')))!;
    await kube.apply(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: names.router('llama'), namespace: 'ml' },
        status: { observedGeneration: router.metadata.generation, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
      },
      { fieldManager: 'kube-controller-manager', subresource: 'status' },
    );
    const pool = await watchUntil<Obj>(kube, poolPath('llama'), 'Ready=True', conditionIs('Ready', 'True'));
    expect(pool!.status).toMatchObject({ readyReplicas: 1, observedGeneration: 1 });
  });

  it('restores a hand-edited owned Deployment as soon as its watch reports the edit', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await startOperator(kube, 'op');
    await createPool(kube, 'llama');
    const path = deploymentPath(names.router('llama'));
    await watchUntil<Obj>(kube, path, 'router Deployment', (d) => d !== undefined);
    await kube.request('PATCH', path, {
      body: { spec: { replicas: 7 } },
      contentType: 'application/merge-patch+json',
      query: { fieldManager: 'kubectl-edit' },
    });
    await watchUntil<Obj>(kube, path, 'replicas restored to 1', (d) => d?.spec?.replicas === 1);
  });

  it('resolves a model that was waiting for its pool once the pool appears', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await startOperator(kube, 'op');
    const modelPath = resourcePath(GROUP_VERSION, 'InferenceModel', 'ml', 'chat');
    await kube.create({
      apiVersion: GROUP_VERSION,
      kind: 'InferenceModel',
      metadata: { name: 'chat', namespace: 'ml' },
      spec: { modelName: 'chat', poolRef: { name: 'llama' } },
    });
    await watchUntil<Obj>(kube, modelPath, 'ResolvedRefs=False', conditionIs('ResolvedRefs', 'False'));
    await createPool(kube, 'llama');
    await watchUntil<Obj>(kube, modelPath, 'Accepted=True', conditionIs('Accepted', 'True'));
  });

  it("follows pods by the pool's own serving label, watching pods of that label once a pool names it", async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await startOperator(kube, 'op');
    const servingLabel = { key: 'llm-d.ai/inference-serving', value: 'true' };
    await kube.create({
      apiVersion: GROUP_VERSION,
      kind: 'InferencePool',
      metadata: { name: 'chart', namespace: 'ml' },
      spec: { model: { name: 'm' }, selector: { matchLabels: { app: 'chart' } }, servingLabel },
    });
    await watchUntil<Obj>(kube, poolPath('chart'), 'status written', (p) => p?.status?.observedGeneration === 1);
    await kube.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'chart-0', namespace: 'ml', labels: { app: 'chart', [servingLabel.key]: 'true' } },
      spec: {},
    });
    const pool = await watchUntil<Obj>(
      kube,
      poolPath('chart'),
      'the pod listed',
      (p) => (p?.status?.endpoints as unknown[] | undefined)?.length === 1,
    );
    expect(pool!.status!.endpoints).toEqual([{ pod: 'chart-0', address: '', ready: false }]);
  });

  it('creates the GIE InferencePool once that API is installed after start: the CRD watch triggers discovery at once', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const op = await startOperator(kube, 'op');
    await createPool(kube, 'late');
    await watchUntil<Obj>(kube, deploymentPath(names.router('late')), 'router Deployment', (d) => d !== undefined);
    expect(op.optionalApis.isServed('inference.networking.k8s.io', 'v1', 'InferencePool')).toBe(false);
    await kube.create(GATEWAY_INFERENCE_POOL_CRD);
    await watchUntil<Obj>(
      kube,
      '/apis/inference.networking.k8s.io/v1/namespaces/ml/inferencepools/late',
      'GIE InferencePool',
      (p) => p !== undefined,
    );
  });

  it("takes a poolRef pool's pods from the GIE InferencePool it names, waiting while it is missing", async () => {
    const kube = await fakeCluster({ namespaces: ['ml'], crds: [GATEWAY_INFERENCE_POOL_CRD] });
    await startOperator(kube, 'op');
    await kube.create({
      apiVersion: GROUP_VERSION,
      kind: 'InferencePool',
      metadata: { name: 'rides', namespace: 'ml' },
      spec: { poolRef: { name: 'gie' } },
    });
    const waiting = await watchUntil<Obj>(
      kube,
      poolPath('rides'),
      'PoolRefNotFound',
      (p) => p?.status?.conditions?.some((c) => c.reason === 'PoolRefNotFound') ?? false,
    );
    expect(waiting!.status!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'PoolRefNotFound' });
    expect(kube.peek(deploymentPath(names.router('rides')))).toBeUndefined();

    await kube.create({
      apiVersion: 'inference.networking.k8s.io/v1',
      kind: 'InferencePool',
      metadata: { name: 'gie', namespace: 'ml' },
      spec: {
        selector: { matchLabels: { app: 'gie-vllm' } },
        targetPorts: [{ number: 8000 }],
        endpointPickerRef: { name: 'rides-router', port: { number: 9002 } },
      },
    });
    const router = await watchUntil<Obj>(kube, deploymentPath(names.router('rides')), 'router Deployment', (d) => d !== undefined);
    expect(router!.spec!.template.spec.containers[0].args).toEqual(
      expect.arrayContaining(['--pool-group=inference.networking.k8s.io', '--pool-name=gie']),
    );
    const cm = kube.peek<Obj & { data: Record<string, string> }>(resourcePath('v1', 'ConfigMap', 'ml', names.router('rides')))!;
    expect(cm.data['indexer.yaml']).toContain('app: gie-vllm');
    // Its own GIE pool is not made: it rides on the one it names.
    expect(kube.peek('/apis/inference.networking.k8s.io/v1/namespaces/ml/inferencepools/rides')).toBeUndefined();
  });

  it('re-renders the vLLM Deployment with --lora-modules when an InferenceModel routes to an adapter', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await startOperator(kube, 'op');
    await kube.create({
      apiVersion: GROUP_VERSION,
      kind: 'InferencePool',
      metadata: { name: 'lora', namespace: 'ml' },
      spec: { model: { name: 'base' }, modelServer: { image: 'vllm' } },
    });
    const args = (d: Obj | undefined): string[] => d?.spec?.template.spec.containers[0].args ?? [];
    await watchUntil<Obj>(
      kube,
      deploymentPath(names.vllm('lora')),
      'vLLM Deployment',
      (d) => d !== undefined && !args(d).includes('--enable-lora'),
    );
    await kube.create({
      apiVersion: GROUP_VERSION,
      kind: 'InferenceModel',
      metadata: { name: 'sql', namespace: 'ml' },
      spec: {
        modelName: 'sql',
        poolRef: { name: 'lora' },
        targetModels: [
          { name: 'base', weight: 1 },
          { name: 'sql-lora', weight: 1, source: 'org/sql-lora' },
        ],
      },
    });
    const d = await watchUntil<Obj>(kube, deploymentPath(names.vllm('lora')), '--lora-modules', (x) => args(x).includes('--enable-lora'));
    expect(args(d).slice(args(d).indexOf('--lora-modules'))).toEqual(['--lora-modules', 'sql-lora=org/sql-lora']);
  });

  it('lets only the lease holder reconcile, and hands over at once when the leader stops', async () => {
    const kube = await fakeCluster({ namespaces: ['ml', 'kvroute-system'] });
    const first = await startOperator(kube, 'first', true);
    await watchUntil<{ spec?: { holderIdentity?: string } }>(
      kube,
      leasePath,
      'first holds the lease',
      (l) => l?.spec?.holderIdentity === 'first',
    );
    const second = await startOperator(kube, 'second', true);
    await createPool(kube, 'one');
    await watchUntil<Obj>(kube, deploymentPath(names.router('one')), 'pool one reconciled', (d) => d !== undefined);
    expect([first.isLeader, second.isLeader]).toEqual([true, false]);

    await first.stop();
    running = running.filter((o) => o !== first);
    await watchUntil<{ spec?: { holderIdentity?: string } }>(
      kube,
      leasePath,
      'second holds the lease',
      (l) => l?.spec?.holderIdentity === 'second',
    );
    await createPool(kube, 'two');
    await watchUntil<Obj>(kube, deploymentPath(names.router('two')), 'pool two reconciled by the new leader', (d) => d !== undefined);
    expect(second.isLeader).toBe(true);
  });
});
