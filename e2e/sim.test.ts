// Starts the real `kvroute sim` CLI and talks to it as the router and indexer would: HTTP on one
// side, a ZMQ SUB (node zeromq) on the other, checking events against indexer/keys hashes.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import * as zmq from 'zeromq';
import { decodeEventBatch } from '../src/vllm/events/decode.ts';
import { vllmEngineKeys } from '../src/vllm/block-hash.ts';
import type { BlockStoredEvent, EventBatch } from '../src/vllm/events/types.ts';
import { loadSimTokenizer } from '../src/sim/tokenizer.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const NODE = path.join(ROOT, 'node_modules/.bin/node');

function startSim(args: string[]): ChildProcess {
  const child = spawn(NODE, [path.join(ROOT, 'bin/kvroute.js'), 'sim', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', () => {});
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function waitHealthy(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sim on port ${port} never became healthy`);
}

async function post(port: number, route: string, body: unknown): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/** Collects decoded batches from a SUB socket in the background. */
function collect(sub: zmq.Subscriber): { batches: Array<{ topic: string; seq: bigint; batch: EventBatch }>; done: Promise<void> } {
  const batches: Array<{ topic: string; seq: bigint; batch: EventBatch }> = [];
  const done = (async () => {
    try {
      for await (const [topic, seq, payload] of sub) batches.push({ topic: topic!.toString(), seq: seq!.readBigUInt64BE(), batch: decodeEventBatch(payload!) });
    } catch {
      // socket closed
    }
  })();
  return { batches, done };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('kvroute sim (connect mode, the contract command)', () => {
  const HTTP = 8210;
  let child: ChildProcess;
  let sub: zmq.Subscriber;
  let events: ReturnType<typeof collect>;

  beforeAll(async () => {
    sub = new zmq.Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:5720');
    sub.subscribe('kv@');
    events = collect(sub);
    child = startSim(['--port', String(HTTP), '--model', 'M', '--pod-id', 'sim-0', '--block-size', '16', '--hash-seed', '0', '--kv-events-endpoint', 'tcp://127.0.0.1:5720', '--time-scale', '50']);
    await waitHealthy(HTTP);
  }, 30_000);

  afterAll(async () => {
    await stop(child);
    sub.close();
    await events.done;
  });

  it('publishes BlockStored for a token prompt with the hashes indexer/keys computes, on topic kv@sim-0@M', async () => {
    // The SUB may join after the first batch is sent: try fresh prompts until one batch arrives.
    const attempts: number[][] = [];
    const deadline = Date.now() + 10_000;
    while (events.batches.length === 0 && Date.now() < deadline) {
      const prompt = Array.from({ length: 50 }, (_, i) => 1000 + 100 * attempts.length + i);
      attempts.push(prompt);
      await post(HTTP, '/v1/completions', { model: 'M', prompt, max_tokens: 1 });
      await new Promise((r) => setTimeout(r, 100));
    }
    const first = events.batches[0]!;
    expect(first.topic).toBe('kv@sim-0@M');
    const stored = first.batch.events[0] as BlockStoredEvent;
    expect(stored.type).toBe('BlockStored');
    const prompt = attempts.find((p) => p[0] === stored.tokenIds[0])!;
    expect([...stored.blockHashes]).toEqual([...vllmEngineKeys(prompt, { blockSize: 16, hashSeed: '0' })]);
    expect(stored.parentBlockHash).toBeNull();
    expect([...stored.tokenIds]).toEqual(prompt.slice(0, 48));
    expect(stored.medium).toBe('GPU');
  });

  it('answers a repeated prompt with cached tokens and names the pod', async () => {
    const prompt = Array.from({ length: 70 }, (_, i) => 5000 + i);
    const a = await post(HTTP, '/v1/completions', { model: 'M', prompt, max_tokens: 3 });
    expect(a.status).toBe(200);
    expect(a.headers.get('x-inference-pod')).toBe('sim-0');
    expect(a.json.usage).toMatchObject({ prompt_tokens: 70, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 0 } });
    expect(typeof a.json.choices[0].text).toBe('string');
    const b = await post(HTTP, '/v1/completions', { model: 'M', prompt, max_tokens: 3 });
    expect(b.json.usage.prompt_tokens_details.cached_tokens).toBe(64);
  });

  it('tokenizes chat messages through the Qwen3 chat template, as the indexer does', async () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Name three prime numbers, please, and explain why each of them is prime in one sentence.' },
    ];
    const tokenizer = await loadSimTokenizer('M', 'npm:qwen3', { workers: 0 });
    const expected = await tokenizer.tokenize({ messages });
    const a = await post(HTTP, '/v1/chat/completions', { model: 'M', messages, max_tokens: 2 });
    expect(a.status).toBe(200);
    expect(a.json.object).toBe('chat.completion');
    expect(a.json.usage.prompt_tokens).toBe(expected.length);
    const b = await post(HTTP, '/v1/chat/completions', { model: 'M', messages, max_tokens: 2 });
    expect(b.json.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((expected.length - 1) / 16) * 16);
  });

  it('streams SSE chunks ending with data: [DONE]', async () => {
    const res = await fetch(`http://127.0.0.1:${HTTP}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'M', prompt: 'Once upon a time', max_tokens: 4, stream: true, stream_options: { include_usage: true } }),
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const text = await res.text();
    const datas = text.split('\n\n').filter(Boolean).map((l) => l.replace(/^data: /, ''));
    expect(datas.at(-1)).toBe('[DONE]');
    const chunks = datas.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.filter((c) => c.choices.length === 1)).toHaveLength(4);
    expect(chunks.at(-1).usage.completion_tokens).toBe(4);
  });

  it('rejects bad requests with OpenAI error bodies', async () => {
    const missing = await post(HTTP, '/v1/completions', { model: 'M' });
    expect(missing.status).toBe(400);
    expect(missing.json.error).toMatchObject({ type: 'BadRequestError', param: 'prompt', code: 400 });
    const unknown = await post(HTTP, '/v1/completions', { model: 'nope', prompt: 'x' });
    expect(unknown.status).toBe(404);
    const tooLong = await post(HTTP, '/v1/completions', { model: 'M', prompt: 'x', max_tokens: 10_000_000 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.error.message).toMatch(/maximum context length/);
  });

  it('clears the cache on /reset_prefix_cache and publishes AllBlocksCleared with the next step', async () => {
    const res = await fetch(`http://127.0.0.1:${HTTP}/reset_prefix_cache`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true });
    const again = await post(HTTP, '/v1/completions', { model: 'M', prompt: Array.from({ length: 70 }, (_, i) => 5000 + i), max_tokens: 1 });
    expect(again.json.usage.prompt_tokens_details.cached_tokens).toBe(0);
    await until(() => events.batches.some((b) => b.batch.events.some((e) => e.type === 'AllBlocksCleared')), 'AllBlocksCleared');
    const seqs = events.batches.map((b) => b.seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]! - seqs[i - 1]!).toBe(1n);
  });

  it('exposes vLLM metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${HTTP}/metrics`)).text();
    expect(text).toMatch(/vllm:prefix_cache_hits_total\{model_name="M",engine="0"\} [1-9]/);
    expect(text).toMatch(/vllm:time_to_first_token_seconds_count\{model_name="M",engine="0"\} [1-9]/);
    expect(text).toContain('vllm:cache_config_info{block_size="16"');
    // The label must name the algorithm the pod really hashes with, as vLLM's CacheConfig does.
    expect(text).toMatch(/vllm:cache_config_info\{[^}]*prefix_caching_hash_algo="sha256_cbor"/);
    expect(text).toMatch(/kvroute_sim_kv_event_batches_total\{outcome="published"\} [1-9]/);
  });
});

describe('kvroute sim --replicas with a bind endpoint', () => {
  const BASE = 8220;
  let child: ChildProcess;

  beforeAll(async () => {
    child = startSim(['--replicas', '2', '--base-port', String(BASE), '--model', 'M', '--block-size', '16', '--kv-events-endpoint', 'tcp://*:5730', '--kv-events-encoding', 'array', '--kv-events-flush-on-reset', '--time-scale', '50']);
    await waitHealthy(BASE);
    await waitHealthy(BASE + 1);
  }, 30_000);

  afterAll(async () => {
    await stop(child);
  });

  it('runs distinct pods on consecutive ports, each binding its own event port', async () => {
    for (const i of [0, 1]) {
      const sub = new zmq.Subscriber({ linger: 0 });
      sub.connect(`tcp://127.0.0.1:${5730 + i}`);
      sub.subscribe();
      const events = collect(sub);
      // The SUB may join after the first batch is sent, and a repeated prompt is cached (no new
      // BlockStored), so every attempt sends a prompt the pod has not seen.
      const deadline = Date.now() + 10_000;
      for (let attempt = 0; events.batches.length === 0 && Date.now() < deadline; attempt++) {
        const prompt = Array.from({ length: 40 }, (_, k) => 9000 + 1000 * i + 50 * attempt + k);
        const r = await post(BASE + i, '/v1/completions', { model: 'M', prompt, max_tokens: 1 });
        expect(r.headers.get('x-inference-pod')).toBe(`sim-${i}`);
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(events.batches[0]!.topic).toBe(`kv@sim-${i}@M`);
      expect(events.batches[0]!.batch.events[0]!.type).toBe('BlockStored');
      // --kv-events-flush-on-reset: an idle pod's reset is published at once.
      expect((await post(BASE + i, '/reset_prefix_cache', {})).json).toEqual({ success: true });
      await until(() => events.batches.some((b) => b.batch.events.some((e) => e.type === 'AllBlocksCleared')), 'AllBlocksCleared at reset time');
      sub.close();
      await events.done;
    }
  });
});

describe('kvroute sim --replicas with a topic template', () => {
  const BASE = 8506;
  const EVENTS = 'tcp://127.0.0.1:5750';
  let child: ChildProcess;
  let sub: zmq.Subscriber;
  let events: ReturnType<typeof collect>;

  beforeAll(async () => {
    sub = new zmq.Subscriber({ linger: 0 });
    await sub.bind(EVENTS);
    sub.subscribe();
    events = collect(sub);
    child = startSim(['--replicas', '2', '--base-port', String(BASE), '--model', 'M', '--kv-events-endpoint', EVENTS, '--kv-events-topic', 'kv@{pod}@{model}-pool', '--time-scale', '50']);
    await waitHealthy(BASE);
    await waitHealthy(BASE + 1);
  }, 30_000);

  afterAll(async () => {
    await stop(child);
    sub.close();
    await events.done;
  });

  it('gives each replica its own topic and its own sequence from 0', async () => {
    for (const i of [0, 1]) {
      const topic = `kv@sim-${i}@M-pool`;
      const deadline = Date.now() + 10_000;
      for (let attempt = 0; !events.batches.some((b) => b.topic === topic) && Date.now() < deadline; attempt++) {
        const prompt = Array.from({ length: 40 }, (_, k) => 20_000 + 1000 * i + 50 * attempt + k);
        expect((await post(BASE + i, '/v1/completions', { model: 'M', prompt, max_tokens: 1 })).status).toBe(200);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    const topics = new Set(events.batches.map((b) => b.topic));
    expect([...topics].sort()).toEqual(['kv@sim-0@M-pool', 'kv@sim-1@M-pool']);
    for (const topic of topics) {
      const seqs = events.batches.filter((b) => b.topic === topic).map((b) => b.seq);
      for (let k = 1; k < seqs.length; k++) expect(seqs[k]! - seqs[k - 1]!).toBe(1n);
    }
  });
});

describe('kvroute sim flag checks', () => {
  it('refuses a fixed --kv-events-topic shared by several replicas, saying how to fix it', async () => {
    const child = spawn(NODE, [path.join(ROOT, 'bin/kvroute.js'), 'sim', '--replicas', '2', '--base-port', '8508', '--model', 'M', '--kv-events-endpoint', 'tcp://127.0.0.1:5751', '--kv-events-topic', 'kv@shared@M'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/--kv-events-topic "kv@shared@M" would be shared by all 2 replicas.*\{pod\}/);
  }, 30_000);
});
