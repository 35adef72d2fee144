// Runs hack/llmd-bench.sh (llm-d's Go indexer benchmarks) and parses its `go test -bench` output.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface GoBenchResult {
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
  source?: string;
  /** ns/op by benchmark name without the -GOMAXPROCS suffix. */
  nsPerOp: Record<string, number>;
  bytesPerEntry?: number;
}

/** Parses `BenchmarkName-2   1234   5678 ns/op ...` lines and the LLMD_* lines of hack/llmd-bench.sh. */
function parseGoBench(output: string): Omit<GoBenchResult, 'available'> {
  const nsPerOp: Record<string, number> = {};
  let source: string | undefined;
  let bytesPerEntry: number | undefined;
  for (const line of output.split('\n')) {
    const m = /^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns\/op/.exec(line);
    if (m) nsPerOp[m[1]!] = Number(m[2]);
    const b = /^LLMD_BYTES_PER_ENTRY ([\d.]+)/.exec(line);
    if (b) bytesPerEntry = Number(b[1]);
    const s = /^LLMD_SOURCE (.*)$/.exec(line);
    if (s) source = s[1];
  }
  return { nsPerOp, ...(source ? { source } : {}), ...(bytesPerEntry !== undefined ? { bytesPerEntry } : {}) };
}

export function runGoBench(script: string, env: NodeJS.ProcessEnv, onLine: (line: string) => void): Promise<GoBenchResult> {
  return new Promise((resolve) => {
    const child = spawn('bash', [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const line of d.toString().split('\n')) if (line.startsWith('Benchmark') && line.includes('ns/op')) onLine(line);
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => resolve({ available: false, reason: `cannot run ${script}: ${e.message}`, nsPerOp: {} }));
    child.on('close', (code) => {
      const parsed = parseGoBench(out);
      if (code === 0 && Object.keys(parsed.nsPerOp).length > 0) resolve({ available: true, ...parsed });
      else {
        const unavailable = /LLMD_UNAVAILABLE (.*)/.exec(err)?.[1];
        resolve({ available: false, reason: unavailable ?? `exit ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`, ...parsed });
      }
    });
  });
}

/** Reads `go test -bench` output recorded by an earlier run of the same benchmarks (LLMD_BENCH_OUTPUT). */
export function readGoBenchOutput(file: string): GoBenchResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { available: false, reason: `cannot read LLMD_BENCH_OUTPUT ${file}: ${(err as Error).message}`, nsPerOp: {} };
  }
  const parsed = parseGoBench(text);
  if (Object.keys(parsed.nsPerOp).length === 0) return { available: false, reason: `no "ns/op" lines in ${file}`, ...parsed };
  return { available: true, ...parsed, source: `${parsed.source ?? 'unknown source'}, recorded in ${file}` };
}
