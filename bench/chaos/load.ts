// The chaos suite's load part (issue 10): the router and the indexer held at a constant request rate
// for minutes, 2k-token prompts at 1,000 req/s and 100k-token prompts at 100 req/s, through a real
// Envoy as the GIE standalone gateway (ext_proc over TLS, ORIGINAL_DST), `kvroute router` with its
// default profile asking a real `kvroute indexer`, and in-bench upstreams that answer at once, serve
// vLLM metrics and publish their simulated KV caches to the indexer as vLLM KV events (store on serve,
// LRU eviction at a fixed capacity), so the index churns as production's does. Each scenario starts a
// fresh stack. Every window the router's and the indexer's /metrics (prom-client default metrics: RSS,
// heap used, event-loop delay p99 since the previous scrape; for the indexer also its tokenizer workers'
// heaps and tokenization-cache bytes, part of its RSS but not of its main heap) and the CPU time of each
// process are sampled, and the load generator (a child process, open loop) reports its window's rate, errors and
// latency. The report says whether memory stayed flat (least-squares slope over the second half
// against a stated threshold) and, when the target rate was not met, which process was saturated.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEnvoy, type RunningEnvoy } from '../../src/gateway/envoy-process.ts';
import { silentLogger } from '../../src/common/log.ts';
import { parseIndexerConfig } from '../../src/api/indexer-config.ts';
import { fmt, formatTable } from '../../src/common/table.ts';
import { envoyBinary, envoyGatewayConfig } from '../../e2e/support/envoy.ts';
import { metricValue } from '../../e2e/support/prometheus-text.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../../test/support/kvroute.ts';
import { nodeBinary } from '../../test/support/node.ts';
import { repoRoot } from '../../test/support/repo-root.ts';
import { startUpstream, words, type Upstream } from '../lib/gateway-load.ts';
import { PREFIX_HEADER, prefixText, startLoadClient, type LoadSummary, type LoadWindow, type PromptMix } from '../lib/load-client.ts';
import { cpuSeconds, environment, writeResults, type BenchEnvironment } from '../lib/results.ts';
import { SimulatedKvCache, type KvCacheStats } from '../lib/simulated-kv-cache.ts';

const MODEL = 'bench';
const UPSTREAMS = 3;
const BLOCK_SIZE = 16;
const ENVOY_CONCURRENCY = 2;
const MAX_IN_FLIGHT = 1024;
const REQUEST_TIMEOUT_MS = 15_000;
/** Memory is "flat" when its least-squares slope over the run's second half stays under this. */
const FLAT_BYTES_PER_MIN = 2 * 2 ** 20;
const WARM_UP_SECONDS = 10;
/** prom-client samples event-loop delay with a 10 ms timer; its figures include that period. */
const EVENT_LOOP_RESOLUTION_MS = 10;

export interface LoadOptions {
  /** Short form (CI, the chaos test): both scenarios at a modest rate for seconds. */
  quick: boolean;
  /** Full form: minutes per scenario (default 10). */
  minutes?: number;
  progress: (line: string) => void;
  /** Run only these scenarios (default both). */
  only?: Array<'2k' | '100k'>;
  /** Override a scenario's target rate (for an extra run at the highest rate the machine sustains). */
  rates?: Partial<Record<'2k' | '100k', number>>;
}

interface ScenarioSpec {
  name: '2k' | '100k';
  targetRate: number;
  seconds: number;
  windowSeconds: number;
  promptTokens: number;
  prefixes: number;
  prefixTokens: number;
  zipf: number;
  /** Blocks each upstream's simulated KV cache holds before evicting. */
  capacityBlocks: number;
  description: string;
}

function scenarios(options: LoadOptions): ScenarioSpec[] {
  const seconds = options.quick ? undefined : Math.round((options.minutes ?? 10) * 60);
  const all: ScenarioSpec[] = [
    {
      name: '2k',
      targetRate: options.quick ? 50 : 1000,
      seconds: seconds ?? 30,
      windowSeconds: options.quick ? 3 : 10,
      promptTokens: 2000,
      prefixes: 24,
      prefixTokens: 1500,
      zipf: 1,
      capacityBlocks: 8192,
      description:
        'chat: 24 system prompts of ~1.5k tokens (Zipf s=1 popularity) shared by many users, each request ending in its own ~500-token tail',
    },
    {
      name: '100k',
      targetRate: options.quick ? 5 : 100,
      seconds: seconds ?? 15,
      windowSeconds: options.quick ? 3 : 10,
      promptTokens: 100_000,
      prefixes: 6,
      prefixTokens: 96_000,
      zipf: 1,
      capacityBlocks: 40_960,
      description: 'long context: 6 shared documents of ~96k tokens (Zipf s=1) with a distinct ~4k-token question per request',
    },
  ];
  return all
    .filter((s) => !options.only || options.only.includes(s.name))
    .map((s) => ({ ...s, targetRate: options.rates?.[s.name] ?? s.targetRate }));
}

// ---------------------------------------------------------------------------------------------------
// Report shapes (JSON-serialisable).

export interface ProcessSample {
  rssBytes: number;
  heapUsedBytes: number;
  /** prom-client's nodejs_eventloop_lag_p99_seconds since the previous scrape, in ms (includes the 10 ms timer). */
  eventLoopP99Ms: number;
  /** CPU time over the window as a share of one core (worker threads included). */
  cpuPercent: number;
}

/** The indexer's tokenizer worker threads, summed over workers: in its RSS, not in its main heap. */
export interface TokenizerSample {
  /** kvroute_tokenizer_worker_heap_used_bytes */
  heapUsedBytes: number;
  /** kvroute_tokenizer_worker_heap_size_bytes: what the workers' heaps hold of the RSS. */
  heapSizeBytes: number;
  /** kvroute_tokenizer_cache_bytes: the segment caches as counted against their bound. */
  cacheBytes: number;
}

export interface ServerSample {
  atS: number;
  router: ProcessSample;
  indexer: ProcessSample & { indexKeys: number; indexBytes: number; shed: number; tokenizer: TokenizerSample };
  envoyCpuPercent: number;
  loadGeneratorCpuPercent: number;
  /** This process: the upstreams and their KV-event publishers. */
  benchCpuPercent: number;
  loadAverage1m: number;
}

export interface MemoryTrend {
  firstHalfMeanBytes: number;
  secondHalfMeanBytes: number;
  /** Least-squares slope over the second half, fitted to the floor (minimum) of each of its fifths. */
  secondHalfSlopeBytesPerMin: number;
  flat: boolean;
}

export interface ProcessVerdict {
  rss: MemoryTrend;
  heapUsed: MemoryTrend;
  /** Highest window p99 of event-loop delay over the run, and the median window's, ms as prom-client reports (includes its 10 ms timer). */
  eventLoopDelayP99Ms: { worstWindow: number; medianWindow: number };
  cpuPercentMean: number;
}

export interface ScenarioReport {
  name: string;
  description: string;
  targetRate: number;
  seconds: number;
  windowSeconds: number;
  mix: PromptMix & { prefixTokens: number; tailTokens: number; promptTokens: number; bodyBytes: number };
  kvCache: { upstreams: number; capacityBlocksPerUpstream: number; blockSize: number } & KvCacheStats & {
      /** Share of requests served by an upstream that already held their shared prefix. */
      prefixHitRate: number;
    };
  requests: { sent: number; completed: number; failed: number; errors: Record<string, number> };
  achievedRate: number;
  /** Scheduled send to last byte, over the whole run. */
  latencyMs: { p50: number | null; p99: number | null; p999: number | null; max: number | null };
  sendLagP99Ms: number | null;
  router: ProcessVerdict;
  indexer: ProcessVerdict & {
    indexKeysAtEnd: number;
    indexBytesAtEnd: number;
    shedTotal: number;
    /**
     * Where the indexer's RSS beyond its main heap goes: the tokenizer workers' heaps, which grow while
     * the tokenization cache fills and are flat once it holds `cacheBoundBytes`.
     */
    tokenizer: {
      heapUsed: MemoryTrend;
      heapSize: MemoryTrend;
      cacheBytesAtEnd: number;
      /** tokenization.cacheMaxBytes times the workers (one model is served). */
      cacheBoundBytes: number;
    };
  };
  envoyCpuPercentMean: number;
  loadGeneratorCpuPercentMean: number;
  upstreamsCpuPercentMean: number;
  /**
   * CPU time each process spent per completed request over the sampled windows: a cost that does not
   * depend on how much of the machine other work took, so it says where the rate would saturate.
   */
  cpuMsPerCompletedRequest: Record<'router' | 'indexer' | 'envoy' | 'loadGenerator' | 'upstreams', number>;
  /** Rates those costs allow: the router on its one event-loop thread, and the whole stack on this machine's cores. */
  ceilingRate: { routerOneCore: number; stackAllCores: number };
  /** Memory flat for both processes, by the slope threshold. */
  memoryFlat: boolean;
  /** Whether the target rate was held (achieved >= 98% of it, no request failed). */
  sustained: boolean;
  /** When not sustained: the busiest process, from the CPU samples. */
  saturation: string | null;
  loadAverageAtEnd: number[];
  /** Window scrapes of /metrics that failed (their window has no sample). */
  scrapeFailures: number;
  windows: LoadWindow[];
  samples: ServerSample[];
}

export interface LoadReport {
  description: string;
  command: string;
  environment: BenchEnvironment & { envoy: string };
  config: Record<string, string | number>;
  scenarios: ScenarioReport[];
}

// ---------------------------------------------------------------------------------------------------

async function metricsPage(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.text();
}

/** The default-metrics gauges a sample needs; throws naming the one missing (prom-client defaults not registered). */
function processMetrics(page: string, source: string): Omit<ProcessSample, 'cpuPercent'> {
  const read = (name: string) => {
    const v = metricValue(page, name);
    if (Number.isNaN(v)) throw new Error(`${source} /metrics has no ${name}: are prom-client's default metrics registered?`);
    return v;
  };
  return {
    rssBytes: read('kvroute_process_resident_memory_bytes'),
    heapUsedBytes: read('kvroute_nodejs_heap_size_used_bytes'),
    eventLoopP99Ms: +(read('kvroute_nodejs_eventloop_lag_p99_seconds') * 1000).toFixed(3),
  };
}

/** The indexer's tokenizer-worker gauges, summed over workers; NaN where a gauge is missing. */
function tokenizerMetrics(page: string): TokenizerSample {
  return {
    heapUsedBytes: metricValue(page, 'kvroute_tokenizer_worker_heap_used_bytes'),
    heapSizeBytes: metricValue(page, 'kvroute_tokenizer_worker_heap_size_bytes'),
    cacheBytes: metricValue(page, 'kvroute_tokenizer_cache_bytes'),
  };
}

/** The indexer's defaults as load.ts runs it (no config file): what its tokenization cache may hold. */
function tokenizerCacheBound(): number {
  const { tokenization } = parseIndexerConfig({ zmq: { bind: 'tcp://127.0.0.1:0' } });
  return tokenization.cacheMaxBytes * tokenization.workers;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

/** Segments of the second half whose floors (minimum sample) the slope is fitted to. */
const FLOOR_SEGMENTS = 5;

function trend(samples: ServerSample[], value: (s: ServerSample) => number): MemoryTrend {
  const half = Math.floor(samples.length / 2);
  const first = samples.slice(0, half);
  const second = samples.slice(half);
  // A heap read at a random point of the GC sawtooth tilts a fit over raw samples; the floor of each
  // segment (what survives collection) is what a leak raises.
  const size = Math.max(1, Math.floor(second.length / FLOOR_SEGMENTS));
  const floors: Array<{ atMin: number; bytes: number }> = [];
  for (let i = 0; i + size <= second.length; i += size) {
    const segment = second.slice(i, i + size);
    floors.push({ atMin: mean(segment.map((s) => s.atS)) / 60, bytes: Math.min(...segment.map(value)) });
  }
  const perMin = slope(
    floors.map((f) => f.atMin),
    floors.map((f) => f.bytes),
  );
  return {
    firstHalfMeanBytes: Math.round(mean(first.map(value))),
    secondHalfMeanBytes: Math.round(mean(second.map(value))),
    secondHalfSlopeBytesPerMin: Math.round(perMin),
    flat: Number.isFinite(perMin) && perMin < FLAT_BYTES_PER_MIN,
  };
}

function verdict(samples: ServerSample[], pick: (s: ServerSample) => ProcessSample): ProcessVerdict {
  const loops = samples.map((s) => pick(s).eventLoopP99Ms);
  return {
    rss: trend(samples, (s) => pick(s).rssBytes),
    heapUsed: trend(samples, (s) => pick(s).heapUsedBytes),
    eventLoopDelayP99Ms: { worstWindow: Math.max(...loops), medianWindow: median(loops) },
    cpuPercentMean: +mean(samples.map((s) => pick(s).cpuPercent)).toFixed(1),
  };
}

interface Stack {
  indexer: KvrouteProcess;
  router: KvrouteProcess;
  envoy: RunningEnvoy;
  upstreams: Upstream[];
  caches: SimulatedKvCache[];
  indexerHttp: string;
  routerMetrics: string;
  stop(): Promise<void>;
}

async function tokenize(indexerHttp: string, prompt: string): Promise<number[]> {
  const res = await fetch(`${indexerHttp}/v1/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt }),
  });
  if (!res.ok) throw new Error(`indexer /v1/tokenize: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { tokens: number[] }).tokens;
}

/** Fresh processes per scenario, so one scenario's memory does not carry into the next. */
async function startStack(
  spec: ScenarioSpec,
  mixFor: (tokensPerWord: number) => PromptMix,
): Promise<Stack & { mix: PromptMix; tokensPerWord: number }> {
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    const indexer = await spawnKvroute(
      [
        'indexer',
        '--listen-host',
        '127.0.0.1',
        '--zmq-bind',
        'tcp://127.0.0.1:0',
        '--http-port',
        '0',
        '--grpc-port',
        '0',
        '--block-size',
        String(BLOCK_SIZE),
      ],
      { readyLine: 'indexer ready' },
    );
    stops.push(() => indexer.stop());
    const indexerHttp = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}`;
    const zmq = (indexer.ready.zmqBound as string[] | undefined)?.[0];
    if (!zmq) throw new Error(`indexer ready line has no zmqBound: ${JSON.stringify(indexer.ready)}`);

    const tokensPerWord = (await tokenize(indexerHttp, words(1, 2000))).length / 2000;
    const mix = mixFor(tokensPerWord);
    const prefixTokens: number[][] = [];
    for (let i = 0; i < mix.prefixes; i++) {
      const tokens = await tokenize(indexerHttp, prefixText(mix, i));
      // Whole blocks, less the last: the prefix's final word may tokenize differently once a tail follows.
      prefixTokens.push(tokens.slice(0, Math.max(0, Math.floor(tokens.length / BLOCK_SIZE) - 1) * BLOCK_SIZE));
    }
    const tailBlocks = Math.floor((mix.tailWords * tokensPerWord) / BLOCK_SIZE);

    const upstreams: Upstream[] = [];
    const caches: SimulatedKvCache[] = [];
    for (let i = 0; i < UPSTREAMS; i++) {
      // The upstream's port names the pod in its KV-event topic, so the cache is made after it listens.
      const served: { cache?: SimulatedKvCache } = {};
      const upstream = await startUpstream({
        model: MODEL,
        onRequest: (headers) => served.cache?.serve(Number(headers[PREFIX_HEADER])),
      });
      const cache = new SimulatedKvCache({
        endpoint: zmq,
        podId: `127.0.0.1:${upstream.port}`,
        model: MODEL,
        blockSize: BLOCK_SIZE,
        prefixTokens,
        tailBlocks,
        capacityBlocks: spec.capacityBlocks,
        podIndex: i,
      });
      served.cache = cache;
      upstreams.push(upstream);
      caches.push(cache);
      stops.push(() => upstream.close());
      stops.push(() => cache.close());
    }

    const router = await spawnKvroute(
      [
        'router',
        ...['--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--model', MODEL],
        ...['--indexer', `127.0.0.1:${portOf(indexer.ready, 'grpcPort')}`],
        ...['--endpoints', upstreams.map((u) => `127.0.0.1:${u.port}`).join(',')],
      ],
      { readyLine: 'router started' },
    );
    stops.push(() => router.stop());
    const envoy = await startEnvoy({
      binary: envoyBinary(),
      config: envoyGatewayConfig({
        listenPort: 0,
        adminPort: 0,
        eppPort: portOf(router.ready, 'grpcPort'),
        eppTls: true,
        failureModeAllow: false,
      }),
      log: silentLogger,
      concurrency: ENVOY_CONCURRENCY,
    });
    stops.push(() => envoy.close());
    return {
      indexer,
      router,
      envoy,
      upstreams,
      caches,
      indexerHttp,
      routerMetrics: `http://127.0.0.1:${portOf(router.ready, 'metricsPort')}/metrics`,
      mix,
      tokensPerWord,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function runScenario(spec: ScenarioSpec, options: LoadOptions): Promise<ScenarioReport> {
  const progress = options.progress;
  progress(`load ${spec.name}: starting Envoy, the router, the indexer and ${UPSTREAMS} upstreams`);
  const stack = await startStack(spec, (tokensPerWord) => ({
    prefixes: spec.prefixes,
    prefixWords: Math.round(spec.prefixTokens / tokensPerWord),
    tailWords: Math.round((spec.promptTokens - spec.prefixTokens) / tokensPerWord),
    zipf: spec.zipf,
    seed: spec.name === '2k' ? 2 : 100,
  }));
  try {
    const port = stack.envoy.listenPort;
    const mix = stack.mix;
    const samplePrompt = `${prefixText(mix, 0)} User 0: ${words(mix.seed * 7919, mix.tailWords)}`;
    const promptTokens = (await tokenize(stack.indexerHttp, samplePrompt)).length;
    const clientConfig = {
      port,
      model: MODEL,
      maxInFlight: MAX_IN_FLIGHT,
      timeoutMs: REQUEST_TIMEOUT_MS,
      mix,
    };

    // Warm-up (not measured): JIT, connections, the caches and the index filling. The short form warms
    // at its full rate so its few seconds start nearer steady state; the full form at a tenth of the
    // rate, so a rate the machine cannot hold does not leave a backlog to the measured run.
    const warmRate = options.quick ? spec.targetRate : Math.max(1, spec.targetRate / 10);
    progress(`load ${spec.name}: warm-up, ${WARM_UP_SECONDS} s at ${warmRate} req/s`);
    await startLoadClient(nodeBinary(), { ...clientConfig, rate: warmRate, durationMs: WARM_UP_SECONDS * 1000, windowMs: 5_000 }, () => {})
      .finished;
    for (const cache of stack.caches)
      Object.assign(cache.stats, { requests: 0, prefixHits: 0, blocksStored: 0, blocksRemoved: 0, batches: 0 });

    const pids = { router: stack.router.child.pid ?? 0, indexer: stack.indexer.child.pid ?? 0, envoy: stack.envoy.pid };
    const windows: LoadWindow[] = [];
    const samples: ServerSample[] = [];
    const client = startLoadClient(
      nodeBinary(),
      { ...clientConfig, rate: spec.targetRate, durationMs: spec.seconds * 1000, windowMs: spec.windowSeconds * 1000 },
      (w) => {
        windows.push(w);
        const errors = Object.values(w.errors).reduce((a, b) => a + b, 0);
        const last = samples.at(-1);
        progress(
          `load ${spec.name} @ ${spec.targetRate} req/s: ${w.atS.toFixed(0)}/${spec.seconds}s ${(w.completed / spec.windowSeconds).toFixed(0)} req/s ` +
            `p99 ${w.p99Ms === null ? '-' : w.p99Ms.toFixed(1)} ms, ${errors} errors` +
            (last
              ? `, router ${(last.router.rssBytes / 2 ** 20).toFixed(0)} MiB ${last.router.cpuPercent.toFixed(0)}% cpu, ` +
                `indexer ${(last.indexer.rssBytes / 2 ** 20).toFixed(0)} MiB ${last.indexer.cpuPercent.toFixed(0)}% cpu ` +
                `(tokenizer heap ${(last.indexer.tokenizer.heapUsedBytes / 2 ** 20).toFixed(0)} MiB, ` +
                `cache ${(last.indexer.tokenizer.cacheBytes / 2 ** 20).toFixed(0)} MiB)`
              : ''),
        );
      },
    );
    const t0 = performance.now();
    let previousCpu = {
      router: cpuSeconds(pids.router),
      indexer: cpuSeconds(pids.indexer),
      envoy: cpuSeconds(pids.envoy),
      client: cpuSeconds(client.pid),
    };
    let previousAt = t0;
    let previousSelf = process.cpuUsage();
    // Scrape once to reset prom-client's event-loop histograms, so the first window starts now.
    await Promise.all([metricsPage(stack.routerMetrics), metricsPage(`${stack.indexerHttp}/metrics`)]);
    let sampling = true;
    let scrapeFailures = 0;
    const sampler = (async () => {
      while (sampling) {
        await new Promise((r) => setTimeout(r, spec.windowSeconds * 1000));
        if (!sampling) break;
        const now = performance.now();
        let pages: [string, string, { index: { keys: number; bytes: number } }];
        try {
          pages = await Promise.all([
            metricsPage(stack.routerMetrics),
            metricsPage(`${stack.indexerHttp}/metrics`),
            fetch(`${stack.indexerHttp}/v1/pods`, { signal: AbortSignal.timeout(5_000) }).then(
              (r) => r.json() as Promise<{ index: { keys: number; bytes: number } }>,
            ),
          ]);
        } catch (err) {
          // A scrape that fails under load is itself a finding: counted, and the run goes on.
          scrapeFailures++;
          progress(`load ${spec.name}: scrape failed: ${err instanceof Error ? err.message : String(err)}`);
          continue;
        }
        const [routerPage, indexerPage, pods] = pages;
        const cpu = {
          router: cpuSeconds(pids.router),
          indexer: cpuSeconds(pids.indexer),
          envoy: cpuSeconds(pids.envoy),
          client: cpuSeconds(client.pid),
        };
        const self = process.cpuUsage();
        const selfCpu = ((self.user - previousSelf.user + self.system - previousSelf.system) / 1e6 / ((now - previousAt) / 1000)) * 100;
        const share = (k: keyof typeof cpu) => +(((cpu[k] - previousCpu[k]) / ((now - previousAt) / 1000)) * 100).toFixed(1);
        samples.push({
          atS: +((now - t0) / 1000).toFixed(2),
          router: { ...processMetrics(routerPage, 'router'), cpuPercent: share('router') },
          indexer: {
            ...processMetrics(indexerPage, 'indexer'),
            cpuPercent: share('indexer'),
            indexKeys: pods.index.keys,
            indexBytes: pods.index.bytes,
            shed: metricValue(indexerPage, 'kvroute_indexer_score_shed_total') || 0,
            tokenizer: tokenizerMetrics(indexerPage),
          },
          envoyCpuPercent: share('envoy'),
          loadGeneratorCpuPercent: share('client'),
          benchCpuPercent: +selfCpu.toFixed(1),
          loadAverage1m: +os.loadavg()[0]!.toFixed(2),
        });
        previousCpu = cpu;
        previousAt = now;
        previousSelf = self;
      }
    })();
    let summary: LoadSummary;
    try {
      summary = await client.finished;
    } finally {
      sampling = false;
    }
    await sampler;
    return report(
      spec,
      stack,
      scrapeFailures,
      { mix, promptTokens, bodyBytes: Buffer.byteLength(JSON.stringify({ model: MODEL, max_tokens: 1, prompt: samplePrompt })) },
      summary,
      windows,
      samples,
    );
  } finally {
    await stack.stop();
  }
}

function cpuPerRequest(
  samples: ServerSample[],
  completed: number,
): Pick<ScenarioReport, 'ceilingRate'> & { perRequest: ScenarioReport['cpuMsPerCompletedRequest'] } {
  // CPU seconds per process: each window's share of a core times the window's length.
  const seconds = { router: 0, indexer: 0, envoy: 0, loadGenerator: 0, upstreams: 0 };
  let previous = 0;
  for (const s of samples) {
    const dt = s.atS - previous;
    previous = s.atS;
    seconds.router += (s.router.cpuPercent / 100) * dt;
    seconds.indexer += (s.indexer.cpuPercent / 100) * dt;
    seconds.envoy += (s.envoyCpuPercent / 100) * dt;
    seconds.loadGenerator += (s.loadGeneratorCpuPercent / 100) * dt;
    seconds.upstreams += (s.benchCpuPercent / 100) * dt;
  }
  const perRequest = Object.fromEntries(
    Object.entries(seconds).map(([k, v]) => [k, completed > 0 ? +((v * 1000) / completed).toFixed(3) : NaN]),
  ) as ScenarioReport['cpuMsPerCompletedRequest'];
  const total = Object.values(perRequest).reduce((a, b) => a + b, 0);
  return {
    perRequest,
    ceilingRate: { routerOneCore: Math.round(1000 / perRequest.router), stackAllCores: Math.round((os.cpus().length * 1000) / total) },
  };
}

function report(
  spec: ScenarioSpec,
  stack: Stack & { tokensPerWord: number },
  scrapeFailures: number,
  prompt: { mix: PromptMix; promptTokens: number; bodyBytes: number },
  summary: LoadSummary,
  windows: LoadWindow[],
  samples: ServerSample[],
): ScenarioReport {
  const failed = Object.values(summary.errors).reduce((a, b) => a + b, 0);
  const achievedRate = +(summary.completed / (summary.wallMs / 1000)).toFixed(1);
  const kv = stack.caches.reduce<KvCacheStats>(
    (a, c) => ({
      requests: a.requests + c.stats.requests,
      prefixHits: a.prefixHits + c.stats.prefixHits,
      blocksStored: a.blocksStored + c.stats.blocksStored,
      blocksRemoved: a.blocksRemoved + c.stats.blocksRemoved,
      batches: a.batches + c.stats.batches,
    }),
    { requests: 0, prefixHits: 0, blocksStored: 0, blocksRemoved: 0, batches: 0 },
  );
  const router = verdict(samples, (s) => s.router);
  const indexerVerdict = verdict(samples, (s) => s.indexer);
  const last = samples.at(-1);
  const sustained = achievedRate >= spec.targetRate * 0.98 && failed === 0;
  const cpu = {
    router: router.cpuPercentMean,
    indexer: indexerVerdict.cpuPercentMean,
    envoy: +mean(samples.map((s) => s.envoyCpuPercent)).toFixed(1),
    'load generator': +mean(samples.map((s) => s.loadGeneratorCpuPercent)).toFixed(1),
    'upstreams and KV publishers': +mean(samples.map((s) => s.benchCpuPercent)).toFixed(1),
  };
  const busiest = Object.entries(cpu).sort((a, b) => b[1] - a[1]);
  const cpuCost = cpuPerRequest(samples, summary.completed);
  const machine = +mean(samples.map((s) => s.loadAverage1m)).toFixed(2);
  // A single-threaded server that is the bottleneck runs near one core; when none does while the
  // machine's run queue is longer than its cores, the stack was starved by other work.
  const starved = busiest[0]![1] < 60 && machine > os.cpus().length;
  const where = starved
    ? 'no process of the stack near a full core while the load average exceeded the cores: CPU starvation by other work on the machine, not a component limit'
    : `the busiest process is the ${busiest[0]![0]} at ${busiest[0]![1]}% of a core`;
  return {
    name: spec.name,
    description: spec.description,
    targetRate: spec.targetRate,
    seconds: spec.seconds,
    windowSeconds: spec.windowSeconds,
    mix: {
      ...prompt.mix,
      prefixTokens: Math.round(prompt.mix.prefixWords * stack.tokensPerWord),
      tailTokens: Math.round(prompt.mix.tailWords * stack.tokensPerWord),
      promptTokens: prompt.promptTokens,
      bodyBytes: prompt.bodyBytes,
    },
    kvCache: {
      upstreams: UPSTREAMS,
      capacityBlocksPerUpstream: spec.capacityBlocks,
      blockSize: BLOCK_SIZE,
      ...kv,
      prefixHitRate: kv.requests ? +(kv.prefixHits / kv.requests).toFixed(4) : 0,
    },
    requests: { sent: summary.sent, completed: summary.completed, failed, errors: summary.errors },
    achievedRate,
    latencyMs: { p50: summary.p50Ms, p99: summary.p99Ms, p999: summary.p999Ms, max: summary.maxMs },
    sendLagP99Ms: summary.sendLagP99Ms,
    router,
    indexer: {
      ...indexerVerdict,
      indexKeysAtEnd: last?.indexer.indexKeys ?? NaN,
      indexBytesAtEnd: last?.indexer.indexBytes ?? NaN,
      shedTotal: last?.indexer.shed ?? 0,
      tokenizer: {
        heapUsed: trend(samples, (s) => s.indexer.tokenizer.heapUsedBytes),
        heapSize: trend(samples, (s) => s.indexer.tokenizer.heapSizeBytes),
        cacheBytesAtEnd: last?.indexer.tokenizer.cacheBytes ?? NaN,
        cacheBoundBytes: tokenizerCacheBound(),
      },
    },
    envoyCpuPercentMean: cpu.envoy,
    loadGeneratorCpuPercentMean: cpu['load generator'],
    upstreamsCpuPercentMean: cpu['upstreams and KV publishers'],
    cpuMsPerCompletedRequest: cpuCost.perRequest,
    ceilingRate: cpuCost.ceilingRate,
    memoryFlat: router.rss.flat && router.heapUsed.flat && indexerVerdict.rss.flat && indexerVerdict.heapUsed.flat,
    sustained,
    saturation: sustained
      ? null
      : `achieved ${achievedRate} of ${spec.targetRate} req/s with ${failed} failed; CPU (% of one core, mean): ` +
        busiest.map(([k, v]) => `${k} ${v}`).join(', ') +
        `; machine load average ${machine} on ${os.cpus().length} cores; ${where}. CPU per completed request (ms): ` +
        Object.entries(cpuCost.perRequest)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') +
        `, so the router alone tops out near ${cpuCost.ceilingRate.routerOneCore} req/s on its one thread and the whole stack near ${cpuCost.ceilingRate.stackAllCores} req/s on ${os.cpus().length} idle cores`,
    loadAverageAtEnd: os.loadavg().map((l) => +l.toFixed(2)),
    scrapeFailures,
    windows,
    samples,
  };
}

/** Runs the load scenarios one after another and returns their report (the chaos frame writes it). */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const specs = scenarios(options);
  const results: ScenarioReport[] = [];
  for (const spec of specs) results.push(await runScenario(spec, options));
  const envoyVersion = execFileSync(envoyBinary(), ['--version'], { encoding: 'utf8' }).trim().split(/\s+/).at(-1) ?? 'unknown';
  return {
    description:
      'router (default profile) and indexer held at a constant open-loop rate through a real Envoy (GIE standalone gateway, ext_proc over TLS); upstreams answer at once and publish their simulated KV caches as vLLM KV events',
    command: options.quick ? 'npm run bench:chaos -- --only load --quick' : 'npm run bench:chaos -- --only load',
    environment: { ...environment(), envoy: envoyVersion },
    config: {
      upstreams: UPSTREAMS,
      blockSize: BLOCK_SIZE,
      envoyConcurrency: ENVOY_CONCURRENCY,
      maxInFlight: MAX_IN_FLIGHT,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      flatThresholdBytesPerMin: FLAT_BYTES_PER_MIN,
      eventLoopResolutionMs: EVENT_LOOP_RESOLUTION_MS,
      load: `constant-rate open loop from a child process over keep-alive connections, at most ${MAX_IN_FLIGHT} open requests (a send past it fails as generator-cap), ${REQUEST_TIMEOUT_MS} ms timeout; latency from each request's scheduled send to its last byte; ${WARM_UP_SECONDS} s warm-up first (full form: at a tenth of the rate; short form: at the rate)`,
      memory:
        'kvroute_process_resident_memory_bytes and kvroute_nodejs_heap_size_used_bytes from each /metrics once per window; flat = least-squares slope over the second half, fitted to the minimum of each fifth of it (the floor a GC sawtooth leaves), below flatThresholdBytesPerMin; meaningful for the full form (a 30 s run has 5 samples per half). The indexer also reports its tokenizer workers (kvroute_tokenizer_worker_heap_used_bytes / _heap_size_bytes, kvroute_tokenizer_cache_bytes): their heaps are in its RSS but not its main heap, and grow until the tokenization cache holds its bound',
      eventLoop: `kvroute_nodejs_eventloop_lag_p99_seconds (prom-client, monitorEventLoopDelay at ${EVENT_LOOP_RESOLUTION_MS} ms resolution, reset at each scrape, so one p99 per window; the figure includes the ${EVENT_LOOP_RESOLUTION_MS} ms timer period: an idle loop reads ~10-13 ms)`,
      cpu: '/proc/<pid>/stat user+system time per window, as % of one core (the indexer includes its tokenizer worker thread)',
      router:
        'kvroute router, no --config-file: the default profile (the indexer match over gRPC for the prefix and no-hit-lru scorers, queue, kv-cache-utilization and running-requests scorers, load bound)',
      indexer: `kvroute indexer, central mode, --block-size ${BLOCK_SIZE}, default tokenizer (npm:qwen3) and --max-keys`,
    },
    scenarios: results,
  };
}

/** The short table a run prints: one row per scenario (the JSON has the windows and samples). */
export function loadTable(report: LoadReport): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)}`;
  return formatTable(
    [
      'prompts',
      'target',
      'achieved',
      'failed',
      'p50 ms',
      'p99 ms',
      'router RSS MiB/min',
      'indexer RSS MiB/min',
      'tokenizer heap MiB/min',
      'tokenizer cache MiB (bound)',
      'memory',
      'loop p99 ms (router / indexer)',
      'ceiling req/s (router / stack)',
      'load avg',
    ],
    report.scenarios.map((s) => [
      `${s.name} (${fmt(s.mix.promptTokens)} tok)`,
      `${s.targetRate} req/s x ${s.seconds}s`,
      fmt(s.achievedRate),
      String(s.requests.failed),
      fmt(s.latencyMs.p50),
      fmt(s.latencyMs.p99),
      mib(s.router.rss.secondHalfSlopeBytesPerMin),
      mib(s.indexer.rss.secondHalfSlopeBytesPerMin),
      mib(s.indexer.tokenizer.heapUsed.secondHalfSlopeBytesPerMin),
      `${fmt(s.indexer.tokenizer.cacheBytesAtEnd / 2 ** 20)} (${fmt(s.indexer.tokenizer.cacheBoundBytes / 2 ** 20)})`,
      s.memoryFlat ? 'flat' : 'NOT flat',
      `${fmt(s.router.eventLoopDelayP99Ms.worstWindow)} / ${fmt(s.indexer.eventLoopDelayP99Ms.worstWindow)}`,
      `${s.ceilingRate.routerOneCore} / ${s.ceilingRate.stackAllCores}`,
      s.loadAverageAtEnd.map((l) => l.toFixed(1)).join(' '),
    ]),
  );
}

/** Standalone: `node bench/chaos/load.ts [--quick] [--minutes N] [--only 2k|100k]` merges `load` into bench/results/chaos.json. */
if (import.meta.main) {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const at = args.indexOf(name);
    return at >= 0 ? args[at + 1] : undefined;
  };
  const only = flag('--only');
  if (only !== undefined && only !== '2k' && only !== '100k') throw new Error(`--only: expected 2k or 100k, got ${only}`);
  const minutes = flag('--minutes');
  if (minutes !== undefined && !(Number(minutes) > 0)) throw new Error(`--minutes: expected a positive number, got ${minutes}`);
  const rate = flag('--rate');
  if (rate !== undefined && !(Number(rate) > 0 && only))
    throw new Error(`--rate: expected a positive number of req/s, with --only, got ${rate}`);
  const load = await runLoad({
    quick: args.includes('--quick'),
    ...(minutes ? { minutes: Number(minutes) } : {}),
    ...(only ? { only: [only] } : {}),
    ...(rate && only ? { rates: { [only]: Number(rate) } } : {}),
    progress: (line) => process.stderr.write(`bench:chaos ${line}\n`),
  });
  // Merged into chaos.json: other sections kept, and a scenario at another rate kept beside this one.
  const file = path.join(repoRoot, 'bench/results/chaos.json');
  const doc = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  const previous = (doc.load as LoadReport | undefined)?.scenarios ?? [];
  const same = (a: ScenarioReport, b: ScenarioReport) => a.name === b.name && a.targetRate === b.targetRate;
  const scenarios = [...previous.filter((p) => !load.scenarios.some((s) => same(p, s))), ...load.scenarios];
  writeResults(file, { ...doc, load: { ...load, scenarios } });
  process.stdout.write(
    `${loadTable(load)}\nflat: second-half RSS and heap slopes below ${FLAT_BYTES_PER_MIN / 2 ** 20} MiB/min; loop p99: worst window, includes prom-client's 10 ms timer\n`,
  );
}
