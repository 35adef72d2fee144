// The Istio EnvoyFilter of a pool on the EnvoyFilter path (Istio without GIE): an ext_proc filter of
// the pool's own, disabled on the gateway's listener and enabled only on the pool's routes; and the
// cluster patch that makes the gateway send each request to the pod the router picked.

import type { InferencePool } from '../../api/inference-pool.ts';
import { commonLabels, names, ownerReference, type Owned } from '../objects.ts';
import { ENVOY_FILTER_API_VERSION, gatewayNamespace, routerHost, type GatewayOptions } from './gateway.ts';
import { POOL_NAME_LABEL, POOL_NAMESPACE_LABEL } from './ownership.ts';
import { ROUTER_PORTS } from './router.ts';
import { duplexProcessingMode, failOpenProcessingMode } from '../../envoy/processing-mode.ts';
/** The dynamic-metadata namespace the router writes its pick to and reads the served endpoint from. */
const LB_METADATA_NAMESPACE = 'envoy.lb';
/** The key (in LB_METADATA_NAMESPACE and as a header) that carries the router's pick, `ip:port[,ip:port...]`. */
const DESTINATION_ENDPOINT_KEY = 'x-gateway-destination-endpoint';

const HCM = 'envoy.filters.network.http_connection_manager';
const EXT_PROC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor';
const EXT_PROC_PER_ROUTE_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute';
const OVERRIDE_HOST_TYPE = 'type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost';
const ROUND_ROBIN_TYPE = 'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin';

export type EnvoyFilter = Omit<Owned, 'metadata'> & {
  metadata: Omit<Owned['metadata'], 'ownerReferences'> & { ownerReferences?: Owned['metadata']['ownerReferences'] };
  spec: { workloadSelector: { labels: Record<string, string> }; configPatches: ConfigPatch[] };
};

export interface ConfigPatch {
  applyTo: 'HTTP_FILTER' | 'HTTP_ROUTE' | 'CLUSTER';
  match: Record<string, unknown> & { context: 'GATEWAY' };
  patch: { operation: 'INSERT_BEFORE' | 'MERGE'; value: Record<string, unknown> };
}

const processingMode = (pool: InferencePool) =>
  pool.spec.router.failureMode === 'FailOpen' ? failOpenProcessingMode() : duplexProcessingMode();

/**
 * The largest body Envoy buffers for a FailOpen pool's router: the router's own default bound
 * (--max-request-body-bytes, 64 MiB). Set per route (Route.request_body_buffer_limit, Envoy >= 1.36),
 * so the gateway's listener limit (1 MiB by default) stays as it is for every other route.
 */
const FAIL_OPEN_BODY_BUFFER_LIMIT = 64 * 1024 * 1024;

/**
 * A pod that refuses a connection is ejected from the pool's cluster at once (for 5 s, longer on
 * repeats), so requests failed open to the round-robin fallback skip it; statuses never eject.
 */
const connectFailureOutlierDetection = () => ({
  split_external_local_origin_errors: true,
  consecutive_local_origin_failure: 1,
  enforcing_consecutive_local_origin_failure: 100,
  enforcing_local_origin_success_rate: 0,
  enforcing_consecutive_5xx: 0,
  enforcing_consecutive_gateway_failure: 0,
  enforcing_success_rate: 0,
  interval: '1s',
  base_ejection_time: '5s',
  max_ejection_percent: 50,
});

/**
 * The filter's object name. In the pool's own namespace it keeps the name it always had; elsewhere it
 * carries the pool's namespace too, because pools of one name in several namespaces may share one
 * gateway namespace.
 */
function envoyFilterName(pool: InferencePool): string {
  const ns = pool.metadata.namespace ?? 'default';
  const base = names.envoyFilter(pool.metadata.name);
  return gatewayNamespace(pool) === ns ? base : `${ns}-${base}`;
}

/**
 * The ext_proc filter's name in the gateway's filter chain: one per pool, so pools sharing a gateway
 * each enable their own filter on their own routes and never run in series.
 */
export function extProcFilterName(pool: InferencePool): string {
  return `kvroute.ext_proc.${pool.metadata.namespace ?? 'default'}.${pool.metadata.name}`;
}

/** The Service (and port) whose gateway cluster carries the pool's traffic: spec.gateway.backendRef, else the operator's vLLM Service. */
function backendService(pool: InferencePool): { name: string; port: number } | undefined {
  const ref = pool.spec.gateway.backendRef;
  if (ref) return { name: ref.name, port: ref.port };
  if (pool.spec.modelServer) return { name: names.vllm(pool.metadata.name), port: pool.spec.modelServer.port };
  return undefined;
}

/**
 * The pool's EnvoyFilter in the gateway namespace, or undefined when the pool is not on the EnvoyFilter
 * path. Throws when the path lacks what it needs (the CRD's validation rules make that unreachable for
 * pools the API server accepted), naming the field.
 */
export function buildEnvoyFilter(pool: InferencePool, options: GatewayOptions): EnvoyFilter | undefined {
  const gw = pool.spec.gateway;
  if (!gw.envoyFilter) return undefined;
  const backend = backendService(pool);
  if (!gw.workloadSelector) throw new Error('spec.gateway.workloadSelector: required when envoyFilter is true');
  if (!gw.routeNames?.length) throw new Error('spec.gateway.routeNames: required when envoyFilter is true');
  if (!backend)
    throw new Error('spec.gateway.backendRef: required when envoyFilter is true and the operator does not run the model servers');
  const ns = pool.metadata.namespace ?? 'default';
  const filterNamespace = gatewayNamespace(pool);
  const filterName = extProcFilterName(pool);
  const labels = { ...commonLabels(pool, 'gateway'), [POOL_NAMESPACE_LABEL]: ns, [POOL_NAME_LABEL]: pool.metadata.name };

  const extProc: ConfigPatch = {
    applyTo: 'HTTP_FILTER',
    match: { context: 'GATEWAY', listener: { filterChain: { filter: { name: HCM, subFilter: { name: 'envoy.filters.http.router' } } } } },
    patch: {
      operation: 'INSERT_BEFORE',
      value: {
        name: filterName,
        // Off for every route of the gateway but the pool's, which enable it through typed_per_filter_config.
        disabled: true,
        typed_config: {
          '@type': EXT_PROC_TYPE,
          // The cluster Istio generates for the router Service, by its fully qualified host (the gateway
          // may run in another namespace); the pool's DestinationRule makes it originate TLS. Without an
          // explicit authority Envoy sends the cluster name, whose "|" an HTTP/2 server rejects as a
          // malformed :authority (nghttp2, and so Node's gRPC server, reset the stream).
          grpc_service: {
            envoy_grpc: {
              cluster_name: `outbound|${ROUTER_PORTS.grpc}||${routerHost(pool, options)}`,
              authority: routerHost(pool, options),
            },
            timeout: '10s',
          },
          failure_mode_allow: pool.spec.router.failureMode === 'FailOpen',
          allow_mode_override: true,
          message_timeout: gw.messageTimeout,
          processing_mode: processingMode(pool),
          metadata_options: {
            forwarding_namespaces: { untyped: [LB_METADATA_NAMESPACE] },
            receiving_namespaces: { untyped: [LB_METADATA_NAMESPACE] },
          },
        },
      },
    },
  };

  const routes: ConfigPatch[] = gw.routeNames.map((route) => ({
    applyTo: 'HTTP_ROUTE',
    match: { context: 'GATEWAY', routeConfiguration: { vhost: { route: { name: route } } } },
    patch: {
      operation: 'MERGE',
      value: {
        typed_per_filter_config: {
          [filterName]: { '@type': EXT_PROC_PER_ROUTE_TYPE, overrides: { processing_mode: processingMode(pool) } },
        },
        ...(pool.spec.router.failureMode === 'FailOpen' ? { request_body_buffer_limit: FAIL_OPEN_BODY_BUFFER_LIMIT } : {}),
      },
    },
  }));

  // Istio's own choice for InferencePools: the cluster picks the host named in the router's envoy.lb
  // metadata and falls back to round robin without one (fail-open, a router that picked nothing). The
  // metadata, unlike the header, cannot be set by a client. Istio's EDS, mTLS and health stay as they are.
  const cluster: ConfigPatch = {
    applyTo: 'CLUSTER',
    match: { context: 'GATEWAY', cluster: { service: `${backend.name}.${ns}.svc.${options.clusterDomain}`, portNumber: backend.port } },
    patch: {
      operation: 'MERGE',
      value: {
        // Only a FailOpen pool sends requests without a pick to the round-robin fallback.
        ...(pool.spec.router.failureMode === 'FailOpen' ? { outlier_detection: connectFailureOutlierDetection() } : {}),
        load_balancing_policy: {
          policies: [
            {
              typed_extension_config: {
                name: 'envoy.load_balancing_policies.override_host',
                typed_config: {
                  '@type': OVERRIDE_HOST_TYPE,
                  override_host_sources: [{ metadata: { key: LB_METADATA_NAMESPACE, path: [{ key: DESTINATION_ENDPOINT_KEY }] } }],
                  fallback_policy: {
                    policies: [
                      {
                        typed_extension_config: {
                          name: 'envoy.load_balancing_policies.round_robin',
                          typed_config: { '@type': ROUND_ROBIN_TYPE },
                        },
                      },
                    ],
                  },
                },
              },
            },
          ],
        },
      },
    },
  };

  return {
    apiVersion: ENVOY_FILTER_API_VERSION,
    kind: 'EnvoyFilter',
    metadata: {
      name: envoyFilterName(pool),
      namespace: filterNamespace,
      labels,
      // Owner references cannot cross namespaces; a filter elsewhere is removed through the finalizer.
      ...(filterNamespace === ns ? { ownerReferences: [ownerReference(pool)] } : {}),
    },
    spec: { workloadSelector: { labels: gw.workloadSelector }, configPatches: [extProc, ...routes, cluster] },
  };
}
