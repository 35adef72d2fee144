import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import {
  ConfigError,
  DEFAULT_ENDPOINT_PICKER_CONFIG,
  STRATEGY_CONFIGS,
  parseEndpointPickerConfig,
} from '../../api/endpoint-picker-config.ts';
import type { PrefixScorer } from '../../indexer/public.ts';
import { SchedulingError } from '../types.ts';
import { planScheduling } from './registry.ts';
import { endpoint, metricValue, profileConfig, request, testScheduler } from './test-helpers.ts';

const header = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const config = (body: string) => parseEndpointPickerConfig(header + body, 'router.yaml');
const issuesOf = (body: string): string[] => {
  try {
    planScheduling(config(body), 'router.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
};
const indexer = (scores: Record<string, number>, totalBlocks: number) => (): PrefixScorer => ({
  score: async () => ({ scores, totalBlocks }),
});

describe('buildScheduler', () => {
  it('builds every benchmark strategy, and each routes a request', async () => {
    const pool = [
      endpoint('10.0.0.1:8000', { metrics: { waitingRequests: 3 } }),
      endpoint('10.0.0.2:8000', { metrics: { waitingRequests: 0 } }),
    ];
    for (const [name, strategy] of Object.entries(STRATEGY_CONFIGS)) {
      const scheduler = testScheduler(strategy, { indexer: indexer({ '10.0.0.1': 2 }, 4) });
      const result = await scheduler.schedule(request({ prompt: 'hello world, a prompt' }), pool);
      expect([name, result.targets.length]).toEqual([name, 1]);
      expect(pool.map((e) => e.endpoint)).toContainEqual(result.targets[0]);
      scheduler.close();
    }
  });

  it("routes with kvroute's default: the warm pod while within the load bound, another past it", async () => {
    const scheduler = testScheduler(DEFAULT_ENDPOINT_PICKER_CONFIG, { indexer: indexer({ '10.0.0.2': 6 }, 8) });
    const pool = (warmWaiting: number) => [
      endpoint('10.0.0.1:8000', { metrics: { waitingRequests: 0 } }),
      endpoint('10.0.0.2:8000', { metrics: { waitingRequests: warmWaiting } }),
    ];
    // Loads 0 and 2: bound max(ceil(1.25 * 3 / 2), 3) = 3 keeps both.
    const result = await scheduler.schedule(request({ prompt: 'hello' }), pool(2));
    expect(result).toMatchObject({
      profile: 'default',
      targets: [{ address: '10.0.0.2:8000' }],
      predictedPrefix: { matchedBlocks: 6, totalBlocks: 8 },
    });
    // prefix 3 * 6/8, no-hit LRU 0.5 (a warm request), queue 0 (the longer queue), KV 1, running requests 1 (none in flight anywhere).
    expect(result.scores['10.0.0.2:8000']).toBeCloseTo(3 * 0.75 + 0.5 + 0 + 1 + 1);
    expect(result.scores['10.0.0.1:8000']).toBeCloseTo(0 + 0.5 + 1 + 1 + 1);
    // Loads 0 and 3: bound max(ceil(1.25 * 4 / 2), 3) = 3, so the warm pod (3 + 1 > 3) is left out.
    const diverted = await scheduler.schedule(request({ prompt: 'hello' }), pool(3));
    expect(diverted).toMatchObject({ targets: [{ address: '10.0.0.1:8000' }], predictedPrefix: { matchedBlocks: 0, totalBlocks: 8 } });
    expect(await metricValue(scheduler.registry, 'kvroute_router_load_bound_diversions_total')).toBe(1);
  });

  it('sends a new prefix to an idle pod rather than to the busy pod holding a preamble every prompt shares, but keeps a long match on its busy pod', async () => {
    // The engines' queues are empty and their caches nearly so (the queue and KV scorers tie), as
    // below saturation; 10.0.0.2 has 2 requests in flight, within the load bound.
    const pool = [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000', { inFlight: 2 }), endpoint('10.0.0.3:8000')];
    // 1 of 27 blocks (the shared preamble): 3 * 1/27 is less than the running-requests scorer's 1.
    const preamble = testScheduler(DEFAULT_ENDPOINT_PICKER_CONFIG, { indexer: indexer({ '10.0.0.2': 1 }, 27) });
    expect((await preamble.schedule(request({ prompt: 'hello' }), pool)).targets[0]!.address).not.toBe('10.0.0.2:8000');
    // 24 of 27 blocks (its own conversation so far): the prefix outweighs the load.
    const long = testScheduler(DEFAULT_ENDPOINT_PICKER_CONFIG, { indexer: indexer({ '10.0.0.2': 24 }, 27) });
    expect((await long.schedule(request({ prompt: 'hello' }), pool)).targets[0]!.address).toBe('10.0.0.2:8000');
    preamble.close();
    long.close();
  });

  it('rotates new prefixes over idle pods, including one that never took a request while the others hold a preamble every prompt shares', async () => {
    // 10.0.0.1 and 10.0.0.2 hold the shared preamble (1 of 27 blocks), 10.0.0.3 nothing: without the
    // no-hit-lru scorer those few blocks broke every tie between the idle pods and 10.0.0.3 never got a request.
    const scheduler = testScheduler(DEFAULT_ENDPOINT_PICKER_CONFIG, { indexer: indexer({ '10.0.0.1': 1, '10.0.0.2': 1 }, 27) });
    const pool = [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];
    const picks: string[] = [];
    for (let i = 0; i < 6; i++) picks.push((await scheduler.schedule(request({ prompt: `new prefix ${i}` }), pool)).targets[0]!.address);
    expect(new Set(picks.slice(0, 3)).size).toBe(3);
    expect(picks.slice(3)).toEqual(picks.slice(0, 3));
    scheduler.close();
  });

  it('counts a request whose prefix only a pod past the load bound holds as a new prefix, and rotates where it spills', async () => {
    // 10.0.0.1 holds 20 of 27 blocks but has 3 in flight (bound max(ceil(1.25 * 4 / 3), 3) = 3: out);
    // 10.0.0.2 holds the shared preamble. Were the removed pod's match counted, the request would be
    // warm and the preamble would send every spill to 10.0.0.2.
    const scheduler = testScheduler(DEFAULT_ENDPOINT_PICKER_CONFIG, { indexer: indexer({ '10.0.0.1': 20, '10.0.0.2': 1 }, 27) });
    const pool = [endpoint('10.0.0.1:8000', { inFlight: 3 }), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];
    const picks: string[] = [];
    for (let i = 0; i < 2; i++) picks.push((await scheduler.schedule(request({ prompt: `spill ${i}` }), pool)).targets[0]!.address);
    expect(picks.sort()).toEqual(['10.0.0.2:8000', '10.0.0.3:8000']);
    scheduler.close();
  });

  it('filters and scores the candidates as PickTime re-reads them once the indexer has answered, and reserves the pick before answering', async () => {
    const scheduler = testScheduler(DEFAULT_ENDPOINT_PICKER_CONFIG, { indexer: indexer({ '10.0.0.1': 8 }, 8) });
    const idle = [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];
    // While the indexer was being asked, three requests were picked for the warm pod: loads 3, 0, 0,
    // bound max(ceil(1.25 * 4 / 3), 3) = 3, so the warm pod (3 + 1 > 3) is out.
    const now = [endpoint('10.0.0.1:8000', { inFlight: 3 }), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];
    const reserved: string[] = [];
    const result = await scheduler.schedule(request({ prompt: 'hello' }), idle, {
      refresh: () => now,
      reserve: (address) => void reserved.push(address),
    });
    expect(result.targets[0]!.address).not.toBe('10.0.0.1:8000');
    expect(result.scores['10.0.0.1:8000']).toBeUndefined();
    expect(reserved).toEqual([result.targets[0]!.address]);
    expect(await metricValue(scheduler.registry, 'kvroute_router_load_bound_diversions_total')).toBe(1);

    const gone = scheduler.schedule(request({ prompt: 'hello' }), idle, { refresh: () => [], reserve: () => reserved.push('never') });
    await expect(gone).rejects.toMatchObject({ status: 503, reason: 'rejected-no-endpoints' });
    expect(reserved).toHaveLength(1);
  });

  it('answers 503 when there is no candidate', async () => {
    const scheduler = testScheduler(STRATEGY_CONFIGS.random);
    await expect(scheduler.schedule(request(), [])).rejects.toEqual(
      new SchedulingError(503, 'rejected-no-endpoints', 'no candidate endpoints for the request'),
    );
  });

  it('returns up to maxNumOfEndpoints targets in order of preference for the gateway to fall back', async () => {
    const scheduler = testScheduler(
      profileConfig([
        { type: 'running-requests-scorer', weight: 1 },
        { type: 'max-score-picker', parameters: { maxNumOfEndpoints: 2 } },
      ]),
    );
    const result = await scheduler.schedule(request(), [
      endpoint('10.0.0.1:8000', { inFlight: 5 }),
      endpoint('10.0.0.2:8000', { inFlight: 0 }),
      endpoint('10.0.0.3:8000', { inFlight: 2 }),
    ]);
    expect(result.targets.map((t) => t.address)).toEqual(['10.0.0.2:8000', '10.0.0.3:8000']);
  });

  it('rebuilds on the same metrics registry (a config reload) and keeps counting there', async () => {
    const registry = new Registry();
    const pool = [endpoint('10.0.0.1:8000', { metrics: null })];
    for (let i = 0; i < 2; i++) {
      const scheduler = testScheduler(profileConfig([{ type: 'queue-scorer', weight: 1 }]), { registry });
      await scheduler.schedule(request(), pool);
      scheduler.close();
    }
    expect(
      await metricValue(registry, 'kvroute_router_scorer_abstentions_total{plugin_type="queue-scorer",plugin_name="queue-scorer"}'),
    ).toBe(2);
  });
});

describe('planScheduling', () => {
  it('rejects an unknown plugin type, listing the supported ones', () => {
    const [issue] = issuesOf(
      'plugins: [{type: queue-scorer}, {type: prefix-scorer}]\nschedulingProfiles: [{name: d, plugins: [{pluginRef: queue-scorer}]}]',
    );
    expect(issue).toMatch(
      /^plugins\[1\]\.type: unknown plugin type "prefix-scorer"; supported types: active-request-scorer, approx-prefix-cache-producer, .*kv-cache-utilization-scorer, .*weighted-random-picker$/,
    );
    for (const type of [
      'load-bound-filter',
      'precise-prefix-cache-scorer',
      'precise-prefix-cache-producer',
      'prefix-cache-scorer',
      'queue-scorer',
      'running-requests-scorer',
      'load-aware-scorer',
      'session-affinity-scorer',
      'lora-affinity-scorer',
      'no-hit-lru-scorer',
      'max-score-picker',
      'random-picker',
      'round-robin-picker',
      'single-profile-handler',
    ]) {
      expect(issue).toContain(type);
    }
  });

  it("checks parameters with each plugin's own schema, naming the field, and reports every problem at once", () => {
    expect(
      issuesOf(`plugins:
- type: queue-scorer
- type: max-score-picker
  parameters: {maxNumOfEndpoints: 0}
- type: load-bound-filter
  parameters: {loadBound: 0.5, kvCacheUsage: 1}
- type: precise-prefix-cache-scorer
  parameters: {timeoutMs: fast}
schedulingProfiles: [{name: d, plugins: [{pluginRef: queue-scorer}]}]`),
    ).toEqual([
      'plugins[1].parameters.maxNumOfEndpoints: expected number >= 1, got 0',
      'plugins[2].parameters.loadBound: expected number >= 1, got 0.5',
      'plugins[2].parameters.kvCacheUsage: unknown field',
      'plugins[3].parameters.timeoutMs: expected number, got "fast"',
    ]);
  });

  it('adds the plugins llm-d adds when missing: the profile handler, a max-score picker, the approximate producer', () => {
    const plan = planScheduling(
      config(
        'plugins: [{type: prefix-cache-scorer}]\nschedulingProfiles: [{name: d, plugins: [{pluginRef: prefix-cache-scorer, weight: 3}]}]',
      ),
    );
    expect(plan.plugins.map((p) => [p.name, p.at])).toEqual([
      ['prefix-cache-scorer', 'plugins[0]'],
      ['approx-prefix-cache-producer', '(added)'],
      ['single-profile-handler', '(added)'],
      ['max-score-picker', '(added)'],
    ]);
    expect(plan.plugins[0]!.producer).toBe('approx-prefix-cache-producer');
    expect(plan.profiles[0]!.picker.name).toBe('max-score-picker');
    expect(plan.profiles[0]!.scorers.map((s) => [s.plugin.name, s.weight])).toEqual([['prefix-cache-scorer', 3]]);
  });

  it('reads the only prefix producer configured when the scorer names none', () => {
    const plan = planScheduling(
      config(
        'plugins: [{type: precise-prefix-cache-producer, name: kv}, {type: prefix-cache-scorer}]\nschedulingProfiles: [{name: d, plugins: [{pluginRef: prefix-cache-scorer}]}]',
      ),
    );
    expect(plan.plugins.find((p) => p.type === 'prefix-cache-scorer')!.producer).toBe('kv');
    expect(plan.plugins.map((p) => p.type)).not.toContain('approx-prefix-cache-producer');
  });

  it('rejects references that cannot work, naming the field', () => {
    expect(
      issuesOf(
        'plugins: [{type: queue-scorer}, {type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: queue-scorer}}]\nschedulingProfiles: [{name: d}]',
      ),
    ).toEqual([
      'plugins[1].parameters.prefixMatchInfoProducerName: "queue-scorer" is a scorer (queue-scorer), not a prefix producer (approx-prefix-cache-producer or precise-prefix-cache-producer)',
    ]);
    expect(
      issuesOf('plugins: [{type: prefix-cache-scorer, parameters: {prefixMatchInfoProducerName: nope}}]\nschedulingProfiles: [{name: d}]'),
    ).toEqual(['plugins[0].parameters.prefixMatchInfoProducerName: no plugin named "nope"']);
    expect(
      issuesOf(
        'plugins: [{type: precise-prefix-cache-producer, name: a}, {type: approx-prefix-cache-producer, name: b}, {type: no-hit-lru-scorer}]\nschedulingProfiles: [{name: d}]',
      ),
    ).toEqual(['plugins[2].parameters.prefixMatchInfoProducerName: several prefix producers are configured (a, b): name the one to read']);
    expect(
      issuesOf(
        'plugins: [{type: approx-prefix-cache-producer}, {type: single-profile-handler}]\nschedulingProfiles: [{name: d, plugins: [{pluginRef: approx-prefix-cache-producer}, {pluginRef: single-profile-handler}]}]',
      ),
    ).toEqual([
      'schedulingProfiles[0].plugins[0].pluginRef: "approx-prefix-cache-producer" is a data producer (approx-prefix-cache-producer), not a filter, scorer or picker; list it under plugins only',
      'schedulingProfiles[0].plugins[1].pluginRef: "single-profile-handler" is a profile handler (single-profile-handler), not a filter, scorer or picker; list it under plugins only',
    ]);
    expect(
      issuesOf(
        'plugins: [{type: random-picker}, {type: max-score-picker}]\nschedulingProfiles: [{name: d, plugins: [{pluginRef: random-picker}, {pluginRef: max-score-picker}]}]',
      ),
    ).toEqual([
      'schedulingProfiles[0].plugins[1].pluginRef: a second picker ("max-score-picker"; the profile already has "random-picker")',
    ]);
    expect(issuesOf('schedulingProfiles: [{name: a}, {name: b}]')).toEqual([
      'schedulingProfiles: single-profile-handler runs exactly one profile, got 2 (a, b)',
    ]);
  });
});
