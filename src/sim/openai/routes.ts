// The OpenAI-compatible routes of one simulated pod, shaped like vLLM's responses: /v1/completions
// and /v1/chat/completions (JSON or SSE ending in `data: [DONE]`), /v1/models, /health and
// /reset_prefix_cache. Every response names the pod in `x-inference-pod`.

import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { HttpError, readJson, sendJson, type RouteHandler } from '../../common/http.ts';
import type { ChatMessage } from '../../indexer/types.ts';
import { TokenizeInputError } from '../../indexer/tokenize/model-tokenizer.ts';
import type { Engine } from '../engine.ts';
import { SimRequest, type LoraAdapter, type RequestBlockHasher } from '../request.ts';
import type { SimTokenizer } from '../tokenizer.ts';
import { ChatCompletionRequestSchema, CompletionRequestSchema, openAiError, parseBody } from './schemas.ts';

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

/** Wraps a route so its error responses name the pod too (the shared server sends them without it). */
export function withPodHeader(ctx: RouteContext, handler: RouteHandler): RouteHandler {
  return async (req, res, url) => {
    try {
      await handler(req, res, url);
    } catch (err) {
      if (!(err instanceof HttpError) || res.headersSent) throw err;
      sendJson(res, err.status, err.body, podHeaders(ctx));
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
    throw openAiError(400, `This model's maximum context length is ${ctx.maxModelLen} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input messages.`, 'messages');
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

function newRequest(ctx: RouteContext, id: string, tokens: number[], maxTokens: number, lora: LoraAdapter | null, cacheSalt: string | null, seed: number | null): SimRequest {
  const request = new SimRequest({
    id,
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

export function completionsRoute(ctx: RouteContext): RouteHandler {
  return async (req, res) => {
    const body = parseBody(CompletionRequestSchema, await readJson(req));
    preflight(ctx);
    const lora = resolveModel(ctx, body.model);
    const tokens = typeof body.prompt === 'string' ? ctx.tokenizer.tokenizePrompt(body.prompt) : body.prompt;
    if (tokens.length === 0) throw openAiError(400, 'prompt must not be empty', 'prompt');
    const maxTokens = checkLength(ctx, tokens.length, body.max_tokens ?? 16);
    const id = `cmpl-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const request = newRequest(ctx, id, tokens, maxTokens, lora, body.cache_salt ?? null, body.seed ?? null);
    const choice = (text: string, finish: string | null) => ({ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null });
    if (body.stream) {
      res.writeHead(200, sseHeaders(ctx));
      const run = submit(ctx, res, request, (token) => {
        const last = request.status === 'finished';
        writeEvent(res, { id, object: 'text_completion', created, model: body.model, choices: [choice(ctx.tokenizer.decode([token]), last ? request.finishReason : null)] });
      });
      await run.done;
      if (res.destroyed) return;
      if (body.stream_options?.include_usage) writeEvent(res, { id, object: 'text_completion', created, model: body.model, choices: [], usage: usageOf(request) });
      res.end('data: [DONE]\n\n');
      return;
    }
    const run = submit(ctx, res, request, () => {});
    await run.done;
    if (res.destroyed) return;
    if (request.finishReason === 'abort') throw openAiError(500, 'the request was aborted by the engine');
    sendJson(
      res,
      200,
      { id, object: 'text_completion', created, model: body.model, choices: [{ ...choice(ctx.tokenizer.decode(request.outputTokens), request.finishReason), prompt_logprobs: null }], usage: usageOf(request) },
      podHeaders(ctx),
    );
  };
}

export function chatCompletionsRoute(ctx: RouteContext): RouteHandler {
  return async (req, res) => {
    const body = parseBody(ChatCompletionRequestSchema, await readJson(req));
    preflight(ctx);
    const lora = resolveModel(ctx, body.model);
    let tokens: number[];
    try {
      tokens = ctx.tokenizer.tokenizeChat(body.messages as ChatMessage[], {
        addGenerationPrompt: body.add_generation_prompt ?? true,
        templateKwargs: body.chat_template_kwargs ?? undefined,
      });
    } catch (err) {
      if (err instanceof TokenizeInputError) throw openAiError(400, err.message, 'messages');
      throw err;
    }
    const maxTokens = checkLength(ctx, tokens.length, body.max_completion_tokens ?? body.max_tokens ?? null);
    const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const request = newRequest(ctx, id, tokens, maxTokens, lora, body.cache_salt ?? null, body.seed ?? null);
    if (body.stream) {
      res.writeHead(200, sseHeaders(ctx));
      const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
        id,
        object: 'chat.completion.chunk',
        created,
        model: body.model,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish, stop_reason: null }],
      });
      writeEvent(res, chunk({ role: 'assistant', content: '' }, null));
      const run = submit(ctx, res, request, (token) => {
        const last = request.status === 'finished';
        writeEvent(res, chunk({ content: ctx.tokenizer.decode([token]) }, last ? request.finishReason : null));
      });
      await run.done;
      if (res.destroyed) return;
      if (body.stream_options?.include_usage) writeEvent(res, { id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage: usageOf(request) });
      res.end('data: [DONE]\n\n');
      return;
    }
    const run = submit(ctx, res, request, () => {});
    await run.done;
    if (res.destroyed) return;
    if (request.finishReason === 'abort') throw openAiError(500, 'the request was aborted by the engine');
    sendJson(
      res,
      200,
      {
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: ctx.tokenizer.decode(request.outputTokens), tool_calls: [], reasoning_content: null },
            logprobs: null,
            finish_reason: request.finishReason,
            stop_reason: null,
          },
        ],
        usage: usageOf(request),
      },
      podHeaders(ctx),
    );
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
      sendJson(res, 503, { error: { message: 'the simulated engine is still starting', type: 'ServiceUnavailableError', param: null, code: 503 } }, podHeaders(ctx));
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
