import { describe, it, expect } from '@jest/globals';
import { InferencePool } from '../../api/inference-pool.ts';
import { describeIssues } from '../../api/meta.ts';
import { testPool } from '../testing.ts';
import {
  GATEWAY_CLEANUP_FINALIZER,
  buildEnvoyFilter,
  envoyFilterOwnedBy,
  envoyFilterSelector,
  gatewayNamespace,
  needsCleanupFinalizer,
  poolIdentity,
  staleEnvoyFilters,
} from './gateway.ts';

const gatewayPool = (gateway: Record<string, unknown>, meta: { namespace?: string; name?: string } = {}) =>
  testPool({ model: { name: 'm' }, selector: { app: 'vllm' }, gateway: { envoyFilter: true, workloadSelector: { istio: 'ingressgateway' }, ...gateway } }, meta);
const clusterName = (f: ReturnType<typeof buildEnvoyFilter>) =>
  (f!.spec.configPatches as { patch: { value: { typed_config: { grpc_service: { envoy_grpc: { cluster_name: string } } } } } }[])[0]!.patch.value.typed_config
    .grpc_service.envoy_grpc.cluster_name;
const live = (namespace: string, name: string, labels: Record<string, string> = {}, ownerUid?: string) => ({
  metadata: { namespace, name, uid: `uid-${namespace}-${name}`, labels, ...(ownerUid ? { ownerReferences: [{ kind: 'InferencePool', uid: ownerUid }] } : {}) },
});
const labelsOf = (namespace: string, name: string) => ({ 'inference.kvroute.io/pool-namespace': namespace, 'inference.kvroute.io/pool-name': name });

describe('buildEnvoyFilter placement', () => {
  it('keeps the filter beside the pool, owned by it, when no gateway namespace is given', () => {
    const f = buildEnvoyFilter(gatewayPool({}), { clusterDomain: 'cluster.local' })!;
    expect(f.metadata).toMatchObject({ name: 'llama-ext-proc', namespace: 'ml' });
    expect(f.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'InferencePool', uid: 'uid-1', controller: true })]);
    expect(f.metadata.labels).toMatchObject(labelsOf('ml', 'llama'));
  });

  it('puts the filter in the gateway namespace without an owner reference, named after the pool and its namespace, with the router reached by FQDN', () => {
    const pool = gatewayPool({ namespace: 'istio-system' });
    const f = buildEnvoyFilter(pool, { clusterDomain: 'corp.example' })!;
    expect(gatewayNamespace(pool)).toBe('istio-system');
    expect(f.metadata).toMatchObject({ name: 'ml-llama-ext-proc', namespace: 'istio-system', labels: labelsOf('ml', 'llama') });
    expect(f.metadata.ownerReferences).toBeUndefined();
    expect(f.spec.workloadSelector).toEqual({ labels: { istio: 'ingressgateway' } });
    expect(clusterName(f)).toBe('outbound|9002||llama-router.ml.svc.corp.example');
  });

  it('gives same-named pools of two namespaces distinct filters in one shared gateway namespace', () => {
    const a = buildEnvoyFilter(gatewayPool({ namespace: 'gateways' }, { namespace: 'team-a' }), { clusterDomain: 'cluster.local' })!;
    const b = buildEnvoyFilter(gatewayPool({ namespace: 'gateways' }, { namespace: 'team-b' }), { clusterDomain: 'cluster.local' })!;
    expect(a.metadata.name).not.toBe(b.metadata.name);
    expect(clusterName(a)).toBe('outbound|9002||llama-router.team-a.svc.cluster.local');
    expect(clusterName(b)).toBe('outbound|9002||llama-router.team-b.svc.cluster.local');
  });

  it('treats a gateway namespace equal to the pool namespace as the same-namespace case', () => {
    const f = buildEnvoyFilter(gatewayPool({ namespace: 'ml' }), { clusterDomain: 'cluster.local' })!;
    expect(f.metadata.name).toBe('llama-ext-proc');
    expect(f.metadata.ownerReferences).toHaveLength(1);
  });

  it('rejects a gateway namespace that is not a DNS label, naming the field', () => {
    const parsed = InferencePool.safeParse({ ...gatewayPool({}), spec: { model: { name: 'm' }, selector: { a: 'b' }, gateway: { namespace: 'Istio_System' } } });
    expect(parsed.success).toBe(false);
    expect(describeIssues(parsed.error!)).toBe('spec.gateway.namespace: must be a namespace name: lower-case letters, digits and "-"');
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

  it('selects a pool\'s filters by its namespace and name labels', () => {
    expect(envoyFilterSelector(id)).toBe('inference.kvroute.io/pool-namespace=ml,inference.kvroute.io/pool-name=llama');
  });

  it('recognises its filters by labels or, for filters from before the labels, by owner UID, and nothing else', () => {
    expect(envoyFilterOwnedBy(id, live('gw', 'x', labelsOf('ml', 'llama')))).toBe(true);
    expect(envoyFilterOwnedBy(id, live('ml', 'llama-ext-proc', {}, 'uid-1'))).toBe(true);
    expect(envoyFilterOwnedBy(id, live('gw', 'x', labelsOf('other', 'llama')))).toBe(false);
    expect(envoyFilterOwnedBy(id, live('ml', 'llama-ext-proc', {}, 'uid-of-an-older-pool'))).toBe(false);
    expect(envoyFilterOwnedBy(id, live('ml', 'hand-written'))).toBe(false);
  });

  it('deletes every filter of the pool except the wanted one, and never another pool\'s', () => {
    const listed = [
      live('istio-system', 'ml-llama-ext-proc', labelsOf('ml', 'llama')),
      live('gateways', 'ml-llama-ext-proc', labelsOf('ml', 'llama')),
      live('ml', 'llama-ext-proc', {}, 'uid-1'),
      live('gateways', 'team-b-llama-ext-proc', labelsOf('team-b', 'llama')),
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
