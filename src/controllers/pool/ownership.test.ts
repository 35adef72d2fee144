import { describe, it, expect } from '@jest/globals';
import { isNotFound, resourcePath, type KubeApi } from '../../common/kube/kube-client.ts';
import { FIELD_MANAGER } from '../objects.ts';
import { fakeCluster } from '../testing/cluster.ts';
import type { FakeKube } from '../testing/fake-kube.ts';
import { applyIfOwned, describeObject, ownedByPool } from './ownership.ts';

const POOL = { namespace: 'ml', name: 'llama', uid: 'uid-1' };
const owner = (uid: string) => ({
  apiVersion: 'inference.kvroute.io/v1alpha1',
  kind: 'InferencePool',
  name: 'llama',
  uid,
  controller: true,
});
const service = (extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'llama-router', namespace: 'ml', labels: { app: 'router' }, ownerReferences: [owner('uid-1')], ...extra },
  spec: { ports: [{ port: 9002 }] },
});
const servicePath = resourcePath('v1', 'Service', 'ml', 'llama-router');
type Svc = {
  metadata: { name: string; labels?: Record<string, string>; ownerReferences?: { kind: string; uid: string }[] };
  spec: { ports: { port: number }[] };
};
const writes = (kube: FakeKube) => kube.requests.filter((r) => r.method !== 'GET');

describe('ownedByPool', () => {
  const live = (labels: Record<string, string>, ownerUid?: string, namespace = 'ml') => ({
    metadata: { namespace, name: 'x', labels, ...(ownerUid ? { ownerReferences: [{ kind: 'InferencePool', uid: ownerUid }] } : {}) },
  });

  it('owns an object by an owner reference to this pool, or by both pool labels, and nothing else', () => {
    expect(ownedByPool(POOL, live({}, 'uid-1'))).toBe(true);
    expect(
      ownedByPool(
        POOL,
        live({ 'inference.kvroute.io/pool-namespace': 'ml', 'inference.kvroute.io/pool-name': 'llama' }, undefined, 'istio-system'),
      ),
    ).toBe(true);
    // A pool of the same name that was deleted and created again is another pool.
    expect(ownedByPool(POOL, live({}, 'uid-of-an-older-pool'))).toBe(false);
    expect(ownedByPool(POOL, live({ 'inference.kvroute.io/pool-name': 'llama' }, undefined, 'istio-system'))).toBe(false);
    expect(ownedByPool(POOL, live({ 'inference.kvroute.io/pool-namespace': 'other', 'inference.kvroute.io/pool-name': 'llama' }))).toBe(
      false,
    );
    expect(ownedByPool(POOL, live({ 'inference.kvroute.io/pool': 'llama' }))).toBe(false);
    expect(ownedByPool({ namespace: 'ml', name: 'llama' }, live({}, 'uid-1'))).toBe(false);
  });

  it('names an object as Kind namespace/name', () => {
    expect(describeObject(service())).toBe('Service ml/llama-router');
    expect(describeObject({ kind: 'Namespace', metadata: { name: 'ml' } })).toBe('Namespace ml');
  });
});

describe('applyIfOwned', () => {
  it('creates an absent object without forcing, under the operator field manager', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const mark = kube.requests.length;
    const result = await applyIfOwned(kube, POOL, service());
    expect(result).toEqual({ resourceVersion: expect.any(String) });
    const [apply, ...more] = kube.requests.slice(mark).filter((r) => r.method !== 'GET');
    expect(more).toEqual([]);
    expect(apply).toMatchObject({ method: 'PATCH', path: servicePath, query: { fieldManager: FIELD_MANAGER, force: undefined } });
    expect((await kube.get<Svc>(servicePath)).spec.ports).toEqual([{ port: 9002 }]);
  });

  it("force-applies over the pool's own object, taking back fields another manager changed", async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await applyIfOwned(kube, POOL, service());
    await kube.apply({ ...service(), spec: { ports: [{ port: 1234 }] } }, { fieldManager: 'kubectl', force: true });
    const result = await applyIfOwned(kube, POOL, service());
    expect('resourceVersion' in result).toBe(true);
    expect((await kube.get<Svc>(servicePath)).spec.ports).toEqual([{ port: 9002 }]);
  });

  it('leaves a same-named object the pool does not own alone and names it', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.create({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'llama-router', namespace: 'ml', labels: { team: 'theirs' } },
      spec: { ports: [{ port: 80 }] },
    });
    const before = writes(kube).length;
    expect(await applyIfOwned(kube, POOL, service())).toEqual({ conflict: 'Service ml/llama-router' });
    expect(writes(kube).length).toBe(before);
    const live = await kube.get<Svc>(servicePath);
    expect(live.metadata.labels).toEqual({ team: 'theirs' });
    expect(live.spec.ports).toEqual([{ port: 80 }]);
    expect(live.metadata.ownerReferences).toBeUndefined();
  });

  it('leaves alone an object owned by an earlier pool of the same name (another UID)', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.create(service({ ownerReferences: [owner('uid-0')] }));
    expect(await applyIfOwned(kube, POOL, service())).toEqual({ conflict: 'Service ml/llama-router' });
  });

  it('does not take over an object someone creates between its read and its apply', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    // A client whose read answers "not found" and lets someone else create the object right after.
    const racing: KubeApi = Object.create(kube) as KubeApi;
    racing.get = async <T>(path: string): Promise<T> => {
      try {
        return await kube.get<T>(path);
      } catch (err) {
        if (isNotFound(err)) {
          await kube.apply(
            { apiVersion: 'v1', kind: 'Service', metadata: { name: 'llama-router', namespace: 'ml' }, spec: { ports: [{ port: 80 }] } },
            { fieldManager: 'someone-else' },
          );
        }
        throw err;
      }
    };
    expect(await applyIfOwned(racing, POOL, service())).toEqual({ conflict: 'Service ml/llama-router' });
    expect((await kube.get<Svc>(servicePath)).spec.ports).toEqual([{ port: 80 }]);
  });

  it("trusts an informer's copy that the pool owns, without reading the object again", async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await applyIfOwned(kube, POOL, service());
    const cached = await kube.get<Svc>(servicePath);
    const reads = kube.requests.filter((r) => r.method === 'GET').length;
    await applyIfOwned(kube, POOL, service({ labels: { app: 'router', v: '2' } }), cached);
    expect(kube.requests.filter((r) => r.method === 'GET').length).toBe(reads);
    expect((await kube.get<Svc>(servicePath)).metadata.labels).toEqual({ app: 'router', v: '2' });
  });

  it("reads again when the informer's copy is not the pool's: it may be stale", async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const stale = { metadata: { name: 'llama-router', namespace: 'ml', labels: {} } };
    expect('resourceVersion' in (await applyIfOwned(kube, POOL, service(), stale))).toBe(true);
  });
});
