// Request bodies of the OpenAI-compatible endpoints the simulator serves, as zod schemas (the one
// source of their types; chat messages and tools come from common/chat.ts, shared with the indexer),
// and vLLM's error body: {"error": {message, type, param, code}}.

import { z } from 'zod';
import { ChatMessageSchema, ChatToolSchema } from '../../common/chat.ts';
import { HttpError } from '../../common/http.ts';

const maxTokens = z.number().int().min(1, 'must be at least 1');

const common = {
  model: z.string().min(1, 'model is required'),
  max_tokens: maxTokens.nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  seed: z.number().int().nullish(),
  n: z.literal(1, { message: 'the simulator generates one choice per request (n must be 1)' }).nullish(),
  cache_salt: z.string().nullish(),
};

export const CompletionRequestSchema = z
  .object({
    ...common,
    prompt: z.union([z.string(), z.array(z.number().int().nonnegative()).min(1, 'a token-id prompt needs at least one token')], {
      message: 'prompt must be a string or an array of token ids',
    }),
  })
  .passthrough();

export const ChatCompletionRequestSchema = z
  .object({
    ...common,
    messages: z.array(ChatMessageSchema).min(1, 'messages must not be empty'),
    tools: z.array(ChatToolSchema).nullish(),
    max_completion_tokens: maxTokens.nullish(),
    add_generation_prompt: z.boolean().nullish(),
    chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
  })
  .passthrough();

const ERROR_TYPES: Record<number, string> = {
  400: 'BadRequestError',
  404: 'NotFoundError',
  409: 'ConflictError',
  413: 'BadRequestError',
  500: 'InternalServerError',
  503: 'ServiceUnavailableError',
};

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: number };
}

/** vLLM's error body; `type` defaults to the error class vLLM's handlers name for the status. */
export function openAiErrorBody(status: number, message: string, param: string | null = null, type?: string): OpenAiErrorBody {
  return { error: { message, type: type ?? ERROR_TYPES[status] ?? 'Error', param, code: status } };
}

export function openAiError(status: number, message: string, param: string | null = null): HttpError {
  return new HttpError(status, message, openAiErrorBody(status, message, param));
}

export function isOpenAiErrorBody(body: unknown): body is OpenAiErrorBody {
  const error = (body as { error?: unknown } | null)?.error;
  return typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string';
}

/** Validates a body, or throws a 400 naming the first offending field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw openAiError(400, 'request body must be a JSON object');
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.join('.') || null;
  throw openAiError(400, `${param ?? 'body'}: ${issue.message}`, param);
}
