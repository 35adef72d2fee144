// A stand-in for what Istio's control plane makes of a gateway, for testing EnvoyFilters against a real
// Envoy without Istio: a minimal gateway bootstrap (listener, HTTP connection manager with Istio's
// usual filters, named routes, clusters named `outbound|<port>||<host>` as Istio names them), the
// DestinationRule TLS settings turned into the cluster's transport socket, and an EnvoyFilter patch
// applier for the operations the operator renders. Anything outside that subset is rejected, so a
// test never passes on a patch that was silently ignored.

export type Json = Record<string, unknown>;

export interface GatewayRoute {
  /** The route's name, as Istio takes it from a VirtualService http[].name. */
  name: string;
  prefix: string;
  cluster: string;
  /** Response headers to add, in Envoy's header formatter syntax (e.g. %UPSTREAM_HOST%). */
  responseHeaders?: Record<string, string>;
}

export interface GatewayCluster {
  name: string;
  endpoints: { host: string; port: number }[];
  /** gRPC and other h2-only upstreams (Istio: a Service port with appProtocol http2 or a grpc- name). */
  http2?: boolean;
  /** The transport socket Istio derives from a DestinationRule (see destinationRuleTransportSocket). */
  transportSocket?: Json;
}

export interface GatewayBootstrapOptions {
  listenPort: number;
  adminPort: number;
  routes: GatewayRoute[];
  clusters: GatewayCluster[];
}

const HCM = 'envoy.filters.network.http_connection_manager';
const socketAddress = (host: string, port: number): Json => ({ socket_address: { address: host, port_value: port } });

/** Istio's name for the outbound cluster of a Service host and port. */
export function istioClusterName(host: string, port: number): string {
  return `outbound|${port}||${host}`;
}

/**
 * The gateway as Istio would configure it, as a bootstrap with static resources: one HTTP listener whose
 * connection manager runs Istio's gateway filters (CORS, fault, then the router), routes by name, and
 * clusters the way Istio shapes them for EDS Services (least-request balancing, static endpoints here).
 */
export function gatewayBootstrap(options: GatewayBootstrapOptions): Json {
  const routes = options.routes.map((r) => ({
    name: r.name,
    match: { prefix: r.prefix },
    // No route timeout: completions stream for as long as the model generates.
    route: { cluster: r.cluster, timeout: '0s' },
    ...(r.responseHeaders
      ? { response_headers_to_add: Object.entries(r.responseHeaders).map(([key, value]) => ({ header: { key, value } })) }
      : {}),
  }));
  const clusters = options.clusters.map((c) => ({
    name: c.name,
    type: 'STATIC',
    connect_timeout: '5s',
    lb_policy: 'LEAST_REQUEST',
    load_assignment: {
      cluster_name: c.name,
      endpoints: [{ lb_endpoints: c.endpoints.map((e) => ({ endpoint: { address: socketAddress(e.host, e.port) } })) }],
    },
    ...(c.http2
      ? {
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        }
      : {}),
    ...(c.transportSocket ? { transport_socket: c.transportSocket } : {}),
  }));
  return {
    admin: { address: socketAddress('127.0.0.1', options.adminPort) },
    static_resources: {
      listeners: [
        {
          name: 'gateway',
          address: socketAddress('127.0.0.1', options.listenPort),
          filter_chains: [
            {
              filters: [
                {
                  name: HCM,
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'gateway',
                    route_config: { name: 'http.80', virtual_hosts: [{ name: 'all', domains: ['*'], routes }] },
                    http_filters: [
                      {
                        name: 'envoy.filters.http.cors',
                        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' },
                      },
                      {
                        name: 'envoy.filters.http.fault',
                        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' },
                      },
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters,
    },
  };
}

interface DestinationRuleLike {
  spec: {
    trafficPolicy?: {
      portLevelSettings?: { port: { number: number }; tls?: { mode: string; insecureSkipVerify?: boolean; sni?: string } }[];
    };
  };
}

/**
 * What Istio puts on the cluster of `port` for a DestinationRule: SIMPLE TLS becomes an
 * UpstreamTlsContext offering h2 (the cluster speaks HTTP/2) with no validation context when
 * insecureSkipVerify is set. Only that subset is translated; other modes throw.
 */
export function destinationRuleTransportSocket(dr: DestinationRuleLike, port: number): Json | undefined {
  const setting = dr.spec.trafficPolicy?.portLevelSettings?.find((s) => s.port.number === port);
  if (!setting?.tls) return undefined;
  const { mode, insecureSkipVerify, ...rest } = setting.tls;
  if (mode !== 'SIMPLE' || insecureSkipVerify !== true || Object.keys(rest).length > 0) {
    throw new Error(
      `destinationRuleTransportSocket: only tls {mode: SIMPLE, insecureSkipVerify: true} is emulated, got ${JSON.stringify(setting.tls)}`,
    );
  }
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: { alpn_protocols: ['h2'] },
    },
  };
}

export interface EnvoyFilterPatch {
  applyTo: string;
  match: Json;
  patch: { operation: string; value: Json };
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Rejects match keys this emulation does not evaluate: an ignored key would make a patch apply too widely. */
function onlyKeys(where: string, obj: unknown, allowed: string[]): Json {
  if (!isObject(obj)) throw new Error(`${where}: expected an object, got ${JSON.stringify(obj)}`);
  const extra = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (extra.length) throw new Error(`${where}: unsupported keys ${extra.join(', ')} (this emulation evaluates only ${allowed.join(', ')})`);
  return obj;
}

/**
 * Protobuf merge on JSON, as Istio's MERGE does it (proto.Merge): messages and maps merge field by field,
 * repeated fields append, scalars are replaced. Merging two Any values of different types is refused.
 */
export function protoMerge(target: Json, patch: Json): Json {
  for (const [key, value] of Object.entries(patch)) {
    const current = target[key];
    if (key === '@type' && current !== undefined && current !== value)
      throw new Error(`protoMerge: cannot merge ${String(value)} into ${String(current)}`);
    if (isObject(current) && isObject(value)) protoMerge(current, value);
    else if (Array.isArray(current) && Array.isArray(value)) current.push(...structuredClone(value));
    else target[key] = structuredClone(value);
  }
  return target;
}

function connectionManagers(bootstrap: Json, filterName: string): Json[] {
  const resources = bootstrap.static_resources as { listeners: { filter_chains: { filters: Json[] }[] }[] };
  return resources.listeners
    .flatMap((l) => l.filter_chains.flatMap((fc) => fc.filters.filter((f) => f.name === filterName)))
    .map((f) => f.typed_config as Json);
}

/**
 * Applies an EnvoyFilter's configPatches to a gateway bootstrap (mutating and returning it) the way
 * Istio applies them to a gateway's generated config. Supported: HTTP_FILTER INSERT_BEFORE (matched by
 * network filter and sub-filter name), HTTP_ROUTE MERGE (by route name), CLUSTER MERGE (by Service host
 * and port, through Istio's cluster naming) and CLUSTER ADD. Returns how many objects each patch
 * changed, so a test can require that every patch found its target.
 */
export function applyEnvoyFilterPatches(bootstrap: Json, patches: EnvoyFilterPatch[]): { bootstrap: Json; applied: number[] } {
  const applied = patches.map((p, i) => {
    const where = `configPatches[${i}]`;
    const match = onlyKeys(`${where}.match`, p.match, ['context', 'listener', 'routeConfiguration', 'cluster']);
    if (match.context !== 'GATEWAY') throw new Error(`${where}.match.context: only GATEWAY is emulated, got ${String(match.context)}`);
    const key = `${p.applyTo} ${p.patch.operation}`;
    switch (key) {
      case 'HTTP_FILTER INSERT_BEFORE': {
        const listener = onlyKeys(`${where}.match.listener`, match.listener, ['filterChain']);
        const chain = onlyKeys(`${where}.match.listener.filterChain`, listener.filterChain, ['filter']);
        const filter = onlyKeys(`${where}.match.listener.filterChain.filter`, chain.filter, ['name', 'subFilter']);
        const sub = onlyKeys(`${where}.match.listener.filterChain.filter.subFilter`, filter.subFilter, ['name']);
        let n = 0;
        for (const hcm of connectionManagers(bootstrap, String(filter.name))) {
          const filters = hcm.http_filters as Json[];
          const at = filters.findIndex((f) => f.name === sub.name);
          if (at < 0) continue;
          filters.splice(at, 0, structuredClone(p.patch.value));
          n++;
        }
        return n;
      }
      case 'HTTP_ROUTE MERGE': {
        const rc = onlyKeys(`${where}.match.routeConfiguration`, match.routeConfiguration, ['vhost']);
        const vhost = onlyKeys(`${where}.match.routeConfiguration.vhost`, rc.vhost, ['route']);
        const route = onlyKeys(`${where}.match.routeConfiguration.vhost.route`, vhost.route, ['name']);
        let n = 0;
        for (const hcm of connectionManagers(bootstrap, HCM)) {
          for (const vh of (hcm.route_config as { virtual_hosts: { routes: Json[] }[] }).virtual_hosts) {
            for (const r of vh.routes) {
              if (r.name !== route.name) continue;
              protoMerge(r, p.patch.value);
              n++;
            }
          }
        }
        return n;
      }
      case 'CLUSTER MERGE': {
        const cluster = onlyKeys(`${where}.match.cluster`, match.cluster, ['service', 'portNumber']);
        const name = istioClusterName(String(cluster.service), Number(cluster.portNumber));
        const clusters = (bootstrap.static_resources as { clusters: Json[] }).clusters.filter((c) => c.name === name);
        for (const c of clusters) protoMerge(c, p.patch.value);
        return clusters.length;
      }
      case 'CLUSTER ADD':
        (bootstrap.static_resources as { clusters: Json[] }).clusters.push(structuredClone(p.patch.value));
        return 1;
      default:
        throw new Error(`${where}: ${key} is not emulated`);
    }
  });
  return { bootstrap, applied };
}
