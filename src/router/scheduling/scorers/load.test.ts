import { describe, expect, it } from '@jest/globals';
import { endpoint, metricValue, profileConfig, request, testScheduler } from '../test-helpers.ts';
import { inverseMinMax, loadAwareScore } from './load.ts';

describe('load scorers', () => {
  it('normalizes queue depth as (max - q) / (max - min), 1 when all are equal, keeping abstentions', () => {
    expect(inverseMinMax([0, 5, 10])).toEqual([1, 0.5, 0]);
    expect(inverseMinMax([3, 3])).toEqual([1, 1]);
    expect(inverseMinMax([4, null, 2])).toEqual([0, null, 1]);
    expect(inverseMinMax([null])).toEqual([null]);
  });

  it('scores load-aware as 0.5 with an empty queue, falling linearly to 0 at the threshold', () => {
    expect(loadAwareScore(0, 128)).toBe(0.5);
    expect(loadAwareScore(64, 128)).toBe(0.25);
    expect(loadAwareScore(128, 128)).toBe(0);
    expect(loadAwareScore(500, 128)).toBe(0);
  });

  const pool = () => [
    endpoint('10.0.0.1:8000', { metrics: { waitingRequests: 8, kvCacheUsage: 0.9 }, inFlight: 1 }),
    endpoint('10.0.0.2:8000', { metrics: { waitingRequests: 0, kvCacheUsage: 0.2 }, inFlight: 6 }),
    endpoint('10.0.0.3:8000', { metrics: null, inFlight: 3 }),
  ];

  it('scores queue depth and KV utilisation from fresh metrics and abstains (counted) for stale ones', async () => {
    const scheduler = testScheduler(
      profileConfig([
        { type: 'queue-scorer', weight: 1 },
        { type: 'kv-cache-utilization-scorer', weight: 1 },
      ]),
    );
    const result = await scheduler.schedule(request(), pool());
    expect(result.scores['10.0.0.1:8000']).toBeCloseTo(0 + 0.1);
    expect(result.scores['10.0.0.2:8000']).toBeCloseTo(1 + 0.8);
    expect(result.scores['10.0.0.3:8000']).toBe(0);
    expect(result.targets[0]!.address).toBe('10.0.0.2:8000');
    expect(
      await metricValue(
        scheduler.registry,
        'kvroute_router_scorer_abstentions_total{plugin_type="queue-scorer",plugin_name="queue-scorer"}',
      ),
    ).toBe(1);
    expect(
      await metricValue(
        scheduler.registry,
        'kvroute_router_scorer_abstentions_total{plugin_type="kv-cache-utilization-scorer",plugin_name="kv-cache-utilization-scorer"}',
      ),
    ).toBe(1);
  });

  it("scores running requests from the router's in-flight counts, even without metrics", async () => {
    for (const type of ['running-requests-scorer', 'active-request-scorer']) {
      const scheduler = testScheduler(profileConfig([{ type, weight: 1 }]));
      const result = await scheduler.schedule(request(), pool());
      expect(result.scores).toEqual({ '10.0.0.1:8000': 1, '10.0.0.2:8000': 0, '10.0.0.3:8000': 0.6 });
    }
  });

  it('applies the load-aware threshold parameter', async () => {
    const scheduler = testScheduler(profileConfig([{ type: 'load-aware-scorer', parameters: { threshold: 16 }, weight: 2 }]));
    const result = await scheduler.schedule(request(), pool());
    expect(result.scores).toEqual({ '10.0.0.1:8000': 0.5, '10.0.0.2:8000': 1, '10.0.0.3:8000': 0 });
  });
});
