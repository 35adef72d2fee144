import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { silentLogger } from '../../common/log.ts';
import { BlockIndex } from '../index/block-index.ts';
import { vllmEngineKeys } from '../keys/vllm.ts';
import { IndexerService } from '../service.ts';
import { TokenizerSet } from '../tokenize/tokenizers.ts';
import type { EventSource } from '../types.ts';
import { createIndexerClient, type IndexerClient } from './client.ts';
import { startGrpcServer, type RunningGrpcServer } from './server.ts';

const MODEL = 'Qwen/Qwen3-8B';
const BLOCK = 16;

describe('gRPC scoring API', () => {
  let service: IndexerService;
  let server: RunningGrpcServer;
  let client: IndexerClient;
  let tokenizers: TokenizerSet;
  let ready = true;
  const prompt = 'The router asks the indexer which pod holds the longest cached prefix. '.repeat(6);

  beforeAll(async () => {
    tokenizers = new TokenizerSet({ sources: { [MODEL]: 'npm:qwen3' } });
    await tokenizers.load();
    const index = new BlockIndex({ blockSize: BLOCK, hashSeed: '0' });
    const tokens = tokenizers.get(MODEL).tokenizePrompt(prompt);
    const blocks = 3;
    const source: EventSource = { podId: 'pod-1', model: MODEL, dpRank: 0 };
    index.apply(source, {
      ts: 0,
      dpRank: null,
      events: [
        {
          type: 'BlockStored',
          blockHashes: vllmEngineKeys(tokens.slice(0, blocks * BLOCK), { blockSize: BLOCK, hashSeed: '0' }),
          parentBlockHash: null,
          tokenIds: Uint32Array.from(tokens.slice(0, blocks * BLOCK)),
          blockSize: BLOCK,
          loraId: null,
          loraName: null,
          medium: null,
          extraKeys: null,
          groupIdx: null,
          kvCacheSpecKind: null,
        },
      ],
    });
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
    const inProcess = await service.score({ model: MODEL, tokens });
    expect(inProcess).toEqual({ scores: { 'pod-1': 3 } });
    expect(await client.score({ model: MODEL, tokens })).toEqual(inProcess);
    expect(await client.score({ model: MODEL, prompt })).toEqual(inProcess);
    expect(await client.score({ model: MODEL, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] })).toEqual({ scores: {} });
    expect(await client.score({ model: MODEL, prompt, pods: ['pod-2'] })).toEqual({ scores: {} });
  });

  it('maps a bad request to INVALID_ARGUMENT naming the field', async () => {
    await expect(client.score({ model: MODEL })).rejects.toThrow(/INVALID_ARGUMENT: .*exactly one of tokens, prompt or messages/);
    await expect(client.score({ model: 'other', prompt: 'x' })).rejects.toThrow(/INVALID_ARGUMENT: model: no tokenizer for model "other"/);
  });

  it('fails fast with the address when no indexer listens', async () => {
    const nobody = createIndexerClient('127.0.0.1:1', { deadlineMs: 300 });
    await expect(nobody.score({ model: MODEL, tokens: [1] })).rejects.toThrow(/127\.0\.0\.1:1/);
    nobody.close();
  });
});
