import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PhaseResult } from '../src/demo/traffic.ts';

describe('kvroute demo', () => {
  it('routes by the indexer to a higher prefix-cache hit rate and lower TTFT than round-robin, and predicts the pods cached blocks', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvroute-demo-'));
    const out = join(dir, 'demo.json');
    const run = spawnSync(
      process.execPath,
      ['bin/kvroute.js', 'demo', '--conversations=16', '--turns=4', '--base-port=18400', `--json=${out}`, `--log-dir=${dir}`],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(run.stderr).not.toContain('request failed');
    expect(run.status).toBe(0);
    const { results } = JSON.parse(readFileSync(out, 'utf8')) as { results: PhaseResult[] };
    const rr = results.find((r) => r.policy === 'round-robin')!;
    const ca = results.find((r) => r.policy === 'cache-aware')!;
    expect(rr.requests).toBe(64);
    expect(ca.errors + rr.errors).toBe(0);
    expect(ca.hitRate).toBeGreaterThan(rr.hitRate);
    expect(ca.ttftMeanMs).toBeLessThan(rr.ttftMeanMs);
    expect(ca.prediction!.withinOneBlock / ca.prediction!.total).toBeGreaterThan(0.9);
    expect(run.stdout).toContain('cache-aware vs round-robin');
  }, 150_000);
});
