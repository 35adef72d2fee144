import { describe, expect, it } from '@jest/globals';
import { parseRoutingReport, type StrategyResult } from './schema.ts';
import { comparisonTable, pct, strategyTable } from './tables.ts';

const kvroute: StrategyResult = {
  name: 'kvroute',
  tokenHitRate: 0.8912,
  requestHitRate: 0.95,
  ttftP50Ms: 341.2,
  ttftP90Ms: 2850,
  throughputTokPerS: 123.4,
  podShare: { 'sim-0': 0.3, 'sim-1': 0.2, 'sim-2': 0.25, 'sim-3': 0.25 },
  maxPodShare: 0.3,
  evictionLoss: 0.01,
  routingLoss: 0.023,
  ratioToBound: 0.965,
  requests: 240,
  errors: 2,
  coldRequests: 12,
  warmRequests: 226,
  ttftColdP50Ms: 2850,
  ttftColdP90Ms: 3100,
  ttftWarmP50Ms: 340,
  ttftWarmP90Ms: null,
  usageTokenHitRate: 0.89,
  funnelHit: 0.89,
  beyondBound: 0,
  requestsPerS: 4.2,
  durationS: 57,
};

describe('report tables', () => {
  it('formats fractions as percentages with one decimal', () => {
    expect(pct(0.8744)).toBe('87.4%');
    expect(pct(null)).toBe('-');
  });

  it('lists every number of a strategy', () => {
    const table = strategyTable(kvroute, 0.923);
    expect(table.split('\n')[0]).toBe('kvroute');
    expect(table).toContain('240 (2 failed)');
    expect(table).toContain('89.1% (bound 92.3%, ratio 0.965)');
    expect(table).toMatch(/TTFT cold p50 \/ p90 \(12\) +2,850 ms \/ 3,100 ms/);
    expect(table).toContain('340 ms / -');
    expect(table).toContain('sim-0 30.0%, sim-1 20.0%, sim-2 25.0%, sim-3 25.0%');
    expect(table).toContain('30.0% (fair 25.0%)');
    expect(table).not.toContain('load bound');
    expect(strategyTable({ ...kvroute, loadBoundDiversions: 7 }, 0.923)).toMatch(
      /load-bound diversions +7 requests moved off their best prefix pod/,
    );
  });

  it('compares strategies one row each under a title with the bound', () => {
    const report = parseRoutingReport({
      pods: 4,
      requests: 240,
      workload: 'shared-prefix(quick)',
      oracleTokenHitRate: 0.923,
      strategies: [{ ...kvroute, name: 'round-robin', tokenHitRate: 0.3 }, kvroute],
    });
    const lines = comparisonTable(report).split('\n');
    expect(lines[0]).toBe('shared-prefix(quick): 240 requests, 4 pods, bound (one unlimited cache) 92.3%');
    expect(lines[1]).toMatch(/^strategy\s+hit rate\s+of bound/);
    expect(lines).toHaveLength(5);
    expect(lines[3]).toMatch(/^round-robin\s+30\.0%/);
    expect(lines[4]).toMatch(/^kvroute\s+89\.1%\s+96\.5%\s+95\.0%\s+341 ms\s+2,850 ms/);
  });
});
