// llm-d's no-hit-lru-scorer: a request whose prefix no endpoint holds (a cold request) would warm
// whichever endpoint takes it, so spread cold requests: the endpoint that took a cold request least
// recently (or never) scores highest. Warm requests get 0.5 everywhere and leave the choice to the
// prefix scorers. Reads the same prefix producer as prefix-cache-scorer.
//
// warmMatchFraction (kvroute's addition; 0, llm-d's rule, by default): a request is warm only when
// some endpoint holds at least this fraction of its blocks. A preamble every prompt shares (a
// platform instruction, the Mooncake conversation trace's first block) is a hit on every warm pod,
// so under llm-d's rule no request after the first is ever cold, and the few shared blocks break the
// ties between idle pods towards the same warm ones: a pod that never took a request never gets one
// (the 150-group shared-prefix run used 3 of 4 pods and evicted what did not fit).

import { z } from 'zod';
import { definePlugin, type PrefixMatch, type ScoreVector } from '../types.ts';
import { prefixConsumerFields, preparedMatch } from './prefix-cache.ts';

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

/**
 * Whether the blocks the endpoints hold make the request warm: one holds a block, and at least
 * `warmMatchFraction` of the request's `totalBlocks`.
 */
export function isWarm(heldBlocks: Iterable<number>, totalBlocks: number, warmMatchFraction: number): boolean {
  let best = 0;
  for (const blocks of heldBlocks) if (blocks > best) best = blocks;
  return best > 0 && best >= warmMatchFraction * totalBlocks;
}

const NoHitLruParameters = z
  .strictObject({
    ...prefixConsumerFields,
    /**
     * A request is warm when some endpoint holds at least this fraction of its blocks (0: any block).
     * An indexer that does not report the prompt's block count makes the longest match stand in for
     * it, and then any block is warm.
     */
    warmMatchFraction: z.number().min(0).max(1).default(0),
  })
  .prefault({});

export const noHitLruScorer = definePlugin({
  type: 'no-hit-lru-scorer',
  kind: 'scorer',
  parameters: NoHitLruParameters,
  producerRef: (params) => params.prefixMatchInfoProducerName,
  create: (name, params, ctx) => {
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
        // Over the endpoints left after the filters: a prefix held only by a pod the load bound removed
        // is a new prefix wherever this request goes.
        const held = endpoints.map((e) => match.info.matched.get(e.endpoint.address) ?? 0);
        const cold = !isWarm(held, match.info.totalBlocks, params.warmMatchFraction);
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
