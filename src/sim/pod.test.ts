import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { silentLogger } from '../common/log.ts';
import { parseSimPodConfig } from './config.ts';
import { startSimPod, type SimPod } from './pod.ts';
import { loadSimTokenizer, type SimTokenizer } from './tokenizer.ts';

let tokenizer: SimTokenizer;
beforeAll(async () => {
  tokenizer = await loadSimTokenizer('m', 'npm:qwen3', { workers: 0 });
});
afterAll(async () => {
  await tokenizer.close();
});

async function post(port: number, route: string, body: unknown) {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
}

async function pod(port: number, extra: Record<string, unknown>): Promise<SimPod> {
  return startSimPod(parseSimPodConfig({ podId: `p${port}`, model: 'm', port, timeScale: 1000, ...extra }), {
    tokenizer,
    log: silentLogger,
  });
}

describe('simulated pod', () => {
  const pods: SimPod[] = [];
  afterAll(async () => {
    for (const p of pods) await p.close();
  });

  it('answers injected failures with an OpenAI-style 500', async () => {
    const p = await pod(8250, { failureRate: 1 });
    pods.push(p);
    const r = await post(8250, '/v1/completions', { model: 'm', prompt: 'hello' });
    expect(r.status).toBe(500);
    expect(r.json.error).toMatchObject({ type: 'InternalServerError', code: 500 });
    expect(r.headers.get('x-inference-pod')).toBe('p8250');
  });

  it('reports 503 on /health until the slow start has passed', async () => {
    const p = await pod(8251, { startupDelayMs: 300 });
    pods.push(p);
    expect((await fetch('http://127.0.0.1:8251/health')).status).toBe(503);
    const deadline = Date.now() + 5000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) {
      status = (await fetch('http://127.0.0.1:8251/health')).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(200);
  });

  it('serves LoRA adapters as models with their own cache and lists them under /v1/models', async () => {
    const p = await pod(8252, { loraModules: [{ name: 'ad', path: '/adapters/ad' }] });
    pods.push(p);
    const models = (await (await fetch('http://127.0.0.1:8252/v1/models')).json()) as any;
    expect(models.data.map((m: any) => [m.id, m.parent])).toEqual([
      ['m', null],
      ['ad', 'm'],
    ]);
    const prompt = Array.from({ length: 40 }, (_, i) => 300 + i);
    await post(8252, '/v1/completions', { model: 'm', prompt, max_tokens: 1 });
    const viaLora = await post(8252, '/v1/completions', { model: 'ad', prompt, max_tokens: 1 });
    expect(viaLora.json.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const again = await post(8252, '/v1/completions', { model: 'ad', prompt, max_tokens: 1 });
    expect(again.json.usage.prompt_tokens_details.cached_tokens).toBe(32);
  });

  it('generates the same text for the same seed', async () => {
    const p = await pod(8253, {});
    pods.push(p);
    const a = await post(8253, '/v1/completions', { model: 'm', prompt: 'x', max_tokens: 8, seed: 7 });
    const b = await post(8253, '/v1/completions', { model: 'm', prompt: 'y', max_tokens: 8, seed: 7 });
    expect(a.json.choices[0].text).toBe(b.json.choices[0].text);
    expect(a.json.usage.completion_tokens).toBe(8);
  });

  it('resets the prefix cache only when idle unless running requests are reset too', async () => {
    const p = await pod(8254, { timeScale: 1 });
    pods.push(p);
    const long = post(8254, '/v1/completions', { model: 'm', prompt: Array.from({ length: 64 }, (_, i) => i + 1), max_tokens: 2000 });
    const deadline = Date.now() + 5000;
    while (p.engine.scheduler.running.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect((await post(8254, '/reset_prefix_cache', {})).json).toEqual({ success: false });
    expect((await post(8254, '/reset_prefix_cache?reset_running_requests=true', {})).json).toEqual({ success: true });
    p.engine.abort(p.engine.scheduler.running[0] ?? p.engine.scheduler.waiting[0]!);
    void long.catch(() => {});
  });

  it('frees the blocks of a request whose client disconnects mid-stream', async () => {
    const p = await pod(8255, { timeScale: 1 });
    pods.push(p);
    const controller = new AbortController();
    const res = await fetch('http://127.0.0.1:8255/v1/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', prompt: Array.from({ length: 64 }, (_, i) => i + 1), max_tokens: 5000, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    expect(p.engine.scheduler.kv.usage()).toBeGreaterThan(0);
    controller.abort();
    const deadline = Date.now() + 5000;
    while (p.engine.pendingRequests > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(p.engine.pendingRequests).toBe(0);
    expect(p.engine.scheduler.kv.usage()).toBe(0);
  });
});
