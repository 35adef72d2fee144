// Starts the real `kvroute sim` CLI and talks to it as the router and indexer would: HTTP on one
// side, a ZMQ SUB on the other (node zeromq, and a pyzmq SUB in its own process), checking events
// against the block hashes src/vllm computes.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import * as zmq from 'zeromq';
import { decodeEventBatch } from '../src/vllm/events/decode.ts';
import type { BlockStoredEvent, EventBatch } from '../src/vllm/events/types.ts';
import { loadSimTokenizer } from '../src/sim/tokenizer.ts';
import { portOf, spawnKvroute, type KvrouteProcess, type LogRecord } from '../test/support/kvroute.ts';
import { KvSubscriberProcess } from '../test/support/kv-subscriber.ts';
import { repoRoot } from '../test/support/repo-root.ts';
import { until } from '../test/support/until.ts';

/** A block-hash vector vLLM 0.33 itself computed: the sim's events must carry exactly these keys. */
const GOLDEN = (
  JSON.parse(fs.readFileSync(path.join(repoRoot, 'src/vllm/testdata/vllm-block-hashes.json'), 'utf8')) as {
    vectors: Array<{ name: string; tokens: number[]; uint64: string[] }>;
  }
).vectors.find((v) => v.name === "plain seed='0' bs=16")!;

const POD_READY = 'simulated vllm pod ready';

/** Starts `kvroute sim` on port 0 with one pod, resolving once it is healthy. */
async function startSim(args: string[]): Promise<{ sim: KvrouteProcess; port: number }> {
  const sim = await spawnKvroute(['sim', '--port', '0', ...args], {
    readyLine: POD_READY,
    readyUrl: (r) => `http://127.0.0.1:${portOf(r, 'port')}/health`,
  });
  return { sim, port: portOf(sim.ready, 'port') };
}

/** The ready record of each replica of a `kvroute sim --replicas n`, in replica order. */
async function replicaRecords(sim: KvrouteProcess, n: number): Promise<LogRecord[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => sim.waitForLog((r) => r.msg === POD_READY && r.pod === `sim-${i}`)));
}

/** The TCP port of a bound ZMQ endpoint as a pod logs it (tcp://0.0.0.0:PORT). */
function zmqPort(endpoint: unknown): number {
  const m = /:(\d+)$/.exec(String(endpoint));
  if (!m) throw new Error(`not a bound tcp endpoint: ${String(endpoint)}`);
  return Number(m[1]);
}

async function post(port: number, route: string, body: unknown): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/** Collects decoded batches from a SUB socket in the background. */
function collect(sub: zmq.Subscriber): { batches: Array<{ topic: string; seq: bigint; batch: EventBatch }>; done: Promise<void> } {
  const batches: Array<{ topic: string; seq: bigint; batch: EventBatch }> = [];
  const done = (async () => {
    try {
      for await (const [topic, seq, payload] of sub)
        batches.push({ topic: topic!.toString(), seq: seq!.readBigUInt64BE(), batch: decodeEventBatch(payload!) });
    } catch {
      // socket closed
    }
  })();
  return { batches, done };
}

const hasCleared = (batches: Array<{ batch: EventBatch }>) =>
  batches.some((b) => b.batch.events.some((e) => e.type === 'AllBlocksCleared'));

describe('kvroute sim (connect mode, the contract command)', () => {
  let sim: KvrouteProcess;
  let http: number;
  let sub: zmq.Subscriber;
  let events: ReturnType<typeof collect>;

  beforeAll(async () => {
    sub = new zmq.Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:0');
    sub.subscribe('kv@');
    events = collect(sub);
    ({ sim, port: http } = await startSim([
      '--model',
      'M',
      '--pod-id',
      'sim-0',
      '--block-size',
      '16',
      '--hash-seed',
      '0',
      '--kv-events-endpoint',
      sub.lastEndpoint!,
      '--time-scale',
      '50',
    ]));
  }, 60_000);

  afterAll(async () => {
    await sim?.stop();
    sub.close();
    await events.done;
  });

  it('publishes its first batch, sequence 0, as BlockStored with the block hashes vLLM computes, on topic kv@sim-0@M', async () => {
    const prompt = GOLDEN.tokens;
    expect((await post(http, '/v1/completions', { model: 'M', prompt, max_tokens: 1 })).status).toBe(200);
    const first = await until(() => events.batches[0], { message: 'the first KV-event batch' });
    expect(first.seq).toBe(0n);
    expect(first.topic).toBe('kv@sim-0@M');
    const stored = first.batch.events[0] as BlockStoredEvent;
    expect(stored.type).toBe('BlockStored');
    expect([...stored.blockHashes].map(String)).toEqual(GOLDEN.uint64);
    expect(stored.parentBlockHash).toBeNull();
    expect([...stored.tokenIds]).toEqual(prompt.slice(0, 16 * GOLDEN.uint64.length));
    expect(stored.medium).toBe('GPU');
  });

  it('answers a repeated prompt with cached tokens and names the pod', async () => {
    const prompt = Array.from({ length: 70 }, (_, i) => 5000 + i);
    const a = await post(http, '/v1/completions', { model: 'M', prompt, max_tokens: 3 });
    expect(a.status).toBe(200);
    expect(a.headers.get('x-inference-pod')).toBe('sim-0');
    expect(a.json.usage).toMatchObject({ prompt_tokens: 70, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 0 } });
    expect(typeof a.json.choices[0].text).toBe('string');
    const b = await post(http, '/v1/completions', { model: 'M', prompt, max_tokens: 3 });
    expect(b.json.usage.prompt_tokens_details.cached_tokens).toBe(64);
  });

  it('tokenizes chat messages through the Qwen3 chat template, as the indexer does', async () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Name three prime numbers, please, and explain why each of them is prime in one sentence.' },
    ];
    const tokenizer = await loadSimTokenizer('M', 'npm:qwen3', { workers: 0 });
    const expected = await tokenizer.tokenize({ messages });
    const a = await post(http, '/v1/chat/completions', { model: 'M', messages, max_tokens: 2 });
    expect(a.status).toBe(200);
    expect(a.json.object).toBe('chat.completion');
    expect(a.json.usage.prompt_tokens).toBe(expected.length);
    const b = await post(http, '/v1/chat/completions', { model: 'M', messages, max_tokens: 2 });
    expect(b.json.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((expected.length - 1) / 16) * 16);
  });

  it('streams SSE chunks ending with data: [DONE]', async () => {
    const res = await fetch(`http://127.0.0.1:${http}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'M',
        prompt: 'Once upon a time',
        max_tokens: 4,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const text = await res.text();
    const datas = text
      .split('\n\n')
      .filter(Boolean)
      .map((l) => l.replace(/^data: /, ''));
    expect(datas.at(-1)).toBe('[DONE]');
    const chunks = datas.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.filter((c) => c.choices.length === 1)).toHaveLength(4);
    expect(chunks.at(-1).usage.completion_tokens).toBe(4);
  });

  it('rejects bad requests with OpenAI error bodies', async () => {
    const missing = await post(http, '/v1/completions', { model: 'M' });
    expect(missing.status).toBe(400);
    expect(missing.json.error).toMatchObject({ type: 'BadRequestError', param: 'prompt', code: 400 });
    const unknown = await post(http, '/v1/completions', { model: 'nope', prompt: 'x' });
    expect(unknown.status).toBe(404);
    const tooLong = await post(http, '/v1/completions', { model: 'M', prompt: 'x', max_tokens: 10_000_000 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.error.message).toMatch(/maximum context length/);
  });

  it('clears the cache on /reset_prefix_cache and publishes AllBlocksCleared with the next step', async () => {
    const res = await fetch(`http://127.0.0.1:${http}/reset_prefix_cache`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true });
    const again = await post(http, '/v1/completions', {
      model: 'M',
      prompt: Array.from({ length: 70 }, (_, i) => 5000 + i),
      max_tokens: 1,
    });
    expect(again.json.usage.prompt_tokens_details.cached_tokens).toBe(0);
    await until(() => hasCleared(events.batches), { message: 'AllBlocksCleared' });
    // Every batch arrived, in order, from sequence 0.
    expect(events.batches.map((b) => b.seq)).toEqual(events.batches.map((_, i) => BigInt(i)));
  });

  it('exposes vLLM metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    expect(text).toMatch(/vllm:prefix_cache_hits_total\{model_name="M",engine="0"\} [1-9]/);
    expect(text).toMatch(/vllm:time_to_first_token_seconds_count\{model_name="M",engine="0"\} [1-9]/);
    expect(text).toContain('vllm:cache_config_info{block_size="16"');
    // The label must name the algorithm the pod really hashes with, as vLLM's CacheConfig does.
    expect(text).toMatch(/vllm:cache_config_info\{[^}]*prefix_caching_hash_algo="sha256_cbor"/);
    expect(text).toMatch(/kvroute_sim_kv_event_batches_total\{outcome="published"\} [1-9]/);
  });
});

describe('kvroute sim (connect mode) publishing to a pyzmq SUB that bound first', () => {
  let subscriber: KvSubscriberProcess | undefined;
  let sim: KvrouteProcess | undefined;

  afterAll(async () => {
    await sim?.stop();
    await subscriber?.stop();
  });

  it('delivers batch 0 to a SUB that subscribes only after the batch was published', async () => {
    // The SUB binds and subscribes, then leaves its socket alone until after the sim served a request:
    // libzmq sends a bound SUB's subscription to a connecting PUB only once the SUB's thread calls
    // into the socket again, here the first recv.
    subscriber = await KvSubscriberProcess.start({ bind: 'tcp://127.0.0.1:0', topic: 'kv@' });
    let port: number;
    ({ sim, port } = await startSim([
      '--model',
      'M',
      '--pod-id',
      'sim-py',
      '--block-size',
      '16',
      '--hash-seed',
      '0',
      '--kv-events-endpoint',
      subscriber.endpoint,
      '--time-scale',
      '50',
    ]));
    const prompt = GOLDEN.tokens;
    expect((await post(port, '/v1/completions', { model: 'M', prompt, max_tokens: 1 })).status).toBe(200);

    const first = await subscriber.receive(10_000);
    expect({ topic: first.topic, seq: first.seq }).toEqual({ topic: 'kv@sim-py@M', seq: 0 });
    const stored = decodeEventBatch(first.payload).events[0] as BlockStoredEvent;
    expect(stored.type).toBe('BlockStored');
    expect([...stored.blockHashes].map(String)).toEqual(GOLDEN.uint64);
    // Later batches follow in order.
    expect((await post(port, '/v1/completions', { model: 'M', prompt: prompt.map((t) => t + 100), max_tokens: 1 })).status).toBe(200);
    expect((await subscriber.receive(10_000)).seq).toBe(1);
  }, 90_000);
});

describe('kvroute sim --replicas with a bind endpoint', () => {
  let sim: KvrouteProcess;
  let pods: LogRecord[];

  beforeAll(async () => {
    sim = await spawnKvroute(
      [
        'sim',
        '--replicas',
        '2',
        '--base-port',
        '0',
        '--model',
        'M',
        '--block-size',
        '16',
        '--kv-events-endpoint',
        'tcp://*:0',
        '--kv-events-encoding',
        'array',
        '--kv-events-flush-on-reset',
        '--time-scale',
        '50',
      ],
      { readyLine: (r) => r.msg === POD_READY && r.pod === 'sim-1' },
    );
    pods = await replicaRecords(sim, 2);
  }, 60_000);

  afterAll(async () => {
    await sim.stop();
  });

  it('runs distinct pods on their own ports, each binding its own event port', async () => {
    expect(new Set(pods.map((p) => portOf(p, 'port'))).size).toBe(2);
    expect(new Set(pods.map((p) => zmqPort(p.kvEvents))).size).toBe(2);
    for (const [i, pod] of pods.entries()) {
      const http = portOf(pod, 'port');
      const sub = new zmq.Subscriber({ linger: 0 });
      sub.connect(`tcp://127.0.0.1:${zmqPort(pod.kvEvents)}`);
      sub.subscribe();
      const events = collect(sub);
      // A SUB that connects to a bound PUB joins when it joins (vLLM's bind mode holds nothing for
      // it), and a repeated prompt is cached (no new BlockStored): fresh prompts until one arrives.
      let attempt = 0;
      await until(
        async () => {
          const prompt = Array.from({ length: 40 }, (_, k) => 9000 + 1000 * i + 50 * attempt++ + k);
          const r = await post(http, '/v1/completions', { model: 'M', prompt, max_tokens: 1 });
          expect(r.headers.get('x-inference-pod')).toBe(`sim-${i}`);
          return events.batches.length > 0;
        },
        { message: `a batch from sim-${i}`, intervalMs: 100 },
      );
      expect(events.batches[0]!.topic).toBe(`kv@sim-${i}@M`);
      expect(events.batches[0]!.batch.events[0]!.type).toBe('BlockStored');
      // --kv-events-flush-on-reset: an idle pod's reset is published at once.
      expect((await post(http, '/reset_prefix_cache', {})).json).toEqual({ success: true });
      await until(() => hasCleared(events.batches), { message: `AllBlocksCleared from sim-${i} at reset time` });
      sub.close();
      await events.done;
    }
  });
});

describe('kvroute sim --replicas with a topic template', () => {
  let sim: KvrouteProcess;
  let pods: LogRecord[];
  let sub: zmq.Subscriber;
  let events: ReturnType<typeof collect>;

  beforeAll(async () => {
    sub = new zmq.Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:0');
    sub.subscribe();
    events = collect(sub);
    sim = await spawnKvroute(
      [
        'sim',
        '--replicas',
        '2',
        '--base-port',
        '0',
        '--model',
        'M',
        '--kv-events-endpoint',
        sub.lastEndpoint!,
        '--kv-events-topic',
        'kv@{pod}@{model}-pool',
        '--time-scale',
        '50',
      ],
      { readyLine: (r) => r.msg === POD_READY && r.pod === 'sim-1' },
    );
    pods = await replicaRecords(sim, 2);
  }, 60_000);

  afterAll(async () => {
    await sim.stop();
    sub.close();
    await events.done;
  });

  it('gives each replica its own topic and its own sequence from 0', async () => {
    for (const [i, pod] of pods.entries()) {
      const prompt = Array.from({ length: 40 }, (_, k) => 20_000 + 1000 * i + k);
      expect((await post(portOf(pod, 'port'), '/v1/completions', { model: 'M', prompt, max_tokens: 1 })).status).toBe(200);
    }
    await until(() => events.batches.length >= 2, { message: 'a batch from each replica' });
    const byTopic = (topic: string) => events.batches.filter((b) => b.topic === topic).map((b) => b.seq);
    expect(byTopic('kv@sim-0@M-pool')).toEqual([0n]);
    expect(byTopic('kv@sim-1@M-pool')).toEqual([0n]);
    expect(events.batches).toHaveLength(2);
  });
});

describe('kvroute sim flag checks', () => {
  it('refuses a fixed --kv-events-topic shared by several replicas, saying how to fix it', async () => {
    const sim = await spawnKvroute([
      'sim',
      '--replicas',
      '2',
      '--base-port',
      '0',
      '--model',
      'M',
      '--kv-events-endpoint',
      'tcp://127.0.0.1:1',
      '--kv-events-topic',
      'kv@shared@M',
    ]);
    expect(await sim.exited).not.toBe(0);
    expect(sim.logs()).toMatch(/--kv-events-topic "kv@shared@M" would be shared by all 2 replicas.*\{pod\}/);
  }, 30_000);
});
