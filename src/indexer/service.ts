// The indexer's request logic, free of transport: turns a score request (tokens, prompt or chat
// messages) into token ids with the model's tokenizer and scores them against the block index. It is
// the in-process PrefixScorer; the HTTP and gRPC servers are thin adapters around it.

import type { Logger } from '../common/log.ts';
import { TokenizeInputError } from './tokenize/model-tokenizer.ts';
import { UnknownModelError, type Tokenization } from './tokenize/tokenizers.ts';
import { RequestError, parseScoreBody, scoreBodyOf, type ParsedScoreRequest } from './service-request.ts';
import type { PrefixScorer, ScoreRequest, ScoreResult } from './types.ts';

/** What scoring needs from the block index (BlockIndex implements it). */
export interface ScoringIndex {
  scoreTokens(tokens: number[], options: { loraName?: string; cacheSalt?: string; pods?: string[] }): Record<string, number>;
}

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
}

export class IndexerService implements PrefixScorer {
  readonly #index: ScoringIndex;
  readonly #tokenizers: Tokenization;
  readonly #log: Logger;

  constructor(options: IndexerServiceOptions) {
    this.#index = options.index;
    this.#tokenizers = options.tokenizers;
    this.#log = options.log;
  }

  /**
   * Token ids of a parsed request exactly as vLLM would see them. Rejects with RequestError for a client
   * mistake (unknown model, messages for a model without a chat template, a template that rejects them).
   */
  async tokenize(request: ParsedScoreRequest): Promise<Tokenized> {
    if (request.tokens) return { model: request.model, input: 'tokens', tokens: request.tokens };
    try {
      if (request.messages) {
        const chat = { addGenerationPrompt: request.addGenerationPrompt, templateKwargs: request.chatTemplateKwargs };
        const out = await this.#tokenizers.tokenize(request.model, { messages: request.messages, chat });
        return { model: request.model, input: 'messages', tokens: out.tokens, rendered: out.rendered };
      }
      const out = await this.#tokenizers.tokenize(request.model, { prompt: request.prompt ?? '' });
      return { model: request.model, input: 'prompt', tokens: out.tokens };
    } catch (err) {
      if (err instanceof UnknownModelError) throw new RequestError(`model: ${err.message}`);
      if (err instanceof TokenizeInputError) throw new RequestError(`messages: ${err.message}`);
      throw err;
    }
  }

  /** Scores a parsed request; pods that match nothing are left out. */
  async scoreParsed(request: ParsedScoreRequest): Promise<ScoreResult> {
    const { tokens } = await this.tokenize(request);
    const { loraName, cacheSalt, pods } = request;
    const raw = this.#index.scoreTokens(tokens, { loraName, cacheSalt, pods });
    const scores: Record<string, number> = {};
    for (const [pod, score] of Object.entries(raw)) if (score > 0) scores[pod] = score;
    this.#log.debug('scored', { model: request.model, tokens: tokens.length, pods: Object.keys(scores).length });
    return { scores };
  }

  /** The PrefixScorer the router uses in-process: the same parsing as HTTP and gRPC. */
  async score(request: ScoreRequest): Promise<ScoreResult> {
    return this.scoreParsed(parseScoreBody(scoreBodyOf(request)));
  }
}
