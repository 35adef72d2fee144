// Fixed-seed parameters for the property-based fuzz tests (`*.fuzz.test.ts`): CI runs each target a
// few hundred times from one seed, so a failure reproduces exactly; KVROUTE_FUZZ_RUNS (runs per
// target) and KVROUTE_FUZZ_SEED run longer or from elsewhere (docs/fuzzing.md). Corpora of recorded inputs live in a
// `testdata/fuzz/` folder beside each target, read by `readCorpus`.

import fs from 'node:fs';
import path from 'node:path';

/** The seed every fuzz target starts from unless KVROUTE_FUZZ_SEED says otherwise. */
export const DEFAULT_FUZZ_SEED = 20261201;

function envInt(name: string, env: NodeJS.ProcessEnv): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} expects an integer, got "${text}"`);
  return n;
}

/** fast-check parameters for one target: `ciRuns` runs from the fixed seed, or KVROUTE_FUZZ_RUNS runs. */
export function fuzzParams(ciRuns: number, env: NodeJS.ProcessEnv = process.env): { seed: number; numRuns: number } {
  const seed = envInt('KVROUTE_FUZZ_SEED', env) ?? DEFAULT_FUZZ_SEED;
  const numRuns = Math.max(1, envInt('KVROUTE_FUZZ_RUNS', env) ?? ciRuns);
  return { seed, numRuns };
}

/** Jest's timeout for a target that takes `ciMs` for its `ciRuns` CI runs, scaled to a longer run. */
export function fuzzTimeout(ciRuns: number, ciMs: number, env: NodeJS.ProcessEnv = process.env): number {
  const { numRuns } = fuzzParams(ciRuns, env);
  return Math.max(ciMs, Math.ceil((ciMs * numRuns) / ciRuns));
}

/** One recorded input: a file in testdata/fuzz/, parsed as JSON. */
export interface CorpusEntry<T> {
  file: string;
  value: T;
}

/** Every `*.json` file of a corpus folder, in name order. */
export function readCorpus<T>(dir: string): Array<CorpusEntry<T>> {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, value: JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as T }));
}
