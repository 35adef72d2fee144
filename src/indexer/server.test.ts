import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Registry } from 'prom-client';
import { parseIndexerConfig } from '../api/indexer-config.ts';
import { silentLogger } from '../common/log.ts';
import { TestPublisher } from './events/test-helpers.ts';
import { vllmEngineKeys } from '../vllm/block-hash.ts';
import { startIndexerServer, type IndexerServer } from './server.ts';

const BLOCK = 16;
const SEED = '0';
const MODEL = 'Qwen/Qwen3-8B';
const tokens = Array.from({ length: 3 * BLOCK }, (_, i) => 1000 + i);

describe('indexer server in engine-key parity mode with LoRA adapters (HTTP, in-process)', () => {
  let server: IndexerServer;
  let pub: TestPublisher;
  let registry: Registry;
  const endpoint = 'inproc://indexer-server-test';
  const score = async (body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    registry = new Registry();
    const config = parseIndexerConfig({
      zmq: { bind: endpoint },
      http: { host: '127.0.0.1', port: 0 },
      grpc: { host: '127.0.0.1', port: 0 },
      hashSeed: SEED,
      engineKeyParity: true,
      loras: { sql: '/adapters/sql-v2' },
      tokenizers: { [MODEL]: 'npm:qwen3' },
      tokenization: { workers: 0 },
    });
    server = await startIndexerServer(config, { log: silentLogger, registry });
    pub = await TestPublisher.start({ topic: `kv@pod-lora@${MODEL}`, connect: endpoint });
    const hashes = [...vllmEngineKeys(tokens, { blockSize: BLOCK, hashSeed: SEED, loraName: 'sql', loraPath: '/adapters/sql-v2' })];
    const event = {
      type: 'BlockStored',
      block_hashes: hashes,
      parent_block_hash: null,
      token_ids: tokens,
      block_size: BLOCK,
      lora_id: 1,
      medium: 'GPU',
      lora_name: 'sql',
    };
    // ZMQ drops what a PUB sends before the subscription reaches it: publish until it is indexed.
    const deadline = Date.now() + 10_000;
    while ((((await score({ model: MODEL, tokens, lora_name: 'sql' })).json.scores ?? {}) as Record<string, number>)['pod-lora'] !== 3) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the LoRA blocks to be indexed');
      await pub.publish([event]);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  afterAll(async () => {
    pub?.close();
    await server?.close();
  });

  it('scores a LoRA request with the adapter path from the config, as vLLM 0.33 hashes it', async () => {
    expect(await score({ model: MODEL, tokens, lora_name: 'sql' })).toEqual({
      status: 200,
      json: { scores: { 'pod-lora': 3 }, totalBlocks: 3 },
    });
    expect(await score({ model: MODEL, tokens })).toEqual({ status: 200, json: { scores: {}, totalBlocks: 3 } });
  });

  it('answers an adapter without a configured path with no scores and counts it, instead of a 500', async () => {
    expect(await score({ model: MODEL, tokens, lora_name: 'unlisted' })).toEqual({ status: 200, json: { scores: {}, totalBlocks: 3 } });
    expect(await registry.metrics()).toMatch(/kvroute_indexer_unscored_requests_total\{reason="lora_path_unknown"\} 1/);
    expect(await registry.metrics()).not.toMatch(/kvroute_indexer_requests_total\{[^}]*code="500"/);
  });
});
