// OpenAI request bodies as the router sees them: /v1/completions and /v1/chat/completions parsed into
// the fields scheduling needs (model, prompt or messages, cache_salt, stream), anything else passed on
// as kind 'other'. A body that cannot be routed is a RequestParseError naming the field (a 400).

import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import { describeIssues } from '../../api/meta.ts';
import { ChatMessageSchema, ChatToolSchema, type ChatMessage, type ChatTool } from '../../common/chat.ts';
import type { RequestKind } from '../types.ts';

/** The body (or path) cannot be routed; the message names the field and what was expected. */
export class RequestParseError extends Error {}

/** What scheduling needs from a request body, before the model table maps the model. */
export interface ParsedBody {
  kind: RequestKind;
  path: string;
  /** Body `model`; '' for kind 'other' when the body has none (or is not JSON). */
  model: string;
  prompt?: string;
  tokens?: number[];
  messages?: ChatMessage[];
  tools?: ChatTool[];
  chatTemplateKwargs?: Record<string, unknown>;
  addGenerationPrompt?: boolean;
  cacheSalt?: string;
  stream: boolean;
  /** The decoded body when it is a JSON object: what a model rewrite re-serializes. */
  json?: Record<string, unknown>;
}

const PATH_KINDS: Record<string, RequestKind> = {
  '/v1/completions': 'completions',
  '/v1/chat/completions': 'chat',
};

/** The `:path` header without its query string or fragment. */
export function requestPath(rawPath: string): string {
  const cut = rawPath.search(/[?#]/);
  return cut === -1 ? rawPath : rawPath.slice(0, cut);
}

export function requestKind(path: string): RequestKind {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  return PATH_KINDS[trimmed] ?? 'other';
}

function isTokenIds(value: unknown): value is number[] {
  if (!Array.isArray(value) || value.length === 0) return false;
  for (const v of value) if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) return false;
  return true;
}

type Prompt = { prompt: string } | { tokens: number[] };

/**
 * vLLM's completions `prompt`: a string, a list of strings, a list of token ids, or a list of such
 * lists. A batch is routed by its first prompt: the batch runs on one server, and the first prompt's
 * prefix is as good a guide to where the cache is as any.
 */
const PromptField = z.unknown().transform((value, ctx): Prompt => {
  if (typeof value === 'string') return { prompt: value };
  if (isTokenIds(value)) return { tokens: value };
  if (Array.isArray(value) && value.length > 0) {
    if (value.every((v) => typeof v === 'string')) return { prompt: value[0] as string };
    if (value.every(isTokenIds)) return { tokens: value[0] as number[] };
  }
  ctx.addIssue({
    code: 'custom',
    message: 'expected a string, a non-empty array of strings, an array of token ids (integers in [0, 2^32)) or an array of such arrays',
  });
  return z.NEVER;
});

const ModelField = z.string({ message: 'expected the model name (a string)' }).min(1, 'expected the model name (a non-empty string)');
const CommonFields = {
  model: ModelField,
  stream: z.boolean({ message: 'expected true or false' }).nullish(),
  cache_salt: z.string({ message: 'expected a string' }).min(1, 'expected a non-empty string').nullish(),
};

const CompletionsBody = z.looseObject({
  ...CommonFields,
  prompt: PromptField,
});

const ChatBody = z.looseObject({
  ...CommonFields,
  messages: z.array(ChatMessageSchema, { message: 'expected an array of messages' }).min(1, 'expected at least one message'),
  tools: z.array(ChatToolSchema, { message: 'expected an array of tools' }).nullish(),
  chat_template_kwargs: z.record(z.string(), z.unknown(), { message: 'expected an object' }).nullish(),
  add_generation_prompt: z.boolean({ message: 'expected true or false' }).nullish(),
});

function decodeJson(body: Uint8Array): unknown {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  return JSON.parse(text) as unknown;
}

/**
 * How deep a request body's JSON may nest. JSON.parse takes any depth, but JSON.stringify (a model
 * rewrite, the indexer client's tools and kwargs fields) overflows the stack near 10,000 levels; no
 * OpenAI request needs more than a few dozen.
 */
export const MAX_JSON_DEPTH = 256;

/** Whether `value` nests arrays and objects deeper than `limit`; iterative, so any depth is safe to check. */
function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v))
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonObject(body: Uint8Array): Record<string, unknown> {
  if (body.byteLength === 0) throw new RequestParseError('request body is empty: expected a JSON object');
  // JSON is UTF-8 (RFC 8259) and vLLM refuses anything else; decoding would swap bad bytes for U+FFFD.
  if (!isUtf8(body)) throw new RequestParseError('request body is not valid UTF-8: expected a JSON object');
  let value: unknown;
  try {
    value = decodeJson(body);
  } catch (err) {
    throw new RequestParseError(`request body is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new RequestParseError('request body: expected a JSON object');
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) throw new RequestParseError(`request body: JSON nests deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

function checked<T>(schema: z.ZodType<T>, json: Record<string, unknown>): T {
  const result = schema.safeParse(json);
  if (!result.success) throw new RequestParseError(describeIssues(result.error));
  return result.data;
}

/** Only the fields that are set, so a parsed request carries no `undefined` members. */
function common(body: { model: string; stream?: boolean | null; cache_salt?: string | null }) {
  return {
    model: body.model,
    stream: body.stream ?? false,
    ...(body.cache_salt ? { cacheSalt: body.cache_salt } : {}),
  };
}

/**
 * Parses a request body for `path` (query already stripped). Completions and chat bodies must be
 * JSON objects with the fields vLLM requires; any other path is passed on as kind 'other', its
 * model read when the body happens to be a JSON object with one.
 */
export function parseRequestBody(path: string, body: Uint8Array): ParsedBody {
  const kind = requestKind(path);
  if (kind === 'other') {
    let json: unknown;
    try {
      json = body.byteLength > 0 ? decodeJson(body) : undefined;
    } catch {
      json = undefined;
    }
    // Too deep to re-serialize: passed on untouched, as a body that is not JSON is.
    if (!isObject(json) || nestsDeeperThan(json, MAX_JSON_DEPTH)) return { kind, path, model: '', stream: false };
    const model = typeof json.model === 'string' ? json.model : '';
    return { kind, path, model, stream: json.stream === true, json };
  }

  const json = jsonObject(body);
  if (kind === 'completions') {
    const parsed = checked(CompletionsBody, json);
    return { kind, path, ...common(parsed), ...parsed.prompt, json };
  }
  const parsed = checked(ChatBody, json);
  return {
    kind,
    path,
    ...common(parsed),
    messages: parsed.messages,
    ...(parsed.tools ? { tools: parsed.tools } : {}),
    ...(parsed.chat_template_kwargs ? { chatTemplateKwargs: parsed.chat_template_kwargs } : {}),
    ...(parsed.add_generation_prompt !== undefined && parsed.add_generation_prompt !== null
      ? { addGenerationPrompt: parsed.add_generation_prompt }
      : {}),
    json,
  };
}

/** The body with `model` replaced (other fields in their order), for a request mapped to another model. */
export function withModel(json: Record<string, unknown>, model: string): Buffer {
  return Buffer.from(JSON.stringify({ ...json, model }), 'utf8');
}
