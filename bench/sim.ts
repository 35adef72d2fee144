// Benchmark: how many requests per second one simulator process sustains at --time-scale 100 with
// 2k-token prompts, and its CPU cost per request. The simulated pod runs in this process (so
// process.cpuUsage() measures the simulator: HTTP, tokenizer-free token prompts, scheduling,
// hashing, event encoding and ZMQ publishing); the load generator runs in a child process.
// Writes bench/results/sim.json and prints a table; progress goes to stderr.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { silentLogger } from '../src/common/log.ts';
import { parseSimPodConfig } from '../src/sim/config.ts';
import { startSimPod } from '../src/sim/pod.ts';
import { loadSimTokenizer } from '../src/sim/tokenizer.ts';
import { nodeBinary } from '../test/support/node.ts';
import { repoRoot } from '../test/support/repo-root.ts';

const PROMPT_TOKENS = 2048;
const MAX_TOKENS = 16;
const TIME_SCALE = 100;

interface Scenario {
  name: string;
  /** Tokens shared by every prompt of a group (system prompt); the rest is unique per request. */
  sharedPrefixTokens: number;
  groups: number;
  concurrency: number;
  durationMs: number;
  /** Overrides the calibrated latency model: a much faster simulated GPU shows the CPU ceiling. */
  latency?: { frontendOverheadMs: number; stepBaseMs: number; prefillMsPerToken: number; decodeMsPerSeq: number };
}

const SCENARIOS: Scenario[] = [
  { name: 'cold-2k', sharedPrefixTokens: 0, groups: 1, concurrency: 64, durationMs: 12_000 },
  { name: 'shared-1.5k-of-2k', sharedPrefixTokens: 1536, groups: 8, concurrency: 64, durationMs: 12_000 },
  {
    name: 'cold-2k-fast-gpu',
    sharedPrefixTokens: 0,
    groups: 1,
    concurrency: 128,
    durationMs: 12_000,
    latency: { frontendOverheadMs: 5, stepBaseMs: 1, prefillMsPerToken: 0.005, decodeMsPerSeq: 0.01 },
  },
];

interface ClientResult {
  completed: number;
  errors: number;
  cachedTokens: number;
  promptTokens: number;
  wallLatencyMs: number[];
}

/** Child mode: closed-loop load with `concurrency` workers for `durationMs` against the pod on `port`. */
async function client(scenario: Scenario, port: number): Promise<void> {
  const result: ClientResult = { completed: 0, errors: 0, cachedTokens: 0, promptTokens: 0, wallLatencyMs: [] };
  const end = Date.now() + scenario.durationMs;
  let counter = 0;
  const prompt = (): number[] => {
    const n = counter++;
    const group = n % scenario.groups;
    const tokens = new Array<number>(PROMPT_TOKENS);
    for (let i = 0; i < PROMPT_TOKENS; i++)
      tokens[i] = i < scenario.sharedPrefixTokens ? 10_000 + group * 4096 + i : 50_000 + ((n * 7919 + i * 31) % 90_000);
    return tokens;
  };
  const worker = async () => {
    while (Date.now() < end) {
      const t0 = performance.now();
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'bench', prompt: prompt(), max_tokens: MAX_TOKENS }),
        });
        const body = (await res.json()) as { usage?: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } };
        if (res.status !== 200 || !body.usage) {
          result.errors++;
          continue;
        }
        result.completed++;
        result.promptTokens += body.usage.prompt_tokens;
        result.cachedTokens += body.usage.prompt_tokens_details.cached_tokens;
        result.wallLatencyMs.push(performance.now() - t0);
      } catch {
        result.errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: scenario.concurrency }, worker));
  process.stdout.write(JSON.stringify(result));
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runScenario(scenario: Scenario, tokenizer: Awaited<ReturnType<typeof loadSimTokenizer>>) {
  const pod = await startSimPod(
    parseSimPodConfig({
      podId: 'bench-0',
      model: 'bench',
      port: 0,
      timeScale: TIME_SCALE,
      kvBlocks: 16_384,
      // Bound, with no subscriber: every batch is encoded and handed to ZMQ, which drops it, as a pod
      // publishes whether or not anyone listens. (A connecting publisher would hold them for a subscriber.)
      kvEventsEndpoint: 'tcp://127.0.0.1:*',
      hashSeed: '0',
      ...(scenario.latency ? { latency: scenario.latency } : {}),
    }),
    { tokenizer, log: silentLogger },
  );
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const child = spawn(nodeBinary(), [path.join(repoRoot, 'bench/sim.ts'), '--client', scenario.name, String(pod.port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const progress = setInterval(() => {
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    process.stderr.write(`sim bench ${scenario.name}: ${s}s elapsed, ${pod.engine.pendingRequests} in flight\n`);
  }, 3000);
  await new Promise<void>((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`client exited with ${code}`)))),
  );
  clearInterval(progress);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await pod.close();
  const r = JSON.parse(out) as ClientResult;
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    scenario: scenario.name,
    promptTokens: PROMPT_TOKENS,
    maxTokens: MAX_TOKENS,
    timeScale: TIME_SCALE,
    latencyModel: scenario.latency ? 'fast simulated GPU (CPU ceiling)' : 'calibrated default',
    concurrency: scenario.concurrency,
    wallSeconds: +(wallMs / 1000).toFixed(2),
    completed: r.completed,
    errors: r.errors,
    requestsPerSecond: +(r.completed / (wallMs / 1000)).toFixed(1),
    cpuMsPerRequest: +(cpuMs / Math.max(1, r.completed)).toFixed(3),
    cpuUtilisation: +(cpuMs / wallMs).toFixed(2),
    cachedTokenShare: +(r.cachedTokens / Math.max(1, r.promptTokens)).toFixed(3),
    simulatedLatencyMs: {
      p50: Math.round(percentile(r.wallLatencyMs, 50) * TIME_SCALE),
      p99: Math.round(percentile(r.wallLatencyMs, 99) * TIME_SCALE),
    },
  };
}

interface EventLoopResult {
  tokenizerWorkers: number;
  promptTokens: number;
  maxEventLoopDelayMs: number;
  worstOtherPodHealthMs: number;
}

/**
 * Two pods in one process (as with --replicas): one tokenizes a cold ~24k-token prompt while the
 * other's /health is polled. Reports the worst event-loop delay, with tokenizer workers and without.
 */
async function eventLoopDuringTokenization(workers: number): Promise<EventLoopResult> {
  const model = 'bench-tokenize';
  const tokenizer = await loadSimTokenizer(model, 'npm:qwen3', { workers });
  const start = (id: number) =>
    startSimPod(parseSimPodConfig({ podId: `t${id}`, model, port: 0, timeScale: 1000 }), { tokenizer, log: silentLogger });
  const pods = [await start(0), await start(1)];
  const [port, other] = pods.map((p) => p.port) as [number, number];
  const prompt = (salt: string) => Array.from({ length: 2600 }, (_, i) => `${salt}${i} lorem${(i * 7919) % 1000}`).join(' ');
  const complete = async (p: number, text: string) => {
    const res = await fetch(`http://127.0.0.1:${p}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: text, max_tokens: 1 }),
    });
    if (!res.ok) throw new Error(`completion on ${p} answered ${res.status}`);
    return (await res.json()) as { usage: { prompt_tokens: number } };
  };
  try {
    // Warm both pods (JIT, sockets) so only the long tokenization is measured.
    for (const p of [port, other]) await complete(p, prompt(`warm${p}`).slice(0, 20_000));
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    let done = false;
    const long = complete(port, prompt(`cold${workers}`)).finally(() => (done = true));
    let worstHealthMs = 0;
    while (!done) {
      const t0 = performance.now();
      await (await fetch(`http://127.0.0.1:${other}/health`)).arrayBuffer();
      worstHealthMs = Math.max(worstHealthMs, performance.now() - t0);
    }
    const answer = await long;
    histogram.disable();
    return {
      tokenizerWorkers: workers,
      promptTokens: answer.usage.prompt_tokens,
      maxEventLoopDelayMs: +(histogram.max / 1e6).toFixed(1),
      worstOtherPodHealthMs: +worstHealthMs.toFixed(1),
    };
  } finally {
    for (const p of pods) await p.close();
    await tokenizer.close();
  }
}

async function main(): Promise<void> {
  const clientAt = process.argv.indexOf('--client');
  if (clientAt >= 0) {
    const scenario = SCENARIOS.find((s) => s.name === process.argv[clientAt + 1]);
    if (!scenario) throw new Error(`unknown scenario ${process.argv[clientAt + 1]}`);
    await client(scenario, Number(process.argv[clientAt + 2]));
    return;
  }
  const tokenizer = await loadSimTokenizer('bench', 'npm:qwen3');
  const results = [];
  for (const s of SCENARIOS) results.push(await runScenario(s, tokenizer));
  await tokenizer.close();
  process.stderr.write('event loop while tokenizing a cold 24k-token prompt: workers 1, then 0\n');
  const eventLoop = [await eventLoopDuringTokenization(1), await eventLoopDuringTokenization(0)];
  const doc = {
    benchmark: 'sim',
    description:
      'requests/s one kvroute sim process sustains (closed loop, HTTP /v1/completions with token-id prompts) and its CPU per request',
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    date: new Date().toISOString(),
    results,
    eventLoop,
  };
  writeFileSync(path.join(repoRoot, 'bench/results/sim.json'), JSON.stringify(doc, null, 2) + '\n');
  console.log('scenario             req/s   cpu ms/req  cpu util  cached  p50 sim ms  p99 sim ms  errors');
  for (const r of results) {
    console.log(
      `${r.scenario.padEnd(20)} ${String(r.requestsPerSecond).padStart(6)} ${String(r.cpuMsPerRequest).padStart(12)} ${String(r.cpuUtilisation).padStart(9)} ${String(r.cachedTokenShare).padStart(7)} ${String(r.simulatedLatencyMs.p50).padStart(11)} ${String(r.simulatedLatencyMs.p99).padStart(11)} ${String(r.errors).padStart(7)}`,
    );
  }
  console.log('\ntokenizer workers  prompt tokens  max event-loop delay ms  worst /health of the other pod ms');
  for (const e of eventLoop) {
    console.log(
      `${String(e.tokenizerWorkers).padEnd(17)}  ${String(e.promptTokens).padStart(13)}  ${String(e.maxEventLoopDelayMs).padStart(23)}  ${String(e.worstOtherPodHealthMs).padStart(33)}`,
    );
  }
}

await main();
