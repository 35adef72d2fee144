import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findEnvoy } from '../src/gateway/envoy-process.ts';
import { STRATEGY_ORDER } from '../src/demo/harness.ts';
import { RoutingReportContractSchema } from '../src/demo/report/schema.ts';
import { kvrouteBin, nodeBinary } from '../test/support/node.ts';
import { repoRoot } from '../test/support/repo-root.ts';

const run = promisify(execFile);

/** `kvroute ...args` to completion, stdout and stderr apart (stdout must hold only the JSON). */
async function kvroute(args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(nodeBinary(), [kvrouteBin, ...args], { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024, timeout: 280_000 });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`kvroute ${args.join(' ')} failed: ${e.message}\n--- stderr ---\n${e.stderr ?? ''}\n--- stdout ---\n${e.stdout ?? ''}`);
  }
}

type Strategy = { name: string; tokenHitRate: number; ttftP50Ms: number; errors: number; podShare: Record<string, number> };

function byName(report: { strategies: Strategy[] }, name: string): Strategy {
  const s = report.strategies.find((x) => x.name === name);
  if (!s) throw new Error(`no strategy ${name} in the report`);
  return s;
}

const envoyBin = findEnvoy(process.env.KVROUTE_ENVOY_BIN);
const envoyRequired = Boolean(process.env.KVROUTE_REQUIRE_ENVOY);
const itEnvoy = envoyBin !== null || envoyRequired ? it : it.skip;

describe('kvroute demo', () => {
  it('routes the shared-prefix workload through the real router and built-in gateway under all six strategies, printing only the JSON contract, with kvroute ahead of round-robin', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kvroute-demo-')), 'out');
    // Two of the quick preset's four rounds: every strategy still sees cold, system-prompt and repeat hits.
    const { stdout, stderr } = await kvroute(['demo', '--quick', '--requests=120', '--json', '--builtin', `--out=${out}`]);

    const report = RoutingReportContractSchema.parse(JSON.parse(stdout)) as unknown as {
      pods: number;
      requests: number;
      oracleTokenHitRate: number;
      strategies: Strategy[];
      run: { gateway: string };
    };
    expect(report).toMatchObject({ pods: 4, requests: 120, run: { gateway: 'builtin' } });
    expect(report.strategies.map((s) => s.name)).toEqual(STRATEGY_ORDER);
    for (const s of report.strategies) {
      expect(s.errors).toBe(0);
      expect(Object.keys(s.podShare).sort()).toEqual(['sim-0', 'sim-1', 'sim-2', 'sim-3']);
      expect(s.tokenHitRate).toBeLessThanOrEqual(report.oracleTokenHitRate + 0.02);
    }
    const kv = byName(report, 'kvroute');
    const rr = byName(report, 'round-robin');
    // Facts of the system, with room: prefix-aware routing keeps each group's prompt where it is cached.
    expect(kv.tokenHitRate).toBeGreaterThan(rr.tokenHitRate * 1.3);
    expect(kv.ttftP50Ms).toBeLessThan(rr.ttftP50Ms);

    // The progress indicator and logs go to stderr; --out holds the same JSON and the charts.
    expect(stderr).toContain('kvroute (6/6)');
    expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'))).toEqual(JSON.parse(stdout));
    expect(readdirSync(out).sort()).toEqual(['hit-rate.svg', 'pod-share.svg', 'results.json', 'ttft-cdf.svg', 'ttft.svg']);
  }, 300_000);

  itEnvoy(
    'runs the same comparison through a real Envoy as the gateway',
    async () => {
      const { stdout } = await kvroute([
        'bench',
        'routing',
        '--quick',
        '--requests=60',
        '--strategies=round-robin,kvroute',
        '--json',
        `--envoy=${envoyBin ?? '.cache/envoy/bin/envoy'}`,
      ]);
      const report = JSON.parse(stdout) as { strategies: Strategy[]; run: { gateway: string } };
      expect(report.run.gateway).toBe('envoy');
      expect(report.strategies.map((s) => [s.name, s.errors])).toEqual([
        ['round-robin', 0],
        ['kvroute', 0],
      ]);
      expect(byName(report, 'kvroute').tokenHitRate).toBeGreaterThan(byName(report, 'round-robin').tokenHitRate);
    },
    300_000,
  );
});
