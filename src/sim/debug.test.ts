import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { silentLogger } from '../common/log.ts';
import { parseSimPodConfig } from './config.ts';
import { startSimPod, type SimPod } from './pod.ts';
import { loadSimTokenizer, type SimTokenizer } from './tokenizer.ts';

let tokenizer: SimTokenizer;
let pod: SimPod;
let base: string;

beforeAll(async () => {
  tokenizer = await loadSimTokenizer('m', 'npm:qwen3', { workers: 0 });
  pod = await startSimPod(parseSimPodConfig({ podId: 'dbg', model: 'm', port: 0, timeScale: 1000, debugEndpoints: true }), {
    tokenizer,
    log: silentLogger,
  });
  base = `http://127.0.0.1:${pod.port}`;
});
afterAll(async () => {
  await pod.close();
  await tokenizer.close();
});

const post = async (route: string, body: unknown, timeoutMs = 5_000) => {
  const res = await fetch(`${base}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

const prompt = Array.from({ length: 40 }, (_, i) => 500 + i);

describe('simulated pod debug endpoints', () => {
  it('lists the blocks its prefix cache holds and the resident prefix of a prompt', async () => {
    expect((await (await fetch(`${base}/debug/kv-cache`)).json()) as unknown).toMatchObject({ pod: 'dbg', blocks: 0, hashes: [] });
    expect((await post('/v1/completions', { model: 'm', prompt, max_tokens: 1 })).status).toBe(200);
    const cache = (await (await fetch(`${base}/debug/kv-cache`)).json()) as { blocks: number; hashes: string[] };
    expect(cache.blocks).toBe(2); // 40 prompt tokens + 1 generated: two full 16-token blocks
    expect(cache.hashes).toHaveLength(2);
    expect(cache.hashes.every((h) => /^[0-9a-f]{64}$/.test(h))).toBe(true);
    expect((await post('/debug/kv-cache/prefix', { tokens: prompt })).json).toEqual({ pod: 'dbg', blocks: 2 });
    expect((await post('/debug/kv-cache/prefix', { tokens: [1, ...prompt] })).json).toEqual({ pod: 'dbg', blocks: 0 });
  });

  it('hangs the API and /metrics while hung, and drops the held connections when the fault is lifted', async () => {
    expect((await post('/debug/faults', { hang: true })).json).toMatchObject({ hang: true });
    const held = fetch(`${base}/metrics`).then(
      (r) => `answered ${r.status}`,
      () => 'connection dropped',
    );
    await expect(post('/v1/completions', { model: 'm', prompt, max_tokens: 1 }, 300)).rejects.toThrow(/timeout|aborted/i);
    expect((await post('/debug/faults', { hang: false })).json).toMatchObject({ hang: false });
    expect(await held).toBe('connection dropped');
    expect((await post('/v1/completions', { model: 'm', prompt, max_tokens: 1 })).status).toBe(200);
  });

  it('stalls only /metrics under metricsStall', async () => {
    await post('/debug/faults', { metricsStall: true });
    await expect(fetch(`${base}/metrics`, { signal: AbortSignal.timeout(300) })).rejects.toThrow();
    expect((await post('/v1/completions', { model: 'm', prompt, max_tokens: 1 })).status).toBe(200);
    await post('/debug/faults', { metricsStall: false });
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
  });

  it('rejects an unknown fault naming it, and publisher faults on a pod that publishes no events', async () => {
    const unknown = await post('/debug/faults', { hangs: true });
    expect(unknown.status).toBe(400);
    expect(String(unknown.json.error)).toMatch(/hangs/);
    const noPublisher = await post('/debug/faults', { dropEventBatchRate: 0.5 });
    expect(noPublisher.status).toBe(409);
    expect(String(noPublisher.json.error)).toMatch(/--kv-events-endpoint/);
  });
});

describe('simulated pod without --debug-endpoints', () => {
  it('serves no debug route', async () => {
    const plain = await startSimPod(parseSimPodConfig({ podId: 'plain', model: 'm', port: 0, timeScale: 1000 }), {
      tokenizer,
      log: silentLogger,
    });
    try {
      expect((await fetch(`http://127.0.0.1:${plain.port}/debug/kv-cache`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${plain.port}/debug/faults`, { method: 'POST', body: '{}' })).status).toBe(404);
    } finally {
      await plain.close();
    }
  });
});
