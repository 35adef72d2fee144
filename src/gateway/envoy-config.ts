// Envoy's bootstrap config for a gateway in front of the router, shaped like the Gateway API Inference
// Extension's standalone gateway: ext_proc with both bodies FULL_DUPLEX_STREAMED and trailers SEND,
// envoy.lb metadata forwarded and received, in front of an ORIGINAL_DST cluster that sends each request
// to the pod named in x-gateway-destination-endpoint. Optionally a fallback pool, so that FailOpen
// actually passes traffic when the router is down (see fallbackRoutes); FailOpen also changes the
// body modes (see failOpenProcessingMode).

import net from 'node:net';
import YAML from 'yaml';
import { DESTINATION_HEADER, LB_NAMESPACE } from './destination.ts';
import { duplexProcessingMode, failOpenProcessingMode } from '../envoy/processing-mode.ts';

/** The dynamic-metadata namespace ext_proc forwards to and accepts from the router. */
const METADATA_NAMESPACE = LB_NAMESPACE;

export interface EnvoyFallbackOptions {
  /** The pool's endpoints, used round robin for requests without a pick. */
  endpoints: ReadonlyArray<{ host: string; port: number }>;
  /**
   * The router's plaintext grpc.health.v1 port (`kvroute router --grpc-health-port`). With it Envoy
   * health-checks the router and opens no ext_proc stream to one that is down or not ready, so those
   * requests skip the failed stream. FailOpen passes requests on without it too (their bodies are
   * BUFFERED, see failOpenProcessingMode); a router that is up but not ready is then still asked.
   */
  eppHealthPort?: number;
  /**
   * Router health check interval (default 500 ms). A router that stops accepting connections is taken
   * out sooner, by outlier detection on the first refused connection (see healthCheckRouter).
   */
  healthCheckIntervalMs?: number;
  /** Path of the pods' health endpoint, checked actively on the fallback pool (default /health, vLLM's). */
  podHealthPath?: string;
}

export interface EnvoyGatewayOptions {
  /** Where clients send requests; 0 lets the kernel pick (then read it from the admin API). */
  listenPort: number;
  adminPort: number;
  /** The router's ext_proc gRPC port on 127.0.0.1 (or on eppHost). */
  eppPort: number;
  /** Speak TLS to the router (h2 via ALPN, certificate not verified, as with a self-signed EPP cert). */
  eppTls: boolean;
  /** Let requests through unrouted when the router fails, instead of answering 500. */
  failureModeAllow: boolean;
  /** Per-message ext_proc timeout; default 1000 s, so a slow test never trips it by accident. */
  messageTimeoutS?: number;
  /** The router's address (default 127.0.0.1); a DNS name makes the cluster STRICT_DNS. */
  eppHost?: string;
  /** Address the listener binds (default 127.0.0.1). */
  listenHost?: string;
  /** Address the admin interface binds (default 127.0.0.1: it can stop Envoy, keep it off the network). */
  adminHost?: string;
  /** Send requests without a pick to these endpoints instead of answering 503. */
  fallback?: EnvoyFallbackOptions;
  /**
   * The largest request body Envoy buffers for the router under FailOpen (BUFFERED mode, see
   * failOpenProcessingMode); default 64 MiB, the router's own --max-request-body-bytes default.
   * Larger bodies are answered 413 by Envoy.
   */
  maxRequestBodyBytes?: number;
}

/** The router's default bound on a request body (src/router/extproc/stream.ts). */
const DEFAULT_MAX_REQUEST_BODY_BYTES = 64 * 1024 * 1024;

const socketAddress = (port: number, host = '127.0.0.1'): Record<string, unknown> => ({
  socket_address: { address: host, port_value: port },
});

/**
 * ext_proc streams per connection to the router. Envoy resets each stream as its request ends, and a
 * Node HTTP/2 server sends GOAWAY (failing every stream then open) once a connection has sent it 1000
 * resets, refilled at 33/s. The router raises that limit (src/router/extproc/server.ts); the cap here
 * keeps a gateway safe in front of any Node-based processor, moving to a fresh connection well before it.
 */
const EPP_MAX_REQUESTS_PER_CONNECTION = 500;

/** The router's cluster: HTTP/2 only, at most EPP_MAX_REQUESTS_PER_CONNECTION streams per connection. */
const eppProtocolOptions = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    common_http_protocol_options: { max_requests_per_connection: EPP_MAX_REQUESTS_PER_CONNECTION },
    explicit_http_config: { http2_protocol_options: {} },
  },
};

function maxBodyBytes(value: number | undefined): number {
  const bytes = value ?? DEFAULT_MAX_REQUEST_BODY_BYTES;
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 2 ** 32 - 1)
    throw new Error(`maxRequestBodyBytes: expected an integer from 1 to ${2 ** 32 - 1}, got ${String(value)}`);
  return bytes;
}

/** Envoy's bootstrap config (YAML text) for a gateway in front of the router; validated by e2e/envoy-config.test.ts. */
export function envoyGatewayConfig(opts: EnvoyGatewayOptions): string {
  const extProc = {
    name: 'envoy.filters.http.ext_proc',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      grpc_service: { envoy_grpc: { cluster_name: 'epp' } },
      failure_mode_allow: opts.failureModeAllow,
      allow_mode_override: true,
      // Envoy 1.40 starts no message timer in FULL_DUPLEX_STREAMED mode (ProcessorState::
      // onStartProcessorCall), so this is inert under FailClose; GIE's configs set it, and so do we.
      // Under FailOpen (BUFFERED/STREAMED) it bounds how long a hung router holds a request before
      // Envoy fails it open.
      message_timeout: `${opts.messageTimeoutS ?? 1000}s`,
      processing_mode: opts.failureModeAllow ? failOpenProcessingMode() : duplexProcessingMode(),
      metadata_options: {
        forwarding_namespaces: { untyped: [METADATA_NAMESPACE] },
        receiving_namespaces: { untyped: [METADATA_NAMESPACE] },
      },
    },
  };

  const routes: Array<Record<string, unknown>> = opts.fallback
    ? fallbackRoutes()
    : // No route timeout: completions stream for as long as the model generates.
      [{ match: { prefix: '/' }, route: { cluster: 'original_destination', timeout: '0s' } }];
  // A BUFFERED body is held in the stream's buffer, whose limit (the listener's 1 MiB by default)
  // would answer 413 to bodies the router accepts; Envoy >= 1.36 raises it per route.
  if (opts.failureModeAllow) {
    const limit = maxBodyBytes(opts.maxRequestBodyBytes);
    for (const r of routes) r['request_body_buffer_limit'] = limit;
  }

  const hcm = {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: 'gateway',
      codec_type: 'AUTO',
      route_config: {
        name: 'gateway',
        virtual_hosts: [{ name: 'all', domains: ['*'], routes }],
      },
      http_filters: [
        extProc,
        {
          name: 'envoy.filters.http.router',
          typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
        },
      ],
    },
  };

  const eppHost = opts.eppHost ?? '127.0.0.1';
  const epp: Record<string, unknown> = {
    name: 'epp',
    type: net.isIP(eppHost) !== 0 ? 'STATIC' : 'STRICT_DNS',
    connect_timeout: '5s',
    load_assignment: {
      cluster_name: 'epp',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(opts.eppPort, eppHost) } }] }],
    },
    typed_extension_protocol_options: eppProtocolOptions,
  };
  if (opts.eppTls) {
    epp['transport_socket'] = {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
        // No validation_context: the router's certificate is self-signed in tests.
        common_tls_context: { alpn_protocols: ['h2'] },
      },
    };
  }
  ejectRouterOnConnectFailure(epp);
  if (opts.fallback?.eppHealthPort !== undefined)
    healthCheckRouter(epp, opts.fallback.eppHealthPort, opts.fallback.healthCheckIntervalMs ?? 500);

  const clusters: Array<Record<string, unknown>> = [
    {
      name: 'original_destination',
      type: 'ORIGINAL_DST',
      lb_policy: 'CLUSTER_PROVIDED',
      connect_timeout: '5s',
      original_dst_lb_config: { use_http_header: true, http_header_name: DESTINATION_HEADER },
    },
    epp,
  ];
  if (opts.fallback) clusters.push(fallbackCluster(opts.fallback.endpoints, opts.fallback.podHealthPath ?? '/health'));

  const listener = { name: 'gateway', address: socketAddress(opts.listenPort, opts.listenHost), filter_chains: [{ filters: [hcm] }] };
  const config = {
    admin: { address: socketAddress(opts.adminPort, opts.adminHost) },
    static_resources: { listeners: [listener], clusters },
  };
  return YAML.stringify(config);
}

/**
 * With FailOpen and the router down, ext_proc lets a request through without
 * x-gateway-destination-endpoint, and the ORIGINAL_DST cluster has no address for it (503 "no
 * healthy upstream"). So requests carrying the header (the router's pick; clear_route_cache makes
 * Envoy re-select the route once it is set) go to ORIGINAL_DST, and the rest to `pool_fallback`, a
 * round-robin cluster of the pool's endpoints (Istio's override_host fallback does the same job).
 * A fallback request that cannot reach its pod (refused, reset before a byte of response) is retried
 * on another pod: nothing reached the model server, so it is safe to repeat.
 */
function fallbackRoutes(): Array<Record<string, unknown>> {
  return [
    {
      match: { prefix: '/', headers: [{ name: DESTINATION_HEADER, present_match: true }] },
      route: { cluster: 'original_destination', timeout: '0s' },
    },
    {
      match: { prefix: '/' },
      route: {
        cluster: 'pool_fallback',
        timeout: '0s',
        retry_policy: {
          retry_on: 'connect-failure,refused-stream,reset-before-request',
          num_retries: 2,
          retry_host_predicate: [
            {
              name: 'envoy.retry_host_predicates.previous_hosts',
              typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' },
            },
          ],
          host_selection_retry_max_attempts: 3,
        },
      },
    },
  ];
}

/**
 * Connection-level outlier detection: a host that refuses or drops a connection (a local-origin
 * failure, counted apart from the HTTP status it would answer) is ejected at once, for
 * baseEjectionMs the first time and longer on repeats; an active health check that passes brings it
 * back early. Statuses never eject: a router's or model server's 5xx is an answer, not a death.
 */
function connectFailureOutlierDetection(baseEjectionMs: number, maxEjectionPercent: number): Record<string, unknown> {
  return {
    split_external_local_origin_errors: true,
    consecutive_local_origin_failure: 1,
    enforcing_consecutive_local_origin_failure: 100,
    enforcing_local_origin_success_rate: 0,
    enforcing_consecutive_5xx: 0,
    enforcing_consecutive_gateway_failure: 0,
    enforcing_success_rate: 0,
    interval: '1s',
    base_ejection_time: `${baseEjectionMs / 1000}s`,
    max_ejection_percent: maxEjectionPercent,
  };
}

/**
 * The pool's endpoints for requests without a pick. A pod that refuses connections is ejected on the
 * first refusal (the request itself is retried elsewhere, see fallbackRoutes); one that is up but not
 * serving (hung, or failing /health) is taken out by an active health check within about two
 * intervals. Envoy's panic threshold stays at its default (50%): with most pods marked down, which
 * more likely means a wrong health path than a dead pool, it spreads requests over all of them again.
 */
function fallbackCluster(endpoints: ReadonlyArray<{ host: string; port: number }>, healthPath: string): Record<string, unknown> {
  if (endpoints.length === 0) throw new Error('fallback.endpoints must name at least one endpoint');
  if (!healthPath.startsWith('/')) throw new Error(`fallback.podHealthPath: expected a path starting with "/", got "${healthPath}"`);
  return {
    name: 'pool_fallback',
    type: endpoints.every((e) => net.isIP(e.host) !== 0) ? 'STATIC' : 'STRICT_DNS',
    lb_policy: 'ROUND_ROBIN',
    connect_timeout: '5s',
    load_assignment: {
      cluster_name: 'pool_fallback',
      endpoints: [{ lb_endpoints: endpoints.map((e) => ({ endpoint: { address: socketAddress(e.port, e.host) } })) }],
    },
    health_checks: [
      {
        timeout: '1s',
        interval: '2s',
        no_traffic_interval: '2s',
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        http_health_check: { path: healthPath },
      },
    ],
    outlier_detection: connectFailureOutlierDetection(5000, 50),
  };
}

/**
 * The router's cluster: a router that refuses a connection (dead, or restarting) is ejected on that
 * first refusal, whatever the number of replicas, so that the next ext_proc stream fails as it starts
 * (before any body is sent; FailOpen passes the request on) or goes to another replica.
 */
function ejectRouterOnConnectFailure(epp: Record<string, unknown>): void {
  epp['outlier_detection'] = connectFailureOutlierDetection(1000, 100);
}

/**
 * An active gRPC health check of the router's readiness on its plaintext health port (ext_proc itself
 * may stay TLS), and no panic mode, or Envoy would keep using an unhealthy only host. A router that is
 * not ready gets no ext_proc stream: the stream fails as it starts, before any body is sent, and
 * FailOpen passes the request on. A live router is marked down only after two failed checks, each
 * allowed half an interval (a CPU-starved router answering late is not a dead one: FailClose would
 * fail every request meanwhile); a dead one is caught sooner by ejectRouterOnConnectFailure.
 */
function healthCheckRouter(epp: Record<string, unknown>, healthPort: number, intervalMs: number): void {
  if (!Number.isFinite(intervalMs) || intervalMs < 10)
    throw new Error(`fallback.healthCheckIntervalMs: expected a number of milliseconds >= 10, got ${String(intervalMs)}`);
  const seconds = (ms: number) => `${Math.round(ms) / 1000}s`;
  const assignment = epp['load_assignment'] as { endpoints: Array<{ lb_endpoints: Array<{ endpoint: Record<string, unknown> }> }> };
  for (const e of assignment.endpoints[0]!.lb_endpoints) e.endpoint['health_check_config'] = { port_value: healthPort };
  epp['health_checks'] = [
    {
      timeout: seconds(intervalMs / 2),
      interval: seconds(intervalMs),
      no_traffic_interval: seconds(intervalMs),
      unhealthy_threshold: 2,
      healthy_threshold: 1,
      grpc_health_check: { service_name: 'envoy.service.ext_proc.v3.ExternalProcessor' },
      transport_socket_match_criteria: { health_check: 'plaintext' },
    },
  ];
  epp['transport_socket_matches'] = [
    {
      name: 'plaintext-health-check',
      match: { health_check: 'plaintext' },
      transport_socket: {
        name: 'envoy.transport_sockets.raw_buffer',
        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' },
      },
    },
  ];
  epp['common_lb_config'] = { healthy_panic_threshold: { value: 0 } };
}
