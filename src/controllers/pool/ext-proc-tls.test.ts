// ext_proc runs over TLS by default on every gateway path the operator wires: the router it renders
// never turns TLS off (the router's --secure-serving defaults to true, src/cli/router.test.ts, and
// refuses plaintext clients, src/router/extproc/server.test.ts), and under Istio the DestinationRule
// that originates TLS covers exactly the cluster and port the gateway's ext_proc filter calls.

import { describe, expect, it } from '@jest/globals';
import { staticServedApis, DESTINATION_RULE_API, ENVOY_FILTER_API, GIE_INFERENCE_POOL_API } from '../runtime/optional-apis.ts';
import { testPool } from '../testing.ts';
import { desiredPoolObjects, type DesiredObject } from './desired.ts';
import type { DestinationRule } from './gateway.ts';
import type { EnvoyFilter } from './envoy-filter.ts';
import type { GieInferencePool } from './gie-pool.ts';
import { buildRouterDeployment, ROUTER_PORTS } from './router.ts';

const served = { model: { name: 'm' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };
const envoyFilterPath = {
  ...served,
  gateway: { envoyFilter: true, namespace: 'istio-system', workloadSelector: { istio: 'ingressgateway' }, routeNames: ['r'] },
};
const desired = (spec: Record<string, unknown>, apis = [GIE_INFERENCE_POOL_API, DESTINATION_RULE_API, ENVOY_FILTER_API]) =>
  desiredPoolObjects(testPool(spec), [], {
    defaultImage: 'kvroute:test',
    clusterDomain: 'cluster.local',
    apis: staticServedApis(apis),
    gatewayNamespaces: new Set(['istio-system']),
  });
const find = <T>(objects: DesiredObject[], kind: string) => objects.find((o) => o.kind === kind) as unknown as T | undefined;

describe('ext_proc over TLS', () => {
  it('never renders the router with TLS turned off', () => {
    for (const spec of [served, envoyFilterPath]) {
      const args = buildRouterDeployment(testPool(spec), { defaultImage: 'kvroute:test' }).spec!.template.spec!.containers[0]!.args!;
      expect(args.filter((a) => a.startsWith('--secure-serving'))).toEqual([]);
    }
  });

  it("has Istio originate TLS on the exact cluster and port the EnvoyFilter's ext_proc calls", () => {
    const { apply } = desired(envoyFilterPath);
    const filter = find<EnvoyFilter>(apply, 'EnvoyFilter')!;
    const rule = find<DestinationRule>(apply, 'DestinationRule')!;
    const extProc = filter.spec.configPatches[0]!.patch.value as {
      typed_config: { grpc_service: { envoy_grpc: { cluster_name: string } } };
    };
    const cluster = extProc.typed_config.grpc_service.envoy_grpc.cluster_name;
    expect(cluster).toBe(`outbound|${ROUTER_PORTS.grpc}||${rule.spec.host}`);
    expect(rule.spec.trafficPolicy.portLevelSettings).toEqual([
      { port: { number: ROUTER_PORTS.grpc }, tls: { mode: 'SIMPLE', insecureSkipVerify: true } },
    ]);
  });

  it('on the GIE path under Istio points the GIE pool at the TLS port and adds the DestinationRule', () => {
    const { apply } = desired(served);
    const pool = find<GieInferencePool>(apply, 'InferencePool')!;
    expect(pool.spec.endpointPickerRef.port.number).toBe(ROUTER_PORTS.grpc);
    expect(find<DestinationRule>(apply, 'DestinationRule')!.spec.trafficPolicy.portLevelSettings[0]!.tls.mode).toBe('SIMPLE');
  });

  it('reports a missing DestinationRule API on the EnvoyFilter path instead of wiring a plaintext call', () => {
    const state = desired(envoyFilterPath, [ENVOY_FILTER_API]);
    expect(state.missingApis).toContain('networking.istio.io/v1 DestinationRule');
  });
});
