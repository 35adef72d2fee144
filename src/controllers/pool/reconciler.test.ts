import { afterEach, describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { InferencePool } from '../../api/inference-pool.ts';
import { GROUP_VERSION, INFERENCE_SERVING_LABEL } from '../../api/meta.ts';
import { KubeApiError, resourcePath, type KubeObjectLike } from '../../common/kube/kube-client.ts';
import { silentLogger } from '../../common/log.ts';
import { FIELD_MANAGER, names } from '../objects.ts';
import {
  DESTINATION_RULE_CRD,
  ENVOY_FILTER_CRD,
  GATEWAY_INFERENCE_POOL_CRD,
  createNamespace,
  fakeCluster,
  servedApis,
  startPoolCaches,
} from '../testing/cluster.ts';
import type { FakeKube } from '../testing/fake-kube.ts';
import { desiredPoolObjects } from './desired.ts';
import { GATEWAY_CLEANUP_FINALIZER } from './gateway.ts';
import { PoolReconciler } from './reconciler.ts';
import { until } from '../../../test/support/until.ts';

type Obj = KubernetesObject & {
  spec?: Record<string, any>;
  status?: Record<string, any>;
  data?: Record<string, string>;
  metadata: NonNullable<KubernetesObject['metadata']> & { managedFields?: { manager: string; operation: string }[] };
};
type Condition = { type: string; status: string; reason: string; message: string; observedGeneration?: number };

const NOW = new Date('2026-01-01T00:00:00Z');
const DESIRED = { defaultImage: 'kvroute:test', clusterDomain: 'cluster.local', gatewayNamespaces: new Set(['gw']) };
const poolPath = (name = 'llama', ns = 'ml') => resourcePath(GROUP_VERSION, 'InferencePool', ns, name);
const deploymentPath = (name: string) => resourcePath('apps/v1', 'Deployment', 'ml', name);
const BASE_SPEC = { model: { name: 'meta-llama/Llama-3.1-8B' }, selector: { matchLabels: { app: 'llama' } } };
const condition = (o: Obj | undefined, type: string): Condition | undefined =>
  (o?.status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.map((s) => s()));
  stops = [];
});

async function setup(options: { crds?: (typeof ENVOY_FILTER_CRD)[]; namespaces?: string[] } = {}) {
  const kube = await fakeCluster({ namespaces: options.namespaces ?? ['ml'], ...(options.crds ? { crds: options.crds } : {}) });
  const caches = await startPoolCaches(kube);
  stops.push(caches.stop);
  const reconciler = new PoolReconciler({
    client: kube,
    caches,
    log: silentLogger,
    desired: DESIRED,
    apis: servedApis(kube),
    now: () => NOW,
  });
  return { kube, caches, reconciler };
}

const createPool = (kube: FakeKube, spec: Record<string, unknown> = BASE_SPEC, name = 'llama') =>
  kube.create<Obj>({ apiVersion: GROUP_VERSION, kind: 'InferencePool', metadata: { name, namespace: 'ml' }, spec });

/** A serving pod as the kubelet reports it: running, with an IP, Ready or not. */
async function createPod(kube: FakeKube, name: string, ready: boolean): Promise<void> {
  const labels = { app: 'llama', [INFERENCE_SERVING_LABEL]: 'true' };
  await kube.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'ml', labels },
    spec: { containers: [{ name: 'vllm', image: 'vllm' }] },
  });
  await kube.apply(
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'ml' },
      status: { podIP: '10.0.0.7', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    },
    { fieldManager: 'kubelet', subresource: 'status' },
  );
}

/** What the deployment controller writes once a Deployment's pods are all up. */
async function rollOut(kube: FakeKube, name: string): Promise<void> {
  const d = await kube.get<Obj>(deploymentPath(name));
  const replicas = d.spec?.replicas ?? 1;
  await kube.apply(
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'ml' },
      status: {
        observedGeneration: d.metadata.generation,
        replicas,
        updatedReplicas: replicas,
        readyReplicas: replicas,
        availableReplicas: replicas,
      },
    },
    { fieldManager: 'kube-controller-manager', subresource: 'status' },
  );
}

/** A user's edit of the pool spec: read, change, write back (a stale read would fail with 409). */
async function updateSpec(kube: FakeKube, spec: Record<string, unknown>): Promise<void> {
  const live = await kube.get<KubeObjectLike>(poolPath());
  await kube.replace({ ...live, spec });
}

const writes = (kube: FakeKube) => kube.requests.filter((r) => r.method !== 'GET').length;

describe('PoolReconciler', () => {
  it('applies every desired object of a new pool, owned by the pool under the operator field manager, and reports status with observedGeneration', async () => {
    const { kube, reconciler, caches } = await setup();
    const created = await createPool(kube);
    await reconciler.reconcile('ml/llama');

    const pool = InferencePool.parse(caches.pools.get('llama', 'ml'));
    const wanted = desiredPoolObjects(pool, [], { ...DESIRED, apis: servedApis(kube) }).apply;
    expect(wanted.length).toBeGreaterThan(3);
    for (const o of wanted) {
      const live = kube.peek<Obj>(resourcePath(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name));
      expect(live).toBeDefined();
      expect(live!.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'InferencePool', uid: created.metadata.uid, controller: true }),
      ]);
      expect(live!.metadata.managedFields!.map((f) => `${f.manager}/${f.operation}`)).toEqual([`${FIELD_MANAGER}/Apply`]);
    }
    const status = kube.peek<Obj>(poolPath())!;
    expect(status.status).toMatchObject({ observedGeneration: 1, replicas: 0, readyReplicas: 0 });
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'NoReadyEndpoints', observedGeneration: 1 });
    expect(condition(status, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    expect(status.metadata.managedFields!.map((f) => `${f.manager}/${f.operation}`)).toContain(`${FIELD_MANAGER}/Apply`);
  });

  it('reports Ready once a selected pod is ready and the router Deployment is rolled out', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube);
    await reconciler.reconcile('ml/llama');
    await createPod(kube, 'llama-0', true);
    await createPod(kube, 'llama-1', false);
    await rollOut(kube, names.router('llama'));
    await reconciler.reconcile('ml/llama');

    const pool = kube.peek<Obj>(poolPath())!;
    expect(pool.status).toMatchObject({ replicas: 2, readyReplicas: 1, observedGeneration: 1 });
    expect(pool.status!.endpoints).toEqual([
      { pod: 'llama-0', address: '10.0.0.7', ready: true },
      { pod: 'llama-1', address: '10.0.0.7', ready: false },
    ]);
    expect(condition(pool, 'Ready')).toMatchObject({ status: 'True', reason: 'PoolReady', lastTransitionTime: '2026-01-01T00:00:00Z' });
    expect(condition(pool, 'Progressing')).toMatchObject({ status: 'False', reason: 'RolledOut' });
  });

  it('writes nothing when reconciling a pool whose objects and status are already as desired', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube);
    await reconciler.reconcile('ml/llama');
    const before = writes(kube);
    await reconciler.reconcile('ml/llama');
    expect(writes(kube)).toBe(before);
  });

  it('rolls a spec change into the vLLM Deployment and records the new observedGeneration', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube, { ...BASE_SPEC, modelServer: { image: 'vllm/vllm-openai:v0.11.0', replicas: 1 } });
    await reconciler.reconcile('ml/llama');
    expect(kube.peek<Obj>(deploymentPath(names.vllm('llama')))!.spec!.replicas).toBe(1);

    await updateSpec(kube, { ...BASE_SPEC, modelServer: { image: 'vllm/vllm-openai:v0.11.0', replicas: 3 } });
    expect(kube.peek<Obj>(poolPath())!.metadata.generation).toBe(2);
    await reconciler.reconcile('ml/llama');

    expect(kube.peek<Obj>(deploymentPath(names.vllm('llama')))!.spec!.replicas).toBe(3);
    const pool = kube.peek<Obj>(poolPath())!;
    expect(pool.status!.observedGeneration).toBe(2);
    expect(condition(pool, 'Ready')!.observedGeneration).toBe(2);
  });

  it('repairs drift: restores a hand-edited replica count and recreates a deleted ConfigMap', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube);
    await reconciler.reconcile('ml/llama');
    const router = names.router('llama');
    await kube.request('PATCH', deploymentPath(router), {
      body: { spec: { replicas: 5 } },
      contentType: 'application/merge-patch+json',
      query: { fieldManager: 'kubectl-edit' },
    });
    await kube.delete(resourcePath('v1', 'ConfigMap', 'ml', router));
    expect(kube.peek<Obj>(deploymentPath(router))!.spec!.replicas).toBe(5);

    await reconciler.reconcile('ml/llama');

    expect(kube.peek<Obj>(deploymentPath(router))!.spec!.replicas).toBe(1);
    expect(kube.peek<Obj>(resourcePath('v1', 'ConfigMap', 'ml', router))).toBeDefined();
  });

  it('puts back a NetworkPolicy opened or deleted by hand, and prunes both when they are turned off', async () => {
    const { kube, caches, reconciler } = await setup();
    await createPool(kube);
    await reconciler.reconcile('ml/llama');
    const routerPolicy = resourcePath('networking.k8s.io/v1', 'NetworkPolicy', 'ml', 'llama-router');
    const serversPolicy = resourcePath('networking.k8s.io/v1', 'NetworkPolicy', 'ml', 'llama-model-servers');
    const wanted = kube.peek<Obj>(routerPolicy)!.spec;
    // Someone opens ext_proc to everyone, and deletes the model servers' policy.
    await kube.request('PATCH', routerPolicy, {
      body: { spec: { ingress: [{}] } },
      contentType: 'application/merge-patch+json',
      query: { fieldManager: 'kubectl-edit' },
    });
    await kube.delete(serversPolicy);
    await until(() => caches.owned.NetworkPolicy!.get('llama-model-servers', 'ml') === undefined || undefined, { message: 'delete seen' });

    await reconciler.reconcile('ml/llama');
    expect(kube.peek<Obj>(routerPolicy)!.spec).toEqual(wanted);
    expect(kube.peek<Obj>(serversPolicy)).toBeDefined();

    const off = new PoolReconciler({
      client: kube,
      caches,
      log: silentLogger,
      desired: { ...DESIRED, networkPolicy: { enabled: false, gatewayPeers: [] } },
      apis: servedApis(kube),
      now: () => NOW,
    });
    await off.reconcile('ml/llama');
    expect(kube.peek(routerPolicy)).toBeUndefined();
    expect(kube.peek(serversPolicy)).toBeUndefined();
  });

  it('prunes the vLLM Deployment and Service it owned when the pool stops running model servers', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube, { ...BASE_SPEC, modelServer: { image: 'vllm/vllm-openai:v0.11.0' } });
    await reconciler.reconcile('ml/llama');
    const vllm = names.vllm('llama');
    expect(kube.peek(deploymentPath(vllm))).toBeDefined();

    await updateSpec(kube, BASE_SPEC);
    await reconciler.reconcile('ml/llama');

    expect(kube.peek(deploymentPath(vllm))).toBeUndefined();
    expect(kube.peek(resourcePath('v1', 'Service', 'ml', vllm))).toBeUndefined();
  });

  it('says Degraded with MissingAPI while Istio is not served, without trying to apply the filter, and creates it once the API is served', async () => {
    const { kube, reconciler } = await setup();
    const gateway = {
      envoyFilter: true,
      workloadSelector: { istio: 'ingressgateway' },
      routeNames: ['llama'],
      backendRef: { name: 'vllm', port: 8000 },
    };
    await createPool(kube, { ...BASE_SPEC, gateway });
    // No requeue: the operator's discovery wakes every pool when the API appears.
    expect(await reconciler.reconcile('ml/llama')).toBeUndefined();
    const degraded = condition(kube.peek<Obj>(poolPath()), 'Degraded');
    expect(degraded).toMatchObject({ status: 'True', reason: 'MissingAPI' });
    expect(degraded!.message).toContain('networking.istio.io/v1alpha3 EnvoyFilter');
    expect(kube.requests.filter((r) => r.method !== 'GET' && r.path.includes('/envoyfilters'))).toEqual([]);

    await kube.create(ENVOY_FILTER_CRD);
    expect(await reconciler.reconcile('ml/llama')).toBeUndefined();
    expect(kube.peek(resourcePath('networking.istio.io/v1alpha3', 'EnvoyFilter', 'ml', names.envoyFilter('llama')))).toBeDefined();
    expect(condition(kube.peek<Obj>(poolPath()), 'Degraded')!.message).not.toContain('EnvoyFilter');
  });

  it('creates the Gateway API InferencePool only when that CRD is installed', async () => {
    const { kube, reconciler } = await setup({ crds: [GATEWAY_INFERENCE_POOL_CRD] });
    await createPool(kube);
    await reconciler.reconcile('ml/llama');
    const gie = kube.peek<Obj>(resourcePath('inference.networking.k8s.io/v1', 'InferencePool', 'ml', 'llama'));
    expect(gie?.spec).toMatchObject({ selector: { matchLabels: { app: 'llama' } }, endpointPickerRef: { name: names.router('llama') } });
  });

  it('says Degraded with GatewayNamespaceNotFound and re-checks soon while the gateway namespace is missing, then places the filter', async () => {
    const { kube, reconciler } = await setup({ crds: [ENVOY_FILTER_CRD, DESTINATION_RULE_CRD] });
    await createPool(kube, {
      ...BASE_SPEC,
      gateway: {
        envoyFilter: true,
        namespace: 'gw',
        workloadSelector: { istio: 'ingressgateway' },
        routeNames: ['llama'],
        backendRef: { name: 'vllm', port: 8000 },
      },
    });

    expect(await reconciler.reconcile('ml/llama')).toEqual({ requeueAfterMs: 10_000 });
    const degraded = condition(kube.peek<Obj>(poolPath()), 'Degraded');
    expect(degraded).toMatchObject({ status: 'True', reason: 'GatewayNamespaceNotFound' });
    expect(degraded!.message).toContain('"gw"');
    expect(kube.peek<Obj>(poolPath())!.metadata.finalizers).toBeUndefined();

    await createNamespace(kube, 'gw');
    expect(await reconciler.reconcile('ml/llama')).toBeUndefined();
    expect(kube.peek(resourcePath('networking.istio.io/v1alpha3', 'EnvoyFilter', 'gw', `ml-${names.envoyFilter('llama')}`))).toBeDefined();
    expect(condition(kube.peek<Obj>(poolPath()), 'Degraded')).toMatchObject({ status: 'False' });
  });

  it('holds a finalizer while its filter is in another namespace, and on deletion removes the filter and releases the pool', async () => {
    const { kube, reconciler } = await setup({ crds: [ENVOY_FILTER_CRD], namespaces: ['ml', 'gw'] });
    const created = await createPool(kube, {
      ...BASE_SPEC,
      gateway: {
        envoyFilter: true,
        namespace: 'gw',
        workloadSelector: { istio: 'ingressgateway' },
        routeNames: ['llama'],
        backendRef: { name: 'vllm', port: 8000 },
      },
    });
    await reconciler.reconcile('ml/llama');
    const filterPath = resourcePath('networking.istio.io/v1alpha3', 'EnvoyFilter', 'gw', `ml-${names.envoyFilter('llama')}`);
    expect(kube.peek(filterPath)).toBeDefined();
    expect(kube.peek<Obj>(poolPath())!.metadata.finalizers).toEqual([GATEWAY_CLEANUP_FINALIZER]);

    await kube.delete(poolPath(), created.metadata.uid);
    expect(kube.peek<Obj>(poolPath())!.metadata.deletionTimestamp).toBeDefined();
    await reconciler.reconcile('ml/llama');

    expect(kube.peek(filterPath)).toBeUndefined();
    expect(kube.peek(poolPath())).toBeUndefined();
  });

  it('applies nothing in a pool namespace that is terminating and only removes its gateway filters', async () => {
    const { kube, reconciler } = await setup({ crds: [ENVOY_FILTER_CRD], namespaces: ['ml', 'gw'] });
    await createPool(kube, {
      ...BASE_SPEC,
      gateway: {
        envoyFilter: true,
        namespace: 'gw',
        workloadSelector: { istio: 'ingressgateway' },
        routeNames: ['llama'],
        backendRef: { name: 'vllm', port: 8000 },
      },
    });
    await reconciler.reconcile('ml/llama');
    await kube.delete(resourcePath('v1', 'Namespace', undefined, 'ml'));
    await kube.delete(deploymentPath(names.router('llama')));
    const before = kube.requests.length;

    await reconciler.reconcile('ml/llama');

    const sent = kube.requests.slice(before);
    expect(
      sent.filter((r) => r.method === 'PATCH' && r.contentType === 'application/apply-patch+yaml' && !r.path.includes('/inferencepools/')),
    ).toEqual([]);
    expect(kube.peek(deploymentPath(names.router('llama')))).toBeUndefined();
    expect(
      kube.peek(resourcePath('networking.istio.io/v1alpha3', 'EnvoyFilter', 'gw', `ml-${names.envoyFilter('llama')}`)),
    ).toBeUndefined();
    expect(kube.peek<Obj>(poolPath())!.metadata.finalizers).toBeUndefined();
  });

  it('says Degraded with ApplyFailed and throws to back off when an apply is refused, then recovers', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube);
    const stop = kube.react((req) =>
      req.method === 'PATCH' && req.path.includes('/deployments/')
        ? new KubeApiError(500, 'InternalError', 'PATCH deployments: 500 etcdserver: request timed out')
        : undefined,
    );
    await expect(reconciler.reconcile('ml/llama')).rejects.toThrow(/etcdserver: request timed out/);
    expect(condition(kube.peek<Obj>(poolPath()), 'Degraded')).toMatchObject({ status: 'True', reason: 'ApplyFailed' });
    expect(kube.peek(resourcePath('v1', 'Service', 'ml', names.router('llama')))).toBeDefined();

    stop();
    await reconciler.reconcile('ml/llama');
    expect(kube.peek(deploymentPath(names.router('llama')))).toBeDefined();
    expect(condition(kube.peek<Obj>(poolPath()), 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
  });

  it('says Degraded with InvalidSpec, naming the field, for a stored pool its schema rejects', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube, { ...BASE_SPEC, indexer: { eventPort: 5557, replayPort: 5557 } });
    await reconciler.reconcile('ml/llama');
    const degraded = condition(kube.peek<Obj>(poolPath()), 'Degraded');
    expect(degraded).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(degraded!.message).toContain('replayPort');
    expect(kube.peek(deploymentPath(names.router('llama')))).toBeUndefined();
  });
});
