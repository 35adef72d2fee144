// The in-memory API server keeps the API-server contract the controllers rely on; these tests pin it
// so a reconciler test that passes against the fake means what it would against a real server.

import { describe, expect, it } from '@jest/globals';
import { KubeApiError, isConflict, isNotFound, resourcePath } from '../../common/kube/kube-client.ts';
import { refusedByTerminatingNamespace } from '../runtime/events.ts';
import { ENVOY_FILTER_CRD, createNamespace, fakeCluster } from './cluster.ts';
import { FakeKube } from './fake-kube.ts';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    generation: number;
    finalizers?: string[];
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    managedFields?: { manager: string; operation: string; subresource?: string; fieldsV1: Record<string, unknown> }[];
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  data?: Record<string, string>;
}

const GV = 'inference.kvroute.io/v1alpha1';
const poolPath = (name: string) => resourcePath(GV, 'InferencePool', 'ml', name);
const cmPath = (name: string) => resourcePath('v1', 'ConfigMap', 'ml', name);
const pool = (name: string, spec: Record<string, unknown> = { model: { name: 'm' } }) => ({
  apiVersion: GV,
  kind: 'InferencePool',
  metadata: { name, namespace: 'ml' },
  spec,
});
const configMap = (name: string, data: Record<string, string>, labels?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'ml', ...(labels ? { labels } : {}) },
  data,
});
const failure = async (p: Promise<unknown>): Promise<KubeApiError> => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof KubeApiError)) throw new Error(`expected a KubeApiError, got ${String(err)}`);
  return err;
};
const ownersOf = (o: Obj, needle: string) =>
  (o.metadata.managedFields ?? [])
    .filter((f) => JSON.stringify(f.fieldsV1).includes(needle))
    .map((f) => `${f.manager}/${f.operation}${f.subresource ? '/' + f.subresource : ''}`);

describe('FakeKube objects', () => {
  it('creates objects with a uid, generation 1 and a resourceVersion that grows with every change', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const a = await kube.create<Obj>(configMap('a', { k: '1' }));
    const b = await kube.create<Obj>(configMap('b', { k: '1' }));
    expect(a.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.metadata.uid).not.toBe(b.metadata.uid);
    expect(a.metadata.generation).toBe(1);
    expect(Number(b.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
    const changed = await kube.replace<Obj>({ ...a, data: { k: '2' } });
    expect(Number(changed.metadata.resourceVersion)).toBeGreaterThan(Number(b.metadata.resourceVersion));
    expect((await kube.get<Obj>(cmPath('a'))).data).toEqual({ k: '2' });
  });

  it('answers 404 for a missing object and 409 AlreadyExists for a second create', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const missing = await failure(kube.get(cmPath('nope')));
    expect([missing.status, missing.reason, isNotFound(missing)]).toEqual([404, 'NotFound', true]);
    expect(missing.message).toContain('configmaps "nope" not found');
    await kube.create(configMap('a', {}));
    const dup = await failure(kube.create(configMap('a', {})));
    expect([dup.status, dup.reason]).toEqual([409, 'AlreadyExists']);
  });

  it('refuses a replace carrying a stale resourceVersion with 409 Conflict', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const first = await kube.create<Obj>(configMap('a', { k: '1' }));
    await kube.replace({ ...first, data: { k: '2' } });
    const err = await failure(kube.replace({ ...first, data: { k: '3' } }));
    expect(isConflict(err)).toBe(true);
    expect(err.message).toContain('the object has been modified');
  });

  it('answers 404 for kinds no CRD serves, and serves them once the CRD exists', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const filter = { apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', metadata: { name: 'f', namespace: 'ml' }, spec: {} };
    expect((await failure(kube.create(filter))).status).toBe(404);
    await kube.create(ENVOY_FILTER_CRD);
    await kube.create(filter);
    expect((await kube.list<Obj>('/apis/networking.istio.io/v1alpha3/envoyfilters')).items.map((o) => o.metadata.name)).toEqual(['f']);
  });

  it('refuses new objects in a missing namespace (404) and in a terminating one (403)', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const missing = await failure(kube.create({ ...configMap('a', {}), metadata: { name: 'a', namespace: 'nowhere' } }));
    expect([missing.status, missing.message]).toEqual([404, expect.stringContaining('namespaces "nowhere" not found')]);
    await kube.delete(resourcePath('v1', 'Namespace', undefined, 'ml'));
    const ns = await kube.get<Obj>(resourcePath('v1', 'Namespace', undefined, 'ml'));
    expect([ns.metadata.deletionTimestamp !== undefined, ns.status?.phase]).toEqual([true, 'Terminating']);
    const refused = await failure(kube.apply(configMap('a', {}), { fieldManager: 'test' }));
    expect(refused.status).toBe(403);
    expect(refusedByTerminatingNamespace(refused)).toBe(true);
  });
});

describe('FakeKube server-side apply', () => {
  it('creates on first apply, keeps the resourceVersion on a no-op apply, and removes fields the manager stops sending', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const first = await kube.apply<Obj>(configMap('a', { x: '1', y: '2' }, { team: 'a' }), { fieldManager: 'op' });
    const again = await kube.apply<Obj>(configMap('a', { x: '1', y: '2' }, { team: 'a' }), { fieldManager: 'op' });
    expect(again.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    const dropped = await kube.apply<Obj>(configMap('a', { x: '1' }), { fieldManager: 'op' });
    expect(dropped.data).toEqual({ x: '1' });
    expect(dropped.metadata.labels ?? {}).toEqual({});
  });

  it('merges the fields of two managers and keeps a field another manager also owns', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.apply(configMap('a', { mine: '1', shared: 's' }), { fieldManager: 'op' });
    await kube.apply(configMap('a', { theirs: '2', shared: 's' }), { fieldManager: 'gitops' });
    const merged = await kube.apply<Obj>(configMap('a', { mine: '1' }), { fieldManager: 'op' });
    expect(merged.data).toEqual({ mine: '1', theirs: '2', shared: 's' });
    expect(ownersOf(merged, 'f:shared')).toEqual(['gitops/Apply']);
  });

  it('fails with 409 when another manager owns a field whose value would change, and takes it over when forced', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.apply(configMap('a', { replicas: '1' }), { fieldManager: 'op' });
    await kube.request('PATCH', cmPath('a'), {
      body: { data: { replicas: '5' } },
      contentType: 'application/merge-patch+json',
      query: { fieldManager: 'kubectl-edit' },
    });
    const conflict = await failure(kube.apply(configMap('a', { replicas: '1' }), { fieldManager: 'op' }));
    expect(conflict.status).toBe(409);
    expect(conflict.message).toContain('conflict with "kubectl-edit" using Update: .data.replicas');
    const forced = await kube.apply<Obj>(configMap('a', { replicas: '1' }), { fieldManager: 'op', force: true });
    expect(forced.data).toEqual({ replicas: '1' });
    expect(ownersOf(forced, 'f:replicas')).toEqual(['op/Apply']);
  });

  it('merges metadata.finalizers as a set: an entry two managers hold stays until both release it', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.create(pool('p'));
    const withFinalizers = (finalizers: string[]) => ({
      apiVersion: GV,
      kind: 'InferencePool',
      metadata: { name: 'p', namespace: 'ml', ...(finalizers.length ? { finalizers } : {}) },
    });
    await kube.apply(withFinalizers(['example.com/a']), { fieldManager: 'op', force: true });
    await kube.apply(withFinalizers(['example.com/a', 'example.com/b']), { fieldManager: 'restore', force: true });
    const released = await kube.apply<Obj>(withFinalizers([]), { fieldManager: 'op', force: true });
    expect(released.metadata.finalizers).toEqual(['example.com/a', 'example.com/b']);
    expect(ownersOf(released, 'example.com/a')).toEqual(['restore/Apply']);
    const gone = await kube.apply<Obj>(withFinalizers(['example.com/b']), { fieldManager: 'restore', force: true });
    expect(gone.metadata.finalizers).toEqual(['example.com/b']);
  });
});

describe('FakeKube status subresource', () => {
  it('ignores status written to the main resource and spec written to /status; only spec changes move generation', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const created = await kube.create<Obj>({ ...pool('p'), status: { observedGeneration: 9 } });
    expect(created.status).toBeUndefined();
    const status = await kube.apply<Obj>(
      { ...pool('p', { model: { name: 'changed' } }), status: { observedGeneration: 1 } },
      { fieldManager: 'op', subresource: 'status' },
    );
    expect([status.spec, status.status, status.metadata.generation]).toEqual([{ model: { name: 'm' } }, { observedGeneration: 1 }, 1]);
    expect(Number(status.metadata.resourceVersion)).toBeGreaterThan(Number(created.metadata.resourceVersion));
    // The creator owns spec.model.name, so another manager changes it only when forcing.
    const spec = await kube.apply<Obj>(
      { ...pool('p', { model: { name: 'n' } }), status: { observedGeneration: 7 } },
      { fieldManager: 'user', force: true },
    );
    expect([spec.spec, spec.status, spec.metadata.generation]).toEqual([{ model: { name: 'n' } }, { observedGeneration: 1 }, 2]);
    const labelled = await kube.request<Obj>('PATCH', poolPath('p'), {
      body: { metadata: { labels: { a: 'b' } } },
      contentType: 'application/merge-patch+json',
    });
    expect(labelled.metadata.generation).toBe(2);
  });

  it('answers 404 for /status of a kind without that subresource and of a missing object', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.create(configMap('a', {}));
    expect((await failure(kube.apply({ ...configMap('a', {}), status: {} }, { fieldManager: 'op', subresource: 'status' }))).status).toBe(
      404,
    );
    expect((await failure(kube.apply({ ...pool('nope'), status: {} }, { fieldManager: 'op', subresource: 'status' }))).status).toBe(404);
  });
});

describe('FakeKube deletion', () => {
  it('sets deletionTimestamp while finalizers remain, refuses new finalizers, and deletes when the last one goes', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const created = await kube.create<Obj>({ ...pool('p'), metadata: { name: 'p', namespace: 'ml', finalizers: ['example.com/a'] } });
    expect(await kube.delete(poolPath('p'), created.metadata.uid)).toBe(true);
    const deleting = await kube.get<Obj>(poolPath('p'));
    expect(deleting.metadata.deletionTimestamp).toBeDefined();
    expect(deleting.metadata.generation).toBe(2);
    const added = await failure(
      kube.replace({ ...deleting, metadata: { ...deleting.metadata, finalizers: ['example.com/a', 'example.com/b'] } }),
    );
    expect([added.status, added.message]).toEqual([422, expect.stringContaining('no new finalizers can be added')]);
    await kube.request('PATCH', poolPath('p'), {
      body: [
        { op: 'test', path: '/metadata/finalizers/0', value: 'example.com/a' },
        { op: 'remove', path: '/metadata/finalizers/0' },
      ],
      contentType: 'application/json-patch+json',
    });
    expect(kube.peek(poolPath('p'))).toBeUndefined();
  });

  it('fails a delete whose uid precondition names another object with 409, and reports a missing object as already gone', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.create(configMap('a', {}));
    expect(isConflict(await failure(kube.delete(cmPath('a'), 'someone-else')))).toBe(true);
    expect(await kube.delete(cmPath('a'))).toBe(true);
    expect(await kube.delete(cmPath('a'))).toBe(false);
  });

  it('fails a JSON patch whose test op does not hold with 422 and changes nothing', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const before = await kube.create<Obj>(configMap('a', { k: 'v' }));
    const err = await failure(
      kube.request('PATCH', cmPath('a'), {
        body: [
          { op: 'test', path: '/data/k', value: 'w' },
          { op: 'remove', path: '/data/k' },
        ],
        contentType: 'application/json-patch+json',
      }),
    );
    expect(err.status).toBe(422);
    expect((await kube.get<Obj>(cmPath('a'))).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });
});

describe('FakeKube lists, watches and informers', () => {
  it('filters lists by label and field selectors and rejects selectors it cannot parse with 400', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.create(configMap('a', {}, { app: 'x', tier: 'web' }));
    await kube.create(configMap('b', {}, { app: 'y' }));
    await kube.create(configMap('c', {}));
    const names = async (sel: { labelSelector?: string; fieldSelector?: string }) =>
      (await kube.list<Obj>('/api/v1/namespaces/ml/configmaps', sel)).items.map((o) => o.metadata.name);
    expect(await names({ labelSelector: 'app=x' })).toEqual(['a']);
    expect(await names({ labelSelector: 'app' })).toEqual(['a', 'b']);
    expect(await names({ labelSelector: '!app' })).toEqual(['c']);
    expect(await names({ labelSelector: 'app notin (x),app' })).toEqual(['b']);
    expect(await names({ labelSelector: 'app in (x, y),tier!=web' })).toEqual(['b']);
    expect(await names({ fieldSelector: 'metadata.name=c' })).toEqual(['c']);
    expect((await failure(kube.list('/api/v1/namespaces/ml/configmaps', { fieldSelector: 'spec.x=1' }))).status).toBe(400);
  });

  it('feeds an informer its list, then adds, updates and deletes, including objects that start or stop matching its selector', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    await kube.apply(configMap('before', {}, { app: 'x' }), { fieldManager: 'op' });
    const informer = kube.informer<Obj>({ name: 'cms', path: '/api/v1/namespaces/ml/configmaps', labelSelector: 'app=x' });
    const seen: string[] = [];
    informer.on((event, o) => seen.push(`${event}:${o.metadata.name}`));
    await informer.start();
    expect(informer.synced).toBe(true);
    const created = await kube.create<Obj>(configMap('late', {}, { app: 'y' }));
    await kube.replace({ ...created, metadata: { ...created.metadata, labels: { app: 'x' } } });
    await kube.apply(configMap('before', { k: 'v' }, { app: 'x' }), { fieldManager: 'op' });
    await kube.apply(configMap('before', { k: 'v' }, { app: 'z' }), { fieldManager: 'op' });
    await kube.delete(cmPath('late'));
    expect(seen).toEqual(['add:before', 'add:late', 'update:before', 'delete:before', 'delete:late']);
    expect(informer.list()).toEqual([]);
    await informer.stop();
    await kube.create(configMap('after-stop', {}, { app: 'x' }));
    expect(seen).toHaveLength(5);
    expect(informer.handlerErrors).toEqual([]);
  });

  it('keeps an informer of a kind not served yet unsynced until its CRD is created', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const informer = kube.informer<Obj>({ name: 'filters', path: '/apis/networking.istio.io/v1alpha3/envoyfilters' });
    const started = informer.start();
    await Promise.resolve();
    expect(informer.synced).toBe(false);
    await kube.create(ENVOY_FILTER_CRD);
    await started;
    await kube.create({
      apiVersion: 'networking.istio.io/v1alpha3',
      kind: 'EnvoyFilter',
      metadata: { name: 'f', namespace: 'ml' },
      spec: {},
    });
    expect(informer.get('f', 'ml')?.kind).toBe('EnvoyFilter');
    await informer.stop();
  });

  it('fails requests a reactor refuses, and records every request', async () => {
    const kube = new FakeKube();
    await createNamespace(kube, 'ml');
    const stop = kube.react((req) => (req.method === 'POST' ? new KubeApiError(500, 'InternalError', 'etcd is down') : undefined));
    expect((await failure(kube.create(configMap('a', {})))).status).toBe(500);
    stop();
    await kube.create(configMap('a', {}));
    expect(kube.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /api/v1/namespaces',
      'POST /api/v1/namespaces/ml/configmaps',
      'POST /api/v1/namespaces/ml/configmaps',
    ]);
  });
});
