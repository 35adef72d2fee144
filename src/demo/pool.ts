// The local pool the routing harness measures, as real `kvroute` child processes wired the way a
// cluster is: N simulated vLLM pods (one `kvroute sim --replicas N`), the indexer subscribed to each
// pod's KV-event publisher, the router over the pods (its config file swapped per strategy, which it
// hot-reloads) and a gateway (Envoy or the built-in front) in front of the router. Also owns what the
// harness asks the pool between runs: cache resets, the pods' prefix-cache counters, and each
// request's engine timings from the pods' logs.

import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../common/log.ts';
import { startKvroute, type KvrouteChild, type LogRecord } from './process.ts';
import { sumSamples } from './prometheus.ts';

/** Which gateway fronts the router: Envoy when found (auto), a given Envoy binary, or the built-in front. */
export type GatewayChoice = { kind: 'auto' } | { kind: 'envoy'; path: string } | { kind: 'builtin' };

export interface PoolOptions {
  pods: number;
  model: string;
  /** Tokenizer source of the pods and the indexer (src/tokenize), e.g. npm:qwen3. */
  tokenizer: string;
  /** Tokenize on worker threads; off when every prompt is token ids (nothing to tokenize). */
  tokenizerWorkers: number;
  blockSize: number;
  /** KV blocks per pod (vLLM num_gpu_blocks). */
  kvBlocks: number;
  /** The pods' max model length (prompt + completion). */
  maxModelLen: number;
  /** Simulated ms per wall ms of the pods. */
  timeScale: number;
  seed: number;
  gateway: GatewayChoice;
  /** ext_proc over TLS (the router's default and GIE's); false: plaintext h2c. */
  routerTls: boolean;
  /** The first strategy's EndpointPickerConfig YAML. */
  routerConfig: string;
  /** Where the children's logs go; a new temporary directory when absent. */
  logDir?: string;
  /** Longest wait for each process to become ready. */
  startTimeoutMs?: number;
  log: Logger;
}

export interface PoolPod {
  /** The pod's own id (`sim-0`...): its `x-inference-pod` header, and its name in reports. */
  name: string;
  /** `127.0.0.1:<port>`: the router's endpoint and the indexer's pod id for it. */
  address: string;
  url: string;
}

/** What the pod's engine logged for one request (simulated ms). */
export interface EngineTiming {
  ttftMs: number;
  e2eMs: number;
  cachedTokens: number;
  promptTokens: number;
}

export interface PodCounters {
  prefixCacheHits: number;
  prefixCacheQueries: number;
}

export interface RoutingPool {
  readonly pods: readonly PoolPod[];
  readonly gatewayUrl: string;
  readonly gateway: 'envoy' | 'builtin';
  readonly indexerUrl: string;
  /** The router's /metrics. */
  readonly routerMetricsUrl: string;
  readonly logDir: string;
  /** Swaps the router's config file and waits until the router reloaded it (no-op when unchanged). */
  setRouterConfig(yaml: string): Promise<void>;
  /** Empties every pod's prefix cache and waits until the indexer holds no block of any pod. */
  resetCaches(): Promise<void>;
  /** Each pod's vllm:prefix_cache_hits_total and _queries_total now, by pod name. */
  counters(): Promise<Record<string, PodCounters>>;
  /** The engine's timings of a request by its response id, once the pod logged it. */
  engineTiming(id: string): EngineTiming | undefined;
  /** Waits until every id has its engine timings (the log line can trail the response). */
  waitForEngineTimings(ids: readonly string[], timeoutMs?: number): Promise<void>;
  /** Forgets engine timings seen so far (between strategies). */
  clearEngineTimings(): void;
  stop(): Promise<void>;
}

const DEFAULT_START_TIMEOUT_MS = 120_000;
const RESET_TIMEOUT_MS = 60_000;
const RELOAD_TIMEOUT_MS = 30_000;

/** A ZMQ endpoint bound on all interfaces (`tcp://0.0.0.0:P`), as a peer on this machine connects to it. */
function localEndpoint(bound: unknown, what: string): string {
  if (typeof bound !== 'string') throw new Error(`${what}: the simulator logged no bound endpoint`);
  const m = /^tcp:\/\/[^/]*:(\d+)$/.exec(bound);
  if (!m) throw new Error(`${what}: unexpected bound endpoint "${bound}"`);
  return `tcp://127.0.0.1:${m[1]}`;
}

function portField(record: LogRecord, field: string, what: string): number {
  const value = record[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)
    throw new Error(`${what}: its "${String(record.msg)}" log line has no port in "${field}"`);
  return value;
}

async function fetchOk(url: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res;
}

/** Polls `check` until it returns true, or throws `message` (with the last error) at the deadline. */
async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`${message} within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await delay(50);
  }
}

function gatewayArgs(choice: GatewayChoice): string[] {
  switch (choice.kind) {
    case 'auto':
      return [];
    case 'envoy':
      return ['--envoy', choice.path];
    case 'builtin':
      return ['--builtin'];
  }
}

/** Starts the pool; on any failure, stops what was started and rethrows. */
export async function startRoutingPool(o: PoolOptions): Promise<RoutingPool> {
  const logDir = o.logDir ?? mkdtempSync(join(tmpdir(), 'kvroute-routing-'));
  mkdirSync(logDir, { recursive: true });
  // The router watches its config's directory: a folder of its own, away from the growing logs.
  const configDir = join(logDir, 'router-config');
  mkdirSync(configDir, { recursive: true });
  const configFile = join(configDir, 'router.yaml');
  const startTimeoutMs = o.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const timings = new Map<string, EngineTiming>();
  const children: KvrouteChild[] = [];
  const log = o.log;

  const stop = async (): Promise<void> => {
    // The gateway first, so nothing new reaches the router; then the rest together.
    const [first, ...rest] = [...children].reverse();
    children.length = 0;
    if (first) await first.stop(10_000);
    await Promise.all(rest.map((c) => c.stop(10_000)));
  };

  try {
    const sim = startKvroute(
      [
        'sim',
        `--replicas=${o.pods}`,
        '--base-port=0',
        '--host=127.0.0.1',
        `--model=${o.model}`,
        `--tokenizer=${o.tokenizer}`,
        `--tokenizer-workers=${o.tokenizerWorkers}`,
        `--block-size=${o.blockSize}`,
        `--kv-blocks=${o.kvBlocks}`,
        `--max-model-len=${o.maxModelLen}`,
        `--time-scale=${o.timeScale}`,
        `--seed=${o.seed}`,
        // Each pod binds its publisher and replay socket on a free port; the indexer connects to them.
        '--kv-events-endpoint=tcp://*:0',
        '--kv-events-replay-endpoint=tcp://*:0',
        // The reset between strategies reaches the indexer at once, not with the pod's next step.
        '--kv-events-flush-on-reset',
        // "request finished" (debug) carries each request's simulated TTFT.
        '--log-level=debug',
      ],
      {
        name: 'kvroute sim',
        logFile: join(logDir, 'sim.log'),
        onRecord: (r) => {
          if (r.msg !== 'request finished' || typeof r.id !== 'string') return;
          if (typeof r.ttftMs !== 'number' || typeof r.e2eMs !== 'number') return;
          timings.set(r.id, {
            ttftMs: r.ttftMs,
            e2eMs: r.e2eMs,
            cachedTokens: typeof r.cachedTokens === 'number' ? r.cachedTokens : 0,
            promptTokens: typeof r.promptTokens === 'number' ? r.promptTokens : 0,
          });
        },
      },
    );
    children.push(sim);
    const pods: Array<PoolPod & { events: string; replay: string }> = [];
    for (let i = 0; i < o.pods; i++) {
      const name = o.pods === 1 ? 'sim-0' : `sim-${i}`;
      const ready = await sim.waitForLog((r) => r.msg === 'simulated vllm pod ready' && r.pod === name, startTimeoutMs);
      const port = portField(ready, 'port', `pod ${name}`);
      pods.push({
        name,
        address: `127.0.0.1:${port}`,
        url: `http://127.0.0.1:${port}`,
        events: localEndpoint(ready.kvEvents, `pod ${name}`),
        replay: localEndpoint(ready.kvEventsReplay, `pod ${name}`),
      });
    }
    log.info('simulated pods ready', { pods: pods.map((p) => `${p.name}=${p.address}`) });

    const indexer = startKvroute(
      [
        'indexer',
        '--listen-host=127.0.0.1',
        '--http-port=0',
        '--grpc-port=0',
        `--block-size=${o.blockSize}`,
        `--tokenizer=${o.model}=${o.tokenizer}`,
        `--tokenizer-workers=${o.tokenizerWorkers}`,
        // Per-pod mode, as discovery runs in a cluster: the pod id is the router's endpoint address.
        ...pods.flatMap((p) => ['--pod', `${p.address}=${p.events},${p.replay}`]),
      ],
      { name: 'kvroute indexer', logFile: join(logDir, 'indexer.log') },
    );
    children.push(indexer);
    const indexerReady = await indexer.waitForLog('indexer ready', startTimeoutMs);
    const indexerHttp = portField(indexerReady, 'httpPort', 'kvroute indexer');
    const indexerGrpc = portField(indexerReady, 'grpcPort', 'kvroute indexer');
    const indexerUrl = `http://127.0.0.1:${indexerHttp}`;

    writeFileSync(configFile, o.routerConfig);
    let currentConfig = o.routerConfig;
    const router = startKvroute(
      [
        'router',
        '--grpc-port=0',
        '--grpc-health-port=0',
        '--metrics-port=0',
        `--secure-serving=${o.routerTls}`,
        `--endpoints=${pods.map((p) => p.address).join(',')}`,
        `--indexer=127.0.0.1:${indexerGrpc}`,
        `--model=${o.model}`,
        `--config-file=${configFile}`,
        '--drain-timeout=2s',
      ],
      { name: 'kvroute router', logFile: join(logDir, 'router.log') },
    );
    children.push(router);
    const routerReady = await router.waitForLog('router started', startTimeoutMs);
    const routerGrpc = portField(routerReady, 'grpcPort', 'kvroute router');
    const routerMetrics = portField(routerReady, 'metricsPort', 'kvroute router');
    await pollUntil(
      async () => (await fetch(`http://127.0.0.1:${routerMetrics}/readyz`)).ok,
      startTimeoutMs,
      'the router did not become ready',
    );

    const gatewayProcess = startKvroute(
      [
        'gateway',
        '--host=127.0.0.1',
        '--port=0',
        '--admin-port=0',
        `--router=127.0.0.1:${routerGrpc}`,
        ...(o.routerTls ? [] : ['--router-plaintext']),
        ...gatewayArgs(o.gateway),
      ],
      { name: 'kvroute gateway', logFile: join(logDir, 'gateway.log') },
    );
    children.push(gatewayProcess);
    const gatewayReady = await gatewayProcess.waitForLog((r) => r.msg === 'listening' && r.what === 'gateway', startTimeoutMs);
    const gatewayPort = portField(gatewayReady, 'port', 'kvroute gateway');
    const implementation = gatewayReady.implementation === 'envoy' ? 'envoy' : 'builtin';
    const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    log.info('pool ready', { gateway: implementation, gatewayUrl, indexerUrl, logDir });

    // A dead child fails the run with its output rather than with a wall of connection errors.
    let stopping = false;
    for (const c of children) {
      void c.exited.then((code) => {
        if (!stopping && !c.stopRequested)
          log.error('a pool process exited during the run', {
            process: c.name,
            code,
            lastOutput: c.tail().split('\n').slice(-10).join('\n'),
          });
      });
    }

    const counters = async (): Promise<Record<string, PodCounters>> => {
      const out: Record<string, PodCounters> = {};
      await Promise.all(
        pods.map(async (p) => {
          const text = await (await fetchOk(`${p.url}/metrics`)).text();
          const hits = sumSamples(text, 'vllm:prefix_cache_hits_total');
          const queries = sumSamples(text, 'vllm:prefix_cache_queries_total');
          if (hits === null || queries === null)
            throw new Error(`pod ${p.name}: /metrics has no vllm:prefix_cache_hits_total / queries_total`);
          out[p.name] = { prefixCacheHits: hits, prefixCacheQueries: queries };
        }),
      );
      return out;
    };

    const resetCaches = async (): Promise<void> => {
      await Promise.all(
        pods.map((p) =>
          // vLLM answers success false while running requests still hold blocks: retry until they finish.
          pollUntil(
            async () => {
              const body = (await (await fetchOk(`${p.url}/reset_prefix_cache`, { method: 'POST' })).json()) as { success?: unknown };
              return body.success === true;
            },
            RESET_TIMEOUT_MS,
            `pod ${p.name} did not reset its prefix cache`,
          ),
        ),
      );
      await pollUntil(
        async () => {
          const body = (await (await fetchOk(`${indexerUrl}/v1/pods`)).json()) as { pods?: Record<string, unknown> };
          return pods.every((p) => (body.pods?.[p.address] ?? 0) === 0);
        },
        RESET_TIMEOUT_MS,
        'the indexer still held blocks of reset pods',
      );
    };

    const setRouterConfig = async (yaml: string): Promise<void> => {
      if (yaml === currentConfig) return;
      const after = router.recordCount();
      const outcome = router.waitForLog(
        (r) => typeof r.msg === 'string' && (r.msg === 'router config reloaded' || r.msg.startsWith('router config change')),
        RELOAD_TIMEOUT_MS,
        after,
      );
      // Written beside and renamed over the file, so the router never reads half of it.
      const tmp = join(configDir, `.router.yaml.${process.pid}`);
      writeFileSync(tmp, yaml);
      renameSync(tmp, configFile);
      const record = await outcome;
      if (record.msg !== 'router config reloaded')
        throw new Error(`the router rejected the strategy's config: ${String(record.error ?? record.err ?? record.msg)}`);
      currentConfig = yaml;
    };

    return {
      pods: pods.map(({ name, address, url }) => ({ name, address, url })),
      gatewayUrl,
      gateway: implementation,
      indexerUrl,
      routerMetricsUrl: `http://127.0.0.1:${routerMetrics}/metrics`,
      logDir,
      setRouterConfig,
      resetCaches,
      counters,
      engineTiming: (id) => timings.get(id),
      waitForEngineTimings: (ids, timeoutMs = 30_000) =>
        pollUntil(
          () => Promise.resolve(ids.every((id) => timings.has(id))),
          timeoutMs,
          `the pods did not log the timings of ${ids.filter((id) => !timings.has(id)).length} requests`,
        ),
      clearEngineTimings: () => timings.clear(),
      stop: async () => {
        stopping = true;
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
