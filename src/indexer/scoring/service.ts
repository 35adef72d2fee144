// The indexer's request logic, free of transport: turns a score request (tokens, prompt or chat
// messages) into token ids with the model's tokenizer and scores them against the block index, on the
// pods serving the request's model only. A call that was cancelled or whose deadline passed is shed
// (neither tokenized nor scored) and counted. It is the in-process PrefixScorer; the HTTP and gRPC
// servers are thin adapters around it.

import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../common/log.ts';
import { TokenizeInputError } from '../../tokenize/model-tokenizer.ts';
import {
  TokenizeShedError,
  UnknownModelError,
  shedError,
  shedReason,
  type ShedReason,
  type TokenizeCall,
  type TokenizeOutput,
  type Tokenization,
} from '../../tokenize/tokenizers.ts';
import { RequestError, parseScoreBody, scoreBodyOf, type ParsedScoreRequest } from './request.ts';
import type { PrefixScorer, ScoreRequest, ScoreResult } from '../types.ts';

/** What scoring needs from the block index (BlockIndex implements it). */
export interface ScoringIndex {
  /** Tokens per block: a request's full blocks are what its scores can reach. */
  readonly blockSize: number;
  /** `model` given: only sources publishing under that model (or under none) are scored. */
  scoreTokens(
    tokens: number[],
    options: { model?: string; loraName?: string; cacheSalt?: string; pods?: string[] },
  ): Record<string, number>;
}

/** Models whose missing tokenizer was reported; bounded, since any client can name any model. */
const MAX_WARNED_MODELS = 1024;

export interface Tokenized {
  model: string;
  input: 'tokens' | 'prompt' | 'messages';
  tokens: number[];
  /** The chat-template output, for messages. */
  rendered?: string;
}

export interface IndexerServiceOptions {
  index: ScoringIndex;
  tokenizers: Tokenization;
  log: Logger;
  /**
   * LoRA adapter names the pool serves (config `loras`). A request naming one as its model is scored
   * as that adapter (lora_name = model) on sources of any model, since the adapter's base is not known.
   */
  loraAdapters?: Iterable<string>;
  /** Where kvroute_indexer_score_shed_total is registered; not counted without one. */
  registry?: Registry;
  /** Epoch milliseconds, the clock call deadlines are read against. */
  now?: () => number;
}

/** What a caller of one score allows: see TokenizeCall. A shed call rejects with TokenizeShedError. */
export type ScoreCall = TokenizeCall;

export class IndexerService implements PrefixScorer {
  readonly #index: ScoringIndex;
  readonly #tokenizers: Tokenization;
  readonly #log: Logger;
  readonly #loraAdapters: ReadonlySet<string>;
  readonly #warnedFallback = new Set<string>();
  readonly #shed: Counter<'reason'> | null;
  readonly #now: () => number;

  constructor(options: IndexerServiceOptions) {
    this.#index = options.index;
    this.#tokenizers = options.tokenizers;
    this.#log = options.log;
    this.#loraAdapters = new Set(options.loraAdapters ?? []);
    this.#now = options.now ?? Date.now;
    this.#shed = options.registry
      ? new Counter({
          name: 'kvroute_indexer_score_shed_total',
          help: 'Score calls dropped without an answer: cancelled by the caller, past their deadline, or refused because the tokenizer queue could not finish them in time (overloaded).',
          labelNames: ['reason'],
          registers: [options.registry],
        })
      : null;
    for (const reason of ['cancelled', 'deadline', 'overloaded'] satisfies ShedReason[]) this.#shed?.inc({ reason }, 0);
  }

  /**
   * Token ids of a parsed request exactly as vLLM would see them. Rejects with RequestError for a client
   * mistake (unknown model, messages for a model without a chat template, a template that rejects them).
   */
  async tokenize(request: ParsedScoreRequest, call?: ScoreCall): Promise<Tokenized> {
    if (request.tokens) return { model: request.model, input: 'tokens', tokens: request.tokens };
    try {
      if (request.messages) {
        const chat = { addGenerationPrompt: request.addGenerationPrompt, templateKwargs: request.chatTemplateKwargs, tools: request.tools };
        const out = await this.#tokenizers.tokenize(request.model, { messages: request.messages, chat }, call);
        this.#noteFallback(request.model, out);
        return { model: request.model, input: 'messages', tokens: out.tokens, rendered: out.rendered };
      }
      const out = await this.#tokenizers.tokenize(request.model, { prompt: request.prompt ?? '' }, call);
      this.#noteFallback(request.model, out);
      return { model: request.model, input: 'prompt', tokens: out.tokens };
    } catch (err) {
      if (err instanceof UnknownModelError) throw new RequestError(`model: ${err.message}`);
      if (err instanceof TokenizeInputError) throw new RequestError(`messages: ${err.message}`);
      throw err;
    }
  }

  /** A model served without a tokenizer of its own is worth one warning: its scores rest on a guess. */
  #noteFallback(model: string, out: TokenizeOutput): void {
    if (!out.fallback || this.#warnedFallback.has(model)) return;
    if (this.#warnedFallback.size < MAX_WARNED_MODELS) this.#warnedFallback.add(model);
    const { source, reason, family } = out.fallback;
    this.#log.limited(
      `tokenizer-fallback:${model}`,
      'warn',
      'no tokenizer configured for model: using a fallback (set --tokenizer MODEL=SOURCE to choose)',
      { model, source, reason, ...(family ? { family } : {}) },
    );
  }

  /**
   * Scores a parsed request on the pods of its model; pods that match nothing are left out. A call
   * cancelled or past its deadline before tokenizing or before scoring, or refused by a full tokenizer
   * queue, rejects with TokenizeShedError and is counted by reason.
   */
  async scoreParsed(request: ParsedScoreRequest, call?: ScoreCall): Promise<ScoreResult> {
    try {
      this.#checkCall(call, 'tokenization');
      const { tokens } = await this.tokenize(request, call);
      this.#checkCall(call, 'scoring');
      return this.#scoreTokens(request, tokens);
    } catch (err) {
      if (err instanceof TokenizeShedError) this.#shed?.inc({ reason: err.reason });
      throw err;
    }
  }

  #checkCall(call: ScoreCall | undefined, work: string): void {
    const shed = shedReason(call, this.#now());
    if (shed) throw shedError(shed, work);
  }

  #scoreTokens(request: ParsedScoreRequest, tokens: number[]): ScoreResult {
    const { cacheSalt, pods } = request;
    // vLLM's events name the adapter (lora_name) and the topic the base model, which config does not know.
    const adapter = this.#loraAdapters.has(request.model);
    const loraName = request.loraName ?? (adapter ? request.model : undefined);
    const model = adapter ? undefined : request.model;
    const raw = this.#index.scoreTokens(tokens, { model, loraName, cacheSalt, pods });
    const scores: Record<string, number> = {};
    for (const [pod, score] of Object.entries(raw)) if (score > 0) scores[pod] = score;
    // The denominator a caller needs to turn matched blocks into a fraction of the prompt.
    const totalBlocks = Math.floor(tokens.length / this.#index.blockSize);
    this.#log.debug('scored', { model: request.model, tokens: tokens.length, totalBlocks, pods: Object.keys(scores).length });
    return { scores, totalBlocks };
  }

  /** The PrefixScorer the router uses in-process: the same parsing as HTTP and gRPC. */
  async score(request: ScoreRequest): Promise<ScoreResult> {
    return this.scoreParsed(parseScoreBody(scoreBodyOf(request)));
  }
}
