// Desired gateway wiring of an InferencePool: the Istio EnvoyFilter that inserts ext_proc before the
// router filter on the selected gateway, and the Gateway API Inference Extension InferencePool that
// lets HTTPRoutes point at the pool (only built when that CRD is installed).

import type { InferencePool } from '../../api/inference-pool.ts';
import { names, ownedMeta, podSelector, type Owned } from '../objects.ts';
import { ROUTER_PORTS } from './router.ts';

export const GIE_INFERENCE_POOL_CRD = 'inferencepools.inference.networking.k8s.io';

export interface GatewayOptions {
  clusterDomain: string;
}

export type EnvoyFilter = Owned & { spec: Record<string, unknown> };
export type GatewayInferencePool = Owned & { spec: Record<string, unknown> };

export function buildEnvoyFilter(pool: InferencePool, options: GatewayOptions): EnvoyFilter | undefined {
  const gw = pool.spec.gateway;
  if (!gw.envoyFilter || !gw.workloadSelector) return undefined;
  const ns = pool.metadata.namespace ?? 'default';
  const service = `${names.router(pool.metadata.name)}.${ns}.svc.${options.clusterDomain}`;
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: ownedMeta(pool, names.envoyFilter(pool.metadata.name), 'gateway'),
    spec: {
      workloadSelector: { labels: gw.workloadSelector },
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: {
            context: 'GATEWAY',
            listener: {
              filterChain: {
                filter: {
                  name: 'envoy.filters.network.http_connection_manager',
                  subFilter: { name: 'envoy.filters.http.router' },
                },
              },
            },
          },
          patch: {
            operation: 'INSERT_BEFORE',
            value: {
              name: 'envoy.filters.http.ext_proc',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
                failure_mode_allow: pool.spec.router.failureMode === 'FailOpen',
                message_timeout: gw.messageTimeout,
                // The router reads the prompt from the buffered request body and picks a pod from the
                // headers and body alone; it never needs the response body.
                processing_mode: {
                  request_header_mode: 'SEND',
                  request_body_mode: 'BUFFERED',
                  request_trailer_mode: 'SKIP',
                  response_header_mode: 'SEND',
                  response_body_mode: 'NONE',
                  response_trailer_mode: 'SKIP',
                },
                grpc_service: {
                  envoy_grpc: { cluster_name: `outbound|${ROUTER_PORTS.grpc}||${service}` },
                  timeout: '10s',
                },
              },
            },
          },
        },
      ],
    },
  };
}

export function buildGatewayInferencePool(pool: InferencePool): GatewayInferencePool {
  return {
    apiVersion: 'inference.networking.k8s.io/v1',
    kind: 'InferencePool',
    metadata: ownedMeta(pool, names.gatewayPool(pool.metadata.name), 'gateway'),
    spec: {
      selector: { matchLabels: podSelector(pool) },
      targetPorts: [{ number: pool.spec.targetPort }],
      endpointPickerRef: {
        name: names.router(pool.metadata.name),
        port: { number: ROUTER_PORTS.grpc },
        failureMode: pool.spec.router.failureMode,
      },
    },
  };
}
