import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { endpoint, metricValue, profileConfig, request, testScheduler } from '../test-helpers.ts';
import { loadBoundFilter, withinLoadBound } from './load-bound.ts';

const options = { loadBound: 1.25, minBound: 3, kvCacheUsageThreshold: 0.95 };
const addresses = (states: Array<{ endpoint: { address: string } }>) => states.map((s) => s.endpoint.address);

describe('load-bound-filter', () => {
  it('keeps an endpoint iff load + 1 <= ceil(c * (total + 1) / n)', () => {
    // Loads 6, 4, 4: bound = ceil(1.25 * 15 / 3) = 7, so 6 + 1 fits.
    const pool = (hot: number) => [
      endpoint('10.0.0.1:8000', { inFlight: hot }),
      endpoint('10.0.0.2:8000', { inFlight: 4 }),
      endpoint('10.0.0.3:8000', { inFlight: 4 }),
    ];
    expect(addresses(withinLoadBound(pool(6), options))).toEqual(['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000']);
    // Loads 7, 4, 4: bound = ceil(1.25 * 16 / 3) = 7, and 7 + 1 does not fit.
    expect(addresses(withinLoadBound(pool(7), options))).toEqual(['10.0.0.2:8000', '10.0.0.3:8000']);
    // c = 2 tolerates twice the average.
    expect(addresses(withinLoadBound(pool(10), { ...options, loadBound: 2 }))).toEqual(['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000']);
  });

  it('keeps a pod with two requests among idle pods (minBound 3, the default), and without the floor (minBound 1) does not', () => {
    // n = 3, c = 1.25: ceil(1.25 * 3 / 3) = 2, so the bare rule leaves a pod with load 2 out.
    const pool = [endpoint('10.0.0.1:8000', { inFlight: 2 }), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];
    expect(addresses(withinLoadBound(pool, options))).toEqual(['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000']);
    expect(addresses(withinLoadBound(pool, { ...options, minBound: 1 }))).toEqual(['10.0.0.2:8000', '10.0.0.3:8000']);
    // The floor is a floor: a third request on the pod (load 3) is past it, and past ceil(1.25 * 4 / 3) = 2.
    pool[0] = endpoint('10.0.0.1:8000', { inFlight: 3 });
    expect(addresses(withinLoadBound(pool, options))).toEqual(['10.0.0.2:8000', '10.0.0.3:8000']);
  });

  it('defaults to c = 1.25, minBound 3 and a 0.95 KV-cache threshold', () => {
    expect(loadBoundFilter.parameters.parse(undefined)).toEqual(options);
  });

  it("compares EndpointState.load, which does not count this router's finished requests a lagging scrape still shows", () => {
    // The last scrape saw 2 running on the warm pod while this router had those 2 in flight; both have
    // finished since. Beside idle pods, the warm pod is idle too, and stays in even without the floor.
    const lagging = { runningRequests: 2, inFlightAtScrape: 2 };
    const pool = [
      endpoint('10.0.0.1:8000', { inFlight: 0, metrics: lagging }),
      endpoint('10.0.0.2:8000', { inFlight: 0 }),
      endpoint('10.0.0.3:8000', { inFlight: 0 }),
    ];
    expect(pool.map((e) => e.load)).toEqual([0, 0, 0]);
    expect(addresses(withinLoadBound(pool, { ...options, minBound: 1 }))).toEqual(['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000']);
    // Requests another router sent, which the scrape saw beside ours, still count.
    pool[0] = endpoint('10.0.0.1:8000', { inFlight: 0, metrics: { runningRequests: 5, inFlightAtScrape: 2 } });
    expect(pool[0].load).toBe(3);
    expect(addresses(withinLoadBound(pool, options))).toEqual(['10.0.0.2:8000', '10.0.0.3:8000']);
  });

  it('drops endpoints whose fresh KV cache is past the threshold, and never empties the set', () => {
    const full = [
      endpoint('10.0.0.1:8000', { metrics: { kvCacheUsage: 0.99 } }),
      endpoint('10.0.0.2:8000', { metrics: { kvCacheUsage: 0.5 }, inFlight: 1 }),
    ];
    expect(addresses(withinLoadBound(full, options))).toEqual(['10.0.0.2:8000']);
    const allFull = [
      endpoint('10.0.0.1:8000', { metrics: { kvCacheUsage: 0.99 }, inFlight: 2 }),
      endpoint('10.0.0.2:8000', { metrics: { kvCacheUsage: 0.97 }, inFlight: 1 }),
    ];
    expect(addresses(withinLoadBound(allFull, options))).toEqual(['10.0.0.2:8000']);
  });

  it('always keeps the least loaded endpoint, and only endpoints that stay within c times the mean (or minBound) after taking the request', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(50), { minLength: 1, maxLength: 10 }),
        fc.double({ min: 1, max: 3, noNaN: true }),
        fc.integer({ min: 1, max: 4 }),
        (loads, c, minBound) => {
          const pool = loads.map((l, i) => endpoint(`10.0.0.${i + 1}:8000`, { inFlight: l }));
          const kept = withinLoadBound(pool, { loadBound: c, minBound, kvCacheUsageThreshold: 1 });
          expect(kept.map((k) => k.load)).toContain(Math.min(...loads));
          const mean = (loads.reduce((a, b) => a + b, 0) + 1) / loads.length;
          const bound = Math.max(Math.ceil(c * mean - 1e-9), minBound);
          for (const k of kept) expect(k.load + 1 <= bound || k.load === Math.min(...loads)).toBe(true);
          // Nothing within the bound is left out.
          for (const p of pool) if (p.load + 1 <= bound) expect(kept).toContain(p);
        },
      ),
    );
  });

  it('keeps a hot prefix on its warm pod while within the bound, then moves it to a second pod that warms', async () => {
    const scheduler = testScheduler(
      profileConfig([
        { type: 'load-bound-filter', parameters: { loadBound: 1.25 } },
        { type: 'approx-prefix-cache-producer', parameters: { blockSizeChars: 16 }, inProfile: false },
        { type: 'prefix-cache-scorer', weight: 3 },
      ]),
    );
    const hot = request({ prompt: 'The shared system prompt of a hot tenant. '.repeat(8) });
    const inFlight = new Map<string, number>([
      ['10.0.0.1:8000', 0],
      ['10.0.0.2:8000', 4],
      ['10.0.0.3:8000', 4],
    ]);
    const pool = () => [...inFlight].map(([address, n]) => endpoint(address, { inFlight: n }));
    const warm = (await scheduler.schedule(hot, pool())).targets[0]!.address;
    // Beside 4 and 4 in flight, the bound (ceil(1.25 * 9 / 3) = 4) leaves only the idle pod for the first request.
    expect(warm).toBe('10.0.0.1:8000');

    // Within the bound (up to 6 in flight beside 4 and 4), the prefix keeps it on the warm pod.
    for (let k = 1; k <= 6; k++) {
      inFlight.set(warm, k);
      const result = await scheduler.schedule(hot, pool());
      expect(result.targets[0]!.address).toBe(warm);
      expect(result.scores[warm]).toBe(3);
    }
    const diversions = 'kvroute_router_load_bound_diversions_total';
    expect(await metricValue(scheduler.registry, diversions)).toBe(0);

    // Past it, the prefix moves to a second pod, counted as a diversion...
    inFlight.set(warm, 7);
    const moved = await scheduler.schedule(hot, pool());
    const second = moved.targets[0]!.address;
    expect(second).not.toBe(warm);
    expect(moved.scores[warm]).toBeUndefined();
    expect(await metricValue(scheduler.registry, diversions)).toBe(1);

    // ...which is now warm, so the hot prefix stays there while the first pod is past the bound.
    const next = await scheduler.schedule(hot, pool());
    expect(next.targets[0]!.address).toBe(second);
    expect(next.scores[second]).toBe(3);
  });
});
