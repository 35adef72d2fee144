// The built-in gateway: a small HTTP/1.1 server that sends every request through the router's
// ext_proc stream the way Envoy configured as GIE's standalone gateway does (see exchange.ts), then to
// the endpoint the router picked, over keep-alive connections. It exists so that `kvroute demo` and
// tests exercise the production router code path on machines without Envoy.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../common/log.ts';
import { RoundRobin, type Endpoint } from './destination.ts';
import { Exchange, type FailureMode } from './exchange.ts';
import { createExtProcClient } from './extproc-client.ts';
import { createGatewayMetrics } from './metrics.ts';

export type { FailureMode } from './exchange.ts';

/** The pick timeout when none is given: the gRPC timeout GIE's Envoy configs and Istio set (10 s). */
export const DEFAULT_PICK_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_FALLBACK_BODY_BYTES = 64 * 1024 * 1024;

export interface GatewayFrontOptions {
  /** Listen address (default 0.0.0.0). */
  host?: string;
  /** Listen port; 0 lets the kernel pick (read it back from the result). */
  port: number;
  /** The router's ext_proc gRPC address, host:port. */
  router: string;
  /** TLS to the router without verifying its certificate (default true); false: plaintext h2c. */
  routerTls?: boolean;
  /** What happens when the router cannot be asked (default FailClose, the InferencePool API default). */
  failureMode?: FailureMode;
  /** The pool's endpoints, used round robin when there is no usable pick; empty: answer 503. */
  fallbackEndpoints?: readonly Endpoint[];
  /** How long to wait for the pick before the failure mode decides; 0 waits for ever like Envoy (default 10 s). */
  pickTimeoutMs?: number;
  /** Restrict the router's candidates: sent as envoy.lb.subset_hint metadata. */
  subsetHint?: readonly string[];
  /** FailOpen keeps request bodies up to this size until the pick so it can replay them (default 64 MiB). */
  maxFallbackBodyBytes?: number;
  log: Logger;
  /** Where the kvroute_gateway_* metrics go; none when absent. */
  registry?: Registry;
}

export interface GatewayFront {
  server: http.Server;
  host: string;
  port: number;
  /** Stops accepting, waits for requests in flight (up to `graceMs`), then closes connections and the router channel. */
  close(graceMs?: number): Promise<void>;
}

export async function startGatewayFront(options: GatewayFrontOptions): Promise<GatewayFront> {
  const log = options.log;
  const host = options.host ?? '0.0.0.0';
  const failureMode = options.failureMode ?? 'FailClose';
  const pickTimeoutMs = options.pickTimeoutMs ?? DEFAULT_PICK_TIMEOUT_MS;
  if (!Number.isFinite(pickTimeoutMs) || pickTimeoutMs < 0) throw new Error(`pickTimeoutMs must be >= 0, got ${pickTimeoutMs}`);
  const client = createExtProcClient({ address: options.router, tls: options.routerTls ?? true });
  // Keep-alive connections to the endpoints, no Nagle delay: streamed tokens go out as they come.
  // (noDelay reaches net.createConnection through the agent; @types/node leaves it out of AgentOptions.)
  const agentOptions: http.AgentOptions & { noDelay: boolean } = { keepAlive: true, noDelay: true, maxFreeSockets: 256 };
  const agent = new http.Agent(agentOptions);
  const metrics = options.registry ? createGatewayMetrics(options.registry) : undefined;
  const deps = {
    client,
    failureMode,
    fallback: new RoundRobin(options.fallbackEndpoints ?? []),
    pickTimeoutMs,
    subsetHint: options.subsetHint,
    maxFallbackBodyBytes: options.maxFallbackBodyBytes ?? DEFAULT_MAX_FALLBACK_BODY_BYTES,
    agent,
    log,
    metrics,
  };

  const server = http.createServer({ noDelay: true, keepAliveTimeout: 65_000 }, (req, res) => new Exchange(req, res, deps).start());
  // Completions can take minutes; Envoy's route in GIE's config has no timeout either.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // The one "listening" line is gateway.ts's (with the admin port); this is for debugging embedders.
  log.debug('gateway front bound', { host, port, router: options.router, failureMode, pickTimeoutMs });

  return {
    server,
    host,
    port,
    close: async (graceMs = 10_000) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
      client.close();
      agent.destroy();
    },
  };
}
