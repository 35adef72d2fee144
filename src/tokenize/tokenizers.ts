// Tokenizers as the indexer, the router and the sim use them: one per served model, loaded at start
// from configured sources. Model "*" is the fallback for models without their own entry; past it, a
// family or default tokenizer (fallback.ts) is loaded on first use. TokenizerSet runs in the calling thread; TokenizerPool
// (pool.ts) runs TokenizerSets in worker threads behind the same Tokenization interface.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { silentLogger, type Logger } from '../common/log.ts';
import type { ChatMessage } from '../common/chat.ts';
import type { ChatRenderOptions } from './chat-template.ts';
import { fallbackTokenizer, type TokenizerFallback } from './fallback.ts';
import { loadModelTokenizer, type ModelTokenizer } from './model-tokenizer.ts';
import { parseTokenizerSource } from './source.ts';

export interface TokenizerSetOptions {
  /** Model name (or "*") -> source spec (see parseTokenizerSource). */
  sources: Record<string, string>;
  /**
   * Source for models with neither an entry nor "*": models of a known family get the family's
   * tokenizer, others this one. Null or "none" (and the default): such models are unknown.
   */
  defaultSource?: string | null;
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
  /** Set when the model had no configured tokenizer and a family or default one served it. */
  fallback?: TokenizerFallback;
}

/** What the caller of one tokenization allows: it is not started once aborted or past its deadline. */
export interface TokenizeCall {
  /** Aborted when the caller no longer wants the result (its RPC was cancelled). */
  signal?: AbortSignal;
  /** Epoch milliseconds (Date.now() clock) after which the result is of no use. */
  deadline?: number;
}

/** What the service needs: tokenize a request for a model, wherever the tokenizer runs. */
export interface Tokenization {
  readonly models: string[];
  load(): Promise<void>;
  /** Rejects with TokenizeShedError, without tokenizing, when `call` is aborted or expired before the work starts. */
  tokenize(model: string, input: TokenizeInput, call?: TokenizeCall): Promise<TokenizeOutput>;
  close(): Promise<void>;
}

export class UnknownModelError extends Error {}

/**
 * Why a tokenization was not done: its caller went away (`cancelled`), its deadline passed before it
 * started (`deadline`), or the work queued ahead of it could not finish within its deadline (`overloaded`).
 */
export type ShedReason = 'cancelled' | 'deadline' | 'overloaded';

export class TokenizeShedError extends Error {
  readonly reason: ShedReason;

  constructor(reason: ShedReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * Whether a call must not be started now, and why; null when it may run. A passed deadline wins over
 * an aborted signal: gRPC servers abort calls when their deadline fires, and the deadline is the cause.
 */
export function shedReason(call: TokenizeCall | undefined, now: number): ShedReason | null {
  if (!call) return null;
  if (call.deadline !== undefined && now >= call.deadline) return 'deadline';
  if (call.signal?.aborted) return 'cancelled';
  return null;
}

/** The error for a call shed for `reason` before `work` (tokenization, scoring) started. */
export function shedError(reason: ShedReason, work = 'tokenization'): TokenizeShedError {
  const why = {
    cancelled: 'the caller cancelled it',
    deadline: 'its deadline passed before it started',
    overloaded: 'the work queued ahead of it cannot finish within its deadline',
  }[reason];
  return new TokenizeShedError(reason, `${work} not started: ${why}`);
}

/** Bytes each model's segment cache holds (as counted against cacheMaxBytes), by configured model key. */
export type CacheBytes = Record<string, number>;

/** The tokenization metrics, registered once per registry and fed by either implementation. */
export class TokenizeMetrics {
  private readonly lookups: Counter<'model' | 'result'>;
  private readonly tokens: Counter<'model' | 'result'>;
  private readonly duration: Histogram<'model' | 'input'>;

  /** `cacheBytes` is read at each scrape: the caches' sizes, wherever the tokenizers run. */
  constructor(registry?: Registry, cacheBytes: () => CacheBytes = () => ({})) {
    const registers = registry ? [registry] : [];
    // Set only when scraped, so the registry is all that holds it.
    new Gauge({
      name: 'kvroute_tokenizer_cache_bytes',
      help:
        'Bytes the tokenization cache holds (2 per UTF-16 unit of text, 4 per id), by model, summed over tokenizer ' +
        'workers; each worker holds at most tokenization.cacheMaxBytes per model.',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const [model, bytes] of Object.entries(cacheBytes())) this.set({ model }, bytes);
      },
    });
    this.lookups = new Counter({
      name: 'kvroute_tokenizer_cache_lookups_total',
      help: 'Text pieces looked up in the tokenization cache, by result (hit or miss).',
      labelNames: ['model', 'result'],
      registers,
    });
    this.tokens = new Counter({
      name: 'kvroute_tokenizer_cache_tokens_total',
      help: 'Token ids produced, by whether they came from the tokenization cache (hit) or the tokenizer (miss).',
      labelNames: ['model', 'result'],
      registers,
    });
    this.duration = new Histogram({
      name: 'kvroute_tokenize_duration_seconds',
      help: 'Time to tokenize one request where the tokenizer runs, by input kind (prompt or messages).',
      labelNames: ['model', 'input'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
  }

  record(out: TokenizeOutput, input: 'prompt' | 'messages'): void {
    const model = out.tokenizerModel;
    this.lookups.inc({ model, result: 'hit' }, out.lookups.hits);
    this.lookups.inc({ model, result: 'miss' }, out.lookups.misses);
    this.tokens.inc({ model, result: 'hit' }, out.lookups.hitTokens);
    this.tokens.inc({ model, result: 'miss' }, out.lookups.missTokens);
    this.duration.observe({ model, input }, out.seconds);
  }
}

function unknownModelMessage(model: string, known: string[]): string {
  return `no tokenizer for model "${model}"${known.length ? ` (configured: ${known.join(', ')})` : ' (none configured: use --tokenizer MODEL=SOURCE)'}`;
}

export class TokenizerSet implements Tokenization {
  private readonly options: TokenizerSetOptions;
  private readonly tokenizers = new Map<string, ModelTokenizer>();
  /** Fallback tokenizers by source spec, loaded on first use; shared by every model they serve. */
  private readonly fallbacks = new Map<string, Promise<ModelTokenizer>>();
  private readonly loadedFallbacks = new Map<string, ModelTokenizer>();
  private readonly metrics: TokenizeMetrics | null;
  /** Lookups of the call in progress (tokenization is synchronous, so one at a time). */
  private current: CacheLookups = { hits: 0, misses: 0, hitTokens: 0, missTokens: 0 };

  constructor(options: TokenizerSetOptions) {
    this.options = options;
    this.metrics = options.registry ? new TokenizeMetrics(options.registry, () => this.cacheBytes()) : null;
  }

  /** Bytes each loaded tokenizer's segment cache holds, by the model key metrics label it with. */
  cacheBytes(): CacheBytes {
    const bytes: CacheBytes = {};
    for (const t of [...this.tokenizers.values(), ...this.loadedFallbacks.values()]) bytes[t.model] = t.cachedBytes;
    return bytes;
  }

  /** Loads every configured tokenizer; fails naming the model whose source is bad. */
  async load(): Promise<void> {
    const defaultSource = this.options.defaultSource;
    if (fallbackTokenizer('', defaultSource)) {
      // Checked now, loaded on first use: a bad spec fails the start, not the first request.
      try {
        parseTokenizerSource(defaultSource!);
      } catch (err) {
        throw new Error(`defaultTokenizer: ${(err as Error).message}`);
      }
    }
    for (const [model, spec] of Object.entries(this.options.sources)) {
      let tokenizer: ModelTokenizer;
      try {
        tokenizer = await this.loadOne(model, spec);
      } catch (err) {
        throw new Error(`tokenizers.${model}: ${(err as Error).message}`);
      }
      this.tokenizers.set(model, tokenizer);
    }
  }

  private async loadOne(model: string, spec: string): Promise<ModelTokenizer> {
    const started = performance.now();
    const tokenizer = await loadModelTokenizer(model, parseTokenizerSource(spec), {
      maxBytes: this.options.cacheMaxBytes,
      harmonyStartDate: this.options.harmonyStartDate,
      onLookup: (hit, tokens) => {
        if (hit) {
          this.current.hits++;
          this.current.hitTokens += tokens;
        } else {
          this.current.misses++;
          this.current.missTokens += tokens;
        }
      },
    });
    (this.options.log ?? silentLogger).info('tokenizer loaded', {
      model,
      source: tokenizer.source,
      chatFormat: tokenizer.chatFormat,
      preTokenCache: tokenizer.preTokenCache,
      ms: Math.round(performance.now() - started),
    });
    return tokenizer;
  }

  /** A fallback tokenizer, named by its source spec (which the metrics label it with), loaded once. */
  private fallbackTokenizer(spec: string): Promise<ModelTokenizer> {
    let loading = this.fallbacks.get(spec);
    if (!loading) {
      loading = this.loadOne(spec, spec).then((t) => {
        this.loadedFallbacks.set(spec, t);
        return t;
      });
      // A failed load is retried by the next request rather than cached as failed forever.
      loading.catch(() => this.fallbacks.delete(spec));
      this.fallbacks.set(spec, loading);
    }
    return loading;
  }

  get models(): string[] {
    return [...this.tokenizers.keys()];
  }

  /** The configured tokenizer of a model (its own or "*"), or a fallback already loaded. */
  get(model: string): ModelTokenizer {
    const tokenizer = this.tokenizers.get(model) ?? this.tokenizers.get('*');
    if (tokenizer) return tokenizer;
    const fallback = fallbackTokenizer(model, this.options.defaultSource);
    const loaded = fallback && this.loadedFallbacks.get(fallback.source);
    if (loaded) return loaded;
    if (fallback) throw new Error(`tokenizer ${fallback.source} for model "${model}" is not loaded yet: call tokenize()`);
    throw new UnknownModelError(unknownModelMessage(model, this.models));
  }

  /** Tokenizes in the calling thread. Throws UnknownModelError or TokenizeInputError for client mistakes. */
  tokenizeNow(model: string, input: TokenizeInput): TokenizeOutput {
    return this.tokenizeWith(this.get(model), input);
  }

  private tokenizeWith(tokenizer: ModelTokenizer, input: TokenizeInput): TokenizeOutput {
    const started = performance.now();
    this.current = { hits: 0, misses: 0, hitTokens: 0, missTokens: 0 };
    let tokens: number[];
    let rendered: string | undefined;
    if (input.messages) {
      ({ rendered, tokens } = tokenizer.renderAndTokenizeChat(input.messages, input.chat));
    } else {
      tokens = tokenizer.tokenizePrompt(input.prompt ?? '');
    }
    const out: TokenizeOutput = {
      tokenizerModel: tokenizer.model,
      tokens,
      lookups: this.current,
      seconds: (performance.now() - started) / 1000,
    };
    if (rendered !== undefined) out.rendered = rendered;
    this.metrics?.record(out, input.messages ? 'messages' : 'prompt');
    return out;
  }

  /**
   * Tokenizes in the calling thread, loading a family or default tokenizer first if the model needs
   * one. A call aborted or past its deadline is shed (TokenizeShedError) instead of tokenized.
   */
  async tokenize(model: string, input: TokenizeInput, call?: TokenizeCall): Promise<TokenizeOutput> {
    const shed = shedReason(call, Date.now());
    if (shed) throw shedError(shed);
    const configured = this.tokenizers.get(model) ?? this.tokenizers.get('*');
    if (configured) return this.tokenizeWith(configured, input);
    const fallback = fallbackTokenizer(model, this.options.defaultSource);
    if (!fallback) throw new UnknownModelError(unknownModelMessage(model, this.models));
    const tokenizer = await this.fallbackTokenizer(fallback.source);
    // Loading can take a while: the call may have expired meanwhile.
    const late = shedReason(call, Date.now());
    if (late) throw shedError(late);
    const out = this.tokenizeWith(tokenizer, input);
    out.fallback = fallback;
    return out;
  }

  async close(): Promise<void> {}
}
