// Benchmark (`npm run bench:chaos`): the full form of the chaos suite of issue 10. Data plane (faults
// under sustained traffic through a real Envoy, two routers, the indexer and simulated pods: see
// bench/chaos/data-plane.ts), operator (bench/chaos/operator.ts) and load (bench/chaos/load.ts).
// Writes bench/results/chaos.json ({ environment, dataPlane, operator, load }) and a short table on
// stdout; progress on stderr. `--only data,operator,load` runs a subset and merges it into the
// existing chaos.json, keeping the other sections.

import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { environment, writeResults } from './lib/results.ts';
import { runDataPlaneChaos } from './chaos/data-plane.ts';
import { loadTable, runLoad } from './chaos/load.ts';
import { operatorChaosTable, runOperatorChaos } from './chaos/operator.ts';
import { dataPlaneTable, type ChaosReport } from './chaos/report.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const RESULTS = path.join(ROOT, 'bench/results/chaos.json');
const PARTS = ['data', 'operator', 'load'] as const;
type Part = (typeof PARTS)[number];

interface Args {
  only: Part[];
  quick: boolean;
  loadMinutes?: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { only: [...PARTS], quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw new Error(`${a}: expected a value`);
      return next;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const names = value()
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      for (const n of names)
        if (!(PARTS as readonly string[]).includes(n)) throw new Error(`--only: unknown part "${n}"; expected some of ${PARTS.join(', ')}`);
      if (names.length === 0) throw new Error(`--only: expected a comma-separated list of ${PARTS.join(', ')}`);
      args.only = names as Part[];
    } else if (a === '--load-minutes' || a.startsWith('--load-minutes=')) {
      const n = Number(value());
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--load-minutes: expected a positive number of minutes`);
      args.loadMinutes = n;
    } else throw new Error(`unknown argument "${a}"; usage: bench/chaos.ts [--only data,operator,load] [--quick] [--load-minutes N]`);
  }
  return args;
}

const progress = (line: string): void => {
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // Only the parts run here are written; the rest of chaos.json is re-read just before each write, so a
  // concurrent run of another part (its own --only) keeps its figures.
  const readPrevious = (): ChaosReport =>
    existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as ChaosReport) : { environment: {} };
  const report: ChaosReport = { environment: {} };
  const environmentNow = { ...environment(), loadAverage: loadavg().map((v) => Math.round(v * 100) / 100), quick: args.quick };
  const lines: string[] = [];
  let failedParts = 0;

  for (const part of args.only) {
    try {
      if (part === 'data') {
        const started = Date.now();
        report.dataPlane = await runDataPlaneChaos({ quick: args.quick, progress });
        lines.push(
          `data plane (${Math.round((Date.now() - started) / 1000)} s, load average ${loadavg()[0]!.toFixed(1)}):`,
          dataPlaneTable(report.dataPlane),
        );
      } else if (part === 'operator') {
        const operator = await runOperatorChaos({ quick: args.quick, progress });
        report.operator = operator;
        lines.push('operator:', operatorChaosTable(operator));
      } else {
        const load = await runLoad({
          quick: args.quick,
          ...(args.loadMinutes !== undefined ? { minutes: args.loadMinutes } : {}),
          progress,
        });
        report.load = load;
        lines.push('load:', loadTable(load));
      }
      // Each part is saved as it finishes, so a later part's failure keeps the earlier figures.
      report.environment = { ...environmentNow, loadAverageAtEnd: loadavg().map((v) => Math.round(v * 100) / 100) };
      writeResults(RESULTS, { ...readPrevious(), ...report });
    } catch (err) {
      failedParts++;
      progress(`${part}: failed: ${(err as Error).stack ?? String(err)}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  progress(`wrote ${path.relative(ROOT, RESULTS)}`);
  if (failedParts > 0) process.exitCode = 1;
}

await main();
