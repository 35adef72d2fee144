import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Registry } from 'prom-client';
import { createLogger, silentLogger } from '../../common/log.ts';
import { mulberry32 } from '../../common/random.ts';
import { TokenizerPool } from '../../tokenize/pool.ts';
import { until } from '../../../test/support/until.ts';
import { BlockIndex } from '../index/block-index.ts';
import { IndexerService } from '../scoring/service.ts';
import { TokenizerSet } from '../../tokenize/tokenizers.ts';
import * as grpc from '@grpc/grpc-js';
import { chatCrossingBlock, storedBlocks } from '../test-helpers.ts';
import type { EventSource } from '../types.ts';
import { IndexerService as IndexerGrpcService } from './proto.ts';
import { createIndexerClient, type IndexerClient } from './client.ts';
import { startGrpcServer, type RunningGrpcServer } from './server.ts';

const MODEL = 'Qwen/Qwen3-8B';
const BLOCK = 16;

describe('gRPC scoring API', () => {
  let service: IndexerService;
  let server: RunningGrpcServer;
  let client: IndexerClient;
  let tokenizers: TokenizerSet;
  let index: BlockIndex;
  const ready = true;
  const storeBlocks = (pod: string, tokens: number[], blocks: number): void => {
    const source: EventSource = { podId: pod, model: MODEL, dpRank: 0 };
    index.apply(source, { ts: 0, dpRank: null, events: [storedBlocks(tokens, blocks, { blockSize: BLOCK, hashSeed: '0' })] });
  };
  const prompt = 'The router asks the indexer which pod holds the longest cached prefix. '.repeat(6);

  beforeAll(async () => {
    tokenizers = new TokenizerSet({ sources: { [MODEL]: 'npm:qwen3' } });
    await tokenizers.load();
    index = new BlockIndex({ blockSize: BLOCK, hashSeed: '0' });
    const tokens = tokenizers.get(MODEL).tokenizePrompt(prompt);
    const blocks = 3;
    storeBlocks('pod-1', tokens, blocks);
    service = new IndexerService({ index, tokenizers, log: silentLogger });

    server = await startGrpcServer({ host: '127.0.0.1', port: 0, service, log: silentLogger, ready: () => ready });
    client = createIndexerClient(`127.0.0.1:${server.port}`, { deadlineMs: 5_000 });
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  it('answers Score exactly as the in-process scorer does, for tokens, prompt and messages', async () => {
    const tokens = tokenizers.get(MODEL).tokenizePrompt(prompt);
    const totalBlocks = Math.floor(tokens.length / BLOCK);
    expect(totalBlocks).toBeGreaterThan(3);
    const inProcess = await service.score({ model: MODEL, tokens });
    expect(inProcess).toEqual({ scores: { 'pod-1': 3 }, totalBlocks });
    expect(await client.score({ model: MODEL, tokens })).toEqual(inProcess);
    expect(await client.score({ model: MODEL, prompt })).toEqual(inProcess);
    const hi = [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }];
    expect(await client.score({ model: MODEL, messages: hi })).toEqual({
      scores: {},
      totalBlocks: Math.floor(tokenizers.get(MODEL).tokenizeChat(hi).length / BLOCK),
    });
    expect(await client.score({ model: MODEL, prompt, pods: ['pod-2'] })).toEqual({ scores: {}, totalBlocks });
  });

  it('passes chat_template_kwargs and add_generation_prompt through, scoring as in-process does', async () => {
    const qwen = tokenizers.get(MODEL);
    const chat = chatCrossingBlock((m, kwargs) => qwen.tokenizeChat(m, { templateKwargs: kwargs }), { enable_thinking: false }, BLOCK);
    const blocks = Math.floor(chat.withKwargs.length / BLOCK);
    storeBlocks('pod-kw', chat.withKwargs, blocks);
    const request = { model: MODEL, messages: chat.messages, chatTemplateKwargs: { enable_thinking: false } };
    expect(await service.score(request)).toEqual({ scores: { 'pod-kw': blocks }, totalBlocks: blocks });
    expect(await client.score(request)).toEqual({ scores: { 'pod-kw': blocks }, totalBlocks: blocks });
    expect(await client.score({ model: MODEL, messages: chat.messages })).toEqual({
      scores: { 'pod-kw': blocks - 1 },
      totalBlocks: Math.floor(chat.without.length / BLOCK),
    });
    // Without the generation prompt the rendering ends before "<|im_start|>assistant", a shorter prefix.
    const noPrompt = qwen.tokenizeChat(chat.messages, { addGenerationPrompt: false });
    const expected = await service.score({ model: MODEL, messages: chat.messages, addGenerationPrompt: false });
    expect(expected).toEqual({
      scores: { 'pod-kw': Math.floor(noPrompt.length / BLOCK) },
      totalBlocks: Math.floor(noPrompt.length / BLOCK),
    });
    expect(await client.score({ model: MODEL, messages: chat.messages, addGenerationPrompt: false })).toEqual(expected);
  });

  it('carries tools and tool-call history over gRPC, scoring as in-process does', async () => {
    const tools = [
      {
        type: 'function' as const,
        function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
      },
    ];
    const messages = [
      { role: 'user', content: `Weather in Lisbon? ${'Please answer in detail. '.repeat(6)}` },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon"}' } }],
      },
      { role: 'tool', tool_call_id: 'c1', content: '{"temp": 21}' },
    ];
    const tokens = tokenizers.get(MODEL).tokenizeChat(messages, { tools });
    const blocks = Math.floor(tokens.length / BLOCK);
    storeBlocks('pod-tools', tokens, blocks);
    const inProcess = await service.score({ model: MODEL, messages, tools });
    expect(inProcess).toEqual({ scores: { 'pod-tools': blocks }, totalBlocks: blocks });
    expect(await client.score({ model: MODEL, messages, tools })).toEqual(inProcess);
    expect((await client.score({ model: MODEL, messages })).scores['pod-tools'] ?? 0).toBeLessThan(blocks);
  });

  it('maps a malformed chat_template_kwargs_json to INVALID_ARGUMENT naming the field', async () => {
    const raw = new IndexerGrpcService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const call = (raw as unknown as { Score: (r: object, cb: (err: grpc.ServiceError | null) => void) => void }).Score.bind(raw);
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        call({ model: MODEL, prompt: 'x', chat_template_kwargs_json: '{nope' }, resolve),
      );
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).toMatch(/^chat_template_kwargs_json: expected a JSON object/);
      const notObject = await new Promise<grpc.ServiceError | null>((resolve) =>
        call({ model: MODEL, prompt: 'x', chat_template_kwargs_json: '[1]' }, resolve),
      );
      expect(notObject?.details).toMatch(/chat_template_kwargs: /);
    } finally {
      raw.close();
    }
  });

  it('maps a bad request to INVALID_ARGUMENT naming the field', async () => {
    await expect(client.score({ model: MODEL })).rejects.toThrow(/INVALID_ARGUMENT: .*exactly one of tokens, prompt or messages/);
    await expect(client.score({ model: 'other', prompt: 'x' })).rejects.toThrow(/INVALID_ARGUMENT: model: no tokenizer for model "other"/);
  });

  it('maps a bug while scoring to INTERNAL with a generic message, and logs the error', async () => {
    const lines: string[] = [];
    const log = createLogger({ write: (line) => void lines.push(line) });
    const broken = new IndexerService({
      index: {
        blockSize: BLOCK,
        scoreTokens: () => {
          throw new TypeError('index bug');
        },
      },
      tokenizers,
      log: silentLogger,
    });
    const brokenServer = await startGrpcServer({ host: '127.0.0.1', port: 0, service: broken, log, ready: () => true });
    const brokenClient = createIndexerClient(`127.0.0.1:${brokenServer.port}`, { deadlineMs: 5_000 });
    try {
      await expect(brokenClient.score({ model: MODEL, tokens: [1, 2, 3] })).rejects.toThrow(/INTERNAL: internal error/);
      expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toContainEqual(
        expect.objectContaining({ level: 'error', msg: 'grpc score failed' }),
      );
      expect(lines.join('\n')).toContain('index bug');
    } finally {
      brokenClient.close();
      await brokenServer.close();
    }
  });

  it('fails fast with the address when no indexer listens', async () => {
    const nobody = createIndexerClient('127.0.0.1:1', { deadlineMs: 300 });
    await expect(nobody.score({ model: MODEL, tokens: [1] })).rejects.toThrow(/127\.0\.0\.1:1/);
    nobody.close();
  });
});

describe('gRPC Score under overload', () => {
  it('sheds calls whose deadline passes while they wait behind a slow tokenization, without tokenizing them', async () => {
    const registry = new Registry();
    const pool = new TokenizerPool({ workers: 1, sources: { [MODEL]: 'npm:qwen3' }, registry });
    await pool.load();
    const service = new IndexerService({ index: new BlockIndex({ blockSize: BLOCK }), tokenizers: pool, log: silentLogger, registry });
    const statuses: string[] = [];
    const server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      service,
      log: silentLogger,
      ready: () => true,
      observe: (status) => void statuses.push(status),
    });
    const raw = new IndexerGrpcService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const score = (request: object, deadlineMs: number) =>
      new Promise<grpc.ServiceError | null>((resolve) =>
        (raw as unknown as { Score: (r: object, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void }).Score(
          request,
          { deadline: Date.now() + deadlineMs },
          resolve,
        ),
      );
    const metric = (name: string) => registry.getSingleMetricAsString(name);
    const shedTotal = async () =>
      [...(await metric('kvroute_indexer_score_shed_total')).matchAll(/reason="\w+"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    try {
      // Connected first (token ids need no tokenizer), so the deadlines below are not spent connecting.
      expect(await score({ model: MODEL, tokens: [1, 2, 3] }, 10_000)).toBeNull();
      // A hundred thousand made-up words miss every cache: seconds of a worker's time, far past 300 ms.
      const random = mulberry32(9);
      const slowPrompt = Array.from({ length: 100_000 }, () => Math.floor(random() * 2 ** 40).toString(36)).join(' ');
      const slow = score({ model: MODEL, prompt: slowPrompt }, 60_000);
      await until(() => pool.busy === 1, { message: 'the slow call to reach the worker' });
      const hasty = await Promise.all(Array.from({ length: 30 }, (_, i) => score({ model: MODEL, prompt: `hasty call ${i}` }, 300)));
      for (const err of hasty) expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(await slow).toBeNull();
      // Every hasty call the server got (a busy machine may let a deadline pass before one arrives) was
      // answered without a score and counted as shed; only the slow call was tokenized.
      const hastyAnswered = () => statuses.filter((s) => s !== 'OK').length;
      await until(async () => hastyAnswered() > 0 && (await shedTotal()) === hastyAnswered(), {
        message: 'every hasty call the server got to be counted as shed',
      });
      expect(statuses.filter((s) => s === 'OK')).toHaveLength(2);
      expect(await metric('kvroute_tokenize_duration_seconds')).toMatch(/_count\{[^}]*\} 1$/m);
      expect(pool.queued).toBe(0);
    } finally {
      raw.close();
      await server.close();
      await pool.close();
    }
  }, 60_000);
});
