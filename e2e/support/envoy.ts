// A real Envoy for e2e tests: where hack/envoy/install.sh caches the binary, and the gateway config the
// router is tested behind, shaped like the inference gateway's: ext_proc with full-duplex streamed
// bodies in front of an ORIGINAL_DST cluster that sends each request to the pod named in
// x-gateway-destination-endpoint.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const INSTALL_SCRIPT = 'hack/envoy/install.sh';
/** Where install.sh links the binary (it prints this path); KVROUTE_ENVOY_BIN overrides. */
export const ENVOY_BIN = process.env.KVROUTE_ENVOY_BIN ?? path.join(ROOT, '.cache/envoy/bin/envoy');

export const DESTINATION_HEADER = 'x-gateway-destination-endpoint';
/** The dynamic-metadata namespace ext_proc forwards to and accepts from the router. */
export const METADATA_NAMESPACE = 'envoy.lb';

export function envoyAvailable(): boolean {
  try {
    fs.accessSync(ENVOY_BIN, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether Envoy tests must run: set KVROUTE_REQUIRE_ENVOY (as CI does) to fail rather than skip without it. */
export function envoyRequired(): boolean {
  return Boolean(process.env.KVROUTE_REQUIRE_ENVOY);
}

/**
 * The Envoy binary installed by hack/envoy/install.sh. Does not install it (that needs the network and
 * a few seconds); throws naming the script when it is missing. Start more than one Envoy at a time with
 * --use-dynamic-base-id (or --disable-hot-restart), or their shared-memory regions collide.
 */
export function envoyBinary(): string {
  if (!envoyAvailable()) throw new Error(`Envoy not found at ${ENVOY_BIN}: run \`bash ${INSTALL_SCRIPT}\` (caches it under .cache/envoy)`);
  return ENVOY_BIN;
}

export interface EnvoyGatewayOptions {
  /** Where clients send requests; 0 lets the kernel pick (then read it from the admin API). */
  listenPort: number;
  adminPort: number;
  /** The router's ext_proc gRPC port on 127.0.0.1. */
  eppPort: number;
  /** Speak TLS to the router (h2 via ALPN, certificate not verified, as with a self-signed EPP cert). */
  eppTls: boolean;
  /** Let requests through unrouted when the router fails, instead of answering 500. */
  failureModeAllow: boolean;
  /** Per-message ext_proc timeout; default 1000 s, so a slow test never trips it by accident. */
  messageTimeoutS?: number;
}

const socketAddress = (port: number): Record<string, unknown> => ({ socket_address: { address: '127.0.0.1', port_value: port } });

const http2Only = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

/** Envoy's bootstrap config (YAML text) for a gateway in front of the router; validated by e2e/envoy-config.test.ts. */
export function envoyGatewayConfig(opts: EnvoyGatewayOptions): string {
  const extProc = {
    name: 'envoy.filters.http.ext_proc',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      grpc_service: { envoy_grpc: { cluster_name: 'epp' } },
      failure_mode_allow: opts.failureModeAllow,
      allow_mode_override: true,
      message_timeout: `${opts.messageTimeoutS ?? 1000}s`,
      processing_mode: {
        request_header_mode: 'SEND',
        response_header_mode: 'SEND',
        request_body_mode: 'FULL_DUPLEX_STREAMED',
        response_body_mode: 'FULL_DUPLEX_STREAMED',
        // Envoy requires trailers SEND with FULL_DUPLEX_STREAMED bodies: end of stream may come in them.
        request_trailer_mode: 'SEND',
        response_trailer_mode: 'SEND',
      },
      metadata_options: {
        forwarding_namespaces: { untyped: [METADATA_NAMESPACE] },
        receiving_namespaces: { untyped: [METADATA_NAMESPACE] },
      },
    },
  };

  const hcm = {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: 'gateway',
      codec_type: 'AUTO',
      route_config: {
        name: 'gateway',
        virtual_hosts: [
          {
            name: 'all',
            domains: ['*'],
            // No route timeout: completions stream for as long as the model generates.
            routes: [{ match: { prefix: '/' }, route: { cluster: 'original_destination', timeout: '0s' } }],
          },
        ],
      },
      http_filters: [extProc, { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
    },
  };

  const epp: Record<string, unknown> = {
    name: 'epp',
    type: 'STATIC',
    connect_timeout: '5s',
    load_assignment: { cluster_name: 'epp', endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(opts.eppPort) } }] }] },
    typed_extension_protocol_options: http2Only,
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

  const config = {
    admin: { address: socketAddress(opts.adminPort) },
    static_resources: {
      listeners: [{ name: 'gateway', address: socketAddress(opts.listenPort), filter_chains: [{ filters: [hcm] }] }],
      clusters: [
        {
          name: 'original_destination',
          type: 'ORIGINAL_DST',
          lb_policy: 'CLUSTER_PROVIDED',
          connect_timeout: '5s',
          original_dst_lb_config: { use_http_header: true, http_header_name: DESTINATION_HEADER },
        },
        epp,
      ],
    },
  };
  return YAML.stringify(config);
}
