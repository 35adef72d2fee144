// Runs one scheduling profile for one request, in two steps. prepareProfile: every plugin's waiting
// work (indexer lookups, prefix producers) over all candidates, concurrently; none of it depends on
// load. runProfile, synchronous: filters in order (a soft filter that would remove every endpoint is
// skipped and counted), then every scorer, total = sum of weight * clamp(score, 0, 1), then the
// picker, over the candidates as they are at that moment. A scorer that abstains for an endpoint
// (stale metrics, indexer down) adds 0 for it and is counted; one that throws counts as abstaining
// for all.

import type { Logger } from '../../common/log.ts';
import { SchedulingError, type EndpointState } from '../types.ts';
import type { SchedulerMetrics } from './metrics.ts';
import { pickMaxScore } from './pickers/pickers.ts';
import type { CycleState, Filter, Picker, Plugin, ScoredEndpoint, Scorer, ScoreVector } from './types.ts';

export interface RunnableProfile {
  name: string;
  filters: readonly Filter[];
  scorers: ReadonlyArray<{ scorer: Scorer; weight: number }>;
  picker: Picker;
}

export interface ProfileRun {
  /** Endpoints in order of preference (at least one). */
  targets: EndpointState[];
  /** Weighted total per endpoint that passed the filters. */
  scores: Record<string, number>;
}

export interface RunnerContext {
  metrics: SchedulerMetrics;
  log: Logger;
  random: () => number;
}

/** Milliseconds each plugin spent in its prepare step, added to its latency when it runs. */
export type PreparedTimes = ReadonlyMap<Plugin, number>;

/** Records a plugin's latency (plus `extraMs` spent preparing) in kvroute_router_plugin_duration_seconds. */
export function observePlugin(ctx: RunnerContext, plugin: Plugin, startedMs: number, extraMs = 0): void {
  ctx.metrics.pluginDuration.observe(
    { plugin_type: plugin.type, plugin_name: plugin.name },
    (performance.now() - startedMs + extraMs) / 1000,
  );
}

function profilePlugins(profile: RunnableProfile): Plugin[] {
  const active = profile.scorers.filter((s) => s.weight > 0).map((s) => s.scorer);
  return [...new Set<Plugin>([...profile.filters, ...active, profile.picker])];
}

/**
 * Runs the prepare step of every plugin in the profile, concurrently, over all candidates. A prepare
 * that throws is logged and counted; its plugin then finds nothing prepared and abstains.
 */
export async function prepareProfile(profile: RunnableProfile, cycle: CycleState, ctx: RunnerContext): Promise<PreparedTimes> {
  const times = new Map<Plugin, number>();
  const preparing = profilePlugins(profile).flatMap((plugin) => {
    const prepare = plugin.prepare?.bind(plugin);
    if (!prepare) return [];
    const started = performance.now();
    return [
      Promise.resolve()
        .then(() => prepare(cycle))
        .catch((err: unknown) => {
          ctx.metrics.pluginErrors.inc({ plugin_type: plugin.type, plugin_name: plugin.name });
          ctx.log.limited(`prepare-error:${plugin.name}`, 'error', 'plugin prepare failed: it abstains', {
            plugin: plugin.name,
            type: plugin.type,
            err: err as Error,
          });
        })
        .finally(() => times.set(plugin, performance.now() - started)),
    ];
  });
  await Promise.all(preparing);
  return times;
}

function clamp01(x: number): number {
  return x > 0 ? (x < 1 ? x : 1) : 0;
}

function runScorer(
  ctx: RunnerContext,
  cycle: CycleState,
  scorer: Scorer,
  endpoints: readonly EndpointState[],
  preparedMs: number,
): ScoreVector | null {
  const started = performance.now();
  try {
    return scorer.score(cycle, endpoints);
  } catch (err) {
    ctx.metrics.pluginErrors.inc({ plugin_type: scorer.type, plugin_name: scorer.name });
    ctx.log.limited(`scorer-error:${scorer.name}`, 'error', 'scorer failed: it abstains for every endpoint', {
      plugin: scorer.name,
      type: scorer.type,
      err: err as Error,
    });
    return endpoints.map(() => null);
  } finally {
    observePlugin(ctx, scorer, started, preparedMs);
  }
}

/**
 * Filters, scores and picks over `candidates`, the endpoints as they are now (their load read in this
 * tick). Synchronous on purpose: nothing else runs between reading load and picking, so the caller
 * can count the pick in flight before the next request is scheduled.
 */
export function runProfile(
  profile: RunnableProfile,
  cycle: CycleState,
  candidates: readonly EndpointState[],
  ctx: RunnerContext,
  prepared: PreparedTimes = new Map(),
): ProfileRun {
  let endpoints: readonly EndpointState[] = candidates;
  for (const filter of profile.filters) {
    const started = performance.now();
    let kept: EndpointState[];
    try {
      kept = filter.filter(cycle, endpoints);
    } catch (err) {
      ctx.metrics.pluginErrors.inc({ plugin_type: filter.type, plugin_name: filter.name });
      ctx.log.limited(`filter-error:${filter.name}`, 'error', 'filter failed: skipped', {
        plugin: filter.name,
        type: filter.type,
        err: err as Error,
      });
      continue;
    } finally {
      observePlugin(ctx, filter, started, prepared.get(filter));
    }
    if (kept.length > 0) {
      endpoints = kept;
      continue;
    }
    if (filter.hard)
      throw new SchedulingError(429, 'rejected-filtered', `filter "${filter.name}" (${filter.type}) left no endpoint for the request`);
    ctx.metrics.filterSkipped.inc({ plugin_type: filter.type, plugin_name: filter.name });
    ctx.log.limited(`filter-skipped:${filter.name}`, 'debug', 'filter would remove every endpoint: skipped', {
      plugin: filter.name,
      candidates: endpoints.length,
    });
  }

  const totals = new Float64Array(endpoints.length);
  const active = profile.scorers.filter((s) => s.weight > 0);
  const vectors = active.map(({ scorer }) => runScorer(ctx, cycle, scorer, endpoints, prepared.get(scorer) ?? 0));
  active.forEach(({ scorer, weight }, s) => {
    const vector = vectors[s];
    if (vector === null || vector === undefined) return;
    let abstained = 0;
    for (let i = 0; i < endpoints.length; i++) {
      const score = vector[i];
      if (score === null || score === undefined) abstained++;
      else if (!Number.isNaN(score)) totals[i]! += weight * clamp01(score);
    }
    if (abstained > 0) {
      ctx.metrics.abstentions.inc({ plugin_type: scorer.type, plugin_name: scorer.name }, abstained);
      ctx.log.limited(`abstained:${scorer.name}`, 'debug', 'scorer abstained', {
        plugin: scorer.name,
        endpoints: abstained,
        of: endpoints.length,
      });
    }
  });

  const scored: ScoredEndpoint[] = endpoints.map((state, i) => ({ state, score: totals[i]! }));
  const scores: Record<string, number> = {};
  for (const s of scored) scores[s.state.endpoint.address] = s.score;

  const started = performance.now();
  let targets: EndpointState[];
  try {
    targets = profile.picker.pick(cycle, scored);
  } catch (err) {
    ctx.metrics.pluginErrors.inc({ plugin_type: profile.picker.type, plugin_name: profile.picker.name });
    ctx.log.limited(`picker-error:${profile.picker.name}`, 'error', 'picker failed: taking the highest score', {
      plugin: profile.picker.name,
      err: err as Error,
    });
    targets = [];
  } finally {
    observePlugin(ctx, profile.picker, started, prepared.get(profile.picker));
  }
  if (targets.length === 0) targets = pickMaxScore(scored, 1, ctx.random);
  return { targets, scores };
}
