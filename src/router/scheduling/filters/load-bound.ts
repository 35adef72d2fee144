// kvroute's load bound: keep an endpoint only while its load is within a bound of the pool's, so a
// hot prefix stays on its warm pod until that pod is loaded past the bound, then spills to a second
// pod (which warms). The reference llm-d deployment sent 99.92% of traffic to one warm pod without it.
//
// The rule is consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, 2018): with n
// candidates, loads load_i and bound c >= 1, an endpoint may take the request iff
//   load_i + 1 <= max(ceil(c * (sum(load) + 1) / n), minBound)
// so no endpoint ends above c times the average, or above minBound requests. load_i is
// EndpointState.load: the other routers' requests from the last scrape plus this router's own, live.
// minBound (default 3) is the load below which a pod is never overloaded. At low load the bare rule
// is all noise: with c = 1.25 and three idle pods a pod with load 1 is already out
// (ceil(1.25 * 2 / 3) = 1), and a scrape rendered just after one of our requests reached the engine
// still counts it for up to one interval after it finished. An engine batches: a third request on a
// warm pod shares its steps, while moving it costs a whole cold prefill elsewhere. With a floor of 2,
// the demo's 3 clients on 4 pods lost 2-5% of the bound's tokens to such moves (whenever two other
// requests happened to be on a group's pod); with 3, none. Spreading new prefixes is the
// running-requests scorer's job in the default profile, not this floor's. 1 turns the floor off.
// The director hands the scheduler loads read in the same tick as the pick, and the pick is counted
// in flight before anything else runs, so a burst of simultaneous requests is bounded too.
// Endpoints whose KV cache is fuller than kvCacheUsageThreshold are dropped too (fresh metrics only).
// The filter never empties the set: if nothing is within the bound, the least loaded stay.
//
// kvroute_router_load_bound_diversions_total counts requests where the endpoint with the longest
// prefix match (over all candidates, from whichever prefix plugin ran) was removed by this filter.

import { z } from 'zod';
import type { EndpointState } from '../../types.ts';
import { definePlugin, type CycleState } from '../types.ts';

export interface LoadBoundOptions {
  /** c in the bounded-loads rule, >= 1 (1: perfectly even; larger: more affinity). */
  loadBound: number;
  /** The bound never falls below this many requests (an endpoint with fewer is always within it); 1: no floor. */
  minBound: number;
  /** Drop endpoints whose KV cache usage (0..1) is above this, when their metrics are fresh. */
  kvCacheUsageThreshold: number;
}

/** The endpoints within the bound (in input order); never empty for a non-empty input. */
export function withinLoadBound(endpoints: readonly EndpointState[], options: LoadBoundOptions): EndpointState[] {
  const n = endpoints.length;
  if (n === 0) return [];
  const loads = endpoints.map((e) => e.load);
  const sum = loads.reduce((a, b) => a + b, 0);
  // The epsilon keeps float noise (1.1 * 10 = 11.000000000000002) from raising the bound by one.
  const bound = Math.max(Math.ceil((options.loadBound * (sum + 1)) / n - 1e-9), options.minBound);
  const kept = endpoints.filter((e, i) => loads[i]! + 1 <= bound && !(e.metrics && e.metrics.kvCacheUsage > options.kvCacheUsageThreshold));
  if (kept.length > 0) return kept;
  const least = Math.min(...loads);
  return endpoints.filter((_, i) => loads[i] === least);
}

/** The addresses holding the longest prefix match among all candidates (empty when nothing matched). */
function bestPrefixEndpoints(cycle: CycleState): string[] {
  const matched = cycle.prefix?.matched;
  if (!matched) return [];
  let best = 0;
  let holders: string[] = [];
  for (const [address, blocks] of matched) {
    if (blocks > best) {
      best = blocks;
      holders = [address];
    } else if (blocks === best && blocks > 0) {
      holders.push(address);
    }
  }
  return holders;
}

export const loadBoundFilter = definePlugin({
  type: 'load-bound-filter',
  kind: 'filter',
  parameters: z
    .strictObject({
      loadBound: z.number().min(1).default(1.25),
      // Why 3: see the top of this file.
      minBound: z.int().min(1).default(3),
      kvCacheUsageThreshold: z.number().min(0).max(1).default(0.95),
    })
    .prefault({}),
  create: (name, params, ctx) => ({
    kind: 'filter',
    type: 'load-bound-filter',
    name,
    filter: (cycle, endpoints) => {
      const kept = withinLoadBound(endpoints, params);
      if (kept.length < endpoints.length) {
        const keptSet = new Set(kept);
        cycle.data.set(name, new Set(endpoints.filter((e) => !keptSet.has(e)).map((e) => e.endpoint.address)));
      }
      return kept;
    },
    postPick: (cycle) => {
      const removed = cycle.data.get(name) as Set<string> | undefined;
      if (!removed) return;
      const best = bestPrefixEndpoints(cycle);
      if (best.length > 0 && best.every((address) => removed.has(address))) ctx.metrics.loadBoundDiversions.inc();
    },
  }),
});
