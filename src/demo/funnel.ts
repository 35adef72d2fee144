// Where the bound's tokens went, request by request: of the prompt tokens one unlimited cache would
// have hit, how many the chosen pod did hit, how many some other pod held (lost to routing), and how
// many no pod held any more (lost to eviction). The three always sum to the bound's tokens.

import { maxCacheableTokens } from './oracle.ts';

export interface FunnelObservation {
  promptTokens: number;
  /** Prompt tokens computed anywhere before (the oracle's hit for this request). */
  oracleHitTokens: number;
  /** The most prompt tokens any pod held when the request was sent (the indexer's best score x block size). */
  bestResidentTokens: number;
  /** Prompt tokens the chosen pod served from its cache (usage.prompt_tokens_details.cached_tokens). */
  chosenCachedTokens: number;
}

export interface FunnelEntry extends FunnelObservation {
  /** The chosen pod's hit, up to the bound. */
  hitTokens: number;
  /** Held by some pod beyond what the chosen pod hit. */
  routingLossTokens: number;
  /** Computed before but held by no pod. */
  evictionLossTokens: number;
  /**
   * Hits beyond the bound: the bound replays requests in send order, but concurrent requests can
   * finish out of order, so a pod may already hold blocks of a request sent after this one.
   */
  beyondBoundTokens: number;
}

function count(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name}: expected a non-negative integer token count, got ${value}`);
  return value;
}

/**
 * Splits one request's bound into hit + routing loss + eviction loss. The chosen pod is one of the
 * pods, so the best resident overlap is at least what it hit (an indexer a few events behind can
 * report less); both are clamped to the bound so the split is exact.
 */
export function funnelEntry(observation: FunnelObservation): FunnelEntry {
  count('promptTokens', observation.promptTokens);
  const oracle = count('oracleHitTokens', observation.oracleHitTokens);
  const chosen = count('chosenCachedTokens', observation.chosenCachedTokens);
  const best = count('bestResidentTokens', observation.bestResidentTokens);
  const hit = Math.min(chosen, oracle);
  const resident = Math.min(Math.max(best, chosen), oracle);
  return {
    ...observation,
    hitTokens: hit,
    routingLossTokens: resident - hit,
    evictionLossTokens: oracle - resident,
    beyondBoundTokens: chosen - hit,
  };
}

export interface FunnelTotals {
  requests: number;
  promptTokens: number;
  oracleHitTokens: number;
  hitTokens: number;
  routingLossTokens: number;
  evictionLossTokens: number;
  beyondBoundTokens: number;
  /** The token counts above as fractions of promptTokens; oracle = hit + routingLoss + evictionLoss. */
  oracle: number;
  hit: number;
  routingLoss: number;
  evictionLoss: number;
}

export function summarizeFunnel(observations: Iterable<FunnelObservation>): FunnelTotals {
  const t = {
    requests: 0,
    promptTokens: 0,
    oracleHitTokens: 0,
    hitTokens: 0,
    routingLossTokens: 0,
    evictionLossTokens: 0,
    beyondBoundTokens: 0,
  };
  for (const observation of observations) {
    const e = funnelEntry(observation);
    t.requests++;
    t.promptTokens += e.promptTokens;
    t.oracleHitTokens += e.oracleHitTokens;
    t.hitTokens += e.hitTokens;
    t.routingLossTokens += e.routingLossTokens;
    t.evictionLossTokens += e.evictionLossTokens;
    t.beyondBoundTokens += e.beyondBoundTokens;
  }
  const frac = (n: number): number => (t.promptTokens === 0 ? 0 : n / t.promptTokens);
  return {
    ...t,
    oracle: frac(t.oracleHitTokens),
    hit: frac(t.hitTokens),
    routingLoss: frac(t.routingLossTokens),
    evictionLoss: frac(t.evictionLossTokens),
  };
}

/**
 * The best resident overlap from the indexer's per-pod scores (matched blocks from block 0, GPU
 * tier weight 1), in tokens, capped at what a hit can cover for this prompt.
 */
export function bestResidentTokens(scores: Record<string, number>, blockSize: number, promptTokens: number): number {
  let best = 0;
  for (const [pod, blocks] of Object.entries(scores)) {
    if (!Number.isFinite(blocks) || blocks < 0) throw new Error(`scores.${pod}: expected a non-negative block count, got ${blocks}`);
    best = Math.max(best, Math.floor(blocks));
  }
  return Math.min(best * blockSize, maxCacheableTokens(promptTokens, blockSize));
}
