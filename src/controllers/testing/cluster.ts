// A fake cluster as the operator's unit tests start from: the in-memory API server with kvroute's CRDs
// (built from src/api, the source crds/ is generated from), the namespaces a test names, schemaless
// stand-ins for third-party CRDs (Istio's EnvoyFilter, the Gateway API Inference Extension's pool), and
// the operator's informers over it.

import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { allCrds } from '../../api/crd.ts';
import type { KubeObjectLike } from '../../common/kube/kube-client.ts';
import { API_GROUP, API_VERSION, INFERENCE_SERVING_LABEL } from '../../api/meta.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../objects.ts';
import { ENVOY_FILTER_API_VERSION } from '../pool/gateway.ts';
import { POOL_NAME_LABEL, POOL_NAMESPACE_LABEL } from '../pool/ownership.ts';
import type { PoolCaches } from '../pool/reconciler.ts';
import type { ServedApis } from '../runtime/optional-apis.ts';
import { FakeKube, type FakeKubeOptions } from './fake-kube.ts';
import type { JsonObject } from './managed-fields.ts';

export type FakeCrd = KubeObjectLike & { metadata: { name: string }; spec: Record<string, unknown> };

/** A schemaless CRD for a third-party kind, like e2e/kube/fixtures.ts installs in the real test cluster. */
function openCrd(group: string, version: string, kind: string, plural: string): FakeCrd {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      scope: 'Namespaced',
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  };
}

export const ENVOY_FILTER_CRD = openCrd('networking.istio.io', 'v1alpha3', 'EnvoyFilter', 'envoyfilters');
export const GATEWAY_INFERENCE_POOL_CRD = openCrd('inference.networking.k8s.io', 'v1', 'InferencePool', 'inferencepools');
export const DESTINATION_RULE_CRD = openCrd('networking.istio.io', 'v1', 'DestinationRule', 'destinationrules');

export async function createNamespace(kube: FakeKube, name: string): Promise<void> {
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
}

/** The fake API server with kvroute's CRDs installed and the given namespaces created. */
export async function fakeCluster(options: FakeKubeOptions & { namespaces?: string[]; crds?: FakeCrd[] } = {}): Promise<FakeKube> {
  const kube = new FakeKube(options);
  for (const crd of Object.values(allCrds())) await kube.create(crd as never);
  for (const crd of options.crds ?? []) await kube.create(crd);
  for (const ns of options.namespaces ?? []) await createNamespace(kube, ns);
  return kube;
}

/** The informers the operator runs (see src/controllers/manager.ts), over the fake, listed and watching. */
export async function startPoolCaches(kube: FakeKube): Promise<PoolCaches & { stop(): Promise<void> }> {
  const crPath = (plural: string) => `/apis/${API_GROUP}/${API_VERSION}/${plural}`;
  const managed = { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` };
  const caches = {
    pools: kube.informer<KubernetesObject>({ name: 'inferencepools', path: crPath('inferencepools') }),
    models: kube.informer<KubernetesObject>({ name: 'inferencemodels', path: crPath('inferencemodels') }),
    pods: kube.informer<V1Pod>({ name: 'pods', path: '/api/v1/pods', labelSelector: `${INFERENCE_SERVING_LABEL}=true` }),
    owned: {
      Deployment: kube.informer<KubernetesObject>({ name: 'deployments', path: '/apis/apps/v1/deployments', ...managed }),
      Service: kube.informer<KubernetesObject>({ name: 'services', path: '/api/v1/services', ...managed }),
      ConfigMap: kube.informer<KubernetesObject>({ name: 'configmaps', path: '/api/v1/configmaps', ...managed }),
      NetworkPolicy: kube.informer<KubernetesObject>({
        name: 'networkpolicies',
        path: '/apis/networking.k8s.io/v1/networkpolicies',
        ...managed,
      }),
    },
    namespaces: kube.informer<KubernetesObject>({ name: 'namespaces', path: '/api/v1/namespaces' }),
    envoyFilters: kube.informer<KubernetesObject>({
      name: 'envoyfilters',
      path: `/apis/${ENVOY_FILTER_API_VERSION}/envoyfilters`,
      labelSelector: `${POOL_NAMESPACE_LABEL},${POOL_NAME_LABEL}`,
    }),
  };
  const giePools = kube.informer<KubernetesObject>({
    name: 'gie-inferencepools',
    path: '/apis/inference.networking.k8s.io/v1/inferencepools',
  });
  const all = [caches.pools, caches.models, caches.pods, ...Object.values(caches.owned), caches.namespaces];
  // As in the operator, the optional APIs' watches are not waited for: they list only once their CRD exists.
  const optional = [caches.envoyFilters, giePools];
  for (const i of optional) void i.start();
  await Promise.all(all.map((i) => i.start()));
  return { ...caches, giePools, stop: async () => void (await Promise.all([...all, ...optional].map((i) => i.stop()))) };
}

/**
 * What discovery would say of the fake at each moment: the operator's OptionalApis polls with backoff,
 * the reconciler tests read the answer it would settle on.
 */
export function servedApis(kube: FakeKube): ServedApis {
  return { isServed: (group, version, kind) => kube.serves(group, version, kind) };
}

/**
 * Resolves with the object at `path` (a namespaced or cluster-scoped object path) once `holds` is true of
 * it, or of its absence (undefined): checked now and on every watch event of the object. Fails after
 * `timeoutMs` naming what it waited for.
 */
export function watchUntil<T = JsonObject>(
  kube: FakeKube,
  path: string,
  what: string,
  holds: (obj: T | undefined) => boolean,
  timeoutMs = 10_000,
): Promise<T | undefined> {
  const at = path.lastIndexOf('/');
  const collection = path.slice(0, at);
  const name = decodeURIComponent(path.slice(at + 1));
  return new Promise((resolve, reject) => {
    const check = () => {
      const obj = kube.peek<T>(path);
      if (!holds(obj)) return false;
      stop();
      clearTimeout(timer);
      resolve(obj);
      return true;
    };
    const stop = kube.watch(collection, { fieldSelector: `metadata.name=${name}` }, () => void check());
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${path})`));
    }, timeoutMs);
    check();
  });
}
