// The precise prefix match: asks the KV-cache indexer (fed by the engines' KV events) how many of
// the request's blocks each pod holds, and maps its pod ids to endpoints (pod-identity.ts). One call
// per request, under a deadline: on error or timeout the match is `failed`, the prefix scorers
// abstain, the other scorers decide, and the failure is logged (rate-limited) and counted.
// Exports the producer (for prefix-cache-scorer) and llm-d's self-contained precise-prefix-cache-scorer.

import { z } from 'zod';
import { DEFAULT_INDEXER_ADDRESS, INDEXER_TIMEOUT_MS } from '../../../api/endpoint-picker-config.ts';
import type { PrefixScorer, ScoreRequest } from '../../../indexer/public.ts';
import type { InferenceRequest } from '../../types.ts';
import { scoresByEndpoint } from '../pod-identity.ts';
import { definePlugin, type CycleState, type PluginContext, type PrefixMatch, type ScoreVector } from '../types.ts';
import { preparedMatch, prefixScores } from '../scorers/prefix-cache.ts';

const PreciseParameters = z
  .strictObject({
    /** The indexer's gRPC address (host:port); the --indexer flag overrides it. */
    indexerAddress: z.string().min(1).default(DEFAULT_INDEXER_ADDRESS),
    /** How long scheduling waits for the indexer before the prefix scorers abstain. */
    timeoutMs: z.number().gt(0).max(10_000).default(INDEXER_TIMEOUT_MS),
  })
  .prefault({});
type PreciseParameters = z.output<typeof PreciseParameters>;

/** The indexer's score request for an inference request, or undefined when it has no prompt to score. */
export function indexerRequest(request: InferenceRequest): ScoreRequest | undefined {
  const base: ScoreRequest = { model: request.targetModel };
  if (request.loraName) base.loraName = request.loraName;
  if (request.cacheSalt) base.cacheSalt = request.cacheSalt;
  if (request.tokens) return { ...base, tokens: request.tokens };
  if (request.messages) {
    const chat: ScoreRequest = { ...base, messages: request.messages };
    if (request.tools) chat.tools = request.tools;
    if (request.chatTemplateKwargs) chat.chatTemplateKwargs = request.chatTemplateKwargs;
    if (request.addGenerationPrompt !== undefined) chat.addGenerationPrompt = request.addGenerationPrompt;
    return chat;
  }
  if (request.prompt !== undefined) return { ...base, prompt: request.prompt };
  return undefined;
}

class IndexerTimeout extends Error {}

/** Asks the indexer for one cycle's matches. */
class PreciseMatcher {
  readonly #scorer: PrefixScorer;
  readonly #timeoutMs: number;
  readonly #ctx: PluginContext;
  readonly #address: string;

  constructor(params: PreciseParameters, ctx: PluginContext) {
    this.#address = ctx.indexerAddressOverride ?? params.indexerAddress;
    this.#timeoutMs = params.timeoutMs;
    this.#scorer = ctx.indexerFor(this.#address, params.timeoutMs);
    this.#ctx = ctx;
  }

  async match(cycle: CycleState): Promise<PrefixMatch> {
    const request = indexerRequest(cycle.request);
    if (!request) return { kind: 'no-input' };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new IndexerTimeout(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    const call = Promise.resolve().then(() => this.#scorer.score(request));
    // A late failure after the timeout won is expected: keep it from surfacing as unhandled.
    call.catch(() => {});
    try {
      const result = await Promise.race([call, timeout]);
      const matched = scoresByEndpoint(result.scores, cycle.candidates);
      // An indexer that does not report totalBlocks: the longest match stands in for the prompt.
      const totalBlocks = result.totalBlocks ?? Math.max(0, ...matched.values());
      const info = { totalBlocks, matched };
      cycle.precisePrefix = info;
      cycle.prefix = info;
      return { kind: 'matched', info };
    } catch (err) {
      const reason = err instanceof IndexerTimeout ? 'timeout' : 'error';
      this.#ctx.metrics.indexerErrors.inc({ reason });
      this.#ctx.log.limited(`indexer-${reason}`, 'warn', 'indexer score failed: the precise prefix scorer abstains', {
        address: this.#address,
        reason,
        err: err as Error,
      });
      return { kind: 'failed', reason: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}

export const precisePrefixCacheProducer = definePlugin({
  type: 'precise-prefix-cache-producer',
  kind: 'producer',
  produces: 'prefix-match',
  parameters: PreciseParameters,
  create: (name, params, ctx) => {
    const matcher = new PreciseMatcher(params, ctx);
    return {
      kind: 'producer',
      type: 'precise-prefix-cache-producer',
      name,
      produces: 'prefix-match',
      produce: (cycle) => matcher.match(cycle),
    };
  },
});

/** llm-d's precise-prefix-cache-scorer: matched / total blocks per endpoint, from the indexer. */
export const precisePrefixCacheScorer = definePlugin({
  type: 'precise-prefix-cache-scorer',
  kind: 'scorer',
  parameters: PreciseParameters,
  create: (name, params, ctx) => {
    const matcher = new PreciseMatcher(params, ctx);
    return {
      kind: 'scorer',
      type: 'precise-prefix-cache-scorer',
      name,
      prepare: async (cycle) => void cycle.data.set(name, await matcher.match(cycle)),
      score: (cycle, endpoints): ScoreVector | null => prefixScores(preparedMatch(cycle, name), endpoints),
    };
  },
});
