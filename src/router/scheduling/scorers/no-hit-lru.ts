// llm-d's no-hit-lru-scorer: a request whose prefix no endpoint holds (a cold request) would warm
// whichever endpoint takes it, so spread cold requests: the endpoint that took a cold request least
// recently (or never) scores highest. Warm requests get 0.5 everywhere and leave the choice to the
// prefix scorers. Reads the same prefix producer as prefix-cache-scorer.

import { definePlugin, type PrefixMatch, type ScoreVector } from '../types.ts';
import { PrefixConsumerParameters, preparedMatch } from './prefix-cache.ts';

/** Addresses remembered at most; the oldest are forgotten first (gone endpoints age out). */
const MAX_REMEMBERED = 4096;

/**
 * Scores by least-recent cold use: never used 1, then from the oldest use (1) down to the most
 * recent (0), evenly spaced among the endpoints given.
 */
export function lruScores(addresses: readonly string[], lastColdUse: ReadonlyMap<string, number>): number[] {
  const order = addresses.map((address, i) => ({ i, used: lastColdUse.get(address) ?? -1 })).sort((a, b) => a.used - b.used);
  const scores = new Array<number>(addresses.length).fill(1);
  const n = order.length;
  order.forEach((o, rank) => {
    scores[o.i] = o.used < 0 || n === 1 ? 1 : 1 - rank / (n - 1);
  });
  return scores;
}

export const noHitLruScorer = definePlugin({
  type: 'no-hit-lru-scorer',
  kind: 'scorer',
  parameters: PrefixConsumerParameters,
  producerRef: (params) => params.prefixMatchInfoProducerName,
  create: (name, _params, ctx) => {
    const producer = ctx.producer!;
    /** address -> sequence number of the last cold request it took (Map order: oldest first). */
    const lastColdUse = new Map<string, number>();
    let sequence = 0;
    const coldKey = `${name}:cold`;
    return {
      kind: 'scorer',
      type: 'no-hit-lru-scorer',
      name,
      prepare: async (cycle) => void cycle.data.set(name, await cycle.produce<PrefixMatch>(producer)),
      score: (cycle, endpoints): ScoreVector | null => {
        const match = preparedMatch(cycle, name);
        if (match.kind === 'failed') return endpoints.map(() => null);
        if (match.kind === 'no-input') return null;
        const cold = ![...match.info.matched.values()].some((blocks) => blocks > 0);
        cycle.data.set(coldKey, cold);
        if (!cold) return endpoints.map(() => 0.5);
        return lruScores(
          endpoints.map((e) => e.endpoint.address),
          lastColdUse,
        );
      },
      postPick: (cycle, outcome) => {
        const first = outcome.targets[0];
        if (!first || cycle.data.get(coldKey) !== true) return;
        const address = first.endpoint.address;
        lastColdUse.delete(address);
        lastColdUse.set(address, sequence++);
        if (lastColdUse.size > MAX_REMEMBERED) lastColdUse.delete(lastColdUse.keys().next().value!);
      },
    };
  },
});
