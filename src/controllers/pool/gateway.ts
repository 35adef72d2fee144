// Desired gateway wiring of an InferencePool: the Istio EnvoyFilter that inserts ext_proc before the
// router filter on the selected gateway (in the gateway's namespace, which may not be the pool's), the
// pure decisions about which of a pool's filters are stale, and the Gateway API Inference Extension
// InferencePool that lets HTTPRoutes point at the pool (only built when that CRD is installed).

import type { InferencePool } from '../../api/inference-pool.ts';
import { commonLabels, names, ownedMeta, ownerReference, podSelector, type Owned } from '../objects.ts';
import { ROUTER_PORTS } from './router.ts';

export const GIE_INFERENCE_POOL_CRD = 'inferencepools.inference.networking.k8s.io';
export const ENVOY_FILTER_API_VERSION = 'networking.istio.io/v1alpha3';
/** Labels that find a pool's EnvoyFilters in any namespace: owner references cannot cross namespaces. */
export const POOL_NAMESPACE_LABEL = 'inference.kvroute.io/pool-namespace';
export const POOL_NAME_LABEL = 'inference.kvroute.io/pool-name';
/** Held by a pool while it may have an EnvoyFilter outside its namespace, which the collector cannot reach. */
export const GATEWAY_CLEANUP_FINALIZER = 'inference.kvroute.io/gateway-cleanup';

export interface GatewayOptions {
  clusterDomain: string;
}

/** What identifies a pool to its gateway objects; enough to clean up after a pool whose spec no longer parses. */
export interface PoolIdentity {
  namespace: string;
  name: string;
  uid?: string;
}

/** An EnvoyFilter as listed from the API server: only the fields the cleanup decisions read. */
export interface LiveEnvoyFilter {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    ownerReferences?: { kind: string; uid: string }[];
  };
}

export interface EnvoyFilterRef {
  namespace: string;
  name: string;
  uid?: string;
}

export type EnvoyFilter = Omit<Owned, 'metadata'> & {
  metadata: Omit<Owned['metadata'], 'ownerReferences'> & { ownerReferences?: Owned['metadata']['ownerReferences'] };
  spec: Record<string, unknown>;
};
export type GatewayInferencePool = Owned & { spec: Record<string, unknown> };

export function poolIdentity(pool: InferencePool): PoolIdentity {
  return { namespace: pool.metadata.namespace ?? 'default', name: pool.metadata.name, ...(pool.metadata.uid ? { uid: pool.metadata.uid } : {}) };
}

/** The namespace the pool's EnvoyFilter belongs in: where the gateway workload runs. */
export function gatewayNamespace(pool: InferencePool): string {
  return pool.spec.gateway.namespace ?? pool.metadata.namespace ?? 'default';
}

/**
 * The filter's name. In the pool's own namespace it keeps the name it always had; elsewhere it carries the
 * pool's namespace too, because pools of one name in several namespaces may share one gateway namespace.
 */
export function envoyFilterName(pool: InferencePool): string {
  const ns = pool.metadata.namespace ?? 'default';
  const base = names.envoyFilter(pool.metadata.name);
  return gatewayNamespace(pool) === ns ? base : `${ns}-${base}`;
}

/** The label selector that lists every EnvoyFilter of a pool, in all namespaces. */
export function envoyFilterSelector(pool: PoolIdentity): string {
  return `${POOL_NAMESPACE_LABEL}=${pool.namespace},${POOL_NAME_LABEL}=${pool.name}`;
}

/** Whether a live EnvoyFilter is this pool's: by its pool labels, or (filters from before those labels) by owner reference. */
export function envoyFilterOwnedBy(pool: PoolIdentity, live: LiveEnvoyFilter): boolean {
  const labels = live.metadata?.labels;
  if (labels?.[POOL_NAMESPACE_LABEL] === pool.namespace && labels?.[POOL_NAME_LABEL] === pool.name) return true;
  return pool.uid !== undefined && (live.metadata?.ownerReferences ?? []).some((r) => r.kind === 'InferencePool' && r.uid === pool.uid);
}

/**
 * The pool's filters to delete: every one it owns except the one it wants (`keep`). Make-before-break: the
 * caller applies the wanted filter first, so a gateway switching namespaces never runs without ext_proc.
 */
export function staleEnvoyFilters(pool: PoolIdentity, keep: { namespace: string; name: string } | undefined, live: readonly LiveEnvoyFilter[]): EnvoyFilterRef[] {
  const out: EnvoyFilterRef[] = [];
  const seen = new Set<string>();
  for (const f of live) {
    const namespace = f.metadata?.namespace;
    const name = f.metadata?.name;
    if (!namespace || !name || !envoyFilterOwnedBy(pool, f)) continue;
    if (keep && keep.namespace === namespace && keep.name === name) continue;
    const key = `${namespace}/${name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ namespace, name, ...(f.metadata?.uid ? { uid: f.metadata.uid } : {}) });
  }
  return out;
}

/** Whether the pool must hold the cleanup finalizer: its wanted filter lives outside its namespace. */
export function needsCleanupFinalizer(pool: PoolIdentity, wanted: { namespace: string } | undefined): boolean {
  return wanted !== undefined && wanted.namespace !== pool.namespace;
}

/** The pool's EnvoyFilter in the gateway namespace, or undefined when the gateway wiring is off. */
export function buildEnvoyFilter(pool: InferencePool, options: GatewayOptions): EnvoyFilter | undefined {
  const gw = pool.spec.gateway;
  if (!gw.envoyFilter || !gw.workloadSelector) return undefined;
  const ns = pool.metadata.namespace ?? 'default';
  const filterNamespace = gatewayNamespace(pool);
  // The gateway may run in another namespace: the Envoy cluster Istio generates for the router Service
  // is named by its fully qualified host, which reaches it from anywhere in the mesh.
  const service = `${names.router(pool.metadata.name)}.${ns}.svc.${options.clusterDomain}`;
  const labels = { ...commonLabels(pool, 'gateway'), [POOL_NAMESPACE_LABEL]: ns, [POOL_NAME_LABEL]: pool.metadata.name };
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
