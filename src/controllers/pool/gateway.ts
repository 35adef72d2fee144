// Gateway wiring of an InferencePool shared by both paths (a GIE InferencePool, or an Istio EnvoyFilter):
// where the router is reached and the DestinationRule that makes Istio speak TLS to it, which gateway
// namespaces a pool may write into (the operator's allowlist), and the identity, ownership and
// cleanup decisions for EnvoyFilters, which may live outside the pool's namespace.

import type { InferencePool } from '../../api/inference-pool.ts';
import { names, ownedMeta, type Owned } from '../objects.ts';
import { DESTINATION_RULE_API, ENVOY_FILTER_API } from '../runtime/optional-apis.ts';
import { POOL_NAME_LABEL, POOL_NAMESPACE_LABEL, ownedByPool, type LiveObject, type PoolIdentity } from './ownership.ts';
import { ROUTER_PORTS } from './router.ts';

export const ENVOY_FILTER_API_VERSION = `${ENVOY_FILTER_API.group}/${ENVOY_FILTER_API.version}`;
const DESTINATION_RULE_API_VERSION = `${DESTINATION_RULE_API.group}/${DESTINATION_RULE_API.version}`;
/** Held by a pool while it may have an EnvoyFilter outside its namespace, which the collector cannot reach. */
export const GATEWAY_CLEANUP_FINALIZER = 'inference.kvroute.io/gateway-cleanup';

export interface GatewayOptions {
  clusterDomain: string;
}

export interface EnvoyFilterRef {
  namespace: string;
  name: string;
  uid?: string;
}

export type DestinationRule = Owned & {
  spec: {
    host: string;
    trafficPolicy: { portLevelSettings: { port: { number: number }; tls: { mode: 'SIMPLE'; insecureSkipVerify: boolean } }[] };
  };
};

export function poolIdentity(pool: InferencePool): PoolIdentity {
  return {
    namespace: pool.metadata.namespace ?? 'default',
    name: pool.metadata.name,
    ...(pool.metadata.uid ? { uid: pool.metadata.uid } : {}),
  };
}

/** The namespace the pool's EnvoyFilter belongs in: where the gateway workload runs. */
export function gatewayNamespace(pool: InferencePool): string {
  return pool.spec.gateway.namespace ?? pool.metadata.namespace ?? 'default';
}

/**
 * Whether the pool may write into its gateway namespace: its own namespace always, another only when the
 * operator's allowlist (--gateway-namespaces) names it. Istio applies a filter in its root namespace to
 * every gateway in the mesh, so letting any pool author pick the namespace would hand them the gateway.
 */
export function gatewayNamespaceAllowed(pool: InferencePool, allowed: ReadonlySet<string>): boolean {
  const ns = gatewayNamespace(pool);
  return ns === (pool.metadata.namespace ?? 'default') || allowed.has(ns);
}

/** The router Service's fully qualified host: Istio names its clusters, and a DestinationRule its host, by it. */
export function routerHost(pool: InferencePool, options: GatewayOptions): string {
  return `${names.router(pool.metadata.name)}.${pool.metadata.namespace ?? 'default'}.svc.${options.clusterDomain}`;
}

/**
 * The DestinationRule that makes Istio's gateways originate TLS to the router's ext_proc port. The
 * router serves TLS with a self-signed certificate unless given one, hence no verification; only the
 * ext_proc port is affected, so health and metrics stay plaintext. Same namespace as the Service, so
 * Istio applies it to clients in every namespace.
 */
export function buildRouterDestinationRule(pool: InferencePool, options: GatewayOptions): DestinationRule {
  return {
    apiVersion: DESTINATION_RULE_API_VERSION,
    kind: 'DestinationRule',
    metadata: ownedMeta(pool, names.router(pool.metadata.name), 'gateway'),
    spec: {
      host: routerHost(pool, options),
      trafficPolicy: { portLevelSettings: [{ port: { number: ROUTER_PORTS.grpc }, tls: { mode: 'SIMPLE', insecureSkipVerify: true } }] },
    },
  };
}

/** The label selector that lists every EnvoyFilter of a pool, in all namespaces. */
export function envoyFilterSelector(pool: PoolIdentity): string {
  return `${POOL_NAMESPACE_LABEL}=${pool.namespace},${POOL_NAME_LABEL}=${pool.name}`;
}

/**
 * The pool's filters to delete: every one it owns except the one it wants (`keep`). Make-before-break: the
 * caller applies the wanted filter first, so a gateway switching namespaces never runs without ext_proc.
 */
export function staleEnvoyFilters(
  pool: PoolIdentity,
  keep: { namespace: string; name: string } | undefined,
  live: readonly LiveObject[],
): EnvoyFilterRef[] {
  const out: EnvoyFilterRef[] = [];
  const seen = new Set<string>();
  for (const f of live) {
    const namespace = f.metadata?.namespace;
    const name = f.metadata?.name;
    if (!namespace || !name || !ownedByPool(pool, f)) continue;
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
