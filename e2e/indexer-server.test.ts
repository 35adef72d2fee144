// `kvroute indexer` as a real process: vLLM-format KV-event batches published over real ZMQ, then
// scoring over HTTP (tokens, prompt, chat messages) and gRPC, metrics, bad requests and SIGTERM.

import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode } from '@msgpack/msgpack';
import * as zmq from 'zeromq';
import { createIndexerClient, type IndexerClient } from '../src/indexer/grpc/client.ts';
import { vllmEngineKeys } from '../src/vllm/block-hash.ts';
import { loadModelTokenizer, type ModelTokenizer } from '../src/tokenize/model-tokenizer.ts';
import { parseTokenizerSource } from '../src/tokenize/source.ts';
import { chatCrossingBlock } from '../src/indexer/test-helpers.ts';
import type { ChatMessage } from '../src/common/chat.ts';
import { until } from './helpers/until.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE = path.join(root, 'node_modules/.bin/node');
const HTTP_PORT = 8451;
const GRPC_PORT = 9451;
const ZMQ_PORT = 5960;
const BLOCK = 16;
const SEED = '0';
const QWEN = 'Qwen/Qwen3-8B';
const base = `http://127.0.0.1:${HTTP_PORT}`;

async function post(pathname: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + pathname, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
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

function startIndexer(args: string[]): { child: ChildProcess; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(NODE, ['bin/kvroute.js', 'indexer', '--listen-host', '127.0.0.1', ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

describe('kvroute indexer (real process, real ZMQ)', () => {
  let child: ChildProcess;
  let stderr: () => string;
  let pub: zmq.Publisher;
  let grpcClient: IndexerClient;
  let qwen: ModelTokenizer;
  const seq = new Map<string, bigint>();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-indexer-e2e-'));

  async function publish(pod: string, payload: Uint8Array, model = QWEN): Promise<void> {
    const n = seq.get(pod) ?? 0n;
    seq.set(pod, n + 1n);
    const seqFrame = Buffer.alloc(8);
    seqFrame.writeBigUInt64BE(n);
    await pub.send([`kv@${pod}@${model}`, seqFrame, payload]);
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
    fs.writeFileSync(configFile, ['logLevel: warn', 'tierWeights: {gpu: 1.0, cpu: 0.5}', 'defaultTokenizer: none', 'tokenizers:', `  "${QWEN}": npm:qwen3`, ''].join('\n'));
    ({ child, stderr } = startIndexer([
      '--config', configFile,
      '--zmq-bind', `tcp://127.0.0.1:${ZMQ_PORT}`,
      '--http-port', String(HTTP_PORT),
      '--grpc-port', String(GRPC_PORT),
      '--block-size', String(BLOCK),
      '--hash-seed', SEED,
      '--tokenizer', 'meta-llama/Llama-3.1-8B-Instruct=npm:llama3_1',
      '--log-level', 'info',
    ]));
    await until('GET /healthz to answer 200', async () => ((await fetch(`${base}/healthz`)).status === 200 ? true : undefined), 60_000);

    pub = new zmq.Publisher({ linger: 0 });
    pub.connect(`tcp://127.0.0.1:${ZMQ_PORT}`);
    // ZMQ drops what a PUB sends before the subscription reaches it: publish a probe until it lands.
    const probe = Array.from({ length: BLOCK }, (_, i) => 1000 + i);
    await until('a probe batch to be indexed', async () => {
      await publish('probe', batch([stored(probe, 1)]));
      const s = await scores({ model: QWEN, tokens: probe });
      return s.probe === 1 ? true : undefined;
    });
    grpcClient = createIndexerClient(`127.0.0.1:${GRPC_PORT}`, { deadlineMs: 5_000 });
  }, 90_000);

  afterAll(async () => {
    grpcClient?.close();
    pub?.close();
    if (child && child.exitCode === null) child.kill('SIGTERM');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('logs structured JSON lines', () => {
    const lines = stderr().trim().split('\n');
    const ready = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.msg === 'indexer ready');
    expect(ready).toMatchObject({ level: 'info', httpPort: HTTP_PORT, grpcPort: GRPC_PORT, mode: 'central' });
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
    await until('pods a, b and c to be indexed', async () => {
      const s = await scores({ model: QWEN, tokens: promptTokens });
      const c = await scores({ model: QWEN, tokens: chatTokens });
      return s['pod-a'] === 6 && s['pod-b'] === 1 && c['pod-c'] === 4 ? s : undefined;
    });
    expect(await scores({ model: QWEN, tokens: promptTokens })).toEqual(expected);
    expect(await scores({ model: QWEN, prompt: text })).toEqual(expected);
    expect(await scores({ model: QWEN, messages })).toEqual({ 'pod-c': 4 });
    expect(await scores({ model: QWEN, prompt: text, pods: ['pod-b', 'pod-c'] })).toEqual({ 'pod-b': 1 });
  });

  it('indexes batches exactly as vLLM\'s own msgspec encoder wrote them (golden frames)', async () => {
    const golden = JSON.parse(fs.readFileSync(path.join(root, 'src/vllm/events/testdata/kv-events.json'), 'utf8')) as {
      batches: Array<{ name: string; encoding: string; frames: string[]; expected: { events: Array<{ type: string; tokenIds?: number[]; blockHashes?: string[] }> } }>;
    };
    const chains = golden.batches.filter((b) => b.name === 'parent chain, int hashes');
    expect(chains.length).toBeGreaterThanOrEqual(2);
    for (const [i, b] of chains.entries()) {
      const pod = `pod-golden-${i}`;
      const stores = b.expected.events.filter((e) => e.type === 'BlockStored');
      const tokens = stores.flatMap((e) => e.tokenIds!);
      const blocks = stores.reduce((n, e) => n + e.blockHashes!.length, 0);
      await publish(pod, Buffer.from(b.frames[2]!, 'hex'));
      const got = await until(`${b.encoding} golden batch to be indexed`, async () => {
        const s = await scores({ model: QWEN, tokens });
        return s[pod] === blocks ? s[pod] : undefined;
      });
      expect({ encoding: b.encoding, blocks: got }).toEqual({ encoding: b.encoding, blocks });
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
    await until('pod-r to be indexed', async () => ((await scores({ model: QWEN, prompt: text }))['pod-r'] === 5 ? true : undefined));
    // None of these carries a usable sequence number, so none stands for a lost batch.
    await pub.send(['kv@pod-r', 'not a sequence number']);
    await pub.send(['kv@pod-r@' + QWEN, Buffer.from('short'), Uint8Array.of(0xc1)]);
    await pub.send(['garbage-topic', Buffer.alloc(8), Uint8Array.of(0x93, 0xc1)]);
    await publish('pod-r', batch([removed(tokens, 3)]));
    const s = await until('block 3 of pod-r to be removed', async () => {
      const s = await scores({ model: QWEN, prompt: text });
      return s['pod-r'] === 3 ? s : undefined;
    });
    expect(s).toEqual({ 'pod-r': 3 });
    const pods = (await (await fetch(`${base}/v1/pods`)).json()) as { ingestion: { malformed: number; resets: number } };
    expect(pods.ingestion.malformed).toBeGreaterThanOrEqual(3);
    expect(pods.ingestion.resets).toBe(0);
  });

  it('serves the same scores over gRPC for tokens, prompt and messages', async () => {
    const text = `gRPC test. ${prompt}`;
    const tokens = qwen.tokenizePrompt(text);
    const chat: ChatMessage[] = [{ role: 'user', content: `gRPC chat. ${prompt}` }];
    await publish('pod-g', batch([stored(tokens, 3), stored(qwen.tokenizeChat(chat), 2)]));
    const http = await until('pod-g to be indexed', async () => {
      const s = await scores({ model: QWEN, tokens });
      return s['pod-g'] === 3 ? s : undefined;
    });
    expect(await grpcClient.score({ model: QWEN, tokens })).toEqual({ scores: http });
    expect(await grpcClient.score({ model: QWEN, prompt: text })).toEqual({ scores: http });
    expect(await grpcClient.score({ model: QWEN, messages: chat })).toEqual({ scores: { 'pod-g': 2 } });
    await expect(grpcClient.score({ model: 'unknown/model', prompt: 'x' })).rejects.toThrow(/INVALID_ARGUMENT.*model/);
  });

  it('gives the same scores over HTTP and gRPC for messages with chat_template_kwargs and add_generation_prompt', async () => {
    const chat = chatCrossingBlock((m, kwargs) => qwen.tokenizeChat(m, { templateKwargs: kwargs }), { enable_thinking: false }, BLOCK);
    const blocks = Math.floor(chat.withKwargs.length / BLOCK);
    await publish('pod-kw', batch([stored(chat.withKwargs, blocks)]));
    const body = { model: QWEN, messages: chat.messages, chat_template_kwargs: { enable_thinking: false } };
    const http = await until('pod-kw to be indexed', async () => {
      const s = await scores(body);
      return s['pod-kw'] === blocks ? s : undefined;
    });
    expect(await grpcClient.score({ model: QWEN, messages: chat.messages, chatTemplateKwargs: { enable_thinking: false } })).toEqual({ scores: http });
    // Without the kwargs the think section is missing, so one block fewer matches, on both paths.
    expect(await scores({ model: QWEN, messages: chat.messages })).toEqual({ ...http, 'pod-kw': blocks - 1 });
    expect(await grpcClient.score({ model: QWEN, messages: chat.messages })).toEqual({ scores: { ...http, 'pod-kw': blocks - 1 } });
    const noPrompt = await scores({ ...body, add_generation_prompt: false });
    expect(noPrompt['pod-kw']).toBeLessThan(blocks);
    expect(await grpcClient.score({ model: QWEN, messages: chat.messages, chatTemplateKwargs: { enable_thinking: false }, addGenerationPrompt: false })).toEqual({ scores: noPrompt });
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
    const text = await until('the malformed message to be counted', async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return /kvroute_indexer_malformed_messages_total\{[^}]*\} [1-9]/.test(text) ? text : undefined;
    });
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
    const body = await until('pod-p to be listed', async () => {
      const body = (await (await fetch(`${base}/v1/pods`)).json()) as { pods: Record<string, number> };
      return body.pods['pod-p'] === 2 ? body : undefined;
    });
    expect(body.pods).toMatchObject({ 'pod-p': 2, probe: 1 });
  });
});

describe('kvroute indexer run as the contract command, fed by a real kvroute sim', () => {
  it('scores prompt and messages of a model it has no tokenizer for with the default tokenizer, the sim\'s', async () => {
    const zmqBind = 'tcp://127.0.0.1:5965';
    const httpPort = 8460;
    const simPort = 8461;
    const model = 'acme/served-model';
    const prompt = 'A served model the indexer was told nothing about. ' + 'Each sixteen tokens make one cached block. '.repeat(10);
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You keep answers short.' },
      { role: 'user', content: 'Why does a router care which pod cached a prompt? '.repeat(5) },
    ];
    // The contract command; only --grpc-port (and startIndexer's --listen-host) keep it off
    // ports other tests and engineers on this machine use.
    const indexer = startIndexer(['--zmq-bind', zmqBind, '--http-port', String(httpPort), '--grpc-port', '9460']);
    const sim = spawn(
      NODE,
      ['bin/kvroute.js', 'sim', '--port', String(simPort), '--model', model, '--pod-id', 'sim-contract', '--kv-events-endpoint', zmqBind,
        '--frontend-overhead-ms', '0', '--time-scale', '100', '--tokenizer-workers', '0'],
      { cwd: root, stdio: ['ignore', 'ignore', 'ignore'] },
    );
    const simExited = new Promise<number | null>((resolve) => sim.once('exit', (code) => resolve(code)));
    const url = `http://127.0.0.1:${httpPort}`;
    const score = async (body: Record<string, unknown>): Promise<Record<string, number>> => {
      const res = await fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, ...body }) });
      const json = (await res.json()) as { scores?: Record<string, number>; error?: string };
      if (res.status !== 200) throw new Error(`score answered ${res.status}: ${json.error}`);
      return json.scores!;
    };
    const simPost = async (route: string, body: Record<string, unknown>): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${simPort}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, max_tokens: 1, ...body }) });
      if (res.status !== 200) throw new Error(`sim ${route} answered ${res.status}: ${await res.text()}`);
    };
    try {
      await until('GET /healthz to answer 200', async () => ((await fetch(`${url}/healthz`)).status === 200 ? true : undefined), 60_000);
      await until('the sim to be healthy', async () => ((await fetch(`http://127.0.0.1:${simPort}/health`)).status === 200 ? true : undefined), 60_000);
      const qwen = await loadModelTokenizer(model, parseTokenizerSource('npm:qwen3'));
      // ZMQ drops what the sim publishes before its connection is up: distinct probes until one lands.
      let probe = 0;
      await until('a probe prompt cached by the sim to score', async () => {
        const text = `Probe ${probe++}. ${prompt}`;
        await simPost('/v1/completions', { prompt: text });
        return (await score({ prompt: text }))['sim-contract'] ? true : undefined;
      });
      const text = `Contract test. ${prompt}`;
      await simPost('/v1/completions', { prompt: text });
      const promptBlocks = Math.floor(qwen.tokenizePrompt(text).length / BLOCK);
      const fromPrompt = await until('the prompt to score', async () => {
        const s = await score({ prompt: text });
        return s['sim-contract'] === promptBlocks ? s : undefined;
      });
      expect(fromPrompt).toEqual({ 'sim-contract': promptBlocks });
      await simPost('/v1/chat/completions', { messages });
      const chatBlocks = Math.floor(qwen.tokenizeChat(messages).length / BLOCK);
      const fromMessages = await until('the messages to score', async () => {
        const s = await score({ messages });
        return s['sim-contract'] === chatBlocks ? s : undefined;
      });
      expect(fromMessages).toEqual({ 'sim-contract': chatBlocks });
      // Another model's request sees none of this pod's blocks.
      expect(await score({ model: 'other/model', prompt: text })).toEqual({});
      const warnings = indexer.stderr().split('\n').filter((l) => l.includes('using a fallback'));
      expect(warnings).toHaveLength(2);
      expect(warnings.map((l) => JSON.parse(l) as Record<string, unknown>).map((w) => [w.model, w.source])).toEqual([[model, 'npm:qwen3'], ['other/model', 'npm:qwen3']]);
    } finally {
      sim.kill('SIGTERM');
      indexer.child.kill('SIGTERM');
      await simExited;
      expect(await indexer.exited).toBe(0);
    }
  }, 120_000);
});

describe('kvroute indexer in per-pod mode', () => {
  it('connects to each pod\'s publisher and scores with tokenization in-process', async () => {
    const pod = new zmq.Publisher({ linger: 0 });
    await pod.bind(`tcp://127.0.0.1:${ZMQ_PORT + 2}`);
    const { child, exited } = startIndexer([
      '--pod', `pod-x=tcp://127.0.0.1:${ZMQ_PORT + 2}`,
      '--http-port', String(HTTP_PORT + 4),
      '--grpc-port', String(GRPC_PORT + 4),
      '--tokenizer', '*=tiktoken:o200k_harmony',
      '--tokenizer-workers', '0',
    ]);
    try {
      const url = `http://127.0.0.1:${HTTP_PORT + 4}`;
      await until('GET /healthz to answer 200', async () => ((await fetch(`${url}/healthz`)).status === 200 ? true : undefined), 60_000);
      const gptoss = await loadModelTokenizer('openai/gpt-oss-20b', parseTokenizerSource('tiktoken:o200k_harmony'));
      const text = `Per-pod test. ${'Tokens from the harmony encoding fill these blocks one by one. '.repeat(6)}`;
      const tokens = gptoss.tokenizePrompt(text);
      let n = 0n;
      const got = await until('pod-x to be indexed', async () => {
        const seqFrame = Buffer.alloc(8);
        seqFrame.writeBigUInt64BE(n++);
        // vLLM's own topic is empty unless configured: per-pod mode knows the pod from the connection.
        await pod.send(['', seqFrame, batch([stored(tokens, 3)])]);
        const res = await fetch(`${url}/v1/score`, { method: 'POST', body: JSON.stringify({ model: 'openai/gpt-oss-20b', prompt: text }) });
        const body = (await res.json()) as { scores: Record<string, number> };
        return body.scores['pod-x'] === 3 ? body.scores : undefined;
      });
      expect(got).toEqual({ 'pod-x': 3 });
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      pod.close();
    }
  }, 90_000);
});

describe('kvroute indexer shutdown', () => {
  it('exits 0 on SIGTERM after closing HTTP, gRPC and ZMQ', async () => {
    const { child, exited, stderr } = startIndexer(['--zmq-bind', `tcp://127.0.0.1:${ZMQ_PORT + 1}`, '--http-port', String(HTTP_PORT + 2), '--grpc-port', String(GRPC_PORT + 2)]);
    await until('GET /healthz to answer 200', async () => ((await fetch(`http://127.0.0.1:${HTTP_PORT + 2}/healthz`)).status === 200 ? true : undefined), 60_000);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr()).toContain('shutdown complete');
    await expect(fetch(`http://127.0.0.1:${HTTP_PORT + 2}/healthz`)).rejects.toThrow();
  }, 60_000);
});

describe('kvroute indexer config errors', () => {
  it('exits 1 naming the bad field of a config file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-indexer-bad-'));
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'zmq: {bind: "tcp://127.0.0.1:5963"}\nblockSize: zero\ntierWeights: {gpu: -1}\n');
    const { exited, stderr } = startIndexer(['--config', file, '--http-port', '8457', '--grpc-port', '9457']);
    const code = await exited;
    fs.rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(1);
    expect(stderr()).toMatch(/blockSize: .*expected number/);
    expect(stderr()).toMatch(/tierWeights\.gpu: /);
  }, 30_000);
});
