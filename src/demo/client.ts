// The harness's HTTP side: one workload request sent through the gateway as the OpenAI API
// (/v1/completions for token-id and text prompts, /v1/chat/completions for messages), read back as
// the pod that served it, its response id and usage; and the indexer's per-pod scores for a prompt,
// which the funnel reads just before the request is sent. Responses are parsed, never trusted.

import { z } from 'zod';
import type { WorkloadRequest } from './workloads/types.ts';

export interface SendOutcome {
  /** The pod's `x-inference-pod` header; null when no pod answered. */
  pod: string | null;
  /** The response id (the pod's request id, which its log names). */
  id: string | null;
  promptTokens: number;
  cachedTokens: number;
  outputTokens: number;
  /** performance.now() when the request was sent and when its response was complete. */
  sentMs: number;
  endMs: number;
  error?: string;
}

const UsageResponse = z.object({
  id: z.string().min(1),
  usage: z.object({
    prompt_tokens: z.number().int().nonnegative(),
    completion_tokens: z.number().int().nonnegative(),
    prompt_tokens_details: z.object({ cached_tokens: z.number().int().nonnegative() }).nullish(),
  }),
});

/** The OpenAI path and body of a workload request (non-streamed: usage comes with the response). */
export function openAiRequest(request: WorkloadRequest, tokens: readonly number[] | undefined): { path: string; body: unknown } {
  if (request.messages) {
    return { path: '/v1/chat/completions', body: { model: request.model, messages: request.messages, max_tokens: request.maxTokens } };
  }
  const prompt = tokens ?? request.prompt;
  if (prompt === undefined) throw new Error('a workload request needs tokens, a prompt or messages');
  return { path: '/v1/completions', body: { model: request.model, prompt, max_tokens: request.maxTokens } };
}

/** Sends one request through the gateway; failures are returned, not thrown. */
export async function sendThroughGateway(
  gatewayUrl: string,
  request: WorkloadRequest,
  tokens: readonly number[] | undefined,
  timeoutMs: number,
): Promise<SendOutcome> {
  const { path, body } = openAiRequest(request, tokens);
  const text = JSON.stringify(body);
  const sentMs = performance.now();
  const failed = (error: string, pod: string | null = null): SendOutcome => ({
    pod,
    id: null,
    promptTokens: tokens?.length ?? 0,
    cachedTokens: 0,
    outputTokens: 0,
    sentMs,
    endMs: performance.now(),
    error,
  });
  let res: Response;
  let payload: string;
  try {
    res = await fetch(`${gatewayUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: text,
      signal: AbortSignal.timeout(timeoutMs),
    });
    payload = await res.text();
  } catch (err) {
    return failed(`request failed: ${(err as Error).message}`);
  }
  const pod = res.headers.get('x-inference-pod');
  if (!res.ok) return failed(`HTTP ${res.status}: ${payload.slice(0, 300)}`, pod);
  let parsed: z.infer<typeof UsageResponse>;
  try {
    const result = UsageResponse.safeParse(JSON.parse(payload));
    if (!result.success)
      return failed(`unexpected response: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, pod);
    parsed = result.data;
  } catch {
    return failed(`response is not JSON: ${payload.slice(0, 200)}`, pod);
  }
  if (pod === null) return failed('the response names no pod (x-inference-pod missing)');
  return {
    pod,
    id: parsed.id,
    promptTokens: parsed.usage.prompt_tokens,
    cachedTokens: parsed.usage.prompt_tokens_details?.cached_tokens ?? 0,
    outputTokens: parsed.usage.completion_tokens,
    sentMs,
    endMs: performance.now(),
  };
}

const ScoreResponse = z.object({
  scores: z.record(z.string(), z.number().nonnegative()),
  totalBlocks: z.number().int().nonnegative(),
});

/**
 * The indexer's scores for a prompt: matched blocks per pod id. A read: it does not change what the
 * index holds (a hit only refreshes the key's CLOCK bit, which matters once the index is full).
 */
export async function indexerScores(
  indexerUrl: string,
  request: WorkloadRequest,
  tokens: readonly number[] | undefined,
): Promise<Record<string, number>> {
  const input = tokens ? { tokens } : request.messages ? { messages: request.messages } : { prompt: request.prompt };
  const res = await fetch(`${indexerUrl}/v1/score`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: request.model, ...input }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`indexer /v1/score: HTTP ${res.status}: ${text.slice(0, 300)}`);
  const result = ScoreResponse.safeParse(JSON.parse(text));
  if (!result.success) throw new Error(`indexer /v1/score: unexpected response: ${result.error.message}`);
  return result.data.scores;
}

/** The prompt as token ids through the indexer's tokenizer (the pods'), for text and chat prompts. */
export async function indexerTokenize(
  indexerUrl: string,
  model: string,
  input: { prompt?: string; messages?: WorkloadRequest['messages'] },
): Promise<{ tokens: number[] }> {
  const res = await fetch(`${indexerUrl}/v1/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, ...input }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`indexer /v1/tokenize: HTTP ${res.status}: ${text.slice(0, 300)}`);
  const result = z.object({ tokens: z.array(z.number().int().nonnegative()) }).safeParse(JSON.parse(text));
  if (!result.success) throw new Error(`indexer /v1/tokenize: unexpected response: ${result.error.message}`);
  return { tokens: result.data.tokens };
}
