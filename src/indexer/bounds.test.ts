// The indexer's request bounds as configured: an HTTP body over http.maxBodyBytes is refused with 413
// and a gRPC Score request over grpc.maxReceiveBytes with RESOURCE_EXHAUSTED, and the server keeps
// answering requests within the bounds. (The ZMQ bounds are in events/ingestor.fuzz.test.ts.)

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { parseIndexerConfig } from '../api/indexer-config.ts';
import { silentLogger } from '../common/log.ts';
import { createIndexerClient, type IndexerClient } from './grpc/client.ts';
import { startIndexerServer, type IndexerServer } from './server.ts';

describe('indexer request bounds', () => {
  let server: IndexerServer;
  let client: IndexerClient;

  beforeAll(async () => {
    const config = parseIndexerConfig({
      zmq: { bind: 'inproc://indexer-bounds-test' },
      http: { host: '127.0.0.1', port: 0, maxBodyBytes: 4096 },
      grpc: { host: '127.0.0.1', port: 0, maxReceiveBytes: 4096 },
      tokenization: { workers: 0 },
    });
    server = await startIndexerServer(config, { log: silentLogger, registry: new Registry() });
    client = createIndexerClient(`127.0.0.1:${server.grpcPort}`, { deadlineMs: 5_000 });
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  const post = async (body: string) => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  it('refuses a /v1/score body over http.maxBodyBytes with 413 naming the bound, and serves the next request', async () => {
    const tokens = Array.from({ length: 2000 }, (_, i) => i);
    expect(await post(JSON.stringify({ model: 'Qwen/Qwen3-0.6B', tokens }))).toEqual({
      status: 413,
      json: { error: 'request body exceeds 4096 bytes' },
    });
    expect(await post(JSON.stringify({ model: 'Qwen/Qwen3-0.6B', tokens: tokens.slice(0, 32) }))).toMatchObject({ status: 200 });
  });

  it('refuses a gRPC Score request over grpc.maxReceiveBytes with RESOURCE_EXHAUSTED, and serves the next one', async () => {
    const tokens = Array.from({ length: 2000 }, (_, i) => 100_000 + i);
    await expect(client.score({ model: 'Qwen/Qwen3-0.6B', tokens })).rejects.toThrow(/RESOURCE_EXHAUSTED/);
    await expect(client.score({ model: 'Qwen/Qwen3-0.6B', tokens: tokens.slice(0, 32) })).resolves.toMatchObject({ scores: {} });
  });
});
