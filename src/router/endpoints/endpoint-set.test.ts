import { afterEach, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/log.ts';
import type { Endpoint } from '../types.ts';
import { EndpointSet } from './endpoint-set.ts';

/** A stand-in engine: serves `page` on /metrics (after `delayMs`), counts requests and the most ever concurrent. */
async function engine(page: string) {
  const state = { page, status: 200, delayMs: 0, requests: 0, concurrent: 0, maxConcurrent: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    state.concurrent++;
    state.maxConcurrent = Math.max(state.maxConcurrent, state.concurrent);
    const reply = () => {
      state.concurrent--;
      res.writeHead(state.status, { 'content-type': 'text/plain; version=0.0.4' }).end(req.url === '/metrics' ? state.page : 'no');
    };
    if (state.delayMs > 0) setTimeout(reply, state.delayMs);
    else reply();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const endpoint: Endpoint = { address: `127.0.0.1:${port}`, ip: '127.0.0.1', port, name: `pod-${port}`, namespace: 'ns', labels: {} };
  return {
    state,
    endpoint,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

async function until<T>(
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  what: string,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const page = (waiting: number, usage: number) =>
  `vllm:num_requests_waiting{model_name="m"} ${waiting}\nvllm:num_requests_running{model_name="m"} 1\nvllm:kv_cache_usage_perc{model_name="m"} ${usage}\n`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function endpointSet(options: { intervalMs?: number; stalenessMs?: number; timeoutMs?: number; now?: () => number } = {}) {
  const registry = new Registry();
  const set = new EndpointSet({
    scrape: {
      intervalMs: options.intervalMs ?? 20,
      stalenessMs: options.stalenessMs ?? 2000,
      timeoutMs: options.timeoutMs,
      now: options.now,
    },
    log: silentLogger,
    registry,
  });
  cleanups.push(() => set.close());
  return { set, registry };
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
}

describe('EndpointSet scraping', () => {
  it("scrapes each endpoint's /metrics repeatedly and exposes the parsed metrics in the snapshot", async () => {
    const e = await engine(page(3, 0.4));
    cleanups.push(e.close);
    const { set } = endpointSet();
    set.replace([e.endpoint]);
    const m = await until(() => set.snapshot()[0]?.metrics, 'first scrape');
    expect(m).toMatchObject({ waitingRequests: 3, runningRequests: 1, kvCacheUsage: 0.4 });
    e.state.page = page(7, 0.9);
    await until(() => set.snapshot()[0]?.metrics?.waitingRequests === 7, 'the next scrape');
    expect(e.state.requests).toBeGreaterThanOrEqual(2);
  });

  it('never has two scrapes of one endpoint in flight, skipping ticks while one is pending', async () => {
    const e = await engine(page(1, 0.1));
    cleanups.push(e.close);
    e.state.delayMs = 60;
    const { set } = endpointSet({ intervalMs: 5, timeoutMs: 1000 });
    set.replace([e.endpoint]);
    await until(() => e.state.requests >= 4, 'four scrapes');
    expect(e.state.maxConcurrent).toBe(1);
  });

  it('keeps the last metrics through failures and turns them null once older than the staleness threshold', async () => {
    let now = 1_000_000;
    const e = await engine(page(2, 0.2));
    cleanups.push(e.close);
    const { set, registry } = endpointSet({ stalenessMs: 2000, now: () => now });
    set.replace([e.endpoint]);
    await until(() => set.snapshot()[0]?.metrics, 'first scrape');
    expect(set.snapshot()[0]!.metrics!.scrapedAtMs).toBe(now);
    e.state.status = 500;
    const before = e.state.requests;
    await until(() => e.state.requests > before + 1, 'failing scrapes');
    await until(
      async () =>
        ((await metricValue(registry, 'kvroute_router_endpoint_scrape_errors_total', { endpoint: e.endpoint.address })) ?? 0) >= 1,
      'error count',
    );
    now += 2000;
    expect(set.snapshot()[0]!.metrics).not.toBeNull();
    now += 1;
    expect(set.snapshot()[0]!.metrics).toBeNull();
    expect(set.snapshot()[0]!.endpoint).toBe(e.endpoint);
  });

  it('counts a page without engine metrics and a scrape past its timeout as errors', async () => {
    const notEngine = await engine('process_cpu_seconds_total 1\n');
    const slow = await engine(page(1, 0.1));
    cleanups.push(notEngine.close, slow.close);
    slow.state.delayMs = 300;
    const { set, registry } = endpointSet({ timeoutMs: 50 });
    set.replace([notEngine.endpoint, slow.endpoint]);
    for (const e of [notEngine, slow]) {
      await until(
        async () =>
          ((await metricValue(registry, 'kvroute_router_endpoint_scrape_errors_total', { endpoint: e.endpoint.address })) ?? 0) >= 1,
        `errors of ${e.endpoint.address}`,
      );
    }
    expect(set.snapshot().map((s) => s.metrics)).toEqual([null, null]);
  });

  it('drops a removed endpoint from the snapshot, its scrapes and its metric series at once', async () => {
    const a = await engine(page(4, 0.3));
    const b = await engine(page(6, 0.5));
    cleanups.push(a.close, b.close);
    const { set, registry } = endpointSet();
    set.replace([a.endpoint, b.endpoint]);
    await until(() => set.snapshot().every((s) => s.metrics), 'both scraped');
    expect(await metricValue(registry, 'kvroute_router_endpoint_queue_size', { endpoint: b.endpoint.address })).toBe(6);
    expect(await metricValue(registry, 'kvroute_router_pool_average_queue_size')).toBe(5);
    expect(await metricValue(registry, 'kvroute_router_pool_average_kv_cache_utilization')).toBeCloseTo(0.4);

    set.replace([a.endpoint]);
    expect(set.snapshot().map((s) => s.endpoint.address)).toEqual([a.endpoint.address]);
    const served = b.state.requests;
    await until(() => a.state.requests > 3 + served, 'more scrapes of a');
    expect(b.state.requests).toBeLessThanOrEqual(served + 1);
    const text = await registry.metrics();
    expect(text).not.toContain(b.endpoint.address);
  });

  it("keeps an endpoint's metrics and in-flight count when it is replaced by one with new labels", async () => {
    const a = await engine(page(1, 0.1));
    cleanups.push(a.close);
    const { set } = endpointSet();
    set.replace([a.endpoint]);
    await until(() => set.snapshot()[0]?.metrics, 'scraped');
    set.requestStarted(a.endpoint.address);
    set.replace([{ ...a.endpoint, labels: { tier: 'gold' } }]);
    const s = set.snapshot()[0]!;
    expect(s).toMatchObject({ inFlight: 1, endpoint: { labels: { tier: 'gold' } } });
    expect(s.metrics).not.toBeNull();
  });
});

describe('EndpointSet in-flight counts', () => {
  it('records its own in-flight count as each scrape starts, so a finished request leaves the load at once though the scrape still shows it', async () => {
    // The engine runs one request (page(): 1 running, 0 waiting), which is this router's.
    const a = await engine(page(0, 0.1));
    cleanups.push(a.close);
    const { set } = endpointSet();
    set.replace([a.endpoint]);
    set.requestStarted(a.endpoint.address);
    const during = await until(() => {
      const s = set.snapshot()[0];
      return s?.metrics?.inFlightAtScrape === 1 && s;
    }, 'a scrape that started while the request was in flight');
    expect([during.metrics!.runningRequests, during.inFlight, during.load]).toEqual([1, 1, 1]);
    set.requestFinished(a.endpoint.address);
    const after = set.snapshot()[0]!;
    expect([after.metrics!.runningRequests, after.metrics!.inFlightAtScrape, after.inFlight, after.load]).toEqual([1, 1, 0, 0]);
    // A later scrape that starts with nothing of ours in flight and still sees one running: someone else's.
    const later = await until(() => {
      const s = set.snapshot()[0];
      return s?.metrics?.inFlightAtScrape === 0 && s;
    }, 'a scrape that started after the request finished');
    expect(later.load).toBe(1);
  });

  it('counts started minus finished requests per endpoint, never below zero', () => {
    const { set } = endpointSet();
    const ep = (port: number): Endpoint => ({ address: `10.0.0.1:${port}`, ip: '10.0.0.1', port, name: 'p', namespace: '', labels: {} });
    set.replace([ep(1), ep(2)]);
    set.requestStarted('10.0.0.1:1');
    set.requestStarted('10.0.0.1:1');
    set.requestStarted('10.0.0.1:2');
    set.requestFinished('10.0.0.1:1');
    set.requestFinished('10.0.0.1:2');
    set.requestFinished('10.0.0.1:2');
    expect(set.snapshot().map((s) => [s.endpoint.address, s.inFlight])).toEqual([
      ['10.0.0.1:1', 1],
      ['10.0.0.1:2', 0],
    ]);
  });

  it('ignores but counts an address that is not an endpoint, and restarts a returning endpoint from zero', async () => {
    const { set, registry } = endpointSet();
    const ep: Endpoint = { address: '10.0.0.2:8000', ip: '10.0.0.2', port: 8000, name: 'p', namespace: '', labels: {} };
    set.requestStarted('10.9.9.9:8000');
    set.requestFinished('10.9.9.9:8000');
    set.replace([ep]);
    set.requestStarted(ep.address);
    set.replace([]);
    set.requestFinished(ep.address);
    set.replace([ep]);
    expect(set.snapshot()[0]!.inFlight).toBe(0);
    expect(await metricValue(registry, 'kvroute_router_endpoint_in_flight_unknown_total', { event: 'started' })).toBe(1);
    expect(await metricValue(registry, 'kvroute_router_endpoint_in_flight_unknown_total', { event: 'finished' })).toBe(2);
  });

  it('rejects a non-positive interval or staleness, naming the option', () => {
    expect(() => new EndpointSet({ scrape: { intervalMs: 0, stalenessMs: 2000 }, log: silentLogger, registry: new Registry() })).toThrow(
      /scrape\.intervalMs/,
    );
    expect(() => new EndpointSet({ scrape: { intervalMs: 50, stalenessMs: -1 }, log: silentLogger, registry: new Registry() })).toThrow(
      /scrape\.stalenessMs/,
    );
  });
});
