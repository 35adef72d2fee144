import { afterEach, describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { InferencePool } from '../../api/inference-pool.ts';
import { GROUP_VERSION } from '../../api/meta.ts';
import { resourcePath } from '../../common/kube/kube-client.ts';
import { silentLogger } from '../../common/log.ts';
import { FIELD_MANAGER } from '../objects.ts';
import { ENVOY_FILTER_CRD, fakeCluster } from '../testing/cluster.ts';
import type { FakeInformer } from '../testing/fake-informer.ts';
import type { FakeKube } from '../testing/fake-kube.ts';
import { EnvoyFilterSync } from './envoy-filter-sync.ts';
import { buildEnvoyFilter } from './envoy-filter.ts';
import { ENVOY_FILTER_API_VERSION, GATEWAY_CLEANUP_FINALIZER, poolIdentity } from './gateway.ts';
import { POOL_NAME_LABEL, POOL_NAMESPACE_LABEL } from './ownership.ts';

type Obj = KubernetesObject & { metadata: NonNullable<KubernetesObject['metadata']>; spec?: Record<string, unknown> };

const poolPath = resourcePath(GROUP_VERSION, 'InferencePool', 'ml', 'llama');
const filterPath = (ns: string, name: string) => resourcePath(ENVOY_FILTER_API_VERSION, 'EnvoyFilter', ns, name);
const SPEC = { model: { name: 'm' }, selector: { matchLabels: { app: 'llama' } } };
const gateway = (namespace?: string) => ({
  envoyFilter: true,
  workloadSelector: { istio: 'ingressgateway' },
  routeNames: ['llama'],
  backendRef: { name: 'llama', port: 8000 },
  ...(namespace ? { namespace } : {}),
});

let informers: FakeInformer<KubernetesObject>[] = [];
afterEach(async () => {
  await Promise.all(informers.map((i) => i.stop()));
  informers = [];
});

async function setup(options: { istio?: boolean; namespaces?: string[]; cache?: boolean } = {}) {
  const kube = await fakeCluster({
    namespaces: options.namespaces ?? ['ml', 'gw', 'gw2'],
    crds: options.istio === false ? [] : [ENVOY_FILTER_CRD],
  });
  let cache: FakeInformer<KubernetesObject> | undefined;
  if (options.cache) {
    cache = kube.informer<KubernetesObject>({
      name: 'envoyfilters',
      path: `/apis/${ENVOY_FILTER_API_VERSION}/envoyfilters`,
      labelSelector: `${POOL_NAMESPACE_LABEL},${POOL_NAME_LABEL}`,
    });
    informers.push(cache);
    await cache.start();
  }
  const sync = new EnvoyFilterSync({ client: kube, log: silentLogger, ...(cache ? { cache } : {}) });
  await kube.create({
    apiVersion: GROUP_VERSION,
    kind: 'InferencePool',
    metadata: { name: 'llama', namespace: 'ml' },
    spec: { ...SPEC, gateway: gateway() },
  });
  return { kube, sync };
}

/** The pool as the reconciler sees it: read back and parsed, with the given gateway wiring. */
async function livePool(kube: FakeKube, gw: Record<string, unknown>): Promise<{ pool: InferencePool; finalizers: string[] }> {
  const raw = await kube.get<Obj>(poolPath);
  const pool = InferencePool.parse({ ...raw, spec: { ...SPEC, gateway: gw } });
  return { pool, finalizers: raw.metadata.finalizers ?? [] };
}

async function syncTo(kube: FakeKube, sync: EnvoyFilterSync, namespace: string | undefined) {
  const { pool, finalizers } = await livePool(kube, gateway(namespace));
  return sync.sync(pool, finalizers, buildEnvoyFilter(pool, { clusterDomain: 'cluster.local' }));
}

const finalizers = (kube: FakeKube) => kube.peek<Obj>(poolPath)?.metadata.finalizers ?? [];
/** The order of writes: which object each non-GET request touched. */
const writeLog = (kube: FakeKube, from: number) =>
  kube.requests
    .slice(from)
    .filter((r) => r.method !== 'GET')
    .map((r) => `${r.method} ${r.path.replace(/^\/apis\/[^/]+\/[^/]+\/namespaces\//, '')}`);

describe('EnvoyFilterSync', () => {
  it('adds the cleanup finalizer before it creates a filter in the gateway namespace', async () => {
    const { kube, sync } = await setup();
    const result = await syncTo(kube, sync, 'gw');
    expect(result).toEqual({ errors: [] });
    expect(writeLog(kube, 0).filter((w) => w.startsWith('PATCH'))).toEqual([
      'PATCH ml/inferencepools/llama',
      'PATCH gw/envoyfilters/ml-llama-ext-proc',
    ]);
    expect(finalizers(kube)).toEqual([GATEWAY_CLEANUP_FINALIZER]);
    const filter = kube.peek<Obj>(filterPath('gw', 'ml-llama-ext-proc'))!;
    expect(filter.metadata.labels).toMatchObject({ [POOL_NAMESPACE_LABEL]: 'ml', [POOL_NAME_LABEL]: 'llama' });
  });

  it('places nothing and holds no finalizer while the gateway namespace is missing', async () => {
    const { kube, sync } = await setup({ namespaces: ['ml'] });
    const result = await syncTo(kube, sync, 'gw');
    expect(result).toEqual({ errors: [], gatewayNamespaceMissing: 'gw' });
    expect(finalizers(kube)).toEqual([]);
    expect((await kube.list(`/apis/${ENVOY_FILTER_API_VERSION}/envoyfilters`)).items).toEqual([]);
  });

  it('reports the missing EnvoyFilter kind when Istio is not installed', async () => {
    const { kube, sync } = await setup({ istio: false });
    const result = await syncTo(kube, sync, undefined);
    expect(result).toEqual({ errors: [], missingKind: `${ENVOY_FILTER_API_VERSION} EnvoyFilter` });
  });

  it('moves the filter make-before-break when the gateway namespace changes, and drops the finalizer when it comes back beside the pool', async () => {
    const { kube, sync } = await setup();
    await syncTo(kube, sync, 'gw');
    const mark = kube.requests.length;
    await syncTo(kube, sync, 'gw2');
    expect(writeLog(kube, mark)).toEqual(['PATCH gw2/envoyfilters/ml-llama-ext-proc', 'DELETE gw/envoyfilters/ml-llama-ext-proc']);
    expect(finalizers(kube)).toEqual([GATEWAY_CLEANUP_FINALIZER]);

    await syncTo(kube, sync, undefined);
    expect(kube.peek(filterPath('gw2', 'ml-llama-ext-proc'))).toBeUndefined();
    const home = kube.peek<Obj>(filterPath('ml', 'llama-ext-proc'))!;
    expect(home.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'InferencePool', name: 'llama' })]);
    expect(finalizers(kube)).toEqual([]);
  });

  it('keeps finalizers other managers own when it drops its own', async () => {
    const { kube, sync } = await setup();
    await syncTo(kube, sync, 'gw');
    await kube.apply(
      { apiVersion: GROUP_VERSION, kind: 'InferencePool', metadata: { name: 'llama', namespace: 'ml', finalizers: ['example.com/keep'] } },
      { fieldManager: 'gitops' },
    );
    expect(finalizers(kube)).toEqual([GATEWAY_CLEANUP_FINALIZER, 'example.com/keep']);
    await syncTo(kube, sync, undefined);
    expect(finalizers(kube)).toEqual(['example.com/keep']);
  });

  it("never writes over a filter of the same name that is not the pool's: names it, adds no finalizer", async () => {
    const { kube, sync } = await setup();
    await kube.create({
      apiVersion: ENVOY_FILTER_API_VERSION,
      kind: 'EnvoyFilter',
      metadata: { name: 'ml-llama-ext-proc', namespace: 'gw' },
      spec: { mine: true },
    });
    const mark = kube.requests.length;
    const result = await syncTo(kube, sync, 'gw');
    expect(result).toEqual({ errors: [], conflict: 'EnvoyFilter gw/ml-llama-ext-proc' });
    expect(writeLog(kube, mark)).toEqual([]);
    expect(kube.peek<Obj>(filterPath('gw', 'ml-llama-ext-proc'))!.spec).toEqual({ mine: true });
    expect(finalizers(kube)).toEqual([]);
  });

  it("keeps the pool's filter where it is when someone else's filter holds the name at the new gateway namespace", async () => {
    const { kube, sync } = await setup();
    await syncTo(kube, sync, 'gw');
    await kube.create({
      apiVersion: ENVOY_FILTER_API_VERSION,
      kind: 'EnvoyFilter',
      metadata: { name: 'ml-llama-ext-proc', namespace: 'gw2' },
      spec: { mine: true },
    });
    const result = await syncTo(kube, sync, 'gw2');
    expect(result.conflict).toBe('EnvoyFilter gw2/ml-llama-ext-proc');
    expect(kube.peek(filterPath('gw', 'ml-llama-ext-proc'))).toBeDefined();
    expect(finalizers(kube)).toEqual([GATEWAY_CLEANUP_FINALIZER]);
  });

  it('re-applies a filter deleted by hand once its watch sees it gone, and skips the apply while it is in place', async () => {
    const { kube, sync } = await setup({ cache: true });
    await syncTo(kube, sync, 'gw');
    let mark = kube.requests.length;
    await syncTo(kube, sync, 'gw');
    expect(writeLog(kube, mark)).toEqual([]);

    await kube.delete(filterPath('gw', 'ml-llama-ext-proc'));
    mark = kube.requests.length;
    await syncTo(kube, sync, 'gw');
    expect(writeLog(kube, mark)).toEqual(['PATCH gw/envoyfilters/ml-llama-ext-proc']);
  });

  it("on finalize deletes the pool's filters in every namespace and releases the pool, also when another manager wrote the same finalizer", async () => {
    const { kube, sync } = await setup();
    await syncTo(kube, sync, 'gw');
    // A restore that copied live metadata co-owns the entry, so releasing the operator's share alone keeps it.
    await kube.apply(
      {
        apiVersion: GROUP_VERSION,
        kind: 'InferencePool',
        metadata: { name: 'llama', namespace: 'ml', finalizers: [GATEWAY_CLEANUP_FINALIZER] },
      },
      { fieldManager: 'restore' },
    );
    const owners = kube
      .peek<Obj & { metadata: { managedFields: { manager: string; fieldsV1: unknown }[] } }>(poolPath)!
      .metadata.managedFields.filter((f) => JSON.stringify(f.fieldsV1).includes(GATEWAY_CLEANUP_FINALIZER));
    expect(owners.map((f) => f.manager).sort()).toEqual([FIELD_MANAGER, 'restore']);
    const uid = kube.peek<Obj>(poolPath)!.metadata.uid!;
    await kube.delete(poolPath, uid);

    await sync.finalize({ ...poolIdentity((await livePool(kube, gateway('gw'))).pool) }, [GATEWAY_CLEANUP_FINALIZER]);

    expect(kube.peek(filterPath('gw', 'ml-llama-ext-proc'))).toBeUndefined();
    expect(kube.peek(poolPath)).toBeUndefined();
    // The shared entry went through a JSON patch that removes exactly that entry.
    expect(kube.requests.filter((r) => r.contentType === 'application/json-patch+json').map((r) => r.path)).toEqual([poolPath]);
  });

  it('finds a filter written before the pool labels existed by its owner reference and removes it', async () => {
    const { kube, sync } = await setup();
    const uid = kube.peek<Obj>(poolPath)!.metadata.uid!;
    await kube.create({
      apiVersion: ENVOY_FILTER_API_VERSION,
      kind: 'EnvoyFilter',
      metadata: {
        name: 'llama-ext-proc',
        namespace: 'ml',
        ownerReferences: [{ apiVersion: GROUP_VERSION, kind: 'InferencePool', name: 'llama', uid }],
      },
      spec: {},
    });
    await syncTo(kube, sync, 'gw');
    expect(kube.peek(filterPath('ml', 'llama-ext-proc'))).toBeUndefined();
    expect(kube.peek(filterPath('gw', 'ml-llama-ext-proc'))).toBeDefined();
  });
});
