// One model's tokenizer as vLLM applies it: completions prompts with add_special_tokens=True,
// chat messages rendered by the chat template (or harmony for gpt-oss) then encoded with
// add_special_tokens=False. Both go through a SegmentCache so shared prefixes are not re-tokenized.

import type { ChatMessage } from '../common/chat.ts';
import { createChatRenderer, type ChatRenderOptions, type ChatRenderer } from './chat-template.ts';
import type { SegmentEncoder } from './encoder.ts';
import { renderHarmonyPieces, type HarmonyOptions } from './harmony.ts';
import { loadHfEncoder } from './hf-encoder.ts';
import { SegmentCache, type SegmentCacheOptions } from './segment-cache.ts';
import { describeTokenizerSource, type TokenizerSource } from './source.ts';
import { loadTiktokenEncoder } from './tiktoken-encoder.ts';

export interface ModelTokenizerOptions extends SegmentCacheOptions {
  /** Conversation start date for harmony (gpt-oss) prompts; today's UTC date when absent. */
  harmonyStartDate?: string;
}

/** Thrown for requests the tokenizer cannot serve (no chat template, unsupported role): a client error. */
export class TokenizeInputError extends Error {}

function usesHarmony(encoder: SegmentEncoder): boolean {
  return (
    encoder.chatTemplate === null &&
    encoder.addedTokens.has('<|start|>') &&
    encoder.addedTokens.has('<|message|>') &&
    encoder.addedTokens.has('<|channel|>')
  );
}

export class ModelTokenizer {
  readonly model: string;
  readonly source: string;
  readonly chatFormat: 'template' | 'harmony' | 'none';
  /** Whether words are served from the encoder's pre-token cache (see SegmentEncoder.preTokenCache). */
  readonly preTokenCache: boolean;
  private readonly encoder: SegmentEncoder;
  private readonly cache: SegmentCache;
  private readonly renderTemplate: ChatRenderer | null;
  private readonly harmonyStartDate: string | undefined;

  constructor(model: string, source: TokenizerSource, encoder: SegmentEncoder, options: ModelTokenizerOptions = {}) {
    this.model = model;
    this.source = describeTokenizerSource(source);
    this.encoder = encoder;
    this.preTokenCache = encoder.preTokenCache;
    this.cache = new SegmentCache(encoder, options);
    this.renderTemplate = encoder.chatTemplate ? createChatRenderer(encoder.chatTemplate) : null;
    this.chatFormat = this.renderTemplate ? 'template' : usesHarmony(encoder) ? 'harmony' : 'none';
    this.harmonyStartDate = options.harmonyStartDate;
  }

  /** A completions prompt: special tokens added as the tokenizer's post-processor says (vLLM's default). */
  tokenizePrompt(text: string): number[] {
    const ids = this.encoder.prefixIds.slice();
    this.cache.encodeInto(text, ids);
    for (const id of this.encoder.suffixIds) ids.push(id);
    return ids;
  }

  /** Text encoded with add_special_tokens=False; added tokens in the text are still recognized. */
  encode(text: string): number[] {
    return this.cache.encode(text);
  }

  /** The prompt text vLLM would build from chat messages. */
  renderChat(messages: ChatMessage[], options: ChatRenderOptions = {}): string {
    return this.renderPieces(messages, options).join('');
  }

  /** Chat messages as vLLM's chat endpoint tokenizes them. */
  tokenizeChat(messages: ChatMessage[], options: ChatRenderOptions = {}): number[] {
    return this.renderAndTokenizeChat(messages, options).tokens;
  }

  renderAndTokenizeChat(messages: ChatMessage[], options: ChatRenderOptions = {}): { rendered: string; tokens: number[] } {
    const pieces = this.renderPieces(messages, options);
    const tokens: number[] = [];
    for (const piece of pieces) this.cache.encodeInto(piece, tokens);
    return { rendered: pieces.join(''), tokens };
  }

  /** The rendered prompt as pieces tokenized separately (one for templates; per content part for harmony). */
  private renderPieces(messages: ChatMessage[], options: ChatRenderOptions): string[] {
    if (this.renderTemplate) {
      try {
        return [this.renderTemplate(messages, options)];
      } catch (err) {
        throw new TokenizeInputError(`chat template of model "${this.model}" rejected the messages: ${(err as Error).message}`);
      }
    }
    if (this.chatFormat === 'harmony') {
      // vLLM renders gpt-oss tools into the harmony developer message; that rendering is not built yet.
      if (options.tools?.length)
        throw new TokenizeInputError(`model "${this.model}" renders chats with harmony, which does not take tools here yet`);
      const harmony: HarmonyOptions = { startDate: this.harmonyStartDate ?? new Date().toISOString().slice(0, 10) };
      try {
        return renderHarmonyPieces(messages, harmony);
      } catch (err) {
        throw new TokenizeInputError((err as Error).message);
      }
    }
    throw new TokenizeInputError(
      `model "${this.model}" (${this.source}) has no chat template: send "tokens" or "prompt" instead of "messages"`,
    );
  }

  get cachedPieces(): number {
    return this.cache.size;
  }

  /** Bytes the segment cache holds, as counted against its maxBytes. */
  get cachedBytes(): number {
    return this.cache.bytes;
  }
}

export async function loadModelTokenizer(
  model: string,
  source: TokenizerSource,
  options: ModelTokenizerOptions = {},
): Promise<ModelTokenizer> {
  const encoder = source.kind === 'tiktoken' ? loadTiktokenEncoder(source.encoding) : await loadHfEncoder(source.dir);
  return new ModelTokenizer(model, source, encoder, options);
}
