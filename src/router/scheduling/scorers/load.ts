// Load scorers over the endpoints' scraped vLLM metrics and the router's own in-flight counts:
// queue depth, KV-cache utilisation, running requests and llm-d's load-aware curve. Metric-based
// scorers abstain for an endpoint whose metrics are stale (null); in-flight counts are always fresh
// (scorers run in the tick of the pick, on the candidates re-read then). The queue scorer keeps
// GIE's meaning (the engine's waiting queue) and the running-requests scorer llm-d's (this router's
// own requests); EndpointState.load, which mixes both, is the load bound's.

import { z } from 'zod';
import type { EndpointState } from '../../types.ts';
import { definePlugin, type ScoreVector } from '../types.ts';

const NO_PARAMETERS = z.strictObject({});

/**
 * (max - x) / (max - min) over the values present: the least loaded scores 1, the most 0, all equal
 * 1. null values (abstentions) stay null.
 */
export function inverseMinMax(values: ReadonlyArray<number | null>): Array<number | null> {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v === null) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = max - min;
  return values.map((v) => (v === null ? null : range > 0 ? (max - v) / range : 1));
}

/** GIE/llm-d queue-scorer: fewer waiting requests than the other candidates scores higher. */
export const queueScorer = definePlugin({
  type: 'queue-scorer',
  kind: 'scorer',
  parameters: NO_PARAMETERS,
  create: (name) => ({
    kind: 'scorer',
    type: 'queue-scorer',
    name,
    score: (_cycle, endpoints): ScoreVector => inverseMinMax(endpoints.map((e) => (e.metrics ? e.metrics.waitingRequests : null))),
  }),
});

/** GIE/llm-d kv-cache-utilization-scorer: 1 - vllm:kv_cache_usage_perc. */
export const kvCacheUtilizationScorer = definePlugin({
  type: 'kv-cache-utilization-scorer',
  kind: 'scorer',
  parameters: NO_PARAMETERS,
  create: (name) => ({
    kind: 'scorer',
    type: 'kv-cache-utilization-scorer',
    name,
    score: (_cycle, endpoints): ScoreVector => endpoints.map((e) => (e.metrics ? 1 - e.metrics.kvCacheUsage : null)),
  }),
});

const inFlightScore = (_cycle: unknown, endpoints: readonly EndpointState[]): ScoreVector =>
  inverseMinMax(endpoints.map((e) => e.inFlight));

/**
 * Requests this router has sent to each endpoint and not seen finish, normalized like the queue
 * scorer. Fresher than any scrape, so it sees a burst the metrics have not caught up with yet.
 */
export const runningRequestsScorer = definePlugin({
  type: 'running-requests-scorer',
  kind: 'scorer',
  parameters: NO_PARAMETERS,
  create: (name) => ({ kind: 'scorer', type: 'running-requests-scorer', name, score: inFlightScore }),
});

/** llm-d's name for the in-flight scorer. */
export const activeRequestScorer = definePlugin({
  type: 'active-request-scorer',
  kind: 'scorer',
  parameters: NO_PARAMETERS,
  create: (name) => ({ kind: 'scorer', type: 'active-request-scorer', name, score: inFlightScore }),
});

/** llm-d's load-aware-scorer: 0.5 with an empty queue, falling linearly to 0 at `threshold` waiting requests. */
export function loadAwareScore(waiting: number, threshold: number): number {
  if (waiting <= 0) return 0.5;
  return 0.5 * (1 - Math.min(waiting, threshold) / threshold);
}

export const loadAwareScorer = definePlugin({
  type: 'load-aware-scorer',
  kind: 'scorer',
  parameters: z.strictObject({ threshold: z.int().min(1).default(128) }).prefault({}),
  create: (name, params) => ({
    kind: 'scorer',
    type: 'load-aware-scorer',
    name,
    score: (_cycle, endpoints): ScoreVector =>
      endpoints.map((e) => (e.metrics ? loadAwareScore(e.metrics.waitingRequests, params.threshold) : null)),
  }),
});
