// Benchmark (`npm run bench:routing`): the routing comparison of `kvroute bench routing` on the runs
// issue 8 asks for: the full shared-prefix workload (150 groups x 5 users, 4 pods) and the first 1,000
// requests of both Mooncake traces on 8 pods with caches large enough that routing, not eviction,
// decides. Each run writes bench/results/routing-<name>.json (the --json report) and its charts into
// bench/results/routing-<name>/, and prints the comparison table and the targets.
// `--only a,b` runs some of them; `--traces DIR` says where the Mooncake traces are (default
// ../shared/traces beside the repository). `--requests N`, `--strategies a,b` and `--time-scale X`
// shorten a run (the full set takes hours on two cores); the command line is recorded in each JSON's
// run.command, so a shortened run says what it was. Progress goes to stderr.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createLogger } from '../src/common/log.ts';
import { Progress } from '../src/common/progress.ts';
import type { StrategyName } from '../src/api/endpoint-picker-config.ts';
import { STRATEGY_ORDER, parseStrategies, runRoutingBenchmark } from '../src/demo/harness.ts';
import { presetFor, workloadKind } from '../src/demo/presets.ts';
import { renderCharts } from '../src/demo/report/charts.ts';
import { comparisonTable } from '../src/demo/report/tables.ts';
import { checkTargets, targetsTable } from '../src/demo/report/targets.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const RESULTS = path.join(ROOT, 'bench/results');

interface RunSpec {
  name: string;
  workload: (traces: string) => string;
  pods: number;
  requests?: number;
  targets: 'shared-prefix' | 'trace';
}

const RUNS: RunSpec[] = [
  { name: 'shared-prefix', workload: () => 'shared-prefix', pods: 4, targets: 'shared-prefix' },
  {
    name: 'mooncake-synthetic',
    workload: (traces) => `mooncake:${path.join(traces, 'mooncake-synthetic.jsonl')}`,
    pods: 8,
    requests: 1000,
    targets: 'trace',
  },
  {
    name: 'mooncake-conversation',
    workload: (traces) => `mooncake:${path.join(traces, 'mooncake-conversation.jsonl')}`,
    pods: 8,
    requests: 1000,
    targets: 'trace',
  },
];

interface BenchArgs {
  only: Set<string> | null;
  traces: string;
  /** Overrides every run's request count (built-ins: exactly this many; traces: the first this many). */
  requests?: number;
  strategies: readonly StrategyName[];
  /** Overrides the preset's time scale. */
  timeScale?: number;
}

const USAGE = `usage: node bench/routing.ts [--only ${RUNS.map((r) => r.name).join(',')}] [--traces DIR] [--requests N] [--strategies ${STRATEGY_ORDER.join(',')}] [--time-scale X]`;

function parseArgs(argv: string[]): BenchArgs {
  const args: BenchArgs = { only: null, traces: path.resolve(ROOT, '../shared/traces'), strategies: STRATEGY_ORDER };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--only') {
      const only = new Set(value().split(','));
      for (const name of only)
        if (!RUNS.some((r) => r.name === name))
          throw new Error(`--only: unknown run "${name}"; runs: ${RUNS.map((r) => r.name).join(', ')}`);
      args.only = only;
    } else if (flag === '--traces') args.traces = path.resolve(value());
    else if (flag === '--requests') {
      const text = value();
      if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error(`--requests expects a positive integer, got "${text}"`);
      args.requests = Number(text);
    } else if (flag === '--strategies') args.strategies = parseStrategies(value());
    else if (flag === '--time-scale') {
      const text = value();
      const x = Number(text);
      if (text.trim() === '' || !Number.isFinite(x) || x <= 0) throw new Error(`--time-scale expects a positive number, got "${text}"`);
      args.timeScale = x;
    } else throw new Error(`unknown argument "${arg}"; ${USAGE}`);
  }
  return args;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const { only, traces, requests, strategies, timeScale } = parseArgs(argv);
  const command = ['node bench/routing.ts', ...argv].join(' ');
  const log = createLogger({ level: 'warn', component: 'bench-routing' });
  for (const spec of RUNS) {
    if (only && !only.has(spec.name)) continue;
    const workload = spec.workload(traces);
    const file = workload.startsWith('mooncake:') ? workload.slice('mooncake:'.length) : null;
    if (file && !existsSync(file)) {
      process.stderr.write(`${spec.name}: skipped, no trace at ${file} (--traces DIR)\n`);
      continue;
    }
    const preset = presetFor(workloadKind(workload), false, spec.pods);
    const count = requests ?? spec.requests;
    let progress: Progress | undefined;
    const started = performance.now();
    const result = await runRoutingBenchmark({
      workload,
      quick: false,
      ...(count !== undefined ? { requests: count } : {}),
      seed: 1,
      model: 'Qwen/Qwen3-0.6B',
      tokenizer: 'npm:qwen3',
      pods: spec.pods,
      strategies,
      arrivals: { kind: 'closed', concurrency: preset.concurrency, rampUp: true },
      kvBlocks: preset.kvBlocks,
      blockSize: 16,
      timeScale: timeScale ?? preset.timeScale,
      gateway: { kind: 'auto' },
      routerTls: true,
      requestTimeoutMs: 1_800_000,
      log,
      progress: {
        phase: (label, total) => {
          const full = `${spec.name}: ${label}`;
          if (progress) progress.restart(full, total);
          else progress = new Progress({ total, label: full });
        },
        update: (done) => progress?.update(done),
      },
    });
    progress?.finish();
    const json = path.join(RESULTS, `routing-${spec.name}.json`);
    mkdirSync(RESULTS, { recursive: true });
    const report = { ...result.report, run: { ...result.report.run, command } };
    writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
    const chartDir = path.join(RESULTS, `routing-${spec.name}`);
    mkdirSync(chartDir, { recursive: true });
    for (const [name, svg] of Object.entries(renderCharts(result.report, result.ttftSamples)))
      writeFileSync(path.join(chartDir, name), svg);
    const minutes = ((performance.now() - started) / 60_000).toFixed(1);
    process.stdout.write(
      `\n${comparisonTable(result.report)}\n\n${targetsTable(checkTargets(result.report, spec.targets))}\n` +
        `(${minutes} min, gateway ${result.report.run.gateway}; wrote ${path.relative(ROOT, json)} and ${path.relative(ROOT, chartDir)}/)\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:routing failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
