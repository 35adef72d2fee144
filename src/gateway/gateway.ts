// `kvroute gateway` as a module: either the built-in front (with its admin server: /healthz, /readyz,
// /metrics) or a real Envoy run with GIE's standalone-gateway config, from the same settings, so a
// flag means the same thing whichever implementation serves.

import type { Registry } from 'prom-client';
import { startHttpServer, type RunningHttpServer } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import { parseEndpointList, type Endpoint } from './destination.ts';
import { envoyGatewayConfig } from './envoy-config.ts';
import { startEnvoy } from './envoy-process.ts';
import { startGatewayFront, type FailureMode } from './front.ts';

export interface GatewaySettings {
  /** Listen address for client traffic. */
  host: string;
  port: number;
  /** The router's ext_proc address, host:port. */
  router: string;
  /** TLS to the router without verification (GIE's default); false: plaintext h2c. */
  routerTls: boolean;
  failureMode: FailureMode;
  /** The pool's endpoints, for requests without a usable pick (round robin). */
  fallbackEndpoints: Endpoint[];
  /** The built-in front's /healthz, /readyz and /metrics; Envoy's admin interface (on 127.0.0.1) with Envoy. */
  adminPort: number;
  /** Built-in only: the longest wait for a pick (0: for ever, as Envoy in FULL_DUPLEX_STREAMED mode). */
  pickTimeoutMs: number;
  /** Envoy only: the router's plaintext health port, so Envoy stops using a dead router and FailOpen passes bodies. */
  routerHealthPort?: number;
  /** Run this Envoy binary; the built-in front when undefined. */
  envoyBinary?: string;
  /** Envoy only: worker threads (Envoy's default, one per core, when absent). */
  envoyConcurrency?: number;
}

export interface RunningGateway {
  implementation: 'builtin' | 'envoy';
  port: number;
  adminPort: number;
  /** Resolves if the gateway stops by itself (Envoy exited); never for the built-in front. */
  exited: Promise<number | null>;
  close(): Promise<void>;
}

/** host:port of the router as a host and a port, with errors naming the flag. */
export function splitRouterAddress(text: string): { host: string; port: number } {
  if (text.includes(',')) throw new Error(`--router expects one host:port, got "${text}"`);
  const [endpoint] = parseEndpointList(text, '--router');
  return { host: endpoint!.host, port: endpoint!.port };
}

export async function startGateway(settings: GatewaySettings, deps: { log: Logger; registry: Registry }): Promise<RunningGateway> {
  const { log } = deps;
  const router = splitRouterAddress(settings.router);
  if (settings.envoyBinary !== undefined) {
    const envoy = await startEnvoy({
      binary: settings.envoyBinary,
      log: log.child({ implementation: 'envoy' }),
      ...(settings.envoyConcurrency !== undefined ? { concurrency: settings.envoyConcurrency } : {}),
      config: envoyGatewayConfig({
        listenHost: settings.host,
        listenPort: settings.port,
        adminPort: settings.adminPort,
        eppHost: router.host,
        eppPort: router.port,
        eppTls: settings.routerTls,
        failureModeAllow: settings.failureMode === 'FailOpen',
        ...(settings.fallbackEndpoints.length > 0
          ? {
              fallback: {
                endpoints: settings.fallbackEndpoints,
                ...(settings.routerHealthPort !== undefined ? { eppHealthPort: settings.routerHealthPort } : {}),
              },
            }
          : {}),
      }),
    });
    const adminPort = Number(new URL(envoy.adminUrl).port);
    log.info('listening', {
      what: 'gateway',
      implementation: 'envoy',
      host: settings.host,
      port: envoy.listenPort,
      adminPort,
      router: settings.router,
      routerTls: settings.routerTls,
      failureMode: settings.failureMode,
      fallbackEndpoints: settings.fallbackEndpoints.map((e) => e.address),
    });
    return { implementation: 'envoy', port: envoy.listenPort, adminPort, exited: envoy.exited, close: () => envoy.close() };
  }

  const front = await startGatewayFront({
    host: settings.host,
    port: settings.port,
    router: settings.router,
    routerTls: settings.routerTls,
    failureMode: settings.failureMode,
    fallbackEndpoints: settings.fallbackEndpoints,
    pickTimeoutMs: settings.pickTimeoutMs,
    log,
    registry: deps.registry,
  });
  let admin: RunningHttpServer;
  try {
    admin = await startHttpServer({ host: settings.host, port: settings.adminPort, log, registry: deps.registry, routes: {} });
  } catch (err) {
    await front.close(0);
    throw err;
  }
  log.info('listening', {
    what: 'gateway',
    implementation: 'builtin',
    host: settings.host,
    port: front.port,
    adminPort: admin.port,
    router: settings.router,
    routerTls: settings.routerTls,
    failureMode: settings.failureMode,
    fallbackEndpoints: settings.fallbackEndpoints.map((e) => e.address),
    pickTimeoutMs: settings.pickTimeoutMs,
  });
  return {
    implementation: 'builtin',
    port: front.port,
    adminPort: admin.port,
    exited: new Promise<never>(() => {}),
    close: async () => {
      await front.close();
      await admin.close();
    },
  };
}
