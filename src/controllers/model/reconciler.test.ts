import { afterEach, describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { GROUP_VERSION } from '../../api/meta.ts';
import { resourcePath } from '../../common/kube/kube-client.ts';
import { silentLogger } from '../../common/log.ts';
import { fakeCluster } from '../testing/cluster.ts';
import type { FakeInformer } from '../testing/fake-informer.ts';
import type { FakeKube } from '../testing/fake-kube.ts';
import { ModelReconciler } from './reconciler.ts';

type Condition = { type: string; status: string; reason: string; message: string; observedGeneration?: number };
type Model = KubernetesObject & {
  metadata: NonNullable<KubernetesObject['metadata']>;
  status?: { observedGeneration?: number; conditions?: Condition[] };
};

const modelPath = (name: string) => resourcePath(GROUP_VERSION, 'InferenceModel', 'ml', name);
const condition = (kube: FakeKube, model: string, type: string) =>
  kube.peek<Model>(modelPath(model))?.status?.conditions?.find((c) => c.type === type);

let clock = Date.parse('2026-01-01T00:00:00Z');
let informers: FakeInformer<KubernetesObject>[] = [];
afterEach(async () => {
  await Promise.all(informers.map((i) => i.stop()));
  informers = [];
});

async function setup() {
  // Creation timestamps come from this clock: the older model is the one created first.
  const kube = await fakeCluster({ namespaces: ['ml'], now: () => (clock += 1000) });
  const pools = kube.informer<KubernetesObject>({ name: 'inferencepools', path: `/apis/${GROUP_VERSION}/inferencepools` });
  const models = kube.informer<KubernetesObject>({ name: 'inferencemodels', path: `/apis/${GROUP_VERSION}/inferencemodels` });
  informers.push(pools, models);
  await Promise.all([pools.start(), models.start()]);
  const reconciler = new ModelReconciler({ client: kube, pools, models, log: silentLogger, now: () => new Date(clock) });
  return { kube, reconciler };
}

const createPool = (kube: FakeKube, name = 'llama') =>
  kube.create({ apiVersion: GROUP_VERSION, kind: 'InferencePool', metadata: { name, namespace: 'ml' }, spec: { model: { name: 'm' } } });
const createModel = (kube: FakeKube, name: string, modelName: string, pool = 'llama') =>
  kube.create<Model>({
    apiVersion: GROUP_VERSION,
    kind: 'InferenceModel',
    metadata: { name, namespace: 'ml' },
    spec: { modelName, poolRef: { name: pool } },
  });

describe('ModelReconciler', () => {
  it('accepts a model whose pool exists, with observedGeneration, through the status subresource', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube);
    await createModel(kube, 'chat', 'llama-chat');
    await reconciler.reconcile('ml/chat');
    const model = kube.peek<Model>(modelPath('chat'))!;
    expect(model.status!.observedGeneration).toBe(1);
    expect(condition(kube, 'chat', 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted', observedGeneration: 1 });
    expect(condition(kube, 'chat', 'ResolvedRefs')).toMatchObject({ status: 'True' });
    expect(model.metadata.generation).toBe(1);
  });

  it('reports a model whose pool does not exist as not accepted and unresolved', async () => {
    const { kube, reconciler } = await setup();
    await createModel(kube, 'orphan', 'x', 'missing');
    await reconciler.reconcile('ml/orphan');
    expect(condition(kube, 'orphan', 'Accepted')).toMatchObject({ status: 'False', reason: 'PoolNotFound' });
    expect(condition(kube, 'orphan', 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'PoolNotFound' });
    expect(condition(kube, 'orphan', 'ResolvedRefs')!.message).toContain('InferencePool "missing" does not exist');
  });

  it('accepts the older of two models claiming one modelName, rejects the other, and hands over when the older goes', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube);
    // Named so that the tie-break by name would pick the newer one: age must decide.
    await createModel(kube, 'zz-older', 'shared-name');
    await createModel(kube, 'aa-newer', 'shared-name');
    await reconciler.reconcile('ml/zz-older');
    await reconciler.reconcile('ml/aa-newer');
    expect(condition(kube, 'zz-older', 'Accepted')).toMatchObject({ status: 'True' });
    const rejected = condition(kube, 'aa-newer', 'Accepted');
    expect(rejected).toMatchObject({ status: 'False', reason: 'ModelNameInUse' });
    expect(rejected!.message).toContain('InferenceModel "zz-older"');

    await kube.delete(modelPath('zz-older'));
    await reconciler.reconcile('ml/aa-newer');
    expect(condition(kube, 'aa-newer', 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
  });

  it('writes no status when it is already current', async () => {
    const { kube, reconciler } = await setup();
    await createPool(kube);
    await createModel(kube, 'chat', 'llama-chat');
    await reconciler.reconcile('ml/chat');
    const first = condition(kube, 'chat', 'Accepted')!;
    const sent = kube.requests.length;
    await reconciler.reconcile('ml/chat');
    expect(kube.requests.length).toBe(sent);
    expect(condition(kube, 'chat', 'Accepted')).toEqual(first);
  });

  it('ignores a key whose model is gone', async () => {
    const { kube, reconciler } = await setup();
    const before = kube.requests.length;
    await reconciler.reconcile('ml/nothing');
    expect(kube.requests.length).toBe(before);
  });
});
