// The router's metrics scraping against the simulator's real /metrics page (prom-client's exposition
// of vLLM's names and labels): the parser reads the queue, KV usage and LoRA state the sim's engine
// holds, and the endpoint set's scrape loop delivers the same numbers to the scheduler.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { silentLogger } from '../src/common/log.ts';
import { EndpointSet } from '../src/router/endpoints/endpoint-set.ts';
import { parseEngineMetrics } from '../src/router/endpoints/prom-text.ts';
import { parseSimPodConfig } from '../src/sim/config.ts';
import { startSimPod, type SimPod } from '../src/sim/pod.ts';
import { loadSimTokenizer, type SimTokenizer } from '../src/sim/tokenizer.ts';
import { waitFor } from './kube/cluster.ts';

describe('router metrics scraping against the simulator', () => {
  let tokenizer: SimTokenizer;
  let pod: SimPod;
  const aborts = new AbortController();
  const pending: Promise<unknown>[] = [];

  beforeAll(async () => {
    tokenizer = await loadSimTokenizer('m', 'npm:qwen3', { workers: 0 });
    // One sequence at a time, so the second and third requests wait while the first decodes.
    pod = await startSimPod(
      parseSimPodConfig({
        podId: 'sim-metrics',
        model: 'm',
        port: 0,
        maxNumSeqs: 1,
        loraModules: [{ name: 'ad', path: '/adapters/ad' }],
        maxLoras: 2,
      }),
      { tokenizer, log: silentLogger },
    );
    const send = (model: string) =>
      fetch(`http://127.0.0.1:${pod.port}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt: Array.from({ length: 64 }, (_, i) => 100 + i), max_tokens: 20_000 }),
        signal: aborts.signal,
      }).then(
        (r) => r.text(),
        () => undefined,
      );
    pending.push(send('ad'));
    await waitFor(() => pod.engine.scheduler.running.length === 1, 'the LoRA request running');
    pending.push(send('m'), send('m'));
    await waitFor(() => pod.engine.scheduler.waiting.length === 2, 'two requests waiting');
  }, 60_000);

  afterAll(async () => {
    aborts.abort();
    await Promise.all(pending);
    await pod?.close();
    await tokenizer?.close();
  });

  it("parses the sim's exposition into the engine's queue, KV usage and LoRA state, with no malformed line", async () => {
    // KV usage grows while the running request decodes: bracket the scrape with two readings.
    const usageBefore = pod.engine.scheduler.kv.usage();
    const text = await (await fetch(`http://127.0.0.1:${pod.port}/metrics`)).text();
    const usageAfter = pod.engine.scheduler.kv.usage();
    expect(text).toContain('vllm:lora_requests_info{');
    const r = parseEngineMetrics(text);
    expect(r.malformedLines).toBe(0);
    expect(r.metrics).toEqual({
      waitingRequests: 2,
      runningRequests: 1,
      kvCacheUsage: expect.any(Number),
      runningLoras: ['ad'],
      waitingLoras: [],
      maxLoras: 2,
    });
    expect(r.metrics!.kvCacheUsage).toBeGreaterThan(0);
    expect(r.metrics!.kvCacheUsage).toBeGreaterThanOrEqual(usageBefore);
    expect(r.metrics!.kvCacheUsage).toBeLessThanOrEqual(usageAfter);
  });

  it('delivers the scraped numbers to the endpoint snapshot within a few scrape intervals', async () => {
    const set = new EndpointSet({ scrape: { intervalMs: 50, stalenessMs: 2000 }, log: silentLogger, registry: new Registry() });
    try {
      set.replace([{ address: `127.0.0.1:${pod.port}`, ip: '127.0.0.1', port: pod.port, name: 'sim-metrics', namespace: '', labels: {} }]);
      const m = await waitFor(() => set.snapshot()[0]?.metrics ?? undefined, 'a scrape of the sim', 5000, 10);
      expect(m).toMatchObject({ waitingRequests: 2, runningRequests: 1, runningLoras: ['ad'], maxLoras: 2 });
      expect(Date.now() - m.scrapedAtMs).toBeLessThan(2000);
    } finally {
      set.close();
    }
  });
});
