// The pool reconciler's gateway wiring and ownership rule against the in-memory API server: which path
// it takes (GIE pool, EnvoyFilter), the gateway-namespace allowlist, and Conflict instead of writing
// over any object the pool does not own.

import { afterEach, describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { GROUP_VERSION } from '../../api/meta.ts';
import { resourcePath, type KubeObjectLike } from '../../common/kube/kube-client.ts';
import { silentLogger } from '../../common/log.ts';
import {
  DESTINATION_RULE_CRD,
  ENVOY_FILTER_CRD,
  GATEWAY_INFERENCE_POOL_CRD,
  fakeCluster,
  servedApis,
  startPoolCaches,
  type FakeCrd,
} from '../testing/cluster.ts';
import type { FakeKube } from '../testing/fake-kube.ts';
import { GATEWAY_CLEANUP_FINALIZER } from './gateway.ts';
import { PoolReconciler } from './reconciler.ts';

type Obj = KubernetesObject & {
  spec?: Record<string, any>;
  status?: { conditions?: Condition[] };
  metadata: NonNullable<KubernetesObject['metadata']>;
};
type Condition = { type: string; status: string; reason: string; message: string };

const poolPath = resourcePath(GROUP_VERSION, 'InferencePool', 'ml', 'llama');
const giePoolPath = resourcePath('inference.networking.k8s.io/v1', 'InferencePool', 'ml', 'llama');
const drPath = resourcePath('networking.istio.io/v1', 'DestinationRule', 'ml', 'llama-router');
const filterPath = (ns: string, name: string) => resourcePath('networking.istio.io/v1alpha3', 'EnvoyFilter', ns, name);
const routerServicePath = resourcePath('v1', 'Service', 'ml', 'llama-router');
const SERVED = { model: { name: 'meta-llama/Llama-3.1-8B' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };
const ENVOY_FILTER_GATEWAY = { envoyFilter: true, workloadSelector: { istio: 'ingressgateway' }, routeNames: ['llama'] };
const ISTIO = [ENVOY_FILTER_CRD, DESTINATION_RULE_CRD];
const degraded = (kube: FakeKube) => kube.peek<Obj>(poolPath)?.status?.conditions?.find((c) => c.type === 'Degraded');
const writesTo = (kube: FakeKube, from: number, fragment: string) =>
  kube.requests.slice(from).filter((r) => r.method !== 'GET' && r.path.includes(fragment));

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.map((s) => s()));
  stops = [];
});

async function cluster(crds: FakeCrd[], namespaces = ['ml', 'istio-system']) {
  const kube = await fakeCluster({ namespaces, crds });
  const caches = await startPoolCaches(kube);
  stops.push(caches.stop);
  return { kube, caches };
}

function reconcilerFor(env: Awaited<ReturnType<typeof cluster>>, gatewayNamespaces: string[] = []) {
  return new PoolReconciler({
    client: env.kube,
    caches: env.caches,
    log: silentLogger,
    desired: { defaultImage: 'kvroute:test', clusterDomain: 'cluster.local', gatewayNamespaces: new Set(gatewayNamespaces) },
    apis: servedApis(env.kube),
    now: () => new Date('2026-01-01T00:00:00Z'),
  });
}

const createPool = (kube: FakeKube, spec: Record<string, unknown>) =>
  kube.create<Obj>({ apiVersion: GROUP_VERSION, kind: 'InferencePool', metadata: { name: 'llama', namespace: 'ml' }, spec });

describe('PoolReconciler gateway paths', () => {
  it('takes the GIE path where GIE and Istio are served: an owned GIE pool pointing at the router and the router DestinationRule, no EnvoyFilter', async () => {
    const env = await cluster([GATEWAY_INFERENCE_POOL_CRD, ...ISTIO]);
    const pool = await createPool(env.kube, SERVED);
    await reconcilerFor(env).reconcile('ml/llama');

    const gie = env.kube.peek<Obj>(giePoolPath)!;
    expect(gie.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'InferencePool', uid: pool.metadata.uid, controller: true }),
    ]);
    expect(gie.spec).toEqual({
      selector: {
        matchLabels: {
          'inference.kvroute.io/pool': 'llama',
          'app.kubernetes.io/component': 'model-server',
          'llm-d.ai/inferenceServing': 'true',
        },
      },
      targetPorts: [{ number: 8000 }],
      endpointPickerRef: { kind: 'Service', name: 'llama-router', port: { number: 9002 }, failureMode: 'FailClose' },
    });
    expect(env.kube.peek<Obj>(drPath)!.spec).toMatchObject({ host: 'llama-router.ml.svc.cluster.local' });
    expect((await env.kube.list(`/apis/networking.istio.io/v1alpha3/envoyfilters`)).items).toEqual([]);
    expect(degraded(env.kube)).toMatchObject({ status: 'False' });
  });

  it('switches to the EnvoyFilter path: deletes the GIE pool it owned and places the filter', async () => {
    const env = await cluster([GATEWAY_INFERENCE_POOL_CRD, ...ISTIO]);
    await createPool(env.kube, SERVED);
    const reconciler = reconcilerFor(env);
    await reconciler.reconcile('ml/llama');
    expect(env.kube.peek(giePoolPath)).toBeDefined();

    const live = await env.kube.get<KubeObjectLike>(poolPath);
    await env.kube.replace({ ...live, spec: { ...SERVED, gateway: ENVOY_FILTER_GATEWAY } });
    await reconciler.reconcile('ml/llama');
    expect(env.kube.peek(giePoolPath)).toBeUndefined();
    expect(env.kube.peek(filterPath('ml', 'llama-ext-proc'))).toBeDefined();
    expect(env.kube.peek(drPath)).toBeDefined();
  });
});

describe('PoolReconciler gateway namespace allowlist', () => {
  it('writes nothing into a gateway namespace the operator does not allow: Degraded NotAllowed, no finalizer', async () => {
    const env = await cluster(ISTIO);
    await createPool(env.kube, { ...SERVED, gateway: { ...ENVOY_FILTER_GATEWAY, namespace: 'istio-system' } });
    const mark = env.kube.requests.length;
    await reconcilerFor(env, ['gateways']).reconcile('ml/llama');

    expect(env.kube.requests.slice(mark).filter((r) => r.path.includes('/namespaces/istio-system/'))).toEqual([]);
    expect(degraded(env.kube)).toMatchObject({ status: 'True', reason: 'NotAllowed' });
    expect(degraded(env.kube)!.message).toContain('"istio-system" is not among the operator\'s --gateway-namespaces');
    expect(env.kube.peek<Obj>(poolPath)!.metadata.finalizers).toBeUndefined();
    // The pool's own objects are still applied.
    expect(env.kube.peek(routerServicePath)).toBeDefined();
  });

  it('places the filter in an allowed gateway namespace, and removes it when the allowlist no longer names it', async () => {
    const env = await cluster(ISTIO);
    await createPool(env.kube, { ...SERVED, gateway: { ...ENVOY_FILTER_GATEWAY, namespace: 'istio-system' } });
    await reconcilerFor(env, ['istio-system']).reconcile('ml/llama');
    const filter = env.kube.peek<Obj>(filterPath('istio-system', 'ml-llama-ext-proc'))!;
    expect(filter.metadata.ownerReferences).toBeUndefined();
    expect(filter.metadata.labels).toMatchObject({
      'inference.kvroute.io/pool-namespace': 'ml',
      'inference.kvroute.io/pool-name': 'llama',
    });
    expect(env.kube.peek<Obj>(poolPath)!.metadata.finalizers).toEqual([GATEWAY_CLEANUP_FINALIZER]);
    expect(degraded(env.kube)).toMatchObject({ status: 'False' });

    // The operator restarted with a shorter allowlist: its own filter there goes, and the pool is released.
    await reconcilerFor(env, []).reconcile('ml/llama');
    expect(env.kube.peek(filterPath('istio-system', 'ml-llama-ext-proc'))).toBeUndefined();
    expect(env.kube.peek<Obj>(poolPath)!.metadata.finalizers).toBeUndefined();
    expect(degraded(env.kube)).toMatchObject({ status: 'True', reason: 'NotAllowed' });
  });
});

describe('PoolReconciler ownership', () => {
  it('never writes over a same-named Service it does not own: Degraded Conflict naming it, the rest applied, looked at again later', async () => {
    const env = await cluster([]);
    await env.kube.create({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'llama-router', namespace: 'ml', labels: { team: 'web' } },
      spec: { ports: [{ port: 80 }] },
    });
    await createPool(env.kube, SERVED);
    const reconciler = reconcilerFor(env);
    const mark = env.kube.requests.length;

    expect(await reconciler.reconcile('ml/llama')).toEqual({ requeueAfterMs: 30_000 });
    expect(writesTo(env.kube, mark, '/services/llama-router')).toEqual([]);
    const service = env.kube.peek<Obj>(routerServicePath)!;
    expect(service.metadata.labels).toEqual({ team: 'web' });
    expect(service.spec).toEqual({ ports: [{ port: 80 }] });
    expect(degraded(env.kube)).toMatchObject({ status: 'True', reason: 'Conflict' });
    expect(degraded(env.kube)!.message).toContain('Service ml/llama-router already exists and is not owned by this pool');
    expect(env.kube.peek(resourcePath('apps/v1', 'Deployment', 'ml', 'llama-router'))).toBeDefined();

    // Its owner removes it: the next look applies the pool's own and clears the condition.
    await env.kube.delete(routerServicePath);
    expect(await reconciler.reconcile('ml/llama')).toBeUndefined();
    expect(env.kube.peek<Obj>(routerServicePath)!.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'InferencePool', name: 'llama' }),
    ]);
    expect(degraded(env.kube)).toMatchObject({ status: 'False', reason: 'AsExpected' });
  });

  it("never takes over an existing GIE InferencePool of the pool's name", async () => {
    const env = await cluster([GATEWAY_INFERENCE_POOL_CRD]);
    const theirs = {
      selector: { matchLabels: { app: 'theirs' } },
      targetPorts: [{ number: 9000 }],
      endpointPickerRef: { name: 'their-epp', port: { number: 9002 } },
    };
    await env.kube.create({
      apiVersion: 'inference.networking.k8s.io/v1',
      kind: 'InferencePool',
      metadata: { name: 'llama', namespace: 'ml' },
      spec: theirs,
    });
    await createPool(env.kube, SERVED);
    const mark = env.kube.requests.length;
    await reconcilerFor(env).reconcile('ml/llama');

    expect(writesTo(env.kube, mark, '/inference.networking.k8s.io/')).toEqual([]);
    expect(env.kube.peek<Obj>(giePoolPath)!.spec).toEqual(theirs);
    expect(degraded(env.kube)).toMatchObject({ reason: 'Conflict' });
    expect(degraded(env.kube)!.message).toContain('InferencePool ml/llama');
  });

  it('leaves a DestinationRule of the router name that someone else wrote alone', async () => {
    const env = await cluster([GATEWAY_INFERENCE_POOL_CRD, ...ISTIO]);
    await env.kube.create({
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'llama-router', namespace: 'ml' },
      spec: { host: 'elsewhere' },
    });
    await createPool(env.kube, SERVED);
    await reconcilerFor(env).reconcile('ml/llama');
    expect(env.kube.peek<Obj>(drPath)!.spec).toEqual({ host: 'elsewhere' });
    expect(degraded(env.kube)!.message).toContain('DestinationRule ml/llama-router');
    // The GIE pool, which is the pool's, is applied all the same.
    expect(env.kube.peek(giePoolPath)).toBeDefined();
  });

  it('does not prune an object of a name it no longer wants when another owner holds it', async () => {
    const env = await cluster([GATEWAY_INFERENCE_POOL_CRD]);
    await env.kube.create({
      apiVersion: 'inference.networking.k8s.io/v1',
      kind: 'InferencePool',
      metadata: { name: 'llama', namespace: 'ml' },
      spec: { mine: true },
    });
    // On the EnvoyFilter path the pool wants no GIE pool, and prunes only one it owns.
    await createPool(env.kube, { ...SERVED, gateway: ENVOY_FILTER_GATEWAY });
    await reconcilerFor(env).reconcile('ml/llama');
    expect(env.kube.peek<Obj>(giePoolPath)!.spec).toEqual({ mine: true });
  });
});
