// The scoring and tokenize request bodies (HTTP JSON; the gRPC handler builds the same object),
// parsed at the edge into the indexer's ScoreRequest. Exactly one of tokens, prompt or messages.

import { z } from 'zod';
import type { ChatMessage, ScoreRequest } from './types.ts';

const ContentPart = z.looseObject({ type: z.string(), text: z.string().optional() });

const Message = z.looseObject({
  role: z.string().min(1, 'expected a non-empty role'),
  content: z.union([z.string(), z.array(ContentPart), z.null()]).optional(),
});

/**
 * Token ids checked in one loop: an 8k-token request costs ~0.05 ms here against ~0.7 ms through a
 * per-element schema, and the first bad element is still named (`tokens.17: ...`).
 */
const TokenIds = z
  .unknown()
  .superRefine((value, ctx) => {
    if (!Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: 'expected an array of token ids' });
      return;
    }
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        ctx.addIssue({ code: 'custom', path: [i], message: `expected a token id (an integer in [0, 2^32)), got ${JSON.stringify(v)}` });
        return;
      }
    }
  })
  .transform((value) => value as number[]);

export const ScoreBody = z
  .strictObject({
    model: z.string().min(1, 'expected the served model name'),
    tokens: TokenIds.optional(),
    prompt: z.string().optional(),
    messages: z.array(Message).min(1, 'expected at least one message').optional(),
    lora_name: z.string().min(1).optional(),
    cache_salt: z.string().min(1).optional(),
    pods: z.array(z.string().min(1)).optional(),
    /** Template variables for chat (vLLM's chat_template_kwargs). */
    chat_template_kwargs: z.record(z.string(), z.unknown()).optional(),
    add_generation_prompt: z.boolean().optional(),
  })
  .superRefine((b, ctx) => {
    const given = (['tokens', 'prompt', 'messages'] as const).filter((k) => b[k] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: given.length ? [given[1]!] : ['tokens'],
        message: `expected exactly one of tokens, prompt or messages${given.length ? `, got ${given.join(' and ')}` : ''}`,
      });
    }
  });
export type ScoreBody = z.infer<typeof ScoreBody>;

/** A parsed request plus the chat options that only tokenization needs. */
export interface ParsedScoreRequest {
  request: ScoreRequest;
  chat: { addGenerationPrompt?: boolean; templateKwargs?: Record<string, unknown> };
}

export class RequestError extends Error {}

/** One line naming every bad field: `tokens.3: Too big ...; model: ...`. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .flatMap((i) => {
      const at = i.path.join('.');
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${at ? `${at}.` : ''}${k}: unknown field`);
      return [`${at || 'body'}: ${i.message}`];
    })
    .join('; ');
}

export function parseScoreBody(value: unknown): ParsedScoreRequest {
  const parsed = ScoreBody.safeParse(value);
  if (!parsed.success) throw new RequestError(`invalid request: ${describeIssues(parsed.error)}`);
  const b = parsed.data;
  const request: ScoreRequest = { model: b.model };
  if (b.tokens) request.tokens = b.tokens;
  if (b.prompt !== undefined) request.prompt = b.prompt;
  if (b.messages) request.messages = b.messages as ChatMessage[];
  if (b.lora_name) request.loraName = b.lora_name;
  if (b.cache_salt) request.cacheSalt = b.cache_salt;
  if (b.pods) request.pods = b.pods;
  return { request, chat: { addGenerationPrompt: b.add_generation_prompt, templateKwargs: b.chat_template_kwargs } };
}
