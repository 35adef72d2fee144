import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { createLogger, silentLogger } from '../../common/log.ts';
import { mulberry32 } from '../../common/random.ts';
import { SchedulingError, type EndpointState } from '../types.ts';
import { schedulerMetrics } from './metrics.ts';
import { pickMaxScore } from './pickers/pickers.ts';
import { prepareProfile, runProfile, type RunnableProfile, type RunnerContext } from './profile.ts';
import { endpoint, metricValue, request } from './test-helpers.ts';
import type { CycleState, Filter, Picker, Scorer } from './types.ts';

function cycleOf(candidates: EndpointState[]): CycleState {
  return {
    request: request(),
    candidates,
    now: 0,
    data: new Map(),
    responseHeaders: {},
    produce: () => Promise.reject(new Error('no producers')),
  };
}

/** Runs the synchronous part of a profile over `candidates`, as the scheduler does at pick time. */
function run(profile: RunnableProfile, candidates: EndpointState[], ctx: RunnerContext) {
  return runProfile(profile, cycleOf(candidates), candidates, ctx);
}

function runner(registry = new Registry(), log = silentLogger): RunnerContext & { registry: Registry } {
  return { metrics: schedulerMetrics(registry), log, random: mulberry32(5), registry };
}

const filter = (name: string, keep: (e: EndpointState) => boolean, hard = false): Filter => ({
  kind: 'filter',
  type: 'test-filter',
  name,
  hard,
  filter: (_c, es) => es.filter(keep),
});
const scorer = (name: string, score: (e: EndpointState, i: number) => number | null): Scorer => ({
  kind: 'scorer',
  type: 'test-scorer',
  name,
  score: (_c, es) => es.map(score),
});
const maxPicker: Picker = {
  kind: 'picker',
  type: 'max-score-picker',
  name: 'max',
  pick: (_c, scored) => pickMaxScore(scored, 1, mulberry32(1)),
};
const pool = () => [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000', { inFlight: 2 }), endpoint('10.0.0.3:8000', { inFlight: 4 })];

describe('runProfile', () => {
  it('runs filters in order, then sums weight * clamp(score, 0, 1) over scorers, then picks', async () => {
    const profile = {
      name: 'p',
      filters: [filter('not-3', (e) => e.endpoint.address !== '10.0.0.3:8000')],
      scorers: [
        { scorer: scorer('a', (_e, i) => [0.5, 2][i]!), weight: 2 },
        { scorer: scorer('b', (_e, i) => [-1, 0.25][i]!), weight: 4 },
      ],
      picker: maxPicker,
    };
    const { targets, scores } = run(profile, pool(), runner());
    expect(scores).toEqual({ '10.0.0.1:8000': 1, '10.0.0.2:8000': 2 + 1 });
    expect(targets.map((t) => t.endpoint.address)).toEqual(['10.0.0.2:8000']);
  });

  it('skips and counts a soft filter that would remove every endpoint; a hard one fails the request', async () => {
    const ctx = runner();
    const none = filter('none', () => false);
    const { scores } = run(
      { name: 'p', filters: [none, filter('idle', (e) => e.inFlight === 0)], scorers: [], picker: maxPicker },
      pool(),
      ctx,
    );
    expect(Object.keys(scores)).toEqual(['10.0.0.1:8000']);
    expect(await metricValue(ctx.registry, 'kvroute_router_filter_skipped_total{plugin_type="test-filter",plugin_name="none"}')).toBe(1);
    const hard = () => run({ name: 'p', filters: [filter('pin', () => false, true)], scorers: [], picker: maxPicker }, pool(), ctx);
    expect(hard).toThrow(SchedulingError);
    expect(hard).toThrow(expect.objectContaining({ status: 429, reason: 'rejected-filtered' }));
  });

  it('counts abstentions per scorer; a scorer that does not apply adds nothing and is not counted', async () => {
    const ctx = runner();
    const stale = scorer('stale', (e) => (e.inFlight === 0 ? null : 1));
    const notApplicable: Scorer = { kind: 'scorer', type: 'test-scorer', name: 'n/a', score: () => null };
    const { scores } = run(
      {
        name: 'p',
        filters: [],
        scorers: [
          { scorer: stale, weight: 1 },
          { scorer: notApplicable, weight: 1 },
        ],
        picker: maxPicker,
      },
      pool(),
      ctx,
    );
    expect(scores).toEqual({ '10.0.0.1:8000': 0, '10.0.0.2:8000': 1, '10.0.0.3:8000': 1 });
    expect(await metricValue(ctx.registry, 'kvroute_router_scorer_abstentions_total{plugin_type="test-scorer",plugin_name="stale"}')).toBe(
      1,
    );
    expect(await metricValue(ctx.registry, 'kvroute_router_scorer_abstentions_total{plugin_type="test-scorer",plugin_name="n/a"}')).toBe(0);
  });

  it('treats a scorer that throws as abstaining everywhere, logs and counts it, and still picks', async () => {
    const lines: string[] = [];
    const ctx = runner(new Registry(), createLogger({ write: (l) => void lines.push(l) }));
    const broken: Scorer = {
      kind: 'scorer',
      type: 'test-scorer',
      name: 'broken',
      score: () => {
        throw new TypeError('bug');
      },
    };
    const { targets, scores } = run(
      {
        name: 'p',
        filters: [],
        scorers: [
          { scorer: broken, weight: 1 },
          { scorer: scorer('ok', (e) => (e.inFlight === 2 ? 1 : 0)), weight: 1 },
        ],
        picker: maxPicker,
      },
      pool(),
      ctx,
    );
    expect(targets[0]!.endpoint.address).toBe('10.0.0.2:8000');
    expect(scores['10.0.0.2:8000']).toBe(1);
    expect(await metricValue(ctx.registry, 'kvroute_router_plugin_errors_total{plugin_type="test-scorer",plugin_name="broken"}')).toBe(1);
    expect(await metricValue(ctx.registry, 'kvroute_router_scorer_abstentions_total{plugin_type="test-scorer",plugin_name="broken"}')).toBe(
      3,
    );
    expect(lines.join('\n')).toContain('scorer failed: it abstains for every endpoint');
  });

  it("runs the plugins' prepare steps concurrently over every candidate, then scores synchronously, and records each plugin's latency once", async () => {
    const ctx = runner();
    let running = 0;
    let peak = 0;
    const slow = (name: string): Scorer => ({
      kind: 'scorer',
      type: 'slow-scorer',
      name,
      prepare: async (cycle) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setImmediate(resolve));
        running--;
        cycle.data.set(name, cycle.candidates.length);
      },
      score: (cycle, es) => es.map(() => (cycle.data.get(name) === 3 ? 1 : 0)),
    });
    const profile = {
      name: 'p',
      filters: [filter('not-3', (e) => e.endpoint.address !== '10.0.0.3:8000')],
      scorers: [
        { scorer: slow('x'), weight: 1 },
        { scorer: slow('y'), weight: 1 },
      ],
      picker: maxPicker,
    };
    const candidates = pool();
    const cycle = cycleOf(candidates);
    const prepared = await prepareProfile(profile, cycle, ctx);
    expect(peak).toBe(2);
    const { scores } = runProfile(profile, cycle, candidates, ctx, prepared);
    expect(scores).toEqual({ '10.0.0.1:8000': 2, '10.0.0.2:8000': 2 });
    expect(await metricValue(ctx.registry, 'kvroute_router_plugin_duration_seconds_count{plugin_type="slow-scorer",plugin_name="x"}')).toBe(
      1,
    );
    expect(
      await metricValue(ctx.registry, 'kvroute_router_plugin_duration_seconds_count{plugin_type="max-score-picker",plugin_name="max"}'),
    ).toBe(1);
  });

  it('counts a prepare step that throws as a plugin error, and the profile still picks', async () => {
    const ctx = runner();
    const broken: Scorer = {
      kind: 'scorer',
      type: 'test-scorer',
      name: 'broken-prepare',
      prepare: () => Promise.reject(new Error('indexer gone')),
      score: (cycle, es) => es.map(() => (cycle.data.has('broken-prepare') ? 1 : null)),
    };
    const profile = { name: 'p', filters: [], scorers: [{ scorer: broken, weight: 1 }], picker: maxPicker };
    const candidates = pool();
    const cycle = cycleOf(candidates);
    await prepareProfile(profile, cycle, ctx);
    const { targets } = runProfile(profile, cycle, candidates, ctx);
    expect(candidates).toContain(targets[0]);
    expect(
      await metricValue(ctx.registry, 'kvroute_router_plugin_errors_total{plugin_type="test-scorer",plugin_name="broken-prepare"}'),
    ).toBe(1);
    expect(
      await metricValue(ctx.registry, 'kvroute_router_scorer_abstentions_total{plugin_type="test-scorer",plugin_name="broken-prepare"}'),
    ).toBe(3);
  });

  it('keeps every total within [0, sum of weights] and always picks a candidate, whatever the scorers say', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.oneof(fc.double({ noNaN: false }), fc.constant(null)), { minLength: 3, maxLength: 3 }), { maxLength: 4 }),
        fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { minLength: 4, maxLength: 4 }),
        async (vectors, weights) => {
          const scorers = vectors.map((v, s) => ({ scorer: scorer(`s${s}`, (_e, i) => v[i]!), weight: weights[s]! }));
          const candidates = pool();
          const { targets, scores } = run({ name: 'p', filters: [], scorers, picker: maxPicker }, candidates, runner());
          const max = scorers.reduce((sum, s) => sum + s.weight, 0);
          for (const total of Object.values(scores)) {
            expect(total).toBeGreaterThanOrEqual(0);
            expect(total).toBeLessThanOrEqual(max + 1e-9);
          }
          expect(candidates).toContain(targets[0]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
