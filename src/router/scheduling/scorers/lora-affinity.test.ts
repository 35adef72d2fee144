import { describe, expect, it } from '@jest/globals';
import { endpoint, metricValue, metrics, profileConfig, request, testScheduler } from '../test-helpers.ts';
import { loraAffinityScore } from './lora-affinity.ts';

describe('lora-affinity-scorer', () => {
  it('scores running 1, room to load 0.8, queued 0.6, at capacity 0', () => {
    expect(loraAffinityScore(metrics({ runningLoras: ['a'], maxLoras: 1 }), 'a')).toBe(1);
    expect(loraAffinityScore(metrics({ runningLoras: ['b'], maxLoras: 2 }), 'a')).toBe(0.8);
    expect(loraAffinityScore(metrics({ runningLoras: ['b'], waitingLoras: ['a'], maxLoras: 2 }), 'a')).toBe(0.6);
    expect(loraAffinityScore(metrics({ runningLoras: ['b', 'c'], maxLoras: 2 }), 'a')).toBe(0);
  });

  it('does not apply to requests without an adapter, and abstains for endpoints without metrics', async () => {
    const scheduler = testScheduler(profileConfig([{ type: 'lora-affinity-scorer', weight: 1 }]));
    const pool = [
      endpoint('10.0.0.1:8000', { metrics: { runningLoras: ['sql'], maxLoras: 1 } }),
      endpoint('10.0.0.2:8000', { metrics: null }),
    ];
    expect((await scheduler.schedule(request(), pool)).scores).toEqual({ '10.0.0.1:8000': 0, '10.0.0.2:8000': 0 });
    const abstentions = 'kvroute_router_scorer_abstentions_total{plugin_type="lora-affinity-scorer",plugin_name="lora-affinity-scorer"}';
    expect(await metricValue(scheduler.registry, abstentions)).toBe(0);
    const result = await scheduler.schedule(request({ targetModel: 'sql', loraName: 'sql' }), pool);
    expect(result.scores).toEqual({ '10.0.0.1:8000': 1, '10.0.0.2:8000': 0 });
    expect(result.targets[0]!.address).toBe('10.0.0.1:8000');
    expect(await metricValue(scheduler.registry, abstentions)).toBe(1);
  });
});
