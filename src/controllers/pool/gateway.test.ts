import { describe, it, expect } from '@jest/globals';
import {
  DESTINATION_RULE_API,
  ENVOY_FILTER_API,
  GIE_INFERENCE_POOL_API,
  staticServedApis,
  type ApiKind,
} from '../runtime/optional-apis.ts';
import { testPool } from '../testing.ts';
import { desiredPoolObjects } from './desired.ts';
import {
  GATEWAY_CLEANUP_FINALIZER,
  buildRouterDestinationRule,
  envoyFilterSelector,
  gatewayNamespaceAllowed,
  needsCleanupFinalizer,
  poolIdentity,
  routerHost,
  staleEnvoyFilters,
} from './gateway.ts';

const served = { model: { name: 'm' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };
const envoyFilterGateway = (extra: Record<string, unknown> = {}) => ({
  envoyFilter: true,
  workloadSelector: { istio: 'ingressgateway' },
  routeNames: ['llama'],
  ...extra,
});
const gatewayPool = (gateway: Record<string, unknown>, meta: { namespace?: string; name?: string } = {}) =>
  testPool({ ...served, gateway: envoyFilterGateway(gateway) }, meta);
const live = (namespace: string, name: string, labels: Record<string, string> = {}, ownerUid?: string) => ({
  metadata: {
    namespace,
    name,
    uid: `uid-${namespace}-${name}`,
    labels,
    ...(ownerUid ? { ownerReferences: [{ kind: 'InferencePool', uid: ownerUid }] } : {}),
  },
});
const labelsOf = (namespace: string, name: string) => ({
  'inference.kvroute.io/pool-namespace': namespace,
  'inference.kvroute.io/pool-name': name,
});
const options = (apis: ApiKind[], gatewayNamespaces: string[] = []) => ({
  defaultImage: 'kvroute:test',
  clusterDomain: 'cluster.local',
  apis: staticServedApis(apis),
  gatewayNamespaces: new Set(gatewayNamespaces),
});
const kinds = (state: ReturnType<typeof desiredPoolObjects>) =>
  state.apply.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`);
const ISTIO = [ENVOY_FILTER_API, DESTINATION_RULE_API];

describe('gateway namespace allowlist', () => {
  it("always allows the pool's own namespace and another only when the operator lists it", () => {
    expect(gatewayNamespaceAllowed(gatewayPool({}), new Set())).toBe(true);
    expect(gatewayNamespaceAllowed(gatewayPool({ namespace: 'ml' }), new Set())).toBe(true);
    expect(gatewayNamespaceAllowed(gatewayPool({ namespace: 'istio-system' }), new Set())).toBe(false);
    expect(gatewayNamespaceAllowed(gatewayPool({ namespace: 'istio-system' }), new Set(['gateways']))).toBe(false);
    expect(gatewayNamespaceAllowed(gatewayPool({ namespace: 'istio-system' }), new Set(['gateways', 'istio-system']))).toBe(true);
  });

  it('builds no EnvoyFilter for a gateway namespace outside the allowlist and names that namespace instead', () => {
    const pool = gatewayPool({ namespace: 'istio-system' });
    const refused = desiredPoolObjects(pool, [], options(ISTIO));
    expect(refused.gatewayNotAllowed).toBe('istio-system');
    expect(kinds(refused).filter((k) => k.startsWith('EnvoyFilter/'))).toEqual([]);
    // Nothing at all is written for the gateway: no DestinationRule either.
    expect(kinds(refused).filter((k) => k.startsWith('DestinationRule/'))).toEqual([]);

    const allowed = desiredPoolObjects(pool, [], options(ISTIO, ['istio-system']));
    expect(allowed.gatewayNotAllowed).toBeUndefined();
    expect(kinds(allowed)).toContain('EnvoyFilter/istio-system/ml-llama-ext-proc');
  });
});

describe('gateway paths in the desired state', () => {
  it('takes the GIE path where GIE is served: a GIE pool and the router DestinationRule under Istio, no EnvoyFilter', () => {
    const state = desiredPoolObjects(testPool(served), [], options([GIE_INFERENCE_POOL_API, DESTINATION_RULE_API, ENVOY_FILTER_API]));
    expect(kinds(state)).toEqual(expect.arrayContaining(['InferencePool/ml/llama', 'DestinationRule/ml/llama-router']));
    expect(kinds(state).some((k) => k.startsWith('EnvoyFilter/'))).toBe(false);
    expect(state.missingApis).toEqual([]);
  });

  it('takes the GIE path without a DestinationRule where Istio is absent (kgateway, GKE)', () => {
    const state = desiredPoolObjects(testPool(served), [], options([GIE_INFERENCE_POOL_API]));
    expect(kinds(state)).toContain('InferencePool/ml/llama');
    expect(kinds(state).some((k) => k.startsWith('DestinationRule/'))).toBe(false);
    expect(state.prune.map((r) => `${r.kind}/${r.name}`)).toContain('DestinationRule/llama-router');
  });

  it('takes the EnvoyFilter path when the pool asks for it, and then prunes its GIE pool even where GIE is served', () => {
    const state = desiredPoolObjects(gatewayPool({}), [], options([GIE_INFERENCE_POOL_API, ...ISTIO]));
    expect(kinds(state)).toEqual(expect.arrayContaining(['EnvoyFilter/ml/llama-ext-proc', 'DestinationRule/ml/llama-router']));
    expect(kinds(state).some((k) => k.startsWith('InferencePool/'))).toBe(false);
    expect(state.prune).toContainEqual({
      apiVersion: 'inference.networking.k8s.io/v1',
      kind: 'InferencePool',
      namespace: 'ml',
      name: 'llama',
    });
  });

  it('wires nothing, and needs no API, when neither GIE is served nor the EnvoyFilter path asked for', () => {
    const state = desiredPoolObjects(testPool(served), [], options(ISTIO));
    expect(kinds(state).some((k) => /^(EnvoyFilter|DestinationRule|InferencePool)\//.test(k))).toBe(false);
    expect(state.missingApis).toEqual([]);
  });
});

describe('router TLS', () => {
  it("reaches the router by its fully qualified Service host in the cluster's domain", () => {
    expect(routerHost(testPool(served), { clusterDomain: 'corp.example' })).toBe('llama-router.ml.svc.corp.example');
  });

  it('originates TLS without verification on the ext_proc port only, owned by the pool beside its Service', () => {
    const dr = buildRouterDestinationRule(testPool(served), { clusterDomain: 'cluster.local' });
    expect(dr.apiVersion).toBe('networking.istio.io/v1');
    expect(dr.metadata).toMatchObject({ name: 'llama-router', namespace: 'ml' });
    expect(dr.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'InferencePool', uid: 'uid-1', controller: true })]);
    expect(dr.spec).toEqual({
      host: 'llama-router.ml.svc.cluster.local',
      trafficPolicy: { portLevelSettings: [{ port: { number: 9002 }, tls: { mode: 'SIMPLE', insecureSkipVerify: true } }] },
    });
  });
});

describe('cleanup decisions', () => {
  const id = poolIdentity(gatewayPool({}));

  it('holds the finalizer only while the wanted filter is outside the pool namespace', () => {
    expect(GATEWAY_CLEANUP_FINALIZER).toBe('inference.kvroute.io/gateway-cleanup');
    expect(needsCleanupFinalizer(id, { namespace: 'istio-system' })).toBe(true);
    expect(needsCleanupFinalizer(id, { namespace: 'ml' })).toBe(false);
    expect(needsCleanupFinalizer(id, undefined)).toBe(false);
  });

  it("selects a pool's filters by its namespace and name labels", () => {
    expect(envoyFilterSelector(id)).toBe('inference.kvroute.io/pool-namespace=ml,inference.kvroute.io/pool-name=llama');
  });

  it("deletes every filter of the pool except the wanted one, and never another pool's or a hand-written one", () => {
    const listed = [
      live('istio-system', 'ml-llama-ext-proc', labelsOf('ml', 'llama')),
      live('gateways', 'ml-llama-ext-proc', labelsOf('ml', 'llama')),
      live('ml', 'llama-ext-proc', {}, 'uid-1'),
      live('gateways', 'team-b-llama-ext-proc', labelsOf('team-b', 'llama')),
      live('ml', 'hand-written'),
    ];
    expect(staleEnvoyFilters(id, { namespace: 'gateways', name: 'ml-llama-ext-proc' }, listed)).toEqual([
      { namespace: 'istio-system', name: 'ml-llama-ext-proc', uid: 'uid-istio-system-ml-llama-ext-proc' },
      { namespace: 'ml', name: 'llama-ext-proc', uid: 'uid-ml-llama-ext-proc' },
    ]);
    expect(staleEnvoyFilters(id, undefined, listed).map((r) => `${r.namespace}/${r.name}`)).toEqual([
      'istio-system/ml-llama-ext-proc',
      'gateways/ml-llama-ext-proc',
      'ml/llama-ext-proc',
    ]);
  });

  it('lists a filter found twice (by label and at its legacy name) once', () => {
    const f = live('ml', 'llama-ext-proc', labelsOf('ml', 'llama'), 'uid-1');
    expect(staleEnvoyFilters(id, undefined, [f, f])).toHaveLength(1);
  });
});
