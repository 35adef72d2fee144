// Benchmark (`npm run bench:router`): the latency Envoy adds with the router in the path versus
// without it. One Envoy runs a listener per variant on the same upstreams: `plain` proxies round robin
// with no ext_proc; each routed listener is the GIE standalone gateway (ext_proc FULL_DUPLEX_STREAMED
// over TLS, ORIGINAL_DST on x-gateway-destination-endpoint) in front of its own `kvroute router`:
// `default` runs the default config, which asks a real `kvroute indexer` for every request (the goal
// is measured there); `approx` swaps the indexer for router-side prefix hashing and `load-only` drops
// prefix scoring, to show what the ext_proc path costs without the indexer; `noop` puts a processor
// that does no routing work at all in the router's place (bench/lib/noop-processor.ts), the floor of
// Envoy's ext_proc, TLS HTTP/2 and the codec in Node on the machine. The upstreams are tiny
// HTTP servers in this process that answer at once with a small OpenAI-shaped completion and serve
// vLLM metrics on /metrics (so the measurement is the gateway and router, not a model server). Load
// is open loop at a constant rate from a child process over keep-alive connections; latency runs
// from each request's scheduled send time to its last byte. The routers' scheduling time comes from
// their kvroute_router_scheduling_duration_seconds histograms, read over /metrics before and after
// each run (quantiles of the bucket deltas); for the variants that ask the indexer, the same deltas
// of the router's precise-prefix-cache-producer time and of the indexer's Score latency, tokenization
// time and shed calls say where their time goes. Writes bench/results/router.json and prints a table;
// progress goes to stderr.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { INDEXER_TIMEOUT_MS } from '../src/api/endpoint-picker-config.ts';
import { fmt, formatTable } from '../src/common/table.ts';
import { silentLogger } from '../src/common/log.ts';
import { Progress } from '../src/common/progress.ts';
import { startEnvoy } from '../src/gateway/envoy-process.ts';
import { envoyBinary, envoyGatewayConfig } from '../e2e/support/envoy.ts';
import { histogramBuckets, metricValue } from '../e2e/support/prometheus-text.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { nodeBinary } from '../test/support/node.ts';
import { until } from '../test/support/until.ts';
import { startUpstream, words, type Upstream } from './lib/gateway-load.ts';
import { startNoopProcessor } from './lib/noop-processor.ts';
import { cpuSeconds, environment, percentile, writeResults } from './lib/results.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const RESULTS = path.join(ROOT, 'bench/results/router.json');
const MODEL = 'bench';
const UPSTREAMS = 3;
const ENVOY_CONCURRENCY = 2;
/** Open requests the load generator allows at once; a send past it counts as an error (overload). */
const MAX_IN_FLIGHT = 512;
const REQUEST_TIMEOUT_MS = 15_000;
const GOAL = { promptName: '2k', addedP50Ms: 1, addedP99Ms: 5 };

interface PromptSpec {
  name: string;
  targetTokens: number;
}
const PROMPTS: PromptSpec[] = [
  { name: '2k', targetTokens: 2_000 },
  { name: '100k', targetTokens: 100_000 },
];
/** Seconds at each rate (bounded in time and so in count): shorter for the heavy 100k-token bodies. */
const RUNS: Array<{ prompt: string; rate: number; seconds: number }> = [
  { prompt: '2k', rate: 200, seconds: 8 },
  { prompt: '2k', rate: 1000, seconds: 5 },
  { prompt: '100k', rate: 200, seconds: 4 },
  { prompt: '100k', rate: 1000, seconds: 2 },
];

/** The routed variants: the default config (with the indexer), and two without it for comparison. */
const VARIANTS: Array<{ name: string; description: string; configText?: string; noop?: true }> = [
  {
    name: 'noop',
    description:
      'no router: a processor in a child process answering the same ext_proc exchange with no routing work (bench/lib/noop-processor.ts), the floor of Envoy ext_proc + TLS HTTP/2 + codec in Node on this machine',
    noop: true,
  },
  {
    name: 'load-only',
    description: 'load-bound-filter, queue-scorer, kv-cache-utilization-scorer, max-score-picker (no prefix scoring)',
    configText: `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins: [{type: load-bound-filter}, {type: queue-scorer}, {type: kv-cache-utilization-scorer}, {type: max-score-picker}]
schedulingProfiles:
- name: default
  plugins: [{pluginRef: load-bound-filter}, {pluginRef: queue-scorer}, {pluginRef: kv-cache-utilization-scorer}, {pluginRef: max-score-picker}]
`,
  },
  {
    name: 'approx',
    description:
      'the default profile with router-side approximate prefix hashing (approx-prefix-cache-producer + prefix-cache-scorer x3) instead of the indexer',
    configText: `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- {type: load-bound-filter}
- {type: approx-prefix-cache-producer}
- {type: prefix-cache-scorer}
- {type: queue-scorer}
- {type: kv-cache-utilization-scorer}
- {type: max-score-picker}
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: load-bound-filter}
  - {pluginRef: prefix-cache-scorer, weight: 3}
  - {pluginRef: queue-scorer, weight: 1}
  - {pluginRef: kv-cache-utilization-scorer, weight: 1}
  - {pluginRef: max-score-picker}
`,
  },
  {
    name: 'default',
    description: `no --config-file: load-bound-filter, precise-prefix-cache-producer (the indexer over gRPC, ${INDEXER_TIMEOUT_MS} ms timeout) read by prefix-cache-scorer x3 and no-hit-lru-scorer x1, queue-scorer x1, kv-cache-utilization-scorer x1, running-requests-scorer x1, max-score-picker`,
  },
];

// ---------------------------------------------------------------------------------------------------
// Load generator (child process): open loop, constant rate, keep-alive.

interface ClientConfig {
  port: number;
  rate: number;
  durationMs: number;
  words: number;
  seed: number;
}

interface ClientResult {
  sent: number;
  completed: number;
  errors: Record<string, number>;
  latencyMs: number[];
  /** How late sends went out relative to their schedule (a late generator is a bottleneck). */
  sendLagP99Ms: number;
  wallMs: number;
}

async function client(config: ClientConfig): Promise<ClientResult> {
  // Each request differs in its first bytes (a request number), so no layer can cache a whole body.
  const tail = Buffer.from(`${words(config.seed, config.words)}"}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
  const total = Math.round((config.rate * config.durationMs) / 1000);
  const intervalMs = 1000 / config.rate;
  const result: ClientResult = { sent: 0, completed: 0, errors: {}, latencyMs: [], sendLagP99Ms: 0, wallMs: 0 };
  const lags: number[] = [];
  const fail = (why: string) => (result.errors[why] = (result.errors[why] ?? 0) + 1);
  let inFlight = 0;
  let settled = 0;
  let allSettled!: () => void;
  const done = new Promise<void>((resolve) => (allSettled = resolve));
  const settle = () => {
    inFlight--;
    if (++settled === total) allSettled();
  };

  const send = (n: number, scheduledAt: number) => {
    if (inFlight >= MAX_IN_FLIGHT) {
      fail('generator-cap');
      inFlight++;
      settle();
      return;
    }
    inFlight++;
    result.sent++;
    const head = Buffer.from(`{"model":"${MODEL}","max_tokens":1,"prompt":"Request ${n}: `);
    const req = http.request({
      host: '127.0.0.1',
      port: config.port,
      method: 'POST',
      path: '/v1/completions',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': head.length + tail.length },
      timeout: REQUEST_TIMEOUT_MS,
    });
    let finished = false;
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      if (error) fail(error);
      settle();
    };
    req.on('response', (res) => {
      res.on('data', () => {});
      res.on('end', () => {
        if (res.statusCode === 200) {
          result.completed++;
          result.latencyMs.push(performance.now() - scheduledAt);
          finish();
        } else finish(`http-${res.statusCode}`);
      });
      res.on('error', () => finish('response-error'));
    });
    req.on('timeout', () => {
      req.destroy();
      finish('timeout');
    });
    req.on('error', () => finish('connection-error'));
    req.write(head);
    req.end(tail);
  };

  const started = performance.now();
  let next = 0;
  const tick = () => {
    const now = performance.now();
    // Every request whose time has come goes now (catching up after a late timer).
    while (next < total && started + next * intervalMs <= now) {
      const scheduledAt = started + next * intervalMs;
      lags.push(now - scheduledAt);
      send(next, scheduledAt);
      next++;
    }
    if (next < total) setTimeout(tick, Math.max(0, started + next * intervalMs - performance.now()));
  };
  tick();
  if (total > 0) await done;
  result.wallMs = performance.now() - started;
  agent.destroy();
  lags.sort((a, b) => a - b);
  result.sendLagP99Ms = percentile(lags, 99);
  return result;
}

function runClient(config: ClientConfig): Promise<ClientResult> {
  const child = spawn(nodeBinary(), [path.join(ROOT, 'bench/router.ts'), '--client', JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out) as ClientResult) : reject(new Error(`load generator exited with ${code}`)),
    ),
  );
}

// ---------------------------------------------------------------------------------------------------
// Upstreams (bench/lib/gateway-load.ts): answer at once; vLLM metrics with the requests they hold as running.

// ---------------------------------------------------------------------------------------------------
// Envoy: the GIE gateway listener and a plain one on the same upstreams.

/**
 * One Envoy, one listener per variant: `plain` (no ext_proc, round robin over the upstreams) and a GIE
 * gateway listener per routed variant, each with its own ext_proc cluster pointing at its router.
 */
function benchEnvoyConfig(eppPorts: Record<string, number>, upstreamPorts: number[]): string {
  type Config = { static_resources: { listeners: Array<Record<string, unknown>>; clusters: Array<Record<string, unknown>> } };
  type Listener = {
    name: string;
    filter_chains: Array<{
      filters: Array<{
        typed_config: {
          stat_prefix: string;
          route_config: { virtual_hosts: Array<{ routes: unknown[] }> };
          http_filters: Array<{ name: string; typed_config: { grpc_service?: { envoy_grpc: { cluster_name: string } } } }>;
        };
      }>;
    }>;
  };
  let merged: Config | undefined;
  for (const [variant, eppPort] of Object.entries(eppPorts)) {
    const config = YAML.parse(
      envoyGatewayConfig({ listenPort: 0, adminPort: 0, eppPort, eppTls: true, failureModeAllow: false }),
    ) as Config;
    const listener = config.static_resources.listeners[0] as Listener;
    listener.name = variant;
    const hcm = listener.filter_chains[0]!.filters[0]!.typed_config;
    hcm.stat_prefix = variant;
    for (const f of hcm.http_filters)
      if (f.typed_config.grpc_service) f.typed_config.grpc_service.envoy_grpc.cluster_name = `epp_${variant}`;
    const epp = config.static_resources.clusters.find((c) => c.name === 'epp') as {
      name: string;
      load_assignment: { cluster_name: string };
    };
    epp.name = epp.load_assignment.cluster_name = `epp_${variant}`;
    if (!merged) merged = config;
    else {
      merged.static_resources.listeners.push(listener);
      merged.static_resources.clusters.push(epp);
    }
  }
  const plain = structuredClone(merged!.static_resources.listeners[0]!) as Listener;
  plain.name = 'plain';
  const hcm = plain.filter_chains[0]!.filters[0]!.typed_config;
  hcm.stat_prefix = 'plain';
  hcm.http_filters = hcm.http_filters.filter((f) => f.name !== 'envoy.filters.http.ext_proc');
  hcm.route_config.virtual_hosts[0]!.routes = [{ match: { prefix: '/' }, route: { cluster: 'upstreams', timeout: '0s' } }];
  merged!.static_resources.listeners.push(plain);
  merged!.static_resources.clusters.push({
    name: 'upstreams',
    type: 'STATIC',
    lb_policy: 'ROUND_ROBIN',
    connect_timeout: '5s',
    load_assignment: {
      cluster_name: 'upstreams',
      endpoints: [
        {
          lb_endpoints: upstreamPorts.map((port) => ({
            endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
          })),
        },
      ],
    },
  });
  return YAML.stringify(merged);
}

// ---------------------------------------------------------------------------------------------------
// Quantiles from histogram bucket deltas (Prometheus histogram_quantile: linear within a bucket).

function bucketDelta(after: Map<number, number>, before: Map<number, number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const [le, n] of after) out.set(le, n - (before.get(le) ?? 0));
  return out;
}

function histogramQuantile(cumulative: Map<number, number>, q: number): number {
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  const total = cumulative.get(Infinity) ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const count = cumulative.get(le)!;
    if (count >= rank) {
      if (le === Infinity) return lower; // past the last finite bucket: its bound is all we know
      return lower + ((le - lower) * (rank - below)) / Math.max(1, count - below);
    }
    lower = le;
    below = count;
  }
  return lower;
}

// ---------------------------------------------------------------------------------------------------

interface Latency {
  achievedRate: number;
  sent: number;
  completed: number;
  errors: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  sendLagP99Ms: number;
}

function summarize(r: ClientResult): Latency {
  const sorted = [...r.latencyMs].sort((a, b) => a - b);
  const round = (n: number) => +n.toFixed(3);
  return {
    achievedRate: +(r.completed / (r.wallMs / 1000)).toFixed(1),
    sent: r.sent,
    completed: r.completed,
    errors: r.errors,
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted.at(-1) ?? NaN),
    sendLagP99Ms: round(r.sendLagP99Ms),
  };
}

const errorCount = (l: Latency) => Object.values(l.errors).reduce((a, b) => a + b, 0);

interface RoutedResult extends Latency {
  addedMs: { p50: number; p99: number };
  schedulingMs: { p50: number; p99: number; count: number };
  /** The router process's CPU time (user + system, from /proc) over the run, per completed request. */
  routerCpuMsPerRequest: number;
  /** For variants that ask the indexer: where the prefix-scoring time goes during the run. */
  indexer?: IndexerBreakdown;
}

interface Quantiles {
  p50: number;
  p99: number;
  count: number;
}

interface IndexerBreakdown {
  /** The router's precise-prefix-cache-producer plugin: the indexer call as the router waits for it (INDEXER_TIMEOUT_MS). */
  routerCallMs: Quantiles;
  /** The indexer's gRPC Score, handler to answer: queueing for and running tokenization, then scoring. */
  indexerScoreMs: Quantiles;
  /** Tokenization inside the indexer's worker, per call that ran. */
  tokenizeMs: Quantiles;
  /** Calls the indexer shed (kvroute_indexer_score_shed_total) by reason. */
  shed: Record<string, number>;
}

/** The series of `page` whose lines carry `label` (a `name="value"` pair), for histograms split by label. */
const seriesWith = (page: string, label: string) =>
  page
    .split('\n')
    .filter((line) => line.includes(label))
    .join('\n');

function quantilesMs(after: Map<number, number>, before: Map<number, number>): Quantiles {
  const delta = bucketDelta(after, before);
  return {
    p50: +(histogramQuantile(delta, 0.5) * 1000).toFixed(3),
    p99: +(histogramQuantile(delta, 0.99) * 1000).toFixed(3),
    count: delta.get(Infinity) ?? 0,
  };
}

const SHED_REASONS = ['cancelled', 'deadline', 'overloaded'];

/** The indexer's and the router's histograms a breakdown is computed from, as read at one moment. */
function breakdownSnapshot(indexerPage: string, routerPage: string) {
  return {
    routerCall: histogramBuckets(
      seriesWith(routerPage, 'plugin_type="precise-prefix-cache-producer"'),
      'kvroute_router_plugin_duration_seconds',
    ),
    score: histogramBuckets(seriesWith(indexerPage, 'protocol="grpc"'), 'kvroute_indexer_request_duration_seconds'),
    tokenize: histogramBuckets(indexerPage, 'kvroute_tokenize_duration_seconds'),
    shed: Object.fromEntries(
      SHED_REASONS.map((reason) => [reason, metricValue(indexerPage, 'kvroute_indexer_score_shed_total', { reason }) || 0]),
    ),
  };
}

function breakdown(after: ReturnType<typeof breakdownSnapshot>, before: ReturnType<typeof breakdownSnapshot>): IndexerBreakdown {
  return {
    routerCallMs: quantilesMs(after.routerCall, before.routerCall),
    indexerScoreMs: quantilesMs(after.score, before.score),
    tokenizeMs: quantilesMs(after.tokenize, before.tokenize),
    shed: Object.fromEntries(SHED_REASONS.map((reason) => [reason, after.shed[reason]! - before.shed[reason]!])),
  };
}

/**
 * The runs to make: all by default; `--only 2k` (or `--only 2k@200,100k@1000`) keeps some, for a quick
 * comparison. A partial run does not overwrite bench/results/router.json (it writes router-partial.json).
 */
function selectedRuns(argv: string[]): typeof RUNS {
  const at = argv.indexOf('--only');
  if (at < 0) return RUNS;
  const wanted = (argv[at + 1] ?? '').split(',').filter(Boolean);
  const runs = RUNS.filter((r) => wanted.some((w) => w === r.prompt || w === `${r.prompt}@${r.rate}`));
  if (runs.length === 0)
    throw new Error(`--only: expected prompt names or prompt@rate from ${RUNS.map((r) => `${r.prompt}@${r.rate}`).join(', ')}`);
  return runs;
}

async function main(): Promise<void> {
  const noopAt = process.argv.indexOf('--noop-processor');
  if (noopAt >= 0) {
    const server = await startNoopProcessor(process.argv[noopAt + 1]!.split(','));
    process.stdout.write(`${server.port}\n`);
    return;
  }
  const clientAt = process.argv.indexOf('--client');
  if (clientAt >= 0) {
    process.stdout.write(JSON.stringify(await client(JSON.parse(process.argv[clientAt + 1]!) as ClientConfig)));
    return;
  }

  const peers: KvrouteProcess[] = [];
  const noopProcessors: ChildProcess[] = [];
  const upstreams: Upstream[] = [];
  let envoyStop: (() => Promise<void>) | undefined;
  const log = (line: string) => process.stderr.write(`bench:router ${line}\n`);
  try {
    log('starting upstreams, the indexer, a router per variant and Envoy');
    for (let i = 0; i < UPSTREAMS; i++) upstreams.push(await startUpstream());
    const indexerFlags = '--listen-host 127.0.0.1 --zmq-bind tcp://127.0.0.1:0 --http-port 0 --grpc-port 0';
    const indexer = await spawnKvroute(['indexer', ...indexerFlags.split(' ')], { readyLine: 'indexer ready' });
    peers.push(indexer);
    const indexerHttp = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}`;
    const routers: Record<string, { pid: number | undefined; grpcPort: number; metricsUrl: string | null }> = {};
    for (const variant of VARIANTS) {
      if (variant.noop) {
        const noop = spawn(
          nodeBinary(),
          [import.meta.filename, '--noop-processor', upstreams.map((u) => `127.0.0.1:${u.port}`).join(',')],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        const port = await new Promise<number>((resolve, reject) => {
          noop.once('exit', (code) => reject(new Error(`the noop processor exited (${code})`)));
          noop.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
        });
        noopProcessors.push(noop);
        routers[variant.name] = { pid: noop.pid, grpcPort: port, metricsUrl: null };
        continue;
      }
      const flags = `--grpc-port 0 --grpc-health-port 0 --metrics-port 0 --model ${MODEL} --indexer 127.0.0.1:${portOf(indexer.ready, 'grpcPort')}`;
      const endpoints = upstreams.map((u) => `127.0.0.1:${u.port}`).join(',');
      const config = variant.configText ? ['--config-text', variant.configText] : [];
      const router = await spawnKvroute(['router', ...flags.split(' '), '--endpoints', endpoints, ...config], {
        name: `router ${variant.name}`,
        readyLine: 'router started',
      });
      peers.push(router);
      routers[variant.name] = {
        pid: router.child.pid,
        grpcPort: portOf(router.ready, 'grpcPort'),
        metricsUrl: `http://127.0.0.1:${portOf(router.ready, 'metricsPort')}/metrics`,
      };
    }
    const eppPorts = Object.fromEntries(Object.entries(routers).map(([name, r]) => [name, r.grpcPort]));
    const envoy = await startEnvoy({
      binary: envoyBinary(),
      config: benchEnvoyConfig(
        eppPorts,
        upstreams.map((u) => u.port),
      ),
      log: silentLogger,
      concurrency: ENVOY_CONCURRENCY,
    });
    envoyStop = () => envoy.close();

    // Prompts of about the target token counts, measured with the indexer's tokenizer (npm:qwen3, as the sims).
    const tokenize = async (prompt: string): Promise<number> => {
      const res = await fetch(`${indexerHttp}/v1/tokenize`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt }),
      });
      if (!res.ok) throw new Error(`indexer /v1/tokenize: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { count: number }).count;
    };
    const tokensPerWord = (await tokenize(words(1, 2000))) / 2000;
    const prompts = new Map<string, { words: number; seed: number; tokens: number; bodyBytes: number }>();
    for (const [i, p] of PROMPTS.entries()) {
      const seed = 100 + i;
      const count = Math.round(p.targetTokens / tokensPerWord);
      const text = `Request 0: ${words(seed, count)}`;
      prompts.set(p.name, {
        words: count,
        seed,
        tokens: await tokenize(text),
        bodyBytes: Buffer.byteLength(JSON.stringify({ model: MODEL, max_tokens: 1, prompt: text })),
      });
    }

    /** One unloaded indexer score of a prompt (what the default config waits for on every request), ms. */
    const scoreOnce = async (prompt: string): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(`${indexerHttp}/v1/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt }),
      });
      await res.arrayBuffer();
      return performance.now() - t0;
    };
    /** Waits until the indexer answers a short score quickly: a backlog left by a run must not tax the next. */
    const quiesce = () =>
      until(async () => (await scoreOnce('ping')) < 20, {
        message: 'the indexer to drain its backlog',
        timeoutMs: 600_000,
        intervalMs: 100,
      });

    log('warming up every listener');
    for (const listener of ['plain', ...VARIANTS.map((v) => v.name)])
      await runClient({ port: envoy.ports[listener]!, rate: 100, durationMs: 2_000, words: prompts.get('2k')!.words, seed: 1 });
    await quiesce();
    const indexerScoreMs: Record<string, number> = {};
    for (const [name, p] of prompts) {
      const samples: number[] = [];
      for (let i = 0; i < 5; i++) samples.push(await scoreOnce(`Probe ${name} ${i}: ${words(p.seed, p.words)}`));
      indexerScoreMs[name] = +percentile(
        samples.sort((a, b) => a - b),
        50,
      ).toFixed(2);
    }

    const results = [];
    const runs = selectedRuns(process.argv.slice(2));
    const progress = new Progress({ total: runs.length * (1 + VARIANTS.length), label: 'bench:router', unit: 'run' });
    for (const run of runs) {
      const prompt = prompts.get(run.prompt)!;
      const config = { rate: run.rate, durationMs: run.seconds * 1000, words: prompt.words, seed: prompt.seed };
      progress.setLabel(`${run.prompt} prompts at ${run.rate} req/s for ${run.seconds}s: plain`);
      const plain = summarize(await runClient({ ...config, port: envoy.ports.plain! }));
      progress.tick();
      const routed: Record<string, RoutedResult> = {};
      let drainSeconds = 0;
      for (const variant of VARIANTS) {
        progress.setLabel(`${run.prompt} prompts at ${run.rate} req/s for ${run.seconds}s: router ${variant.name}`);
        const metricsUrl = routers[variant.name]!.metricsUrl;
        const asksIndexer = variant.configText === undefined && !variant.noop;
        const page = async () => (metricsUrl ? (await fetch(metricsUrl)).text() : '');
        const routerPageBefore = await page();
        const before = histogramBuckets(routerPageBefore, 'kvroute_router_scheduling_duration_seconds');
        const indexerBefore = asksIndexer
          ? breakdownSnapshot(await (await fetch(`${indexerHttp}/metrics`)).text(), routerPageBefore)
          : undefined;
        const cpuBefore = cpuSeconds(routers[variant.name]!.pid);
        const latency = summarize(await runClient({ ...config, port: envoy.ports[variant.name]! }));
        const routerCpuSeconds = cpuSeconds(routers[variant.name]!.pid) - cpuBefore;
        const routerPageAfter = await page();
        const delta = bucketDelta(histogramBuckets(routerPageAfter, 'kvroute_router_scheduling_duration_seconds'), before);
        const indexer = indexerBefore
          ? breakdown(breakdownSnapshot(await (await fetch(`${indexerHttp}/metrics`)).text(), routerPageAfter), indexerBefore)
          : undefined;
        routed[variant.name] = {
          ...latency,
          addedMs: { p50: +(latency.p50Ms - plain.p50Ms).toFixed(3), p99: +(latency.p99Ms - plain.p99Ms).toFixed(3) },
          schedulingMs: {
            p50: +(histogramQuantile(delta, 0.5) * 1000).toFixed(3),
            p99: +(histogramQuantile(delta, 0.99) * 1000).toFixed(3),
            count: delta.get(Infinity) ?? 0,
          },
          routerCpuMsPerRequest: +((routerCpuSeconds * 1000) / Math.max(1, latency.completed)).toFixed(3),
          ...(indexer ? { indexer } : {}),
        };
        const t0 = performance.now();
        await quiesce();
        drainSeconds += (performance.now() - t0) / 1000;
        progress.tick();
      }
      const d = routed.default!;
      results.push({
        prompt: run.prompt,
        promptTokens: prompt.tokens,
        bodyBytes: prompt.bodyBytes,
        rate: run.rate,
        seconds: run.seconds,
        plain,
        routed,
        indexerDrainSeconds: +drainSeconds.toFixed(1),
        goalMet:
          run.prompt === GOAL.promptName ? d.addedMs.p50 < GOAL.addedP50Ms && d.addedMs.p99 < GOAL.addedP99Ms && errorCount(d) === 0 : null,
      });
    }

    progress.finish();
    const envoyVersion = execFileSync(envoyBinary(), ['--version'], { encoding: 'utf8' }).trim().split(/\s+/).at(-1) ?? 'unknown';
    const goalRows = results.filter((r) => r.goalMet !== null);
    const doc = {
      benchmark: 'router',
      description:
        'latency Envoy adds with the router (ext_proc FULL_DUPLEX_STREAMED over TLS) versus the same Envoy without it, open-loop constant-rate load; the goal is measured on the default config (real indexer)',
      environment: { ...environment(), envoy: envoyVersion, loadAverageAtEnd: os.loadavg().map((l) => +l.toFixed(2)) },
      config: {
        upstreams: `${UPSTREAMS} in-bench HTTP servers answering at once with a small OpenAI-shaped completion, vLLM metrics on /metrics`,
        envoyConcurrency: ENVOY_CONCURRENCY,
        listeners: {
          plain: 'no ext_proc, round robin over the upstreams',
          routed:
            'GIE standalone gateway per variant: ext_proc (TLS h2, FULL_DUPLEX_STREAMED bodies, trailers SEND) -> ORIGINAL_DST on x-gateway-destination-endpoint',
        },
        variants: Object.fromEntries(VARIANTS.map((v) => [v.name, v.description])),
        indexer: 'kvroute indexer, central mode, no KV events (every score tokenizes the prompt and finds no match)',
        indexerScoreMsUnloaded: indexerScoreMs,
        load: `constant-rate open loop from a child process, keep-alive, at most ${MAX_IN_FLIGHT} open requests (a send past it is an error), ${REQUEST_TIMEOUT_MS} ms timeout; latency from the scheduled send time to the last response byte; variants run one after another, the indexer drained between runs`,
        scheduling:
          'kvroute_router_scheduling_duration_seconds bucket deltas over each routed run, quantiles interpolated linearly within a bucket (as histogram_quantile; the top finite bucket is 500 ms)',
        indexerBreakdown:
          'default variant: bucket deltas over the run of the router\'s kvroute_router_plugin_duration_seconds{plugin_type="precise-prefix-cache-producer"} (routerCallMs), the indexer\'s kvroute_indexer_request_duration_seconds{protocol="grpc"} (indexerScoreMs) and kvroute_tokenize_duration_seconds (tokenizeMs), quantiles as for scheduling (coarse: the indexer\'s buckets step 1, 2.5, 5, 10, 25, 50 ms), and kvroute_indexer_score_shed_total deltas',
        goal: `default config, ${GOAL.promptName}-token prompts: added p50 < ${GOAL.addedP50Ms} ms and added p99 < ${GOAL.addedP99Ms} ms, no errors`,
      },
      results,
      goal: {
        met: goalRows.length > 0 && goalRows.every((r) => r.goalMet),
        perRate: Object.fromEntries(goalRows.map((r) => [`${r.rate}`, r.goalMet])),
      },
    };
    const resultsFile = runs.length === RUNS.length ? RESULTS : RESULTS.replace(/\.json$/, '-partial.json');
    writeResults(resultsFile, doc);

    const rows: string[][] = [];
    for (const r of results) {
      for (const [i, variant] of ['plain', ...VARIANTS.map((v) => v.name).reverse()].entries()) {
        const l = variant === 'plain' ? r.plain : r.routed[variant]!;
        const routedRow = variant === 'plain' ? undefined : r.routed[variant]!;
        rows.push([
          i === 0 ? `${r.prompt} (${fmt(r.promptTokens)} tok)` : '',
          i === 0 ? String(r.rate) : '',
          variant,
          fmt(l.achievedRate),
          fmt(l.p50Ms),
          fmt(l.p99Ms),
          routedRow ? fmt(routedRow.addedMs.p50) : '',
          routedRow ? fmt(routedRow.addedMs.p99) : '',
          routedRow ? `${fmt(routedRow.schedulingMs.p50)} / ${fmt(routedRow.schedulingMs.p99)}` : '',
          routedRow ? fmt(routedRow.routerCpuMsPerRequest) : '',
          String(errorCount(l)),
          variant === 'default' && r.goalMet !== null ? (r.goalMet ? 'yes' : 'NO') : '',
        ]);
      }
    }
    process.stdout.write(
      `${formatTable(['prompt', 'req/s', 'listener', 'achieved', 'p50 ms', 'p99 ms', 'added p50', 'added p99', 'sched p50/p99 ms', 'router CPU ms/req', 'errors', 'goal'], rows)}\n`,
    );
    const breakdownRows = results
      .filter((r) => r.routed.default?.indexer)
      .map((r) => {
        const b = r.routed.default!.indexer!;
        const q = (x: Quantiles) => `${fmt(x.p50)} / ${fmt(x.p99)}`;
        return [
          `${r.prompt}`,
          String(r.rate),
          q(b.routerCallMs),
          q(b.indexerScoreMs),
          q(b.tokenizeMs),
          `${fmt(b.tokenizeMs.count)} of ${fmt(b.indexerScoreMs.count)}`,
          SHED_REASONS.map((k) => `${k} ${b.shed[k]}`).join(', '),
        ];
      });
    process.stdout.write(
      `\ndefault variant, where the prefix-scoring time goes (p50 / p99 ms):\n${formatTable(['prompt', 'req/s', 'router waits', 'indexer Score', 'tokenize', 'tokenized', 'shed'], breakdownRows)}\n`,
    );
    process.stdout.write(
      `indexer score of one prompt, unloaded: ${Object.entries(indexerScoreMs)
        .map(([k, v]) => `${k} ${v} ms`)
        .join(', ')}\n` +
        `goal (default config, 2k-token prompts: added p50 < 1 ms, p99 < 5 ms): ${doc.goal.met ? 'met' : 'not met'}; results in ${path.relative(ROOT, resultsFile)}\n`,
    );
  } finally {
    await envoyStop?.();
    for (const p of peers.reverse()) await p.stop();
    for (const p of noopProcessors) p.kill();
    for (const u of upstreams) await u.close();
  }
}

await main();
