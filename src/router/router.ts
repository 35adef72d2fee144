// `kvroute router` assembled: the endpoint source (static or the pool's pods), the config (file, text or
// kvroute's default) and the scheduler built from it, swapped whole when the mounted file changes; the
// director; the ext_proc and health gRPC servers; the metrics HTTP server. close() drains first: the
// router stops being ready and lets open requests finish, up to the drain timeout.

import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { DEFAULT_ENDPOINT_PICKER_CONFIG, type EndpointPickerConfig } from '../api/endpoint-picker-config.ts';
import { parseDuration } from '../common/duration.ts';
import { startHttpServer, type RunningHttpServer } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import { createRegistry } from '../common/metrics.ts';
import type { PrefixScorer } from '../indexer/public.ts';
import { loadConfigFile, parseConfigText, watchConfigFile } from './config-file.ts';
import { Director, type RoutingState } from './director.ts';
import { createKubeEndpointSource } from './endpoints/kube-source.ts';
import { createStaticEndpointSource } from './endpoints/static-source.ts';
import { startExtProcServer, type RunningExtProcServer } from './extproc/server.ts';
import { handleProcessStream } from './extproc/stream.ts';
import { createRouterMetrics, type RouterMetrics } from './metrics.ts';
import { ModelTable } from './request/models.ts';
import { buildScheduler, type ClosableScheduler } from './scheduling/build.ts';
import type { EndpointSource } from './types.ts';

export interface RouterOptions {
  /** Address every server listens on (default 0.0.0.0). */
  host?: string;
  grpcPort: number;
  grpcHealthPort: number;
  metricsPort: number;
  /** TLS on the ext_proc port (default true). */
  secureServing?: boolean;
  /** Directory with tls.crt and tls.key; self-signed when absent. */
  certPath?: string;
  /** EndpointPickerConfig file, re-read when it changes (a mounted ConfigMap). */
  configFile?: string;
  /** EndpointPickerConfig as text (no reload). */
  configText?: string;

  /** Local mode: fixed `host:port` endpoints. */
  endpoints?: string[];
  /** Kubernetes mode: the InferencePool whose Ready pods are the endpoints... */
  poolName?: string;
  poolNamespace?: string;
  poolGroup?: string;
  /** ...or pods selected by labels, on these ports. */
  endpointSelector?: Record<string, string>;
  endpointTargetPorts?: number[];
  servingLabel?: { key: string; value: string };
  /** Needed in Kubernetes mode. */
  kubeConfig?: KubeConfig;

  /** Overrides every precise-prefix plugin's indexerAddress. */
  indexer?: string;
  /** The pool's base model: other target models are LoRA adapters. */
  model?: string;
  refreshMetricsIntervalMs?: number;
  metricsStalenessMs?: number;
  drainTimeoutMs?: number;
  /** GIE's conformance hooks (test-epp-endpoint-selection, x-conformance-test-served-endpoint); off by default. */
  conformanceTestHooks?: boolean;
  /** Input bounds (defaults in RequestLimits' comments): larger requests get a 413 or 431, more streams a 503. */
  limits?: RequestLimits;

  log: Logger;
  registry?: Registry;
  /** Seams for tests: an endpoint source instead of the flags' one, indexer clients, the random source. */
  endpointSource?: EndpointSource;
  indexerClient?: (address: string) => PrefixScorer;
  random?: () => number;
}

/** What the router accepts from the gateway; each is a flag of `kvroute router`. */
export interface RequestLimits {
  /** Request body bytes, enforced as the body streams in (413); default 64 MiB. */
  maxRequestBodyBytes?: number;
  /** Request headers (431); default 256. */
  maxRequestHeaders?: number;
  /** Bytes of header names and values (431); default 256 KiB. */
  maxRequestHeaderBytes?: number;
  /** Process streams open at once (503 beyond); default 10000. */
  maxConcurrentStreams?: number;
}

export interface RunningRouter {
  grpcPort: number;
  healthPort: number;
  metricsPort: number;
  /** Stops being ready, then waits for open requests up to the drain timeout. */
  drain(): Promise<void>;
  /** Drains, then stops everything. */
  close(): Promise<void>;
}

const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
/** A replaced scheduler may still be scoring requests that started before the reload. */
const OLD_SCHEDULER_GRACE_MS = 2_000;

function createEndpointSource(options: RouterOptions, registry: Registry): EndpointSource {
  if (options.endpointSource) return options.endpointSource;
  const scrape = { intervalMs: options.refreshMetricsIntervalMs ?? 50, stalenessMs: options.metricsStalenessMs ?? 2_000 };
  const log = options.log.child({ component: 'endpoints' });
  const kubeMode = options.poolName !== undefined || options.endpointSelector !== undefined;
  if (options.endpoints !== undefined) {
    if (kubeMode)
      throw new Error('--endpoints (local mode) and --pool-name/--endpoint-selector (Kubernetes mode) are alternatives; give one');
    return createStaticEndpointSource({ addresses: options.endpoints, scrape, log, registry });
  }
  if (!kubeMode)
    throw new Error('no endpoints: give --endpoints host:port,... (local mode), or --pool-name or --endpoint-selector (Kubernetes mode)');
  if (!options.kubeConfig) throw new Error('Kubernetes mode (--pool-name/--endpoint-selector) needs a kubeconfig');
  return createKubeEndpointSource({
    kubeConfig: options.kubeConfig,
    namespace: options.poolNamespace ?? 'default',
    ...(options.poolName !== undefined ? { poolName: options.poolName } : {}),
    ...(options.poolGroup !== undefined ? { poolGroup: options.poolGroup } : {}),
    ...(options.endpointSelector !== undefined ? { selector: options.endpointSelector } : {}),
    ...(options.endpointTargetPorts !== undefined ? { targetPorts: options.endpointTargetPorts } : {}),
    servingLabel: options.servingLabel ?? { key: 'llm-d.ai/inferenceServing', value: 'true' },
    scrape,
    log,
    registry,
  });
}

function initialConfig(options: RouterOptions, log: Logger): EndpointPickerConfig {
  if (options.configFile !== undefined && options.configText !== undefined)
    throw new Error('--config-file and --config-text are alternatives; give one');
  if (options.configFile !== undefined) return loadConfigFile(options.configFile, log);
  if (options.configText !== undefined) return parseConfigText(options.configText, '--config-text', log);
  return DEFAULT_ENDPOINT_PICKER_CONFIG;
}

export async function startRouter(options: RouterOptions): Promise<RunningRouter> {
  const log = options.log;
  const registry = options.registry ?? createRegistry();
  const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const limits = options.limits ?? {};
  const closers: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        log.error('error while stopping the router', { err });
      }
    }
  };

  try {
    const configLog = log.child({ component: 'config' });
    const config = initialConfig(options, configLog);
    const endpoints = createEndpointSource(options, registry);
    closers.push(() => endpoints.close());
    const metrics: RouterMetrics = createRouterMetrics(registry, { endpoints: () => endpoints.snapshot() });

    const schedulerDeps = {
      log: log.child({ component: 'scheduler' }),
      registry,
      ...(options.indexerClient ? { indexer: options.indexerClient } : {}),
      ...(options.indexer !== undefined ? { indexerAddressOverride: options.indexer } : {}),
      ...(options.random ? { random: options.random } : {}),
    };
    const routingState = (c: EndpointPickerConfig, scheduler: ClosableScheduler): RoutingState & { scheduler: ClosableScheduler } => ({
      scheduler,
      models: new ModelTable(c.models, {
        ...(options.model !== undefined ? { baseModel: options.model } : {}),
        ...(options.random ? { random: options.random } : {}),
      }),
      saturation: {
        queueDepthThreshold: c.saturationDetector.queueDepthThreshold,
        kvCacheUtilThreshold: c.saturationDetector.kvCacheUtilThreshold,
        metricsStalenessMs: parseDuration(c.saturationDetector.metricsStalenessThreshold, 'saturationDetector.metricsStalenessThreshold'),
      },
    });
    let state = routingState(config, buildScheduler(config, schedulerDeps));
    const retired = new Set<{ scheduler: ClosableScheduler; timer: NodeJS.Timeout }>();
    closers.push(() => {
      state.scheduler.close();
      for (const r of retired) {
        clearTimeout(r.timer);
        r.scheduler.close();
      }
      retired.clear();
    });

    if (options.configFile !== undefined) {
      const path = options.configFile;
      const watcher = watchConfigFile(
        path,
        (next) => {
          let nextState;
          try {
            nextState = routingState(next, buildScheduler(next, schedulerDeps));
          } catch (err) {
            // The watcher logs it and keeps the config in force.
            metrics.configReloads.inc({ result: 'error' });
            throw err;
          }
          const old = state.scheduler;
          state = nextState;
          const entry = { scheduler: old, timer: setTimeout(() => (retired.delete(entry), old.close()), OLD_SCHEDULER_GRACE_MS) };
          entry.timer.unref();
          retired.add(entry);
          metrics.configReloads.inc({ result: 'success' });
        },
        configLog,
        { initial: config },
      );
      closers.push(() => watcher.close());
    }

    const director = new Director({
      endpoints,
      state: () => state,
      log: log.child({ component: 'director' }),
      metrics,
      ...(options.conformanceTestHooks ? { testHooks: true } : {}),
    });
    const streamLog = log.child({ component: 'extproc' });
    const extProc: RunningExtProcServer = await startExtProcServer({
      ...(options.host !== undefined ? { host: options.host } : {}),
      port: options.grpcPort,
      healthPort: options.grpcHealthPort,
      ...(options.secureServing !== undefined ? { secureServing: options.secureServing } : {}),
      ...(options.certPath !== undefined ? { certPath: options.certPath } : {}),
      synced: () => endpoints.synced(),
      log: streamLog,
      ...(limits.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: limits.maxConcurrentStreams } : {}),
      // A BUFFERED body arrives in one message: room for the largest body and header block allowed.
      maxReceiveMessageBytes: (limits.maxRequestBodyBytes ?? 64 * 1024 * 1024) + (limits.maxRequestHeaderBytes ?? 256 * 1024) + 1024 * 1024,
      onRefused: (status, reason) => metrics.errors.inc({ code: String(status), reason }),
      handler: (call) =>
        handleProcessStream(call, {
          director,
          log: streamLog,
          metrics,
          ...(options.conformanceTestHooks ? { testHooks: true } : {}),
          ...(limits.maxRequestBodyBytes !== undefined ? { maxRequestBodyBytes: limits.maxRequestBodyBytes } : {}),
          ...(limits.maxRequestHeaders !== undefined ? { maxRequestHeaders: limits.maxRequestHeaders } : {}),
          ...(limits.maxRequestHeaderBytes !== undefined ? { maxRequestHeaderBytes: limits.maxRequestHeaderBytes } : {}),
        }),
    });
    closers.push(() => extProc.close());

    let draining = false;
    const http: RunningHttpServer = await startHttpServer({
      ...(options.host !== undefined ? { host: options.host } : {}),
      port: options.metricsPort,
      log: log.child({ component: 'metrics' }),
      registry,
      ready: () => endpoints.synced() && !draining,
      routes: {},
    });
    closers.push(() => http.close());

    log.info('router started', {
      grpcPort: extProc.port,
      healthPort: extProc.healthPort,
      metricsPort: http.port,
      config: options.configFile ?? (options.configText !== undefined ? '--config-text' : 'default'),
      endpoints: options.endpointSource ? 'injected' : options.endpoints !== undefined ? 'static' : 'kubernetes',
    });

    const drain = async () => {
      draining = true;
      await extProc.drain(drainTimeoutMs);
    };
    let closing: Promise<void> | undefined;
    return {
      grpcPort: extProc.port,
      healthPort: extProc.healthPort,
      metricsPort: http.port,
      drain,
      close() {
        closing ??= (async () => {
          await drain();
          await closeAll();
          log.info('router stopped');
        })();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
