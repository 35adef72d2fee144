import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { indexerScores, indexerTokenize, openAiRequest, sendThroughGateway } from './client.ts';
import type { WorkloadRequest } from './workloads/types.ts';

/** A real HTTP server whose answer per path the test sets; it records what it received. */
let server: http.Server;
let base: string;
const received: Array<{ path: string; body: unknown }> = [];
let answer: (path: string, body: any) => { status: number; headers?: Record<string, string>; body: string };

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const body = JSON.parse(text);
      received.push({ path: req.url!, body });
      const a = answer(req.url!, body);
      res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
      res.end(a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const tokens: WorkloadRequest = { tMs: 0, model: 'm', tokens: [1000, 1001, 1002], maxTokens: 4 };
const usage = (cached: number) =>
  JSON.stringify({
    id: 'cmpl-1',
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, prompt_tokens_details: { cached_tokens: cached } },
  });

describe('openAiRequest', () => {
  it('sends token ids and text to /v1/completions and messages to /v1/chat/completions', () => {
    expect(openAiRequest(tokens, tokens.tokens)).toEqual({
      path: '/v1/completions',
      body: { model: 'm', prompt: [1000, 1001, 1002], max_tokens: 4 },
    });
    expect(openAiRequest({ tMs: 0, model: 'm', prompt: 'hi', maxTokens: 2 }, undefined).body).toEqual({
      model: 'm',
      prompt: 'hi',
      max_tokens: 2,
    });
    const chat = openAiRequest({ tMs: 0, model: 'm', messages: [{ role: 'user', content: 'hi' }], maxTokens: 2 }, undefined);
    expect(chat).toEqual({
      path: '/v1/chat/completions',
      body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 },
    });
  });
});

describe('sendThroughGateway', () => {
  it('reads the serving pod, the response id and the usage', async () => {
    answer = () => ({ status: 200, headers: { 'x-inference-pod': 'sim-2' }, body: usage(2) });
    const out = await sendThroughGateway(base, tokens, tokens.tokens, 5_000);
    expect(out).toMatchObject({ pod: 'sim-2', id: 'cmpl-1', promptTokens: 3, cachedTokens: 2, outputTokens: 4 });
    expect(out.error).toBeUndefined();
    expect(out.endMs).toBeGreaterThanOrEqual(out.sentMs);
  });

  it('returns failures with what went wrong instead of throwing', async () => {
    answer = () => ({ status: 503, headers: { 'x-inference-pod': 'sim-1' }, body: '{"error":"no healthy upstream"}' });
    expect(await sendThroughGateway(base, tokens, tokens.tokens, 5_000)).toMatchObject({
      pod: 'sim-1',
      error: 'HTTP 503: {"error":"no healthy upstream"}',
    });
    answer = () => ({ status: 200, headers: { 'x-inference-pod': 'sim-1' }, body: '{"id":"x"}' });
    expect((await sendThroughGateway(base, tokens, tokens.tokens, 5_000)).error).toMatch(/^unexpected response: usage: /);
    answer = () => ({ status: 200, body: usage(0) });
    expect((await sendThroughGateway(base, tokens, tokens.tokens, 5_000)).error).toBe(
      'the response names no pod (x-inference-pod missing)',
    );
    const closed = await sendThroughGateway('http://127.0.0.1:1', tokens, tokens.tokens, 5_000);
    expect(closed).toMatchObject({ pod: null, promptTokens: 3 });
    expect(closed.error).toMatch(/^request failed: /);
  });
});

describe('indexer queries', () => {
  it("asks /v1/score with the request's prompt form and returns the per-pod scores", async () => {
    answer = () => ({ status: 200, body: JSON.stringify({ scores: { '127.0.0.1:8000': 3 }, totalBlocks: 4 }) });
    received.length = 0;
    expect(await indexerScores(base, tokens, tokens.tokens)).toEqual({ '127.0.0.1:8000': 3 });
    expect(await indexerScores(base, { tMs: 0, model: 'm', prompt: 'hi', maxTokens: 1 }, undefined)).toEqual({ '127.0.0.1:8000': 3 });
    expect(received).toEqual([
      { path: '/v1/score', body: { model: 'm', tokens: [1000, 1001, 1002] } },
      { path: '/v1/score', body: { model: 'm', prompt: 'hi' } },
    ]);
    answer = () => ({ status: 400, body: '{"error":"model: unknown"}' });
    await expect(indexerScores(base, tokens, tokens.tokens)).rejects.toThrow('indexer /v1/score: HTTP 400: {"error":"model: unknown"}');
  });

  it('tokenizes text and chat prompts through /v1/tokenize', async () => {
    answer = () => ({ status: 200, body: JSON.stringify({ model: 'm', count: 2, tokens: [5, 6] }) });
    expect(await indexerTokenize(base, 'm', { messages: [{ role: 'user', content: 'hi' }] })).toEqual({ tokens: [5, 6] });
    answer = () => ({ status: 200, body: JSON.stringify({ tokens: 'no' }) });
    await expect(indexerTokenize(base, 'm', { prompt: 'hi' })).rejects.toThrow('indexer /v1/tokenize: unexpected response');
  });
});
