// The indexer's tokenizers: one per served model, loaded at start from configured sources. Model
// "*" is the fallback for models without their own entry. TokenizerSet runs in the calling thread;
// TokenizerPool (pool.ts) runs TokenizerSets in worker threads behind the same Tokenization interface.

import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../common/log.ts';
import { silentLogger } from '../../common/log.ts';
import type { ChatMessage } from '../types.ts';
import type { ChatRenderOptions } from './chat-template.ts';
import { loadModelTokenizer, type ModelTokenizer } from './model-tokenizer.ts';
import { parseTokenizerSource } from './source.ts';

export interface TokenizerSetOptions {
  /** Model name (or "*") -> source spec (see parseTokenizerSource). */
  sources: Record<string, string>;
  cacheMaxBytes?: number;
  harmonyStartDate?: string;
  registry?: Registry;
  log?: Logger;
}

/** Exactly one of prompt or messages. */
export interface TokenizeInput {
  prompt?: string;
  messages?: ChatMessage[];
  chat?: ChatRenderOptions;
}

export interface CacheLookups {
  hits: number;
  misses: number;
  hitTokens: number;
  missTokens: number;
}

export interface TokenizeOutput {
  /** The configured model key that served the request ("*" for the fallback). */
  tokenizerModel: string;
  tokens: number[];
  /** The chat-template output, for messages. */
  rendered?: string;
  lookups: CacheLookups;
  seconds: number;
}

/** What the service needs: tokenize a request for a model, wherever the tokenizer runs. */
export interface Tokenization {
  readonly models: string[];
  load(): Promise<void>;
  tokenize(model: string, input: TokenizeInput): Promise<TokenizeOutput>;
  close(): Promise<void>;
}

export class UnknownModelError extends Error {}

/** The tokenization metrics, registered once per registry and fed by either implementation. */
export class TokenizeMetrics {
  readonly #lookups: Counter<'model' | 'result'>;
  readonly #tokens: Counter<'model' | 'result'>;
  readonly #duration: Histogram<'model' | 'input'>;

  constructor(registry?: Registry) {
    const registers = registry ? [registry] : [];
    this.#lookups = new Counter({
      name: 'kvroute_tokenizer_cache_lookups_total',
      help: 'Text pieces looked up in the tokenization cache, by result (hit or miss).',
      labelNames: ['model', 'result'],
      registers,
    });
    this.#tokens = new Counter({
      name: 'kvroute_tokenizer_cache_tokens_total',
      help: 'Token ids produced, by whether they came from the tokenization cache (hit) or the tokenizer (miss).',
      labelNames: ['model', 'result'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'kvroute_tokenize_duration_seconds',
      help: 'Time to tokenize one request where the tokenizer runs, by input kind (prompt or messages).',
      labelNames: ['model', 'input'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
  }

  record(out: TokenizeOutput, input: 'prompt' | 'messages'): void {
    const model = out.tokenizerModel;
    this.#lookups.inc({ model, result: 'hit' }, out.lookups.hits);
    this.#lookups.inc({ model, result: 'miss' }, out.lookups.misses);
    this.#tokens.inc({ model, result: 'hit' }, out.lookups.hitTokens);
    this.#tokens.inc({ model, result: 'miss' }, out.lookups.missTokens);
    this.#duration.observe({ model, input }, out.seconds);
  }
}

export function unknownModelMessage(model: string, known: string[]): string {
  return `no tokenizer for model "${model}"${known.length ? ` (configured: ${known.join(', ')})` : ' (none configured: use --tokenizer MODEL=SOURCE)'}`;
}

export class TokenizerSet implements Tokenization {
  readonly #options: TokenizerSetOptions;
  readonly #tokenizers = new Map<string, ModelTokenizer>();
  readonly #metrics: TokenizeMetrics | null;
  /** Lookups of the call in progress (tokenization is synchronous, so one at a time). */
  #current: CacheLookups = { hits: 0, misses: 0, hitTokens: 0, missTokens: 0 };

  constructor(options: TokenizerSetOptions) {
    this.#options = options;
    this.#metrics = options.registry ? new TokenizeMetrics(options.registry) : null;
  }

  /** Loads every configured tokenizer; fails naming the model whose source is bad. */
  async load(): Promise<void> {
    const log = this.#options.log ?? silentLogger;
    for (const [model, spec] of Object.entries(this.#options.sources)) {
      const started = performance.now();
      let tokenizer: ModelTokenizer;
      try {
        tokenizer = await loadModelTokenizer(model, parseTokenizerSource(spec), {
          maxBytes: this.#options.cacheMaxBytes,
          harmonyStartDate: this.#options.harmonyStartDate,
          onLookup: (hit, tokens) => {
            if (hit) {
              this.#current.hits++;
              this.#current.hitTokens += tokens;
            } else {
              this.#current.misses++;
              this.#current.missTokens += tokens;
            }
          },
        });
      } catch (err) {
        throw new Error(`tokenizers.${model}: ${(err as Error).message}`);
      }
      this.#tokenizers.set(model, tokenizer);
      log.info('tokenizer loaded', { model, source: tokenizer.source, chatFormat: tokenizer.chatFormat, ms: Math.round(performance.now() - started) });
    }
  }

  get models(): string[] {
    return [...this.#tokenizers.keys()];
  }

  get(model: string): ModelTokenizer {
    const tokenizer = this.#tokenizers.get(model) ?? this.#tokenizers.get('*');
    if (!tokenizer) throw new UnknownModelError(unknownModelMessage(model, this.models));
    return tokenizer;
  }

  /** Tokenizes in the calling thread. Throws UnknownModelError or TokenizeInputError for client mistakes. */
  tokenizeNow(model: string, input: TokenizeInput): TokenizeOutput {
    const tokenizer = this.get(model);
    const started = performance.now();
    this.#current = { hits: 0, misses: 0, hitTokens: 0, missTokens: 0 };
    let tokens: number[];
    let rendered: string | undefined;
    if (input.messages) {
      ({ rendered, tokens } = tokenizer.renderAndTokenizeChat(input.messages, input.chat));
    } else {
      tokens = tokenizer.tokenizePrompt(input.prompt ?? '');
    }
    const out: TokenizeOutput = { tokenizerModel: tokenizer.model, tokens, lookups: this.#current, seconds: (performance.now() - started) / 1000 };
    if (rendered !== undefined) out.rendered = rendered;
    this.#metrics?.record(out, input.messages ? 'messages' : 'prompt');
    return out;
  }

  async tokenize(model: string, input: TokenizeInput): Promise<TokenizeOutput> {
    return this.tokenizeNow(model, input);
  }

  async close(): Promise<void> {}
}
