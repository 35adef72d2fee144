// Pickers: the last step of a profile, choosing endpoints from the weighted totals. Each returns up to
// maxNumOfEndpoints endpoints in order of preference (the gateway falls back along the list).
// Randomness comes from the scheduler's random source, so tests replay exactly.

import { z } from 'zod';
import type { EndpointState } from '../../types.ts';
import { definePlugin, type ScoredEndpoint } from '../types.ts';

const PickerParameters = z.strictObject({ maxNumOfEndpoints: z.int().min(1).default(1) }).prefault({});

/** Fisher-Yates over a copy. */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

/** The top `n` by score, ties in random order (shuffle, then a stable sort, as llm-d does). */
export function pickMaxScore(scored: readonly ScoredEndpoint[], n: number, random: () => number): EndpointState[] {
  return shuffled(scored, random)
    .sort((a, b) => b.score - a.score)
    .slice(0, n)
    .map((s) => s.state);
}

/** `n` distinct endpoints drawn with probability proportional to score; uniform among zero scores. */
export function pickWeightedRandom(scored: readonly ScoredEndpoint[], n: number, random: () => number): EndpointState[] {
  const pool = scored.map((s) => ({ state: s.state, weight: Number.isFinite(s.score) && s.score > 0 ? s.score : 0 }));
  const out: EndpointState[] = [];
  while (out.length < n && pool.length > 0) {
    const total = pool.reduce((sum, p) => sum + p.weight, 0);
    let at: number;
    if (total > 0) {
      let r = random() * total;
      at = pool.findIndex((p) => (r -= p.weight) < 0);
      // Rounding can leave r at exactly 0 past the end: take the last endpoint with weight.
      if (at < 0) at = pool.findLastIndex((p) => p.weight > 0);
    } else {
      at = Math.floor(random() * pool.length);
    }
    out.push(pool[at]!.state);
    pool.splice(at, 1);
  }
  return out;
}

export const maxScorePicker = definePlugin({
  type: 'max-score-picker',
  kind: 'picker',
  parameters: PickerParameters,
  create: (name, params, ctx) => ({
    kind: 'picker',
    type: 'max-score-picker',
    name,
    pick: (_cycle, scored) => pickMaxScore(scored, params.maxNumOfEndpoints, ctx.random),
  }),
});

export const weightedRandomPicker = definePlugin({
  type: 'weighted-random-picker',
  kind: 'picker',
  parameters: PickerParameters,
  create: (name, params, ctx) => ({
    kind: 'picker',
    type: 'weighted-random-picker',
    name,
    pick: (_cycle, scored) => pickWeightedRandom(scored, params.maxNumOfEndpoints, ctx.random),
  }),
});

export const randomPicker = definePlugin({
  type: 'random-picker',
  kind: 'picker',
  parameters: PickerParameters,
  create: (name, params, ctx) => ({
    kind: 'picker',
    type: 'random-picker',
    name,
    pick: (_cycle, scored) =>
      shuffled(scored, ctx.random)
        .slice(0, params.maxNumOfEndpoints)
        .map((s) => s.state),
  }),
});

/** Cycles over the candidates sorted by address, ignoring scores: each pick starts one further along. */
export const roundRobinPicker = definePlugin({
  type: 'round-robin-picker',
  kind: 'picker',
  parameters: PickerParameters,
  create: (name, params) => {
    let next = 0;
    return {
      kind: 'picker',
      type: 'round-robin-picker',
      name,
      pick: (_cycle, scored) => {
        const sorted = scored
          .map((s) => s.state)
          .sort((a, b) => (a.endpoint.address < b.endpoint.address ? -1 : a.endpoint.address > b.endpoint.address ? 1 : 0));
        const start = next % sorted.length;
        next = start + 1;
        const n = Math.min(params.maxNumOfEndpoints, sorted.length);
        return Array.from({ length: n }, (_, i) => sorted[(start + i) % sorted.length]!);
      },
    };
  },
});
