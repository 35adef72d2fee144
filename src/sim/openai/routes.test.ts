import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { silentLogger } from '../../common/log.ts';
import { parseSimPodConfig } from '../config.ts';
import { startSimPod, type SimPod } from '../pod.ts';
import { loadSimTokenizer, type SimTokenizer } from '../tokenizer.ts';

const MODEL = 'm';

async function request(port: number, method: string, route: string, body?: string) {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, { method, headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
}

/** A pod on a kernel-picked port (read it from `pod.port`). */
function startPod(podId: string, tokenizer: SimTokenizer, extra: Record<string, unknown> = {}): Promise<SimPod> {
  return startSimPod(parseSimPodConfig({ podId, model: MODEL, port: 0, timeScale: 1000, ...extra }), { tokenizer, log: silentLogger });
}

describe('sim OpenAI errors', () => {
  let tokenizer: SimTokenizer;
  let pod: SimPod;

  beforeAll(async () => {
    tokenizer = await loadSimTokenizer(MODEL, 'npm:qwen3', { workers: 0 });
    pod = await startPod('p-errors', tokenizer);
  });
  afterAll(async () => {
    await pod.close();
    await tokenizer.close();
  });

  const openAiShape = (status: number, type: string) => ({ error: { message: expect.any(String), type, param: null, code: status } });

  it('answers a body that is not JSON with a 400 OpenAI error naming the pod', async () => {
    const r = await request(pod.port, 'POST', '/v1/completions', '{"model": ');
    expect(r.status).toBe(400);
    expect(r.json).toEqual(openAiShape(400, 'BadRequestError'));
    expect(r.json.error.message).toMatch(/not valid JSON/);
    expect(r.headers.get('x-inference-pod')).toBe('p-errors');
  });

  it('answers an empty body with a 400 OpenAI error', async () => {
    const r = await request(pod.port, 'POST', '/v1/chat/completions', '');
    expect(r.status).toBe(400);
    expect(r.json).toEqual(openAiShape(400, 'BadRequestError'));
    expect(r.json.error.message).toMatch(/empty/);
  });

  it('answers an unknown route with a 404 OpenAI error typed as vLLM types it', async () => {
    const r = await request(pod.port, 'GET', '/v1/nothing-here');
    expect(r.status).toBe(404);
    expect(r.json).toEqual(openAiShape(404, 'Not Found'));
  });

  it('answers a wrong method with a 405 OpenAI error', async () => {
    const r = await request(pod.port, 'GET', '/v1/completions');
    expect(r.status).toBe(405);
    expect(r.json).toEqual(openAiShape(405, 'Method Not Allowed'));
  });

  it('answers a JSON body that is not an object with a 400 OpenAI error', async () => {
    const r = await request(pod.port, 'POST', '/v1/completions', '[1, 2]');
    expect(r.status).toBe(400);
    expect(r.json).toEqual(openAiShape(400, 'BadRequestError'));
  });
});

describe('sim tokenization in worker threads', () => {
  // How much a long cold tokenization delays the event loop, with and without workers, is measured by
  // `npm run bench:sim` (a timing, so not a test); this pins that the worker path is the default and
  // gives the same ids as tokenizing in-thread.
  it('tokenizes in a worker by default, to the same token ids as on the event loop', async () => {
    const inWorker = await loadSimTokenizer(MODEL, 'npm:qwen3');
    const inThread = await loadSimTokenizer(MODEL, 'npm:qwen3', { workers: 0 });
    try {
      expect(inWorker.source).toBe('npm:qwen3 (1 worker)');
      expect(inThread.source).toBe('npm:qwen3 (event loop)');
      const prompt = Array.from({ length: 400 }, (_, i) => `word${i} lorem${(i * 7919) % 1000}`).join(' ');
      const messages = [{ role: 'user', content: prompt }];
      expect(await inWorker.tokenize({ prompt })).toEqual(await inThread.tokenize({ prompt }));
      expect(await inWorker.tokenize({ messages })).toEqual(await inThread.tokenize({ messages }));
    } finally {
      await inWorker.close();
      await inThread.close();
    }
  });
});
