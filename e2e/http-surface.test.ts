// The HTTP surface of the indexer and the router, listed: every route each server answers, by method.
// None of them changes state (no admin actions): the indexer's POSTs compute a score or tokens from the
// body and leave the index as it was; everything else is a probe, the metrics, or a read-only view. A
// route added to either server fails this test until it is listed here and in docs/security.md, where
// a mutating one must come with authentication.

import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Registry } from 'prom-client';
import { parseIndexerConfig } from '../src/api/indexer-config.ts';
import { silentLogger } from '../src/common/log.ts';
import { TestPublisher, storedEvent } from '../src/indexer/events/test-helpers.ts';
import { startIndexerServer, type IndexerServer } from '../src/indexer/server.ts';
import { startRouter, type RunningRouter } from '../src/router/router.ts';
import { until } from '../test/support/until.ts';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** Paths an admin API would typically use, besides the listed routes. */
const PROBED_PATHS = [
  '/',
  '/healthz',
  '/readyz',
  '/metrics',
  '/v1/score',
  '/v1/tokenize',
  '/v1/pods',
  '/v1/pods/10.0.0.1',
  '/v1/index',
  '/v1/reset',
  '/v1/config',
  '/v1/models',
  '/admin',
  '/debug/pprof',
  '/shutdown',
  '/reload',
  '/v1/chat/completions',
];

const INDEXER_ROUTES = ['GET /healthz', 'GET /readyz', 'GET /metrics', 'POST /v1/score', 'POST /v1/tokenize', 'GET /v1/pods'];
const PROBE_ROUTES = ['GET /healthz', 'GET /readyz', 'GET /metrics'];

/** The method-and-path pairs among the probed ones that a server answers with anything but 404 or 405. */
async function answered(base: string): Promise<string[]> {
  const out: string[] = [];
  for (const path of PROBED_PATHS)
    for (const method of METHODS) {
      const res = await fetch(`${base}${path}`, {
        method,
        ...(method === 'GET'
          ? {}
          : { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', tokens: [1, 2, 3, 4] }) }),
      });
      await res.arrayBuffer();
      if (res.status !== 404 && res.status !== 405) out.push(`${method} ${path}`);
    }
  return out.sort();
}

describe('HTTP surface of the indexer and the router', () => {
  let indexer: IndexerServer;
  let router: RunningRouter;
  let pub: TestPublisher;
  const endpoint = 'inproc://http-surface-test';

  beforeAll(async () => {
    indexer = await startIndexerServer(
      parseIndexerConfig({
        zmq: { bind: endpoint },
        http: { host: '127.0.0.1', port: 0 },
        grpc: { host: '127.0.0.1', port: 0 },
        metrics: { host: '127.0.0.1', port: 0 },
        blockSize: 4,
        tokenization: { workers: 0 },
      }),
      { log: silentLogger, registry: new Registry() },
    );
    pub = await TestPublisher.start({ topic: 'kv@pod-a@m', connect: endpoint });
    router = await startRouter({
      host: '127.0.0.1',
      grpcPort: 0,
      grpcHealthPort: 0,
      metricsPort: 0,
      endpoints: ['127.0.0.1:1'],
      log: silentLogger,
    });
  }, 60_000);

  afterAll(async () => {
    pub?.close();
    await router?.close();
    await indexer?.close();
  });

  it('the indexer answers exactly its listed routes', async () => {
    expect(await answered(`http://127.0.0.1:${indexer.httpPort}`)).toEqual([...INDEXER_ROUTES].sort());
  });

  it("the indexer's probe and metrics listener answers only probes and metrics", async () => {
    expect(await answered(`http://127.0.0.1:${indexer.metricsPort}`)).toEqual([...PROBE_ROUTES].sort());
  });

  it("the router's HTTP port answers only probes and metrics", async () => {
    expect(await answered(`http://127.0.0.1:${router.metricsPort}`)).toEqual([...PROBE_ROUTES].sort());
  });

  it("the indexer's POST routes leave the index as it was", async () => {
    const base = `http://127.0.0.1:${indexer.httpPort}`;
    const pods = async () => ((await (await fetch(`${base}/v1/pods`)).json()) as { pods: unknown; index: unknown }).index;
    await until(
      async () => {
        await pub.publish([storedEvent([1n, 2n], null, 4)]);
        const view = (await (await fetch(`${base}/v1/pods`)).json()) as { pods: Record<string, number> };
        return (view.pods['pod-a'] ?? 0) > 0 || undefined;
      },
      { message: 'pod-a indexed', timeoutMs: 10_000, intervalMs: 50 },
    );
    const before = await pods();
    for (const path of ['/v1/score', '/v1/tokenize'])
      await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', tokens: [1, 2, 3, 4, 5, 6, 7, 8] }),
      });
    expect(await pods()).toEqual(before);
  });
});
