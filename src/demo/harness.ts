// The routing benchmark behind `kvroute demo` and `kvroute bench routing`: builds the workload,
// starts the pool once, computes the bound over the request sequence, runs every strategy on it in
// turn (each from empty caches and a freshly built scheduler, see run-strategy.ts) and assembles the
// report. Strategies are router configurations (STRATEGY_CONFIGS), never client-side pickers.

import { rmSync } from 'node:fs';
import YAML from 'yaml';
import { STRATEGY_CONFIGS, type StrategyName } from '../api/endpoint-picker-config.ts';
import type { Logger } from '../common/log.ts';
import { indexerTokenize } from './client.ts';
import { computeOracle, promptTokenArrays } from './oracle.ts';
import { startRoutingPool, type GatewayChoice, type RoutingPool } from './pool.ts';
import { buildReport } from './report/summarize.ts';
import type { RoutingReport, RunSettings, StrategyResult } from './report/schema.ts';
import { runStrategy } from './run-strategy.ts';
import type { ArrivalProcess } from './workloads/arrivals.ts';
import { parseWorkloadSpec } from './workloads/spec.ts';
import type { Workload } from './workloads/types.ts';

/** Every strategy, in the order they run and are reported: least to most informed. */
export const STRATEGY_ORDER: readonly StrategyName[] = ['random', 'round-robin', 'load', 'approx-prefix', 'precise-prefix', 'kvroute'];

/** `a,b,c` as strategy names, in the order given; throws naming the unknown one. */
export function parseStrategies(text: string): StrategyName[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new Error(`--strategies: expected a comma-separated list of ${STRATEGY_ORDER.join(', ')}`);
  const seen = new Set<string>();
  for (const name of names) {
    if (!(STRATEGY_ORDER as readonly string[]).includes(name))
      throw new Error(`--strategies: unknown strategy "${name}"; expected some of ${STRATEGY_ORDER.join(', ')}`);
    if (seen.has(name)) throw new Error(`--strategies: "${name}" is listed twice`);
    seen.add(name);
  }
  return names as StrategyName[];
}

/** The router config file of a strategy (the indexer address is the router's --indexer flag). */
export function strategyConfigYaml(name: StrategyName): string {
  return YAML.stringify(STRATEGY_CONFIGS[name]);
}

/** Where the run is in, for a progress indicator. */
export interface HarnessProgress {
  /** A new phase: starting the pool, or strategy k of n with `total` requests. */
  phase(label: string, total: number): void;
  /** Requests done in the current phase. */
  update(done: number): void;
}

export interface RoutingBenchmarkOptions {
  /** `--workload`: shared-prefix | multi-turn | rag (with :key=value overrides) | mooncake:FILE | FILE.jsonl. */
  workload: string;
  quick: boolean;
  /** Built-ins: exactly this many requests; files: the first this many. */
  requests?: number;
  seed: number;
  model: string;
  tokenizer: string;
  pods: number;
  strategies: readonly StrategyName[];
  arrivals: ArrivalProcess;
  kvBlocks: number;
  blockSize: number;
  timeScale: number;
  /** Caps every request's max_tokens. */
  maxOutputTokens?: number;
  /** Mooncake: cuts longer prompts to this many tokens. */
  maxInputTokens?: number;
  gateway: GatewayChoice;
  routerTls: boolean;
  requestTimeoutMs: number;
  /** Keep the children's logs here; otherwise a temporary directory, removed after a successful run. */
  logDir?: string;
  log: Logger;
  progress?: HarnessProgress;
}

export interface RoutingBenchmarkResult {
  /** The report, with `run` set. */
  report: RoutingReport & { run: RunSettings };
  ttftSamples: Array<{ name: string; ttftMs: number[] }>;
  logDir: string;
}

export function describeArrivals(a: ArrivalProcess): string {
  switch (a.kind) {
    case 'closed':
      return `closed loop, ${a.concurrency} clients${a.rampUp ? ' joining one at a time' : ''}`;
    case 'poisson':
      return `Poisson, ${a.ratePerS} req/s`;
    case 'trace':
      return `trace timestamps${a.speedup !== undefined && a.speedup !== 1 ? ` / ${a.speedup}` : ''}`;
  }
}

/**
 * The pods' max model length: room for the workload's longest request (prompt + max_tokens) when the
 * prompts are token ids, vLLM's default otherwise; an error naming --kv-blocks when the cache cannot
 * hold that request (vLLM refuses to start so).
 */
export function maxModelLenFor(workload: Workload, kvBlocks: number, blockSize: number, maxInputTokens?: number): number {
  const capacity = (kvBlocks - 1) * blockSize;
  let needed = 0;
  for (const r of workload.requests) {
    if (!r.tokens) continue;
    const length = r.tokens.length;
    needed = Math.max(needed, length + Math.max(1, r.maxTokens));
  }
  if (needed > capacity) {
    throw new Error(
      `--kv-blocks ${kvBlocks}: a pod's cache holds ${capacity} tokens but the workload's longest request needs ${needed} (prompt + max_tokens); ` +
        `raise --kv-blocks to at least ${Math.ceil(needed / blockSize) + 1}${maxInputTokens === undefined ? ' or cut prompts with --max-input-tokens' : ''}`,
    );
  }
  return Math.max(needed, Math.min(32_768, capacity));
}

/** Runs the benchmark end to end; the pool is always stopped, on failure too. */
export async function runRoutingBenchmark(o: RoutingBenchmarkOptions): Promise<RoutingBenchmarkResult> {
  const workload = await parseWorkloadSpec(o.workload, {
    seed: o.seed,
    model: o.model,
    quick: o.quick,
    ...(o.requests !== undefined ? { requests: o.requests } : {}),
    ...(o.maxOutputTokens !== undefined ? { maxOutputTokens: o.maxOutputTokens } : {}),
    ...(o.maxInputTokens !== undefined ? { maxInputTokens: o.maxInputTokens } : {}),
  });
  if (o.strategies.length === 0) throw new Error('no strategies to run');
  const maxModelLen = maxModelLenFor(workload, o.kvBlocks, o.blockSize, o.maxInputTokens);
  const allTokens = workload.requests.every((r) => r.tokens !== undefined);
  o.log.info('workload ready', { workload: workload.name, requests: workload.requests.length });

  o.progress?.phase('starting the pool', 0);
  const pool: RoutingPool = await startRoutingPool({
    pods: o.pods,
    model: o.model,
    tokenizer: o.tokenizer,
    tokenizerWorkers: allTokens ? 0 : 1,
    blockSize: o.blockSize,
    kvBlocks: o.kvBlocks,
    maxModelLen,
    timeScale: o.timeScale,
    seed: o.seed,
    gateway: o.gateway,
    routerTls: o.routerTls,
    routerConfig: strategyConfigYaml(o.strategies[0]!),
    ...(o.logDir !== undefined ? { logDir: o.logDir } : {}),
    log: o.log,
  });
  let ok = false;
  try {
    // Text and chat prompts become the token ids the pods see through the indexer's tokenizer (the pods').
    const tokenizer = {
      tokenize: (model: string, input: { prompt?: string; messages?: Workload['requests'][number]['messages'] }) =>
        indexerTokenize(pool.indexerUrl, model, input),
    };
    const textPrompts = allTokens ? null : await promptTokenArrays(workload.requests, tokenizer);
    const promptTokens = (i: number): readonly number[] => textPrompts?.[i] ?? workload.requests[i]!.tokens!;
    const oracle = computeOracle(
      (function* () {
        for (let i = 0; i < workload.requests.length; i++) yield promptTokens(i);
      })(),
      o.blockSize,
    );
    o.log.info('bound computed', { oracleTokenHitRate: oracle.tokenHitRate, distinctBlocks: oracle.distinctBlocks });

    const strategies: StrategyResult[] = [];
    const ttftSamples: Array<{ name: string; ttftMs: number[] }> = [];
    for (const [k, name] of o.strategies.entries()) {
      o.progress?.phase(`${name} (${k + 1}/${o.strategies.length})`, workload.requests.length);
      const run = await runStrategy(pool, {
        name,
        routerConfig: strategyConfigYaml(name),
        workload,
        promptTokens,
        oracleHitTokens: oracle.hitTokens,
        oracleTokenHitRate: oracle.tokenHitRate,
        arrivals: o.arrivals,
        blockSize: o.blockSize,
        timeScale: o.timeScale,
        requestTimeoutMs: o.requestTimeoutMs,
        onProgress: (done) => o.progress?.update(done),
      });
      o.log.info('strategy done', { strategy: name, tokenHitRate: run.result.tokenHitRate, errors: run.result.errors });
      strategies.push(run.result);
      ttftSamples.push({ name, ttftMs: run.ttftMs });
    }
    const settings: RunSettings = {
      gateway: pool.gateway,
      kvBlocksPerPod: o.kvBlocks,
      blockSize: o.blockSize,
      timeScale: o.timeScale,
      arrivals: describeArrivals(o.arrivals),
      seed: o.seed,
      model: o.model,
    };
    const report = buildReport({
      pods: o.pods,
      workload: workload.name,
      requests: workload.requests.length,
      oracleTokenHitRate: oracle.tokenHitRate,
      strategies,
      run: settings,
    });
    ok = true;
    return { report: { ...report, run: settings }, ttftSamples, logDir: pool.logDir };
  } finally {
    await pool.stop();
    if (ok && o.logDir === undefined) rmSync(pool.logDir, { recursive: true, force: true });
    else if (!ok) o.log.error('the run failed; the pool processes logged to', { logDir: pool.logDir });
  }
}
