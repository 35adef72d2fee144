// The OpenAI-compatible routes of one simulated pod, shaped like vLLM's responses: /v1/completions
// and /v1/chat/completions (JSON or SSE ending in `data: [DONE]`), /v1/models, /health and
// /reset_prefix_cache. Every response names the pod in `x-inference-pod`.

import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { HttpError, readJson, sendJson, type RouteHandler } from '../../common/http.ts';
import { TokenizeInputError } from '../../tokenize/model-tokenizer.ts';
import type { TokenizeInput } from '../../tokenize/tokenizers.ts';
import type { Engine } from '../engine.ts';
import { SimRequest, type LoraAdapter, type RequestBlockHasher } from '../request.ts';
import type { SimTokenizer } from '../tokenizer.ts';
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  isOpenAiErrorBody,
  openAiError,
  openAiErrorBody,
  parseBody,
} from './schemas.ts';

export interface RouteContext {
  podId: string;
  model: string;
  maxModelLen: number;
  blockSize: number;
  engine: Engine;
  tokenizer: SimTokenizer;
  loras: ReadonlyMap<string, LoraAdapter>;
  hasherFor(lora: LoraAdapter | null, cacheSalt: string | null): RequestBlockHasher;
  now(): number;
  /** Seeds the request's token stream: the request's `seed` when given, else a per-pod sequence. */
  registerSeed(request: SimRequest, seed: number | null): void;
  ready(): boolean;
  /** True when fault injection says this request fails. */
  shouldFail(): boolean;
  createdAt: number;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

function usageOf(r: SimRequest): Usage {
  return {
    prompt_tokens: r.numPromptTokens,
    completion_tokens: r.numOutputTokens,
    total_tokens: r.numTokens,
    prompt_tokens_details: { cached_tokens: r.numCachedTokens ?? 0 },
  };
}

function podHeaders(ctx: RouteContext): Record<string, string> {
  return { 'x-inference-pod': ctx.podId };
}

/**
 * Wraps a route so every error it raises is answered the way vLLM answers: an OpenAI error body
 * ({"error": {message, type, param, code}}, including for the shared server's body-reading errors:
 * empty body, bad JSON, too large) with the pod named in `x-inference-pod`.
 */
export function withOpenAiErrors(ctx: RouteContext, handler: RouteHandler): RouteHandler {
  return async (req, res, url) => {
    try {
      await handler(req, res, url);
    } catch (err) {
      if (!(err instanceof HttpError) || res.headersSent) throw err;
      const body = isOpenAiErrorBody(err.body) ? err.body : openAiErrorBody(err.status, err.message);
      sendJson(res, err.status, body, podHeaders(ctx));
    }
  };
}

function resolveModel(ctx: RouteContext, model: string): LoraAdapter | null {
  if (model === ctx.model) return null;
  const lora = ctx.loras.get(model);
  if (!lora) throw openAiError(404, `The model \`${model}\` does not exist.`, 'model');
  return lora;
}

function checkLength(ctx: RouteContext, promptTokens: number, maxTokens: number | null): number {
  if (promptTokens >= ctx.maxModelLen) {
    throw openAiError(
      400,
      `This model's maximum context length is ${ctx.maxModelLen} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input messages.`,
      'messages',
    );
  }
  const max = maxTokens ?? ctx.maxModelLen - promptTokens;
  if (promptTokens + max > ctx.maxModelLen) {
    throw openAiError(
      400,
      `This model's maximum context length is ${ctx.maxModelLen} tokens. However, you requested ${promptTokens + max} tokens (${promptTokens} in the messages, ${max} in the completion). Please reduce the length of the messages or completion.`,
      'max_tokens',
    );
  }
  return max;
}

interface Run {
  request: SimRequest;
  done: Promise<void>;
}

/** Submits a request to the engine; `onToken` sees each token; aborts if the client goes away. */
function submit(ctx: RouteContext, res: http.ServerResponse, request: SimRequest, onToken: (token: number) => void): Run {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  ctx.engine.submit(request, { onToken: (token) => onToken(token), onFinish: () => finish() });
  res.on('close', () => {
    if (request.status !== 'finished') {
      ctx.engine.abort(request);
      finish();
    }
  });
  return { request, done };
}

function sseHeaders(ctx: RouteContext): Record<string, string> {
  return { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...podHeaders(ctx) };
}

function writeEvent(res: http.ServerResponse, body: unknown): void {
  res.write(`data: ${JSON.stringify(body)}\n\n`);
}

function preflight(ctx: RouteContext): void {
  if (!ctx.ready()) throw openAiError(503, 'the simulated engine is still starting');
  if (ctx.shouldFail()) throw openAiError(500, 'injected failure (--failure-rate)');
}

function newRequest(
  ctx: RouteContext,
  idPrefix: string,
  tokens: number[],
  maxTokens: number,
  lora: LoraAdapter | null,
  cacheSalt: string | null,
  seed: number | null,
): SimRequest {
  const request = new SimRequest({
    id: `${idPrefix}-${randomUUID().replaceAll('-', '')}`,
    promptTokens: tokens,
    maxTokens,
    blockSize: ctx.blockSize,
    hasher: ctx.hasherFor(lora, cacheSalt),
    lora,
    cacheSalt,
    arrivalMs: ctx.now(),
  });
  ctx.registerSeed(request, seed);
  return request;
}

/** How one endpoint shapes its responses around the shared run/stream/finish/usage logic. */
interface ResponseShape {
  /** `object` of streamed chunks ("text_completion", "chat.completion.chunk"). */
  chunkObject: string;
  /** `object` of the non-streamed response. */
  finalObject: string;
  /** Choices streamed before the first token (chat announces the assistant role). */
  leadingChoices: Array<Record<string, unknown>>;
  /** A streamed choice carrying one token's text. */
  streamedChoice(text: string, finish: string | null): Record<string, unknown>;
  /** The non-streamed choice carrying the whole output. */
  finalChoice(text: string, finish: string | null): Record<string, unknown>;
}

/** The request body fields every endpoint answers alike: the model it names and how to stream. */
interface StreamOptions {
  model: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
}

/** Runs a request and answers it as SSE chunks ending in `data: [DONE]`, or as one JSON body. */
async function runAndRespond(
  ctx: RouteContext,
  res: http.ServerResponse,
  request: SimRequest,
  options: StreamOptions,
  shape: ResponseShape,
): Promise<void> {
  const created = Math.floor(Date.now() / 1000);
  const envelope = (object: string) => ({ id: request.id, object, created, model: options.model });
  if (options.stream) {
    res.writeHead(200, sseHeaders(ctx));
    for (const choice of shape.leadingChoices) writeEvent(res, { ...envelope(shape.chunkObject), choices: [choice] });
    const run = submit(ctx, res, request, (token) => {
      const finish = request.status === 'finished' ? request.finishReason : null;
      writeEvent(res, { ...envelope(shape.chunkObject), choices: [shape.streamedChoice(ctx.tokenizer.decode([token]), finish)] });
    });
    await run.done;
    if (res.destroyed) return;
    if (options.stream_options?.include_usage) writeEvent(res, { ...envelope(shape.chunkObject), choices: [], usage: usageOf(request) });
    res.end('data: [DONE]\n\n');
    return;
  }
  const run = submit(ctx, res, request, () => {});
  await run.done;
  if (res.destroyed) return;
  if (request.finishReason === 'abort') throw openAiError(500, 'the request was aborted by the engine');
  const choice = shape.finalChoice(ctx.tokenizer.decode(request.outputTokens), request.finishReason);
  sendJson(res, 200, { ...envelope(shape.finalObject), choices: [choice], usage: usageOf(request) }, podHeaders(ctx));
}

/** Tokenizes where the tokenizer runs (a worker thread unless configured otherwise); input mistakes are 400s. */
async function tokenize(ctx: RouteContext, input: TokenizeInput, param: string): Promise<number[]> {
  try {
    return await ctx.tokenizer.tokenize(input);
  } catch (err) {
    if (err instanceof TokenizeInputError) throw openAiError(400, err.message, param);
    throw err;
  }
}

export function completionsRoute(ctx: RouteContext): RouteHandler {
  return async (req, res) => {
    const body = parseBody(CompletionRequestSchema, await readJson(req));
    preflight(ctx);
    const lora = resolveModel(ctx, body.model);
    const tokens = typeof body.prompt === 'string' ? await tokenize(ctx, { prompt: body.prompt }, 'prompt') : body.prompt;
    if (tokens.length === 0) throw openAiError(400, 'prompt must not be empty', 'prompt');
    const maxTokens = checkLength(ctx, tokens.length, body.max_tokens ?? 16);
    const request = newRequest(ctx, 'cmpl', tokens, maxTokens, lora, body.cache_salt ?? null, body.seed ?? null);
    const choice = (text: string, finish: string | null) => ({ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null });
    await runAndRespond(ctx, res, request, body, {
      chunkObject: 'text_completion',
      finalObject: 'text_completion',
      leadingChoices: [],
      streamedChoice: choice,
      finalChoice: (text, finish) => ({ ...choice(text, finish), prompt_logprobs: null }),
    });
  };
}

export function chatCompletionsRoute(ctx: RouteContext): RouteHandler {
  return async (req, res) => {
    const body = parseBody(ChatCompletionRequestSchema, await readJson(req));
    preflight(ctx);
    const lora = resolveModel(ctx, body.model);
    const chat = {
      addGenerationPrompt: body.add_generation_prompt ?? true,
      templateKwargs: body.chat_template_kwargs ?? undefined,
      tools: body.tools ?? undefined,
    };
    const tokens = await tokenize(ctx, { messages: body.messages, chat }, 'messages');
    const maxTokens = checkLength(ctx, tokens.length, body.max_completion_tokens ?? body.max_tokens ?? null);
    const request = newRequest(ctx, 'chatcmpl', tokens, maxTokens, lora, body.cache_salt ?? null, body.seed ?? null);
    const delta = (content: Record<string, unknown>, finish: string | null) => ({
      index: 0,
      delta: content,
      logprobs: null,
      finish_reason: finish,
      stop_reason: null,
    });
    await runAndRespond(ctx, res, request, body, {
      chunkObject: 'chat.completion.chunk',
      finalObject: 'chat.completion',
      leadingChoices: [delta({ role: 'assistant', content: '' }, null)],
      streamedChoice: (text, finish) => delta({ content: text }, finish),
      finalChoice: (text, finish) => ({
        index: 0,
        message: { role: 'assistant', content: text, tool_calls: [], reasoning_content: null },
        logprobs: null,
        finish_reason: finish,
        stop_reason: null,
      }),
    });
  };
}

export function modelsRoute(ctx: RouteContext): RouteHandler {
  return (_req, res) => {
    const card = (id: string, parent: string | null, root: string) => ({
      id,
      object: 'model',
      created: Math.floor(ctx.createdAt / 1000),
      owned_by: 'vllm',
      root,
      parent,
      max_model_len: ctx.maxModelLen,
      permission: [],
    });
    const data = [card(ctx.model, null, ctx.model), ...[...ctx.loras.values()].map((l) => card(l.name, ctx.model, l.path))];
    sendJson(res, 200, { object: 'list', data }, podHeaders(ctx));
  };
}

export function healthRoute(ctx: RouteContext): RouteHandler {
  return (_req, res) => {
    if (ctx.ready()) {
      res.writeHead(200, podHeaders(ctx));
      res.end();
    } else {
      sendJson(res, 503, openAiErrorBody(503, 'the simulated engine is still starting'), podHeaders(ctx));
    }
  };
}

export function resetPrefixCacheRoute(ctx: RouteContext): RouteHandler {
  return (_req, res, url) => {
    // Like vLLM: 200 with {"success": false} while blocks are held, unless running requests are reset too.
    const success = ctx.engine.resetPrefixCache(url.searchParams.get('reset_running_requests') === 'true');
    sendJson(res, 200, { success }, podHeaders(ctx));
  };
}
