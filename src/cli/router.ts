// `kvroute router`: the Envoy ext_proc endpoint picker. Parses GIE's flag names (so an llm-d user can
// swap images) into RouterOptions, starts the router, and drains it on SIGTERM.

import { KubeConfig } from '@kubernetes/client-node';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../common/duration.ts';
import { LOG_LEVELS, createLogger, parseLogLevel, type Logger } from '../common/log.ts';
import { onShutdown } from '../common/shutdown.ts';
import { startRouter, type RouterOptions } from '../router/router.ts';

export interface RouterFlags {
  grpcPort: number;
  grpcHealthPort: number;
  metricsPort: number;
  secureServing: boolean;
  certPath?: string;
  configFile?: string;
  configText?: string;
  poolName?: string;
  poolNamespace?: string;
  poolGroup: string;
  endpointSelector?: Record<string, string>;
  endpointTargetPorts?: number[];
  endpoints?: string[];
  indexer?: string;
  model?: string;
  servingLabel: { key: string; value: string };
  refreshMetricsInterval: number;
  metricsStalenessThreshold: number;
  drainTimeout: number;
  conformanceTestHooks?: boolean;
  maxRequestBodyBytes: number;
  maxRequestHeaders: number;
  maxRequestHeaderBytes: number;
  maxConcurrentStreams: number;
  kubeconfig?: string;
  logLevel: string;
}

function portFlag(flag: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n > 65535) throw new InvalidArgumentError(`${flag} expects a port (0-65535), got "${text}"`);
    return n;
  };
}

function boolFlag(flag: string) {
  return (text: string): boolean => {
    if (text === 'true') return true;
    if (text === 'false') return false;
    throw new InvalidArgumentError(`${flag} expects true or false, got "${text}"`);
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

/** `k=v,k2=v2` as a label map; repeating the flag adds labels. */
function labelsFlag(flag: string) {
  return (text: string, previous: Record<string, string> | undefined): Record<string, string> => {
    const labels = { ...previous };
    for (const part of text.split(',')) {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new InvalidArgumentError(`${flag} expects KEY=VALUE[,KEY=VALUE...], got "${text}"`);
      labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    }
    return labels;
  };
}

function labelFlag(text: string): { key: string; value: string } {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--serving-label expects KEY=VALUE, got "${text}"`);
  return { key: text.slice(0, eq), value: text.slice(eq + 1) };
}

function portsFlag(text: string, previous: number[] | undefined): number[] {
  const ports = text.split(',').map((p) => {
    const n = Number(p.trim());
    if (!/^\d+$/.test(p.trim()) || n < 1 || n > 65535)
      throw new InvalidArgumentError(`--endpoint-target-ports expects ports (1-65535) separated by commas, got "${text}"`);
    return n;
  });
  return [...(previous ?? []), ...ports];
}

function countFlag(flag: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1)
      throw new InvalidArgumentError(`${flag} expects an integer >= 1, got "${text}"`);
    return n;
  };
}

function listFlag(text: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  ];
}

function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${file ?? '(default locations)'}: ${(err as Error).message}`);
  }
  if (!kc.getCurrentCluster())
    throw new Error(`kubeconfig ${file ?? '(default locations)'} has no current cluster; Kubernetes mode needs one`);
  return kc;
}

/** The router's options from parsed flags; the namespace falls back to $POD_NAMESPACE, then "default". */
export function routerOptions(flags: RouterFlags, log: Logger, env: NodeJS.ProcessEnv = process.env): RouterOptions {
  const kubeMode = flags.endpoints === undefined && (flags.poolName !== undefined || flags.endpointSelector !== undefined);
  const opt = <K extends keyof RouterOptions>(key: K, value: RouterOptions[K] | undefined): Partial<RouterOptions> =>
    value === undefined ? {} : { [key]: value };
  return {
    grpcPort: flags.grpcPort,
    grpcHealthPort: flags.grpcHealthPort,
    metricsPort: flags.metricsPort,
    secureServing: flags.secureServing,
    ...opt('certPath', flags.certPath),
    ...opt('configFile', flags.configFile),
    ...opt('configText', flags.configText),
    ...opt('endpoints', flags.endpoints),
    ...opt('poolName', flags.poolName),
    poolNamespace: flags.poolNamespace ?? (env.POD_NAMESPACE || 'default'),
    poolGroup: flags.poolGroup,
    ...opt('endpointSelector', flags.endpointSelector),
    ...opt('endpointTargetPorts', flags.endpointTargetPorts),
    servingLabel: flags.servingLabel,
    ...opt('indexer', flags.indexer),
    ...opt('model', flags.model),
    refreshMetricsIntervalMs: flags.refreshMetricsInterval,
    metricsStalenessMs: flags.metricsStalenessThreshold,
    drainTimeoutMs: flags.drainTimeout,
    ...(flags.conformanceTestHooks ? { conformanceTestHooks: true } : {}),
    limits: {
      maxRequestBodyBytes: flags.maxRequestBodyBytes,
      maxRequestHeaders: flags.maxRequestHeaders,
      maxRequestHeaderBytes: flags.maxRequestHeaderBytes,
      maxConcurrentStreams: flags.maxConcurrentStreams,
    },
    ...(kubeMode ? { kubeConfig: loadKubeConfig(flags.kubeconfig) } : {}),
    log,
  };
}

export function command(): Command {
  return new Command('router')
    .option('--grpc-port <port>', 'ext_proc gRPC port', portFlag('--grpc-port'), 9002)
    .option(
      '--grpc-health-port <port>',
      'grpc.health.v1 port (plaintext): liveness, readiness, envoy.service.ext_proc.v3.ExternalProcessor',
      portFlag('--grpc-health-port'),
      9003,
    )
    .option('--metrics-port <port>', 'HTTP port for /metrics, /healthz, /readyz', portFlag('--metrics-port'), 9090)
    .option('--secure-serving [bool]', 'serve ext_proc over TLS (false: plaintext h2c)', boolFlag('--secure-serving'), true)
    .option('--cert-path <dir>', 'directory with tls.crt and tls.key (default: a self-signed certificate made at start)')
    .option('--config-file <file>', "EndpointPickerConfig YAML, re-read when it changes (default: kvroute's default profile)")
    .option('--config-text <yaml>', 'EndpointPickerConfig YAML given inline')
    .option('--pool-name <name>', 'Kubernetes mode: the InferencePool whose Ready pods are the endpoints')
    .option('--pool-namespace <ns>', 'namespace of the pool and its pods (default $POD_NAMESPACE, else "default")')
    .option(
      '--pool-group <group>',
      'API group of the InferencePool (the kvroute operator passes inference.kvroute.io)',
      'inference.networking.k8s.io',
    )
    .option(
      '--endpoint-selector <k=v,...>',
      'Kubernetes mode without a pool: labels of the serving pods',
      labelsFlag('--endpoint-selector'),
    )
    .option('--endpoint-target-ports <ports>', "with --endpoint-selector: the model servers' ports, e.g. 8000,8001", portsFlag)
    .option('--endpoints <host:port,...>', 'local mode: fixed endpoints instead of pods', listFlag)
    .option('--indexer <host:port>', "the indexer's gRPC address, overriding the precise-prefix plugins' indexerAddress")
    .option('--model <name>', "the pool's base model; other target models are LoRA adapters")
    .option('--serving-label <key=value>', 'label a pod must carry to be an endpoint', labelFlag, {
      key: 'llm-d.ai/inferenceServing',
      value: 'true',
    })
    .option(
      '--refresh-metrics-interval <duration>',
      "how often each endpoint's /metrics is scraped",
      durationFlag('--refresh-metrics-interval'),
      50,
    )
    .option(
      '--metrics-staleness-threshold <duration>',
      'age after which scraped metrics count as absent',
      durationFlag('--metrics-staleness-threshold'),
      2_000,
    )
    .option('--drain-timeout <duration>', 'on SIGTERM, how long open requests may take to finish', durationFlag('--drain-timeout'), 30_000)
    .option(
      '--conformance-test-hooks',
      'honour test-epp-endpoint-selection and echo x-conformance-test-served-endpoint (GIE conformance tests only: clients could steer requests)',
    )
    .option(
      '--max-request-body-bytes <n>',
      'larger request bodies are answered 413, checked as the body streams in',
      countFlag('--max-request-body-bytes'),
      64 * 1024 * 1024,
    )
    .option('--max-request-headers <n>', 'requests with more headers are answered 431', countFlag('--max-request-headers'), 256)
    .option(
      '--max-request-header-bytes <n>',
      'requests whose header names and values total more bytes are answered 431',
      countFlag('--max-request-header-bytes'),
      256 * 1024,
    )
    .option(
      '--max-concurrent-streams <n>',
      'ext_proc streams (requests) served at once; one more is answered 503 router-overloaded',
      countFlag('--max-concurrent-streams'),
      10_000,
    )
    .option('--kubeconfig <path>', 'kubeconfig for Kubernetes mode (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (flags: RouterFlags) => {
      const log = createLogger({ level: parseLogLevel(flags.logLevel), component: 'router' });
      const router = await startRouter(routerOptions(flags, log));
      // The drain timeout bounds the wait for requests; the rest bounds stopping the servers and watches.
      onShutdown(log, [() => router.close()], flags.drainTimeout + 15_000);
    });
}
