// What `kvroute demo` and `kvroute bench routing` share: their common flags, turning them into the
// harness's options, running it with a progress indicator on stderr, and the output: tables (and the
// issue's targets) on stdout, or only the JSON with --json; results.json and charts with --out.

import { InvalidArgumentError, Option, type Command } from 'commander';
import type { StrategyName } from '../api/endpoint-picker-config.ts';
import { LOG_LEVELS, createLogger, parseLogLevel } from '../common/log.ts';
import { Progress } from '../common/progress.ts';
import { runRoutingBenchmark, type RoutingBenchmarkResult } from '../demo/harness.ts';
import type { GatewayChoice } from '../demo/pool.ts';
import { presetFor, workloadKind } from '../demo/presets.ts';
import { stopAllChildren } from '../demo/process.ts';
import { comparisonTable, strategyTable } from '../demo/report/tables.ts';
import { checkTargets, targetsTable } from '../demo/report/targets.ts';
import { writeReportFiles } from '../demo/report/write.ts';
import type { ArrivalProcess } from '../demo/workloads/arrivals.ts';

export interface RoutingFlags {
  pods: number;
  quick?: boolean;
  json?: boolean;
  out?: string;
  envoy?: string;
  builtin?: boolean;
  seed: number;
  requests?: number;
  concurrency?: number;
  rate?: number;
  traceTiming?: number | true;
  kvBlocks?: number;
  timeScale?: number;
  model: string;
  tokenizer: string;
  maxInputTokens?: number;
  maxOutputTokens?: number;
  requestTimeout: number;
  logDir?: string;
  logLevel: string;
}

export function positiveInt(flag: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || n < 1) throw new InvalidArgumentError(`${flag} expects a positive integer, got "${text}"`);
    return n;
  };
}

function nonNegativeInt(flag: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text.trim())) throw new InvalidArgumentError(`${flag} expects an integer >= 0, got "${text}"`);
    return n;
  };
}

function positiveNumber(flag: string) {
  return (text: string): number => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${flag} expects a positive number, got "${text}"`);
    return n;
  };
}

/** Adds the flags both commands take. */
export function addRoutingOptions(command: Command, defaults: { pods: number }): Command {
  return command
    .option('--pods <n>', 'simulated vLLM pods', positiveInt('--pods'), defaults.pods)
    .option('--quick', 'the scaled-down workload (under 2 minutes on 2 cores for the demo)')
    .option('--json', 'print only the results as JSON on stdout')
    .option('--out <dir>', 'write results.json and SVG charts (hit rate, TTFT, TTFT CDF, traffic per pod) into this directory')
    .option('--envoy <path>', 'run this Envoy as the gateway (default: envoy on PATH or .cache/envoy, else the built-in gateway)')
    .option('--builtin', 'use the built-in gateway even when an Envoy is available')
    .option('--seed <n>', 'seed of the workload and the pods', nonNegativeInt('--seed'), 1)
    .option('--requests <n>', 'send exactly this many requests (files and traces: the first n)', positiveInt('--requests'))
    .option(
      '--concurrency <n>',
      'closed loop: clients each sending its next request when the last one finished (default per workload)',
      positiveInt('--concurrency'),
    )
    .option('--rate <req/s>', 'Poisson arrivals at this rate instead of a closed loop', positiveNumber('--rate'))
    .option('--kv-blocks <n>', 'KV cache blocks per pod (default per workload)', positiveInt('--kv-blocks'))
    .option('--time-scale <x>', 'simulated ms per wall ms of the pods (default 10)', positiveNumber('--time-scale'))
    .option('--model <name>', 'served model name', 'Qwen/Qwen3-0.6B')
    .option('--tokenizer <source>', 'tokenizer of the pods and the indexer', 'npm:qwen3')
    .option('--request-timeout <s>', 'give up on a request after this many seconds (wall clock)', positiveNumber('--request-timeout'), 600)
    .option('--log-dir <dir>', "keep the pool processes' logs here (default: a temporary directory, removed after a successful run)")
    .addOption(new Option('--log-level <level>', 'log level of the harness (stderr)').choices(LOG_LEVELS).default('warn'));
}

function arrivalsOf(flags: RoutingFlags, concurrency: number, seed: number): ArrivalProcess {
  const given = [flags.concurrency !== undefined, flags.rate !== undefined, flags.traceTiming !== undefined].filter(Boolean).length;
  if (given > 1) throw new InvalidArgumentError('--concurrency, --rate and --trace-timing are alternatives; give one');
  if (flags.rate !== undefined) return { kind: 'poisson', ratePerS: flags.rate, seed };
  if (flags.traceTiming !== undefined) return { kind: 'trace', speedup: flags.traceTiming === true ? 1 : flags.traceTiming };
  return { kind: 'closed', concurrency, rampUp: true };
}

function gatewayOf(flags: RoutingFlags): GatewayChoice {
  if (flags.envoy !== undefined && flags.builtin) throw new InvalidArgumentError('--envoy and --builtin exclude each other');
  if (flags.envoy !== undefined) return { kind: 'envoy', path: flags.envoy };
  return flags.builtin ? { kind: 'builtin' } : { kind: 'auto' };
}

function print(result: RoutingBenchmarkResult, kind: string): void {
  const { report } = result;
  const parts = report.strategies.map((s) => strategyTable(s, report.oracleTokenHitRate));
  parts.push(comparisonTable(report));
  const targetKind = kind === 'shared-prefix' ? 'shared-prefix' : kind === 'mooncake' ? 'trace' : null;
  if (targetKind) {
    const checks = checkTargets(report, targetKind);
    if (checks.length > 0) parts.push(targetsTable(checks));
  }
  const run = report.run;
  parts.push(
    `gateway: ${run.gateway === 'envoy' ? 'Envoy' : 'built-in'}; ${run.kvBlocksPerPod} KV blocks of ${run.blockSize} tokens per pod; ` +
      `${run.arrivals}; pods at ${run.timeScale}x real time (TTFT and throughput in simulated time)`,
  );
  process.stdout.write(`\n${parts.join('\n\n')}\n`);
}

/** Runs the harness for a command's flags and workload; prints and writes what the flags ask for. */
export async function runFromFlags(flags: RoutingFlags, workload: string, strategies: readonly StrategyName[]): Promise<void> {
  const log = createLogger({ level: parseLogLevel(flags.logLevel), component: 'routing-bench' });
  const kind = workloadKind(workload);
  const preset = presetFor(kind, flags.quick === true, flags.pods);
  const seed = flags.seed;
  const arrivals = arrivalsOf(flags, flags.concurrency ?? preset.concurrency, seed);
  const gateway = gatewayOf(flags);
  let progress: Progress | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    progress?.finish();
    process.stderr.write(`\n${signal}: stopping the pool\n`);
    void stopAllChildren(5_000).then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: RoutingBenchmarkResult;
  try {
    result = await runRoutingBenchmark({
      workload,
      quick: flags.quick === true,
      ...(flags.requests !== undefined ? { requests: flags.requests } : {}),
      seed,
      model: flags.model,
      tokenizer: flags.tokenizer,
      pods: flags.pods,
      strategies,
      arrivals,
      kvBlocks: flags.kvBlocks ?? preset.kvBlocks,
      blockSize: 16,
      timeScale: flags.timeScale ?? preset.timeScale,
      ...(flags.maxOutputTokens !== undefined ? { maxOutputTokens: flags.maxOutputTokens } : {}),
      ...(flags.maxInputTokens !== undefined ? { maxInputTokens: flags.maxInputTokens } : {}),
      gateway,
      routerTls: true,
      requestTimeoutMs: flags.requestTimeout * 1000,
      ...(flags.logDir !== undefined ? { logDir: flags.logDir } : {}),
      log,
      progress: {
        phase: (label, total) => {
          if (progress) progress.restart(label, total);
          else progress = new Progress({ total, label, unit: 'req' });
        },
        update: (done) => progress?.update(done),
      },
    });
  } finally {
    progress?.finish();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (flags.out !== undefined) {
    const written = writeReportFiles(flags.out, result.report, result.ttftSamples);
    process.stderr.write(`wrote ${written.join(', ')}\n`);
  }
  if (flags.json) process.stdout.write(`${JSON.stringify(result.report, null, 2)}\n`);
  else print(result, kind);
  if (result.report.strategies.some((s) => s.errors > 0)) {
    process.stderr.write(`some requests failed: ${result.report.strategies.map((s) => `${s.name} ${s.errors}`).join(', ')}\n`);
    process.exitCode = 1;
  }
}
