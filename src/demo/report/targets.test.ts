import { describe, expect, it } from '@jest/globals';
import type { RoutingReport, StrategyResult } from './schema.ts';
import { checkTargets, targetsTable } from './targets.ts';

function strategy(name: string, over: Partial<StrategyResult>): StrategyResult {
  return {
    name,
    tokenHitRate: 0.5,
    requestHitRate: 0.5,
    ttftP50Ms: 1000,
    ttftP90Ms: 2000,
    throughputTokPerS: 10,
    podShare: { a: 0.25, b: 0.25, c: 0.25, d: 0.25 },
    maxPodShare: 0.25,
    evictionLoss: 0,
    routingLoss: 0,
    ratioToBound: null,
    requests: 10,
    errors: 0,
    coldRequests: 5,
    warmRequests: 5,
    ttftColdP50Ms: null,
    ttftColdP90Ms: null,
    ttftWarmP50Ms: null,
    ttftWarmP90Ms: null,
    usageTokenHitRate: 0.5,
    funnelHit: 0.5,
    beyondBound: 0,
    requestsPerS: 1,
    durationS: 10,
    ...over,
  };
}

const report = (strategies: StrategyResult[]): RoutingReport => ({
  pods: 4,
  requests: 10,
  workload: 'w',
  oracleTokenHitRate: 0.92,
  strategies,
});

describe('checkTargets', () => {
  it('checks the demo targets: hit rate, share of the bound, TTFT against round-robin, fair share, the hot spot', () => {
    const checks = checkTargets(
      report([
        strategy('round-robin', { ttftP50Ms: 1400 }),
        strategy('precise-prefix', { maxPodShare: 0.9 }),
        strategy('kvroute', { tokenHitRate: 0.89, ttftP50Ms: 350, maxPodShare: 0.3 }),
      ]),
      'shared-prefix',
    );
    expect(checks.map((c) => [c.target, c.met])).toEqual([
      ['kvroute token hit rate >= 87.4%', true],
      ['kvroute >= 95% of the bound', true],
      ['kvroute TTFT p50 >= 3x better than round-robin', true],
      ['kvroute: no pod above twice its fair share (50.0%)', true],
      ['precise-prefix shows the hot spot the load bound avoids', true],
    ]);
    expect(checks[2]!.actual).toBe('4x (1,400 -> 350 ms)');
  });

  it('reports a missed target as not met', () => {
    const checks = checkTargets(
      report([strategy('round-robin', { ttftP50Ms: 600 }), strategy('kvroute', { tokenHitRate: 0.8, ttftP50Ms: 350, maxPodShare: 0.6 })]),
      'shared-prefix',
    );
    expect(checks.filter((c) => !c.met).map((c) => c.target)).toEqual([
      'kvroute token hit rate >= 87.4%',
      'kvroute >= 95% of the bound',
      'kvroute TTFT p50 >= 3x better than round-robin',
      'kvroute: no pod above twice its fair share (50.0%)',
    ]);
    expect(targetsTable(checks)).toContain('NO');
  });

  it('checks the trace targets against round-robin, and nothing without kvroute', () => {
    const checks = checkTargets(
      report([strategy('round-robin', { tokenHitRate: 0.1 }), strategy('kvroute', { tokenHitRate: 0.3, maxPodShare: 0.26 })]),
      'trace',
    );
    expect(checks.map((c) => [c.target, c.met])).toEqual([
      ['kvroute >= 90% of the bound', false],
      ['kvroute token hit rate >= 2x round-robin', true],
      ['kvroute: no pod above twice its fair share (50.0%)', true],
    ]);
    expect(checkTargets(report([strategy('round-robin', {})]), 'trace')).toEqual([]);
  });
});
