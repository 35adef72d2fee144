// `kvroute gateway`: a gateway in front of the router, configured as GIE's standalone gateway. Runs a
// real Envoy when one is given (--envoy PATH) or found (envoy on PATH, or .cache/envoy from
// hack/envoy/install.sh) unless --builtin, else the built-in front; the same flags mean the same thing
// for both. Logs one structured "listening" line with the bound ports, and drains on SIGTERM.

import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../common/duration.ts';
import { LOG_LEVELS, createLogger, parseLogLevel, type Logger } from '../common/log.ts';
import { createRegistry } from '../common/metrics.ts';
import { onShutdown } from '../common/shutdown.ts';
import { parseEndpointList } from '../gateway/destination.ts';
import { findEnvoy } from '../gateway/envoy-process.ts';
import { DEFAULT_PICK_TIMEOUT_MS, type FailureMode } from '../gateway/front.ts';
import { splitRouterAddress, startGateway, type GatewaySettings } from '../gateway/gateway.ts';

export interface GatewayFlags {
  host: string;
  port: number;
  router?: string;
  routerPlaintext?: boolean;
  endpoints?: string;
  failureMode: FailureMode;
  adminPort: number;
  pickTimeout: number;
  routerHealthPort?: number;
  envoy?: string;
  builtin?: boolean;
  envoyConcurrency?: number;
  logLevel: string;
}

function portFlag(flag: string, min = 0) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > 65535) throw new InvalidArgumentError(`${flag} expects a port (${min}-65535), got "${text}"`);
    return n;
  };
}

function durationFlag(flag: string) {
  return (text: string): number => {
    try {
      return parseDuration(text, flag);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

function positiveIntFlag(flag: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1) throw new InvalidArgumentError(`${flag} expects an integer >= 1, got "${text}"`);
    return n;
  };
}

/**
 * Settings from parsed flags. Throws an Error naming the flag for a missing or malformed value, or
 * for an --envoy that is not executable. `find` is findEnvoy (a parameter so tests control it).
 */
export function gatewaySettings(flags: GatewayFlags, find: typeof findEnvoy = findEnvoy): GatewaySettings {
  if (flags.router === undefined) throw new Error("--router HOST:PORT is required: the router's ext_proc gRPC address");
  splitRouterAddress(flags.router);
  if (flags.builtin && flags.envoy !== undefined) throw new Error('--envoy and --builtin exclude each other');
  const fallbackEndpoints = flags.endpoints !== undefined ? parseEndpointList(flags.endpoints, '--endpoints') : [];
  const envoyBinary = flags.builtin ? null : find(flags.envoy);
  return {
    host: flags.host,
    port: flags.port,
    router: flags.router,
    routerTls: !flags.routerPlaintext,
    failureMode: flags.failureMode,
    fallbackEndpoints,
    adminPort: flags.adminPort,
    pickTimeoutMs: flags.pickTimeout,
    ...(flags.routerHealthPort !== undefined ? { routerHealthPort: flags.routerHealthPort } : {}),
    ...(envoyBinary !== null ? { envoyBinary } : {}),
    ...(flags.envoyConcurrency !== undefined ? { envoyConcurrency: flags.envoyConcurrency } : {}),
  };
}

async function run(flags: GatewayFlags, log: Logger): Promise<void> {
  const settings = gatewaySettings(flags);
  if (settings.envoyBinary === undefined && !flags.builtin)
    log.info('no Envoy found (--envoy, envoy on PATH, or bash hack/envoy/install.sh); using the built-in gateway');
  const gateway = await startGateway(settings, { log, registry: createRegistry() });
  let stopping = false;
  const shutdown = onShutdown(log, [
    () => {
      stopping = true;
      return gateway.close();
    },
  ]);
  void gateway.exited.then(async (code) => {
    if (stopping) return;
    log.error('the gateway exited by itself', { implementation: gateway.implementation, code });
    await shutdown();
    process.exit(1);
  });
}

export function command(): Command {
  return new Command('gateway')
    .option('--host <address>', 'address to listen on for client traffic', '0.0.0.0')
    .option('--port <port>', 'port for client traffic (0: the kernel picks; the "listening" log line says which)', portFlag('--port'), 8080)
    .requiredOption('--router <host:port>', "the router's ext_proc gRPC address (kvroute router --grpc-port)")
    .option(
      '--router-plaintext',
      'speak plaintext h2c to the router (kvroute router --secure-serving=false); default TLS without verification',
    )
    .option(
      '--endpoints <host:port,...>',
      "the pool's endpoints: requests without a usable pick (FailOpen with the router down, or no destination) go to them round robin",
    )
    .addOption(
      new Option('--failure-mode <mode>', 'when the router cannot be asked: FailOpen sends requests to --endpoints, FailClose answers 500')
        .choices(['FailOpen', 'FailClose'])
        .default('FailClose'),
    )
    .option(
      '--admin-port <port>',
      'built-in: /healthz, /readyz, /metrics; Envoy: its admin interface on 127.0.0.1 (0: the kernel picks)',
      portFlag('--admin-port'),
      0,
    )
    .option(
      '--pick-timeout <duration>',
      `built-in only: longest wait for the router's pick before the failure mode decides; 0 waits for ever (Envoy 1.40 has no message timeout in FULL_DUPLEX_STREAMED mode)`,
      durationFlag('--pick-timeout'),
      DEFAULT_PICK_TIMEOUT_MS,
    )
    .option(
      '--router-health-port <port>',
      "Envoy only: the router's plaintext gRPC health port; lets FailOpen pass requests with a body when the router is down",
      portFlag('--router-health-port', 1),
    )
    .option('--envoy <path>', 'run this Envoy binary (default: envoy on PATH, else .cache/envoy/bin/envoy, else the built-in gateway)')
    .option('--builtin', 'use the built-in gateway even when an Envoy is available')
    .option('--envoy-concurrency <n>', 'Envoy only: worker threads (default: one per core)', positiveIntFlag('--envoy-concurrency'))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (flags: GatewayFlags) => {
      const log = createLogger({ level: parseLogLevel(flags.logLevel), component: 'gateway' });
      await run(flags, log);
    });
}
