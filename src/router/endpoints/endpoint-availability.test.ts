import { afterEach, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/log.ts';
import type { Endpoint } from '../types.ts';
import { EndpointSet } from './endpoint-set.ts';

const page =
  'vllm:num_requests_waiting{model_name="m"} 0\nvllm:num_requests_running{model_name="m"} 0\nvllm:kv_cache_usage_perc{model_name="m"} 0.1\n';

/** A stand-in engine whose /metrics answers, fails with `status`, or hangs (accepts, never answers). */
async function engine() {
  const state = { mode: 'ok' as 'ok' | 'error' | 'hang' };
  const server = http.createServer((_req, res) => {
    if (state.mode === 'hang') return;
    res.writeHead(state.mode === 'ok' ? 200 : 500, { 'content-type': 'text/plain' }).end(state.mode === 'ok' ? page : 'boom');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const endpoint: Endpoint = { address: `127.0.0.1:${port}`, ip: '127.0.0.1', port, name: `pod-${port}`, namespace: 'ns', labels: {} };
  const close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return { state, endpoint, close };
}

async function until(probe: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function endpointSet(options: { stalenessMs?: number; timeoutMs?: number; now?: () => number } = {}) {
  const set = new EndpointSet({
    scrape: {
      intervalMs: 20,
      stalenessMs: options.stalenessMs ?? 2000,
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.now ? { now: options.now } : {}),
    },
    log: silentLogger,
    registry: new Registry(),
  });
  cleanups.push(() => set.close());
  return set;
}

const addresses = (set: EndpointSet) => set.snapshot().map((s) => s.endpoint.address);

describe('EndpointSet availability', () => {
  it('leaves out an endpoint whose scrape finds nothing listening, and offers it again once it answers', async () => {
    const alive = await engine();
    const killed = await engine();
    cleanups.push(alive.close);
    const set = endpointSet();
    set.replace([alive.endpoint, killed.endpoint]);
    await until(() => set.snapshot().every((s) => s.metrics !== null), 'first scrapes');
    await killed.close();
    await until(() => addresses(set).length === 1, 'the killed endpoint to leave the snapshot');
    expect(addresses(set)).toEqual([alive.endpoint.address]);
  });

  it('keeps a hung endpoint until its metrics are older than the staleness threshold, then leaves it out', async () => {
    let now = 1_000_000;
    const alive = await engine();
    const hung = await engine();
    cleanups.push(alive.close, hung.close);
    const set = endpointSet({ stalenessMs: 2000, timeoutMs: 30, now: () => now });
    set.replace([alive.endpoint, hung.endpoint]);
    await until(() => set.snapshot().every((s) => s.metrics !== null), 'first scrapes');
    hung.state.mode = 'hang';
    await new Promise((r) => setTimeout(r, 200)); // scrapes time out
    now += 2000;
    expect(addresses(set)).toHaveLength(2);
    now += 1;
    expect(addresses(set)).toEqual([alive.endpoint.address]);
  });

  it('keeps an endpoint that answers scrapes with an error: the server is alive', async () => {
    let now = 1_000_000;
    const a = await engine();
    const b = await engine();
    cleanups.push(a.close, b.close);
    const set = endpointSet({ now: () => now });
    set.replace([a.endpoint, b.endpoint]);
    await until(() => set.snapshot().every((s) => s.metrics !== null), 'first scrapes');
    b.state.mode = 'error';
    await new Promise((r) => setTimeout(r, 100));
    now += 10_000;
    expect(addresses(set)).toHaveLength(2);
    expect(set.snapshot().every((s) => s.metrics === null)).toBe(true);
  });

  it('offers a silent endpoint before a gone one when no endpoint is available', async () => {
    let now = 1_000_000;
    const hung = await engine();
    const killed = await engine();
    cleanups.push(hung.close);
    const set = endpointSet({ stalenessMs: 2000, timeoutMs: 30, now: () => now });
    set.replace([hung.endpoint, killed.endpoint]);
    await until(() => set.snapshot().every((s) => s.metrics !== null), 'first scrapes');
    hung.state.mode = 'hang';
    await killed.close();
    await new Promise((r) => setTimeout(r, 200)); // scrapes time out or are refused
    now += 2001;
    expect(addresses(set)).toEqual([hung.endpoint.address]);
  });

  it('offers every endpoint when every one is gone, as there is nothing better to pick', async () => {
    const a = await engine();
    const set = endpointSet();
    set.replace([a.endpoint]);
    await until(() => set.snapshot()[0]?.metrics !== null, 'first scrape');
    await a.close();
    await new Promise((r) => setTimeout(r, 150));
    expect(addresses(set)).toEqual([a.endpoint.address]);
  });
});
