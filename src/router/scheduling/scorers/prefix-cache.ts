// llm-d's prefix-cache-scorer: the fraction of the request's blocks each endpoint holds, read from a
// prefix producer (approximate by default, or the indexer's precise match when
// prefixMatchInfoProducerName names a precise-prefix-cache-producer).

import { z } from 'zod';
import type { EndpointState } from '../../types.ts';
import { definePlugin, type CycleState, type PrefixMatch, type ScoreVector } from '../types.ts';

/** matched / total per endpoint; all abstain when the match failed; null when there was nothing to match. */
export function prefixScores(match: PrefixMatch, endpoints: readonly EndpointState[]): ScoreVector | null {
  if (match.kind === 'no-input') return null;
  if (match.kind === 'failed') return endpoints.map(() => null);
  const { totalBlocks, matched } = match.info;
  return endpoints.map((e) => (totalBlocks > 0 ? Math.min(1, (matched.get(e.endpoint.address) ?? 0) / totalBlocks) : 0));
}

/**
 * The match a plugin's prepare step stored in cycle.data under `key`; one that never arrived (its
 * prepare failed) counts as failed, so the scorer abstains.
 */
export function preparedMatch(cycle: CycleState, key: string): PrefixMatch {
  return (cycle.data.get(key) as PrefixMatch | undefined) ?? { kind: 'failed', reason: 'the prefix match was not prepared' };
}

/** The parameter every consumer of a prefix producer takes. */
export const prefixConsumerFields = {
  /** The producer whose matches this plugin reads; default: the only prefix producer configured, else the approximate one. */
  prefixMatchInfoProducerName: z.string().min(1).optional(),
};

const PrefixConsumerParameters = z.strictObject(prefixConsumerFields).prefault({});

export const prefixCacheScorer = definePlugin({
  type: 'prefix-cache-scorer',
  kind: 'scorer',
  parameters: PrefixConsumerParameters,
  producerRef: (params) => params.prefixMatchInfoProducerName,
  create: (name, _params, ctx) => {
    const producer = ctx.producer!;
    return {
      kind: 'scorer',
      type: 'prefix-cache-scorer',
      name,
      prepare: async (cycle) => void cycle.data.set(name, await cycle.produce<PrefixMatch>(producer)),
      score: (cycle, endpoints) => prefixScores(preparedMatch(cycle, name), endpoints),
    };
  },
});
