import { describe, it, expect } from '@jest/globals';
import { InferencePool } from '../../api/inference-pool.ts';
import { describeIssues } from '../../api/meta.ts';
import { testPool } from '../testing.ts';
import { buildEnvoyFilter, extProcFilterName, type ConfigPatch, type EnvoyFilter } from './envoy-filter.ts';
import { gatewayNamespace } from './gateway.ts';

const OPTIONS = { clusterDomain: 'cluster.local' };
const served = { model: { name: 'm' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };
const gateway = (extra: Record<string, unknown> = {}) => ({
  envoyFilter: true,
  workloadSelector: { istio: 'ingressgateway' },
  routeNames: ['llama-chat'],
  ...extra,
});
const gatewayPool = (
  extra: Record<string, unknown> = {},
  meta: { namespace?: string; name?: string } = {},
  spec: Record<string, unknown> = {},
) => testPool({ ...served, ...spec, gateway: gateway(extra) }, meta);
const build = (pool: InferencePool) => buildEnvoyFilter(pool, OPTIONS)!;
const patches = (f: EnvoyFilter, applyTo: ConfigPatch['applyTo']) => f.spec.configPatches.filter((p) => p.applyTo === applyTo);
const extProcValue = (f: EnvoyFilter) =>
  patches(f, 'HTTP_FILTER')[0]!.patch.value as { name: string; disabled: boolean; typed_config: Record<string, any> };
const clusterName = (f: EnvoyFilter) => extProcValue(f).typed_config.grpc_service.envoy_grpc.cluster_name as string;
const labelsOf = (namespace: string, name: string) => ({
  'inference.kvroute.io/pool-namespace': namespace,
  'inference.kvroute.io/pool-name': name,
});

describe('EnvoyFilter placement', () => {
  it('keeps the filter beside the pool, owned by it, when no gateway namespace is given', () => {
    const f = build(gatewayPool());
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

  it('gives same-named pools of two namespaces distinct filters, and distinct ext_proc filter names, in one shared gateway namespace', () => {
    const a = build(gatewayPool({ namespace: 'gateways' }, { namespace: 'team-a' }));
    const b = build(gatewayPool({ namespace: 'gateways' }, { namespace: 'team-b' }));
    expect(a.metadata.name).not.toBe(b.metadata.name);
    expect(extProcValue(a).name).toBe('kvroute.ext_proc.team-a.llama');
    expect(extProcValue(b).name).toBe('kvroute.ext_proc.team-b.llama');
    expect(clusterName(a)).toBe('outbound|9002||llama-router.team-a.svc.cluster.local');
    expect(clusterName(b)).toBe('outbound|9002||llama-router.team-b.svc.cluster.local');
  });

  it('treats a gateway namespace equal to the pool namespace as the same-namespace case', () => {
    const f = build(gatewayPool({ namespace: 'ml' }));
    expect(f.metadata.name).toBe('llama-ext-proc');
    expect(f.metadata.ownerReferences).toHaveLength(1);
  });

  it('builds nothing for a pool that is not on the EnvoyFilter path', () => {
    expect(buildEnvoyFilter(testPool(served), OPTIONS)).toBeUndefined();
  });
});

describe('EnvoyFilter scope: ext_proc on the pool routes only', () => {
  it('inserts a disabled ext_proc filter of its own before the router filter in gateway listeners', () => {
    const [filter] = patches(build(gatewayPool()), 'HTTP_FILTER');
    expect(filter!.match).toEqual({
      context: 'GATEWAY',
      listener: {
        filterChain: {
          filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } },
        },
      },
    });
    expect(filter!.patch.operation).toBe('INSERT_BEFORE');
    expect(filter!.patch.value).toMatchObject({ name: 'kvroute.ext_proc.ml.llama', disabled: true });
  });

  it("enables that filter on each named route through ExtProcPerRoute keyed by the filter's name, and on no other route", () => {
    const f = build(gatewayPool({ routeNames: ['llama-chat', 'default.llama-route.0'] }));
    const routes = patches(f, 'HTTP_ROUTE');
    expect(routes.map((r) => r.match)).toEqual([
      { context: 'GATEWAY', routeConfiguration: { vhost: { route: { name: 'llama-chat' } } } },
      { context: 'GATEWAY', routeConfiguration: { vhost: { route: { name: 'default.llama-route.0' } } } },
    ]);
    for (const r of routes) {
      expect(r.patch.operation).toBe('MERGE');
      expect(r.patch.value).toEqual({
        typed_per_filter_config: {
          'kvroute.ext_proc.ml.llama': {
            '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute',
            overrides: { processing_mode: extProcValue(f).typed_config.processing_mode },
          },
        },
      });
    }
  });
});

describe('EnvoyFilter ext_proc settings', () => {
  it('streams both bodies full duplex with trailers, lets the router override the mode and trades envoy.lb metadata', () => {
    const config = extProcValue(build(gatewayPool())).typed_config;
    expect(config['@type']).toBe('type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor');
    expect(config.processing_mode).toEqual({
      request_header_mode: 'SEND',
      request_body_mode: 'FULL_DUPLEX_STREAMED',
      request_trailer_mode: 'SEND',
      response_header_mode: 'SEND',
      response_body_mode: 'FULL_DUPLEX_STREAMED',
      response_trailer_mode: 'SEND',
    });
    expect(config.allow_mode_override).toBe(true);
    // Envoy would send the cluster name as :authority; its "|" is not a valid authority character.
    expect(config.grpc_service.envoy_grpc.authority).toBe('llama-router.ml.svc.cluster.local');
    expect(config.metadata_options).toEqual({
      forwarding_namespaces: { untyped: ['envoy.lb'] },
      receiving_namespaces: { untyped: ['envoy.lb'] },
    });
  });

  it('waits 1000 s for a reply by default (a reply may wait for a generation) and the pool messageTimeout when set', () => {
    expect(extProcValue(build(gatewayPool())).typed_config.message_timeout).toBe('1000s');
    expect(extProcValue(build(gatewayPool({ messageTimeout: '300s' }))).typed_config.message_timeout).toBe('300s');
  });

  it('returns objects of its own: editing one rendered filter never changes the next', () => {
    const first = build(gatewayPool());
    extProcValue(first).typed_config.processing_mode.request_trailer_mode = 'SKIP';
    (patches(first, 'HTTP_ROUTE')[0]!.patch.value as any).typed_per_filter_config[
      'kvroute.ext_proc.ml.llama'
    ].overrides.processing_mode.response_body_mode = 'NONE';
    const next = build(gatewayPool());
    expect(extProcValue(next).typed_config.processing_mode.request_trailer_mode).toBe('SEND');
    expect(
      (patches(next, 'HTTP_ROUTE')[0]!.patch.value as any).typed_per_filter_config['kvroute.ext_proc.ml.llama'].overrides.processing_mode
        .response_body_mode,
    ).toBe('FULL_DUPLEX_STREAMED');
  });

  it('fails open only for a FailOpen pool', () => {
    expect(extProcValue(build(gatewayPool())).typed_config.failure_mode_allow).toBe(false);
    expect(extProcValue(build(gatewayPool({}, {}, { router: { failureMode: 'FailOpen' } }))).typed_config.failure_mode_allow).toBe(true);
  });

  it("buffers the request body of a FailOpen pool (a full-duplex body cannot fail open), up to the router's 64 MiB on its routes only", () => {
    const failOpen = build(gatewayPool({}, {}, { router: { failureMode: 'FailOpen' } }));
    const mode = {
      request_header_mode: 'SEND',
      request_body_mode: 'BUFFERED',
      request_trailer_mode: 'SEND',
      response_header_mode: 'SEND',
      response_body_mode: 'STREAMED',
      response_trailer_mode: 'SEND',
    };
    expect(extProcValue(failOpen).typed_config.processing_mode).toEqual(mode);
    for (const route of patches(failOpen, 'HTTP_ROUTE')) {
      const value = route.patch.value as any;
      expect(value.typed_per_filter_config['kvroute.ext_proc.ml.llama'].overrides.processing_mode).toEqual(mode);
      expect(value.request_body_buffer_limit).toBe(64 * 1024 * 1024);
    }
    // FailClose keeps GIE's full duplex streaming and the listener's buffer limit.
    const failClose = build(gatewayPool());
    expect(extProcValue(failClose).typed_config.processing_mode.request_body_mode).toBe('FULL_DUPLEX_STREAMED');
    expect(patches(failClose, 'HTTP_ROUTE').map((r) => (r.patch.value as any).request_body_buffer_limit)).toEqual(
      patches(failClose, 'HTTP_ROUTE').map(() => undefined),
    );
  });

  it('ejects a pod refusing connections from the fallback pool of a FailOpen pool only', () => {
    const cluster = (f: EnvoyFilter) => patches(f, 'CLUSTER')[0]!.patch.value as any;
    const detection = cluster(build(gatewayPool({}, {}, { router: { failureMode: 'FailOpen' } }))).outlier_detection;
    expect(detection).toMatchObject({
      split_external_local_origin_errors: true,
      consecutive_local_origin_failure: 1,
      enforcing_consecutive_5xx: 0,
    });
    expect(cluster(build(gatewayPool())).outlier_detection).toBeUndefined();
  });
});

describe('EnvoyFilter cluster patch: the gateway honours the pick', () => {
  const overrideHost = (f: EnvoyFilter) => {
    const [cluster] = patches(f, 'CLUSTER');
    return {
      match: cluster!.match,
      operation: cluster!.patch.operation,
      policy: (cluster!.patch.value as any).load_balancing_policy.policies[0].typed_extension_config,
    };
  };

  it("sets override_host on the operator's vLLM Service cluster, reading the router's envoy.lb pick and falling back to round robin", () => {
    const { match, operation, policy } = overrideHost(build(gatewayPool()));
    expect(match).toEqual({ context: 'GATEWAY', cluster: { service: 'llama-vllm.ml.svc.cluster.local', portNumber: 8000 } });
    expect(operation).toBe('MERGE');
    expect(policy.name).toBe('envoy.load_balancing_policies.override_host');
    // Metadata only: a client cannot pick a pod by sending the header itself.
    expect(policy.typed_config.override_host_sources).toEqual([
      { metadata: { key: 'envoy.lb', path: [{ key: 'x-gateway-destination-endpoint' }] } },
    ]);
    expect(policy.typed_config.fallback_policy.policies[0].typed_extension_config.name).toBe('envoy.load_balancing_policies.round_robin');
  });

  it("patches the backendRef Service's cluster for adopted pods", () => {
    const pool = testPool({
      model: { name: 'm' },
      selector: { matchLabels: { app: 'vllm' } },
      gateway: gateway({ backendRef: { name: 'vllm', port: 80 } }),
    });
    expect(overrideHost(build(pool)).match).toEqual({
      context: 'GATEWAY',
      cluster: { service: 'vllm.ml.svc.cluster.local', portNumber: 80 },
    });
  });
});

describe('EnvoyFilter path validation', () => {
  const parse = (gw: Record<string, unknown>) =>
    InferencePool.safeParse({
      apiVersion: 'inference.kvroute.io/v1alpha1',
      kind: 'InferencePool',
      metadata: { name: 'p', namespace: 'ml' },
      spec: { ...served, gateway: gw },
    });

  it('rejects the EnvoyFilter path without route names or a workload selector, naming the field', () => {
    const noRoutes = parse({ envoyFilter: true, workloadSelector: { istio: 'ingressgateway' } });
    expect(noRoutes.success).toBe(false);
    expect(describeIssues(noRoutes.error!)).toBe(
      "spec.gateway.routeNames: routeNames is required when envoyFilter is true: ext_proc runs only on the pool's routes",
    );
    const noSelector = parse({ envoyFilter: true, routeNames: ['r'] });
    expect(describeIssues(noSelector.error!)).toBe('spec.gateway.workloadSelector: workloadSelector is required when envoyFilter is true');
  });

  it('rejects the EnvoyFilter path for adopted pods without a backendRef, naming the field', () => {
    const spec = { model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } }, gateway: gateway() };
    const parsed = InferencePool.safeParse({
      apiVersion: 'inference.kvroute.io/v1alpha1',
      kind: 'InferencePool',
      metadata: { name: 'p', namespace: 'ml' },
      spec,
    });
    expect(parsed.success).toBe(false);
    expect(describeIssues(parsed.error!)).toMatch(
      /^spec\.gateway\.backendRef: gateway\.backendRef is required when gateway\.envoyFilter is true and modelServer is absent/,
    );
    expect(
      InferencePool.safeParse({
        ...parsed,
        apiVersion: 'inference.kvroute.io/v1alpha1',
        kind: 'InferencePool',
        metadata: { name: 'p' },
        spec: { ...spec, gateway: gateway({ backendRef: { name: 'vllm', port: 80 } }) },
      }).success,
    ).toBe(true);
  });

  it('rejects a gateway namespace that is not a DNS label, naming the field', () => {
    const parsed = parse({ namespace: 'Istio_System' });
    expect(parsed.success).toBe(false);
    expect(describeIssues(parsed.error!)).toBe('spec.gateway.namespace: must be a namespace name: lower-case letters, digits and "-"');
  });

  it('names the pool in the ext_proc filter so that two pools never share one', () => {
    expect(extProcFilterName(testPool(served, { namespace: 'a', name: 'x' }))).not.toBe(
      extProcFilterName(testPool(served, { namespace: 'b', name: 'x' })),
    );
  });
});
