import { describe, expect, it } from '@jest/globals';
import { buildReport, summarizeStrategy, type PodCounterDelta, type RequestRecord } from './summarize.ts';
import { RoutingReportContractSchema } from './schema.ts';

function record(over: Partial<RequestRecord>): RequestRecord {
  return {
    pod: 'a',
    promptTokens: 100,
    cachedTokens: 0,
    ttftMs: 10,
    outputTokens: 10,
    startMs: 0,
    endMs: 100,
    oracleHitTokens: 0,
    bestResidentTokens: 0,
    ...over,
  };
}

// Four requests over pods a and b (c idle), one failure. By hand:
const records: RequestRecord[] = [
  record({ pod: 'a', cachedTokens: 0, ttftMs: 100, oracleHitTokens: 0, bestResidentTokens: 0, startMs: 0, endMs: 300 }),
  record({ pod: 'a', cachedTokens: 80, ttftMs: 20, oracleHitTokens: 96, bestResidentTokens: 96, startMs: 50, endMs: 400 }),
  record({ pod: 'b', cachedTokens: 48, ttftMs: 30, oracleHitTokens: 96, bestResidentTokens: 64, startMs: 100, endMs: 500 }),
  record({ pod: 'b', cachedTokens: 0, ttftMs: 200, oracleHitTokens: 96, bestResidentTokens: 80, startMs: 150, endMs: 1000 }),
  record({ pod: 'a', error: 'HTTP 503', ttftMs: 0, startMs: 200, endMs: 210 }),
];
const counters: Record<string, PodCounterDelta> = {
  a: { prefixCacheHits: 80, prefixCacheQueries: 200 },
  b: { prefixCacheHits: 48, prefixCacheQueries: 200 },
  c: { prefixCacheHits: 0, prefixCacheQueries: 0 },
};

describe('summarizeStrategy', () => {
  const s = summarizeStrategy('kvroute', records, counters, { oracleTokenHitRate: 0.72, timeScale: 2 });

  it('takes the token hit rate from the pods counters and the rest from the successful requests', () => {
    expect(s.tokenHitRate).toBeCloseTo(128 / 400, 12);
    expect(s.ratioToBound).toBeCloseTo(128 / 400 / 0.72, 12);
    expect(s.requestHitRate).toBe(0.5);
    expect(s.usageTokenHitRate).toBeCloseTo(128 / 400, 12);
    expect(s).toMatchObject({ requests: 5, errors: 1, coldRequests: 2, warmRequests: 2 });
  });

  it('reports TTFT percentiles in simulated time, split into cold and warm', () => {
    // Wall TTFTs 20, 30, 100, 200 ms at time scale 2: 40, 60, 200, 400 ms.
    expect(s).toMatchObject({
      ttftP50Ms: 60,
      ttftP90Ms: 400,
      ttftColdP50Ms: 200,
      ttftColdP90Ms: 400,
      ttftWarmP50Ms: 40,
      ttftWarmP90Ms: 60,
    });
  });

  it('measures throughput over the whole run', () => {
    // 40 output tokens over 0..1000 wall ms = 2,000 simulated ms.
    expect(s.durationS).toBe(2);
    expect(s.throughputTokPerS).toBe(20);
    expect(s.requestsPerS).toBe(2.5);
  });

  it('gives every pod a traffic share, idle ones included, failed requests counted where they went', () => {
    expect(s.podShare).toEqual({ a: 0.6, b: 0.4, c: 0 });
    expect(s.maxPodShare).toBe(0.6);
  });

  it('splits the bound into routing and eviction loss from the funnel', () => {
    // Bound 288 of 400 prompt tokens; hits 0 + 80 + 48 + 0 = 128; routing (96-80) + (64-48) + 80 = 112;
    // eviction 0 + 0 + (96-64) + (96-80) = 48. 128 + 112 + 48 = 288.
    expect(s.funnelHit).toBeCloseTo(128 / 400, 12);
    expect(s.routingLoss).toBeCloseTo(112 / 400, 12);
    expect(s.evictionLoss).toBeCloseTo(48 / 400, 12);
    expect(s.beyondBound).toBe(0);
  });

  it('treats a record as cold by its own flag when the harness sets one', () => {
    const flagged = summarizeStrategy('x', [record({ cachedTokens: 16, cold: true }), record({ cachedTokens: 0, cold: false })], counters);
    expect(flagged).toMatchObject({ coldRequests: 1, warmRequests: 1, ratioToBound: null });
  });

  it('refuses runs it cannot summarize, saying why', () => {
    expect(() => summarizeStrategy('x', [record({ error: 'boom' })], counters)).toThrow(
      'strategy x: no successful requests to summarize (1 failed)',
    );
    expect(() => summarizeStrategy('x', records, { a: { prefixCacheHits: 0, prefixCacheQueries: 0 } })).toThrow('no prefix-cache queries');
    expect(() => summarizeStrategy('x', records, { a: { prefixCacheHits: 5, prefixCacheQueries: 4 } })).toThrow(
      'pod a: expected 0 <= prefix-cache hits <= queries, got 5 / 4',
    );
  });
});

describe('buildReport', () => {
  it('produces JSON that matches the issue 8 contract', () => {
    const strategies = [
      summarizeStrategy('round-robin', records, counters, { oracleTokenHitRate: 0.72 }),
      summarizeStrategy('kvroute', records, counters, { oracleTokenHitRate: 0.72 }),
    ];
    const report = buildReport({ pods: 3, workload: 'shared-prefix(...)', requests: 5, oracleTokenHitRate: 0.72, strategies });
    const json = JSON.parse(JSON.stringify(report));
    const contract = RoutingReportContractSchema.parse(json);
    expect(Object.keys(contract).slice(0, 5)).toEqual(['pods', 'requests', 'workload', 'oracleTokenHitRate', 'strategies']);
    expect(contract.strategies.map((s) => s.name)).toEqual(['round-robin', 'kvroute']);
    for (const key of [
      'name',
      'tokenHitRate',
      'requestHitRate',
      'ttftP50Ms',
      'ttftP90Ms',
      'throughputTokPerS',
      'podShare',
      'maxPodShare',
      'evictionLoss',
      'routingLoss',
    ]) {
      expect(json.strategies[1]).toHaveProperty(key);
    }
    expect(json.strategies[1].podShare).toEqual({ a: 0.6, b: 0.4, c: 0 });
  });

  it('rejects a report with an impossible number, naming the field', () => {
    const strategy = summarizeStrategy('kvroute', records, counters);
    expect(() => buildReport({ pods: 3, workload: 'w', requests: 5, oracleTokenHitRate: 1.5, strategies: [strategy] })).toThrow(
      'oracleTokenHitRate',
    );
    expect(() =>
      buildReport({ pods: 3, workload: 'w', requests: 5, oracleTokenHitRate: 0.5, strategies: [{ ...strategy, maxPodShare: -1 }] }),
    ).toThrow('strategies.0.maxPodShare');
    expect(() => buildReport({ pods: 3, workload: 'w', requests: 5, oracleTokenHitRate: 0.5, strategies: [] })).toThrow('strategies');
  });
});
