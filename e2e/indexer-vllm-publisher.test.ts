// `kvroute indexer` in central mode fed by vLLM 0.33's own ZmqEventPublisher (hack/vllm_publisher.py,
// run from the vllm wheel): vLLM connects its PUB socket to the indexer's bind, one batch is lost on
// the wire after vLLM numbered and buffered it, and the indexer must fetch it from vLLM's own replay
// ROUTER, found through --replay-endpoint-template from the topic's pod id. A data-parallel rank 1
// publisher (vLLM offsets both its ports by the rank) reaches the indexer through --dp-size 2.

import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonLinesPeer } from './helpers/json-lines-peer.ts';
import { until } from './helpers/until.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE = path.join(root, 'node_modules/.bin/node');
const ZMQ_PORT = 5970;
/** Rank r of vLLM connects to ZMQ_PORT + r and binds REPLAY_PORT + r. */
const REPLAY_PORT = 5980;
const HTTP_PORT = 8465;
const GRPC_PORT = 9465;
const BLOCK = 16;
const MODEL = 'Qwen/Qwen3-8B';
/** The pod id vLLM puts in its topic (kv@$(POD_IP)@<model> in a pool); the template turns it into the replay endpoint. */
const POD = '127.0.0.1';

/** vLLM's publisher imports the vllm package on start, which can take a while on a busy machine. */
const VLLM_ANSWER_MS = 60_000;

/** hack/vllm_publisher.py: vLLM's ZmqEventPublisher behind JSON lines on stdin/stdout. */
class VllmPublisher {
  private readonly peer: JsonLinesPeer;

  constructor(python: string, args: string[]) {
    this.peer = new JsonLinesPeer('vllm_publisher.py', spawn(python, [path.join(root, 'hack/vllm_publisher.py'), ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  next(): Promise<Record<string, unknown>> {
    return this.peer.next(VLLM_ANSWER_MS);
  }

  /** Sends one command; resolves with the sequence number vLLM gave the batch. */
  async send(cmd: Record<string, unknown>): Promise<number> {
    return (await this.peer.command(cmd, VLLM_ANSWER_MS)).seq as number;
  }

  stop(): Promise<void> {
    return this.peer.stop(5000);
  }
}

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${HTTP_PORT}/metrics`)).text();
}

async function score(tokens: number[]): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${HTTP_PORT}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, tokens }) });
  if (res.status !== 200) throw new Error(`score answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { scores: Record<string, number> }).scores;
}

/** The value of one un-labelled or labelled sample in Prometheus text. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const tokensOf = (seed: number, blocks: number) => Array.from({ length: blocks * BLOCK }, (_, i) => 1000 + ((seed * 104729 + i * 7919) % 150000));

describe('kvroute indexer (central mode) fed by vLLM 0.33\'s own ZmqEventPublisher', () => {
  let indexer: ChildProcess;
  let indexerExited: Promise<number | null>;
  let indexerStderr = '';
  let vllm: VllmPublisher;
  let rank1: VllmPublisher;

  /** Publishes distinct one-block probes until one is indexed: ZMQ drops what a PUB sends before its connection is up. */
  async function syncWith(publisher: VllmPublisher, seed: number): Promise<void> {
    let probe = 0;
    await until('a probe batch from vLLM to be indexed', async () => {
      const tokens = tokensOf(seed + probe++, 1);
      await publisher.send({ op: 'store', tokens });
      return (await score(tokens))[POD] === 1 ? true : undefined;
    });
  }

  beforeAll(async () => {
    const python = execFileSync('bash', [path.join(root, 'hack/vllm-env.sh')], { encoding: 'utf8' }).trim();
    indexer = spawn(
      NODE,
      ['bin/kvroute.js', 'indexer', '--listen-host', '127.0.0.1', '--zmq-bind', `tcp://127.0.0.1:${ZMQ_PORT}`, '--replay-endpoint-template', `tcp://{pod}:${REPLAY_PORT}`,
        '--dp-size', '2', '--http-port', String(HTTP_PORT), '--grpc-port', String(GRPC_PORT), '--block-size', String(BLOCK), '--tokenizer-workers', '0'],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    indexer.stderr!.on('data', (d: Buffer) => (indexerStderr += d.toString()));
    indexerExited = new Promise((resolve) => indexer.once('exit', (code) => resolve(code)));
    await until('the indexer /healthz', async () => ((await fetch(`http://127.0.0.1:${HTTP_PORT}/healthz`)).status === 200 ? true : undefined), 60_000);
    // vLLM connects a non-wildcard tcp PUB endpoint and binds its replay ROUTER, as in central mode.
    vllm = new VllmPublisher(python, ['--endpoint', `tcp://127.0.0.1:${ZMQ_PORT}`, '--replay', `tcp://${POD}:${REPLAY_PORT}`, '--topic', `kv@${POD}@${MODEL}`, '--block-size', String(BLOCK)]);
    rank1 = new VllmPublisher(python, ['--endpoint', `tcp://127.0.0.1:${ZMQ_PORT}`, '--replay', `tcp://${POD}:${REPLAY_PORT}`, '--topic', `kv@${POD}@${MODEL}`, '--block-size', String(BLOCK), '--dp-rank', '1']);
    expect(await vllm.next()).toMatchObject({ ready: true, vllm: '0.33.0' });
    expect(await rank1.next()).toMatchObject({ ready: true, vllm: '0.33.0' });
    await syncWith(vllm, 1000);
    await syncWith(rank1, 2000);
  }, 120_000);

  afterAll(async () => {
    await vllm?.stop();
    await rank1?.stop();
    if (indexer && indexer.exitCode === null) indexer.kill('SIGTERM');
    await indexerExited;
  });

  it('recovers a batch lost on the wire from vLLM\'s replay ROUTER and scores across it', async () => {
    const before = await metrics();
    const tokens = tokensOf(7, 5);
    await vllm.send({ op: 'store', tokens, from: 0, to: 2 });
    await until('blocks 0-1', async () => ((await score(tokens))[POD] === 2 ? true : undefined));
    // Block 2 is numbered and buffered by vLLM but never reaches the indexer; blocks 3-4 chain onto it,
    // so without the replay they would be dropped for an unknown parent and the score would stay 2.
    const lost = await vllm.send({ op: 'store', tokens, from: 2, to: 3, drop: true });
    const next = await vllm.send({ op: 'store', tokens, from: 3, to: 5 });
    expect(next).toBe(lost + 1);
    const scores = await until('all five blocks, across the replayed gap', async () => {
      const s = await score(tokens);
      return s[POD] === 5 ? s : undefined;
    });
    expect(scores).toEqual({ [POD]: 5 });
    const after = await metrics();
    const delta = (series: string) => (sample(after, series) ?? 0) - (sample(before, series) ?? 0);
    expect(delta('kvroute_indexer_replays_total{result="ok"}')).toBe(1);
    expect(delta('kvroute_indexer_sequence_gaps_total')).toBe(1);
    expect(after).not.toMatch(/kvroute_indexer_source_resets_total\{[^}]*\} [1-9]/);
    expect(after).not.toMatch(/kvroute_indexer_replays_total\{result="failed"\} [1-9]/);

    // A removal from vLLM cuts the prefix at the removed block.
    await vllm.send({ op: 'remove', tokens, block: 3 });
    expect(await until('block 3 removed', async () => ((await score(tokens))[POD] === 3 ? (await score(tokens))[POD] : undefined))).toBe(3);
    expect(indexerStderr).toContain('sequence gap recovered by replay');
  }, 60_000);

  it('takes data-parallel rank 1 on the next bound port and replays its gap from the replay port + 1', async () => {
    const before = await metrics();
    const tokens = tokensOf(11, 4);
    await rank1.send({ op: 'store', tokens, from: 0, to: 1 });
    await until('rank 1 block 0', async () => ((await score(tokens))[POD] === 1 ? true : undefined));
    await rank1.send({ op: 'store', tokens, from: 1, to: 2, drop: true });
    await rank1.send({ op: 'store', tokens, from: 2, to: 4 });
    expect(await until('rank 1 across its replayed gap', async () => ((await score(tokens))[POD] === 4 ? score(tokens) : undefined))).toEqual({ [POD]: 4 });
    const after = await metrics();
    expect((sample(after, 'kvroute_indexer_replays_total{result="ok"}') ?? 0) - (sample(before, 'kvroute_indexer_replays_total{result="ok"}') ?? 0)).toBe(1);
    expect(after).toContain(`source="${POD}|dp1"`);
    expect(after).not.toMatch(/kvroute_indexer_source_resets_total\{[^}]*\} [1-9]/);
  }, 60_000);
});
