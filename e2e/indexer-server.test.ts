// `kvroute indexer` as a real process: vLLM-format KV-event batches published over real ZMQ, then
// scoring over HTTP (tokens, prompt, chat messages) and gRPC, metrics, bad requests and SIGTERM.

import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encode } from '@msgpack/msgpack';
import * as zmq from 'zeromq';
import { createIndexerClient, type IndexerClient } from '../src/indexer/grpc/client.ts';
import { vllmEngineKeys } from '../src/vllm/block-hash.ts';
import { loadModelTokenizer, type ModelTokenizer } from '../src/tokenize/model-tokenizer.ts';
import { parseTokenizerSource } from '../src/tokenize/source.ts';
import { chatCrossingBlock } from '../src/indexer/test-helpers.ts';
import type { ChatMessage } from '../src/common/chat.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { repoRoot } from '../test/support/repo-root.ts';
import { until } from '../test/support/until.ts';

const BLOCK = 16;
const SEED = '0';
const QWEN = 'Qwen/Qwen3-8B';
/** The main describe's indexer, set once it is ready. */
let base = '';

async function post(pathname: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + pathname, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function scores(body: unknown): Promise<Record<string, number>> {
  const { status, json } = await post('/v1/score', body);
  if (status !== 200) throw new Error(`score answered ${status}: ${JSON.stringify(json)}`);
  return json.scores as Record<string, number>;
}

/** The vLLM 0.33 wire form: [ts, [events as maps, defaults omitted], dp_rank?], hashes as msgpack uint64. */
function batch(events: Array<Record<string, unknown>>): Uint8Array {
  return encode([Date.now() / 1000, events], { useBigInt64: true });
}

function stored(tokens: number[], blocks: number, medium = 'GPU'): Record<string, unknown> {
  const keys = vllmEngineKeys(tokens.slice(0, blocks * BLOCK), { blockSize: BLOCK, hashSeed: SEED });
  return {
    type: 'BlockStored',
    block_hashes: [...keys],
    parent_block_hash: null,
    token_ids: tokens.slice(0, blocks * BLOCK),
    block_size: BLOCK,
    lora_id: null,
    medium,
  };
}

function removed(tokens: number[], blockIndex: number, medium = 'GPU'): Record<string, unknown> {
  const keys = vllmEngineKeys(tokens.slice(0, (blockIndex + 1) * BLOCK), { blockSize: BLOCK, hashSeed: SEED });
  return { type: 'BlockRemoved', block_hashes: [keys[blockIndex]!], medium };
}

/** `kvroute indexer` on loopback, ready once it logged its bound ports and answers /healthz. */
function startIndexer(args: string[]): Promise<KvrouteProcess> {
  return spawnKvroute(['indexer', '--listen-host', '127.0.0.1', ...args], {
    readyLine: 'indexer ready',
    readyUrl: (r) => `http://127.0.0.1:${portOf(r, 'httpPort')}/healthz`,
  });
}

/** The ZMQ endpoint the indexer bound for rank 0 (its --zmq-bind with port 0 resolved). */
function zmqBound(indexer: KvrouteProcess): string {
  const bound = indexer.ready.zmqBound;
  if (!Array.isArray(bound) || typeof bound[0] !== 'string')
    throw new Error(`indexer ready record has no zmqBound: ${JSON.stringify(indexer.ready)}`);
  return bound[0];
}

describe('kvroute indexer (real process, real ZMQ)', () => {
  let indexer: KvrouteProcess;
  let pub: zmq.Publisher;
  let grpcClient: IndexerClient;
  let qwen: ModelTokenizer;
  const seq = new Map<string, bigint>();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-indexer-e2e-'));

  /** Batches the indexer had applied once the probe landed, and batches published since. */
  let appliedAtStart = 0;
  let published = 0;

  async function publish(pod: string, payload: Uint8Array, model = QWEN): Promise<void> {
    const n = seq.get(pod) ?? 0n;
    seq.set(pod, n + 1n);
    const seqFrame = Buffer.alloc(8);
    seqFrame.writeBigUInt64BE(n);
    await pub.send([`kv@${pod}@${model}`, seqFrame, payload]);
    published++;
  }

  async function ingestion(): Promise<{ batches: number; queued: number; malformed: number; resets: number }> {
    return (
      (await (await fetch(`${base}/v1/pods`)).json()) as {
        ingestion: { batches: number; queued: number; malformed: number; resets: number };
      }
    ).ingestion;
  }

  /**
   * Waits until the indexer has applied every batch published so far (by its own counter), with none
   * queued. Tests then assert scores against what they computed, not against what they waited for.
   */
  async function indexed(): Promise<void> {
    await until(
      async () => {
        const now = await ingestion();
        return now.batches >= appliedAtStart + published && now.queued === 0;
      },
      { message: `the indexer to apply all ${published} batches published`, timeoutMs: 20_000 },
    );
  }

  const prompt = 'You are a routing test. ' + 'Every block of sixteen tokens is one entry in the prefix cache. '.repeat(12);
  const messages: ChatMessage[] = [
    { role: 'system', content: 'You answer questions about caches, with care and at length.' },
    { role: 'user', content: 'Explain why a shared prompt prefix makes a second request cheaper. '.repeat(4) },
  ];

  beforeAll(async () => {
    qwen = await loadModelTokenizer(QWEN, parseTokenizerSource('npm:qwen3'));
    // The file sets what flags then override (log level) or leave alone (tier weights, a tokenizer, and
    // no fallback tokenizer, so an unconfigured model is a client error here).
    const configFile = path.join(tmp, 'indexer.yaml');
    fs.writeFileSync(
      configFile,
      ['logLevel: warn', 'tierWeights: {gpu: 1.0, cpu: 0.5}', 'defaultTokenizer: none', 'tokenizers:', `  "${QWEN}": npm:qwen3`, ''].join(
        '\n',
      ),
    );
    indexer = await startIndexer([
      '--config',
      configFile,
      '--zmq-bind',
      'tcp://127.0.0.1:0',
      '--http-port',
      '0',
      '--grpc-port',
      '0',
      '--block-size',
      String(BLOCK),
      '--hash-seed',
      SEED,
      '--tokenizer',
      'meta-llama/Llama-3.1-8B-Instruct=npm:llama3_1',
      '--log-level',
      'info',
    ]);
    base = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}`;

    pub = new zmq.Publisher({ linger: 0 });
    pub.connect(zmqBound(indexer));
    // ZMQ drops what a PUB sends before the subscription reaches it: publish a probe until it lands.
    const probe = Array.from({ length: BLOCK }, (_, i) => 1000 + i);
    await until(
      async () => {
        await publish('probe', batch([stored(probe, 1)]));
        const s = await scores({ model: QWEN, tokens: probe });
        return s.probe === 1 ? true : undefined;
      },
      { message: 'a probe batch to be indexed', timeoutMs: 20_000 },
    );
    // From here on every published batch reaches the indexer: count them from its current total.
    appliedAtStart = (await ingestion()).batches;
    published = 0;
    grpcClient = createIndexerClient(`127.0.0.1:${portOf(indexer.ready, 'grpcPort')}`, { deadlineMs: 5_000 });
  }, 90_000);

  afterAll(async () => {
    grpcClient?.close();
    pub?.close();
    await indexer?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('logs structured JSON lines, the ready line naming the ports and ZMQ endpoint it bound', () => {
    const lines = indexer.logs().trim().split('\n');
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const r of records) expect(r).toMatchObject({ ts: expect.any(String), level: expect.any(String), msg: expect.any(String) });
    const ready = records.find((r) => r.msg === 'indexer ready')!;
    expect(ready).toMatchObject({
      level: 'info',
      mode: 'central',
      zmqBind: 'tcp://127.0.0.1:0',
      zmqBound: [expect.stringMatching(/^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/)],
    });
    // Given port 0, each server reports the port the kernel picked, and the two differ.
    const http = ready.httpPort as number;
    const grpc = ready.grpcPort as number;
    expect([http > 0, grpc > 0, http !== grpc]).toEqual([true, true, true]);
    expect(records.filter((r) => r.msg === 'http server listening').map((r) => r.port)).toEqual([http]);
  });

  it('scores tokens, the same prompt as text, and chat messages by matched blocks times tier weight', async () => {
    const text = `Scoring test. ${prompt}`;
    const promptTokens = qwen.tokenizePrompt(text);
    const chatTokens = qwen.tokenizeChat(messages);
    expect(promptTokens.length).toBeGreaterThan(6 * BLOCK);
    expect(chatTokens.length).toBeGreaterThan(4 * BLOCK);
    await publish('pod-a', batch([stored(promptTokens, 6)]));
    await publish('pod-b', batch([stored(promptTokens, 2, 'CPU')]));
    await publish('pod-c', batch([stored(chatTokens, 4)]));

    // pod-b's blocks are on CPU, weighted 0.5 by the config file.
    const expected = { 'pod-a': 6, 'pod-b': 1 };
    await indexed();
    expect(await scores({ model: QWEN, tokens: promptTokens })).toEqual(expected);
    expect(await scores({ model: QWEN, prompt: text })).toEqual(expected);
    expect(await scores({ model: QWEN, messages })).toEqual({ 'pod-c': 4 });
    expect(await scores({ model: QWEN, prompt: text, pods: ['pod-b', 'pod-c'] })).toEqual({ 'pod-b': 1 });
  });

  it("indexes batches exactly as vLLM's own msgspec encoder wrote them (golden frames)", async () => {
    const golden = JSON.parse(fs.readFileSync(path.join(repoRoot, 'src/vllm/events/testdata/kv-events.json'), 'utf8')) as {
      batches: Array<{
        name: string;
        encoding: string;
        frames: string[];
        expected: { events: Array<{ type: string; tokenIds?: number[]; blockHashes?: string[] }> };
      }>;
    };
    const chains = golden.batches.filter((b) => b.name === 'parent chain, int hashes');
    expect(chains.length).toBeGreaterThanOrEqual(2);
    for (const [i, b] of chains.entries()) {
      const pod = `pod-golden-${i}`;
      const stores = b.expected.events.filter((e) => e.type === 'BlockStored');
      const tokens = stores.flatMap((e) => e.tokenIds!);
      const blocks = stores.reduce((n, e) => n + e.blockHashes!.length, 0);
      await publish(pod, Buffer.from(b.frames[2]!, 'hex'));
      await indexed();
      // Every golden chain holds the same blocks in another encoding, so earlier golden pods score too.
      expect({ encoding: b.encoding, blocks: (await scores({ model: QWEN, tokens }))[pod] }).toEqual({ encoding: b.encoding, blocks });
    }
  });

  it('answers /v1/tokenize with the ids vLLM would compute', async () => {
    const { status, json } = await post('/v1/tokenize', { model: QWEN, messages });
    expect(status).toBe(200);
    expect(json.tokens).toEqual(qwen.tokenizeChat(messages));
    expect(json.rendered).toBe(qwen.renderChat(messages));
  });

  it('drops a removed block from the prefix and survives garbage messages', async () => {
    const text = `Removal test. ${prompt}`;
    const tokens = qwen.tokenizePrompt(text);
    await publish('pod-r', batch([stored(tokens, 5)]));
    await indexed();
    expect(await scores({ model: QWEN, prompt: text })).toEqual({ 'pod-r': 5 });
    const before = await ingestion();
    // None of these carries a usable sequence number, so none stands for a lost batch.
    await pub.send(['kv@pod-r', 'not a sequence number']);
    await pub.send(['kv@pod-r@' + QWEN, Buffer.from('short'), Uint8Array.of(0xc1)]);
    await pub.send(['garbage-topic', Buffer.alloc(8), Uint8Array.of(0x93, 0xc1)]);
    await publish('pod-r', batch([removed(tokens, 3)]));
    await indexed();
    // Blocks 0-2 still form the prefix; block 4 hangs off the removed block 3.
    expect(await scores({ model: QWEN, prompt: text })).toEqual({ 'pod-r': 3 });
    const after = await ingestion();
    expect(after.malformed - before.malformed).toBe(3);
    expect(after.resets).toBe(0);
  });

  it('serves the same scores over gRPC for tokens, prompt and messages', async () => {
    const text = `gRPC test. ${prompt}`;
    const tokens = qwen.tokenizePrompt(text);
    const chat: ChatMessage[] = [{ role: 'user', content: `gRPC chat. ${prompt}` }];
    await publish('pod-g', batch([stored(tokens, 3), stored(qwen.tokenizeChat(chat), 2)]));
    await indexed();
    const http = await scores({ model: QWEN, tokens });
    expect(http).toEqual({ 'pod-g': 3 });
    const totalBlocks = Math.floor(tokens.length / BLOCK);
    expect((await post('/v1/score', { model: QWEN, tokens })).json).toEqual({ scores: http, totalBlocks });
    expect(await grpcClient.score({ model: QWEN, tokens })).toEqual({ scores: http, totalBlocks });
    expect(await grpcClient.score({ model: QWEN, prompt: text })).toEqual({ scores: http, totalBlocks });
    expect(await grpcClient.score({ model: QWEN, messages: chat })).toEqual({
      scores: { 'pod-g': 2 },
      totalBlocks: Math.floor(qwen.tokenizeChat(chat).length / BLOCK),
    });
    await expect(grpcClient.score({ model: 'unknown/model', prompt: 'x' })).rejects.toThrow(/INVALID_ARGUMENT.*model/);
  });

  it('gives the same scores over HTTP and gRPC for messages with chat_template_kwargs and add_generation_prompt', async () => {
    const chat = chatCrossingBlock((m, kwargs) => qwen.tokenizeChat(m, { templateKwargs: kwargs }), { enable_thinking: false }, BLOCK);
    const blocks = Math.floor(chat.withKwargs.length / BLOCK);
    await publish('pod-kw', batch([stored(chat.withKwargs, blocks)]));
    const body = { model: QWEN, messages: chat.messages, chat_template_kwargs: { enable_thinking: false } };
    await indexed();
    const http = await scores(body);
    expect(http).toEqual({ 'pod-kw': blocks });
    expect(await grpcClient.score({ model: QWEN, messages: chat.messages, chatTemplateKwargs: { enable_thinking: false } })).toEqual({
      scores: http,
      totalBlocks: blocks,
    });
    // Without the kwargs the think section is missing, so one block fewer matches, on both paths.
    expect(await scores({ model: QWEN, messages: chat.messages })).toEqual({ ...http, 'pod-kw': blocks - 1 });
    expect(await grpcClient.score({ model: QWEN, messages: chat.messages })).toEqual({
      scores: { ...http, 'pod-kw': blocks - 1 },
      totalBlocks: Math.floor(chat.without.length / BLOCK),
    });
    const noPrompt = (await post('/v1/score', { ...body, add_generation_prompt: false })).json;
    expect((noPrompt.scores as Record<string, number>)['pod-kw']).toBeLessThan(blocks);
    expect(
      await grpcClient.score({
        model: QWEN,
        messages: chat.messages,
        chatTemplateKwargs: { enable_thinking: false },
        addGenerationPrompt: false,
      }),
    ).toEqual(noPrompt);
  });

  it('rejects bad requests with 400 naming the field', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ tokens: [1, 2] }, /model/],
      [{ model: QWEN }, /exactly one of tokens, prompt or messages/],
      [{ model: QWEN, tokens: [1], prompt: 'x' }, /prompt.*exactly one/],
      [{ model: QWEN, tokens: [1, -2] }, /tokens\.1/],
      [{ model: QWEN, messages: [{ content: 'hi' }] }, /messages\.0\.role/],
      [{ model: 'no/such-model', prompt: 'x' }, /model: no tokenizer for model "no\/such-model"/],
      [{ model: QWEN, tokens: [1], colour: 'red' }, /colour: unknown field/],
      ['{not json', /not valid JSON/],
    ];
    for (const [body, message] of cases) {
      const { status, json } = await post('/v1/score', body);
      expect({ body, status }).toEqual({ body, status: 400 });
      expect(String(json.error)).toMatch(message);
    }
  });

  it('exposes request, tokenizer-cache, index, ingestion and process metrics', async () => {
    await scores({ model: QWEN, prompt: 'metrics' });
    await scores({ model: QWEN, prompt: 'metrics' });
    await grpcClient.score({ model: QWEN, tokens: [1, 2, 3] });
    await pub.send(['kv@pod-m', 'not a sequence number']);
    const text = await until(
      async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        return /kvroute_indexer_malformed_messages_total\{[^}]*\} [1-9]/.test(text) ? text : undefined;
      },
      { message: 'the malformed message to be counted', timeoutMs: 20_000 },
    );
    expect(text).toMatch(/kvroute_indexer_requests_total\{protocol="http",endpoint="\/v1\/score",code="200"\} \d+/);
    expect(text).toMatch(/kvroute_indexer_requests_total\{protocol="grpc",endpoint="Score",code="OK"\} \d+/);
    expect(text).toMatch(/kvroute_tokenizer_cache_lookups_total\{model="Qwen\/Qwen3-8B",result="hit"\} [1-9]/);
    expect(text).toContain('kvroute_indexer_request_duration_seconds_bucket');
    expect(text).toContain('kvroute_process_cpu_seconds_total');
    expect(text).toMatch(/kvroute_indexer_pod_blocks\{pod="probe"\} 1/);
  });

  it('lists pods with their block counts', async () => {
    const tokens = qwen.tokenizePrompt(`Pods test. ${prompt}`);
    await publish('pod-p', batch([stored(tokens, 2)]));
    await indexed();
    const body = (await (await fetch(`${base}/v1/pods`)).json()) as { pods: Record<string, number> };
    expect(body.pods).toMatchObject({ 'pod-p': 2, probe: 1 });
  });
});

describe('kvroute indexer run as the contract command, fed by a real kvroute sim', () => {
  it("scores prompt and messages of a model it has no tokenizer for with the default tokenizer, the sim's", async () => {
    const model = 'acme/served-model';
    const prompt = 'A served model the indexer was told nothing about. ' + 'Each sixteen tokens make one cached block. '.repeat(10);
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You keep answers short.' },
      { role: 'user', content: 'Why does a router care which pod cached a prompt? '.repeat(5) },
    ];
    // The contract command, on ports the kernel picks: the sim connects to the bound ZMQ endpoint.
    const indexer = await startIndexer(['--zmq-bind', 'tcp://127.0.0.1:0', '--http-port', '0', '--grpc-port', '0']);
    let sim: KvrouteProcess | undefined;
    const url = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}`;
    const score = async (body: Record<string, unknown>): Promise<Record<string, number>> => {
      const res = await fetch(`${url}/v1/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, ...body }),
      });
      const json = (await res.json()) as { scores?: Record<string, number>; error?: string };
      if (res.status !== 200) throw new Error(`score answered ${res.status}: ${json.error}`);
      return json.scores!;
    };
    const appliedBatches = async () =>
      ((await (await fetch(`${url}/v1/pods`)).json()) as { ingestion: { batches: number; queued: number } }).ingestion;
    try {
      sim = await spawnKvroute(
        [
          'sim',
          '--port',
          '0',
          '--model',
          model,
          '--pod-id',
          'sim-contract',
          '--kv-events-endpoint',
          zmqBound(indexer),
          '--frontend-overhead-ms',
          '0',
          '--time-scale',
          '100',
          '--tokenizer-workers',
          '0',
        ],
        { readyLine: 'simulated vllm pod ready', readyUrl: (r) => `http://127.0.0.1:${portOf(r, 'port')}/health` },
      );
      const simUrl = `http://127.0.0.1:${portOf(sim.ready, 'port')}`;
      /** One request to the sim; resolves once the indexer has applied the batch it published. */
      const served = async (route: string, body: Record<string, unknown>): Promise<void> => {
        const before = await appliedBatches();
        const res = await fetch(`${simUrl}${route}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model, max_tokens: 1, ...body }),
        });
        if (res.status !== 200) throw new Error(`sim ${route} answered ${res.status}: ${await res.text()}`);
        await until(
          async () => {
            const now = await appliedBatches();
            return now.batches > before.batches && now.queued === 0;
          },
          { message: `the indexer to apply the sim's batch for ${route}`, timeoutMs: 20_000 },
        );
      };
      const qwen = await loadModelTokenizer(model, parseTokenizerSource('npm:qwen3'));
      const text = `Contract test. ${prompt}`;
      await served('/v1/completions', { prompt: text });
      expect(await score({ prompt: text })).toEqual({ 'sim-contract': Math.floor(qwen.tokenizePrompt(text).length / BLOCK) });
      await served('/v1/chat/completions', { messages });
      expect(await score({ messages })).toEqual({ 'sim-contract': Math.floor(qwen.tokenizeChat(messages).length / BLOCK) });
      // Another model's request sees none of this pod's blocks.
      expect(await score({ model: 'other/model', prompt: text })).toEqual({});
      const warnings = indexer.records().filter((r) => String(r.msg).includes('using a fallback'));
      expect(warnings.map((w) => [w.model, w.source])).toEqual([
        [model, 'npm:qwen3'],
        ['other/model', 'npm:qwen3'],
      ]);
    } finally {
      await sim?.stop();
      expect(await indexer.stop()).toBe(0);
    }
  }, 120_000);
});

describe('kvroute indexer in per-pod mode', () => {
  it("connects to each pod's publisher and scores with tokenization in-process", async () => {
    const pod = new zmq.Publisher({ linger: 0 });
    await pod.bind('tcp://127.0.0.1:0');
    const indexer = await startIndexer([
      '--pod',
      `pod-x=${pod.lastEndpoint}`,
      '--http-port',
      '0',
      '--grpc-port',
      '0',
      '--tokenizer',
      '*=tiktoken:o200k_harmony',
      '--tokenizer-workers',
      '0',
    ]);
    try {
      const url = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}`;
      const gptoss = await loadModelTokenizer('openai/gpt-oss-20b', parseTokenizerSource('tiktoken:o200k_harmony'));
      const text = `Per-pod test. ${'Tokens from the harmony encoding fill these blocks one by one. '.repeat(6)}`;
      const tokens = gptoss.tokenizePrompt(text);
      const scores = async () =>
        (
          (await (
            await fetch(`${url}/v1/score`, { method: 'POST', body: JSON.stringify({ model: 'openai/gpt-oss-20b', prompt: text }) })
          ).json()) as { scores: Record<string, number> }
        ).scores;
      // The indexer's SUB connects to the pod's bound PUB and joins when it joins: the pod republishes
      // (numbered on) until a batch has been applied, as vLLM keeps publishing whether anyone listens.
      let n = 0n;
      await until(
        async () => {
          const seqFrame = Buffer.alloc(8);
          seqFrame.writeBigUInt64BE(n++);
          // vLLM's own topic is empty unless configured: per-pod mode knows the pod from the connection.
          await pod.send(['', seqFrame, batch([stored(tokens, 3)])]);
          return ((await (await fetch(`${url}/v1/pods`)).json()) as { ingestion: { batches: number } }).ingestion.batches > 0;
        },
        { message: 'a batch from pod-x to be applied', timeoutMs: 20_000 },
      );
      expect(await scores()).toEqual({ 'pod-x': 3 });
    } finally {
      expect(await indexer.stop()).toBe(0);
      pod.close();
    }
  }, 90_000);
});

describe('kvroute indexer shutdown', () => {
  it('exits 0 on SIGTERM after closing HTTP, gRPC and ZMQ', async () => {
    const indexer = await startIndexer(['--zmq-bind', 'tcp://127.0.0.1:0', '--http-port', '0', '--grpc-port', '0']);
    const url = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}/healthz`;
    expect(await indexer.stop()).toBe(0);
    expect(indexer.logs()).toContain('shutdown complete');
    await expect(fetch(url)).rejects.toThrow();
  }, 60_000);
});

describe('kvroute indexer config errors', () => {
  it('exits 1 naming the bad field of a config file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-indexer-bad-'));
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'zmq: {bind: "tcp://127.0.0.1:0"}\nblockSize: zero\ntierWeights: {gpu: -1}\n');
    const indexer = await spawnKvroute(['indexer', '--config', file, '--http-port', '0', '--grpc-port', '0']);
    const code = await indexer.exited;
    fs.rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(1);
    expect(indexer.logs()).toMatch(/blockSize: .*expected number/);
    expect(indexer.logs()).toMatch(/tierWeights\.gpu: /);
  }, 30_000);
});
