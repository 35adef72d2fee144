// `kvroute indexer` in central mode fed by vLLM 0.33's own ZmqEventPublisher (hack/vllm_publisher.py,
// run from the vllm wheel): vLLM connects its PUB socket to the indexer's bind, one batch is lost on
// the wire after vLLM numbered and buffered it, and the indexer must fetch it from vLLM's own replay
// ROUTER, found through --replay-endpoint-template from the topic's pod id. A data-parallel rank 1
// publisher (vLLM offsets both its ports by the rank) reaches the indexer through --dp-size 2.
//
// Each check waits only until the indexer has applied as many batches as vLLM numbered (its own
// counter), then asserts the score against the block count of the tokens, computed here.

import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { JsonLinesPeer } from '../test/support/json-lines-peer.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { freePortBlock } from '../test/support/ports.ts';
import { vllmPython } from '../test/support/python.ts';
import { repoRoot } from '../test/support/repo-root.ts';
import { until } from '../test/support/until.ts';

const BLOCK = 16;
const MODEL = 'Qwen/Qwen3-8B';
/** The pod id vLLM puts in its topic (kv@$(POD_IP)@<model> in a pool); the template turns it into the replay endpoint. */
const POD = '127.0.0.1';

/** vLLM's publisher imports the vllm package on start, which can take a while on a busy machine. */
const VLLM_ANSWER_MS = 60_000;

/** hack/vllm_publisher.py: vLLM's ZmqEventPublisher behind JSON lines on stdin/stdout. */
class VllmPublisher {
  private readonly peer: JsonLinesPeer;

  constructor(args: string[]) {
    this.peer = new JsonLinesPeer(
      'vllm_publisher.py',
      spawn(vllmPython(), [path.join(repoRoot, 'hack/vllm_publisher.py'), ...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] }),
    );
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

/** The value of one un-labelled or labelled sample in Prometheus text. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const tokensOf = (seed: number, blocks: number) =>
  Array.from({ length: blocks * BLOCK }, (_, i) => 1000 + ((seed * 104729 + i * 7919) % 150000));

describe("kvroute indexer (central mode) fed by vLLM 0.33's own ZmqEventPublisher", () => {
  let indexer: KvrouteProcess;
  let base: string;
  let vllm: VllmPublisher;
  let rank1: VllmPublisher;

  async function metrics(): Promise<string> {
    return (await fetch(`${base}/metrics`)).text();
  }

  async function score(tokens: number[]): Promise<Record<string, number>> {
    const res = await fetch(`${base}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, tokens }),
    });
    if (res.status !== 200) throw new Error(`score answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { scores: Record<string, number> }).scores;
  }

  /** Batches the indexer has applied, over all sources, and how many wait in its queue. */
  async function ingestion(): Promise<{ batches: number; queued: number }> {
    return ((await (await fetch(`${base}/v1/pods`)).json()) as { ingestion: { batches: number; queued: number } }).ingestion;
  }

  /** Waits until the indexer has applied `count` more batches than `before` (a lost one counts once replayed) and has none queued. */
  async function applied(before: number, count: number, what: string): Promise<void> {
    await until(
      async () => {
        const now = await ingestion();
        return now.batches >= before + count && now.queued === 0;
      },
      { message: `the indexer to apply ${count} batches (${what})`, timeoutMs: 20_000 },
    );
    expect((await ingestion()).batches).toBe(before + count);
  }

  /** Publishes distinct one-block probes until one is indexed: ZMQ drops what a PUB sends before its connection is up. */
  async function syncWith(publisher: VllmPublisher, seed: number): Promise<void> {
    let probe = 0;
    await until(
      async () => {
        const tokens = tokensOf(seed + probe++, 1);
        await publisher.send({ op: 'store', tokens });
        return (await score(tokens))[POD] === 1;
      },
      { message: 'a probe batch from vLLM to be indexed', timeoutMs: 20_000 },
    );
  }

  beforeAll(async () => {
    // --dp-size 2: rank r publishes to the bind port + r and replays on the replay port + r, so both
    // are fixed, consecutive, free ports; the HTTP and gRPC ports are the kernel's pick.
    const zmqPort = await freePortBlock(2);
    const replayPort = await freePortBlock(2);
    indexer = await spawnKvroute(
      [
        'indexer',
        '--listen-host',
        '127.0.0.1',
        '--zmq-bind',
        `tcp://127.0.0.1:${zmqPort}`,
        '--replay-endpoint-template',
        `tcp://{pod}:${replayPort}`,
        '--dp-size',
        '2',
        '--http-port',
        '0',
        '--grpc-port',
        '0',
        '--block-size',
        String(BLOCK),
        '--tokenizer-workers',
        '0',
      ],
      { readyLine: 'indexer ready', readyUrl: (r) => `http://127.0.0.1:${portOf(r, 'httpPort')}/healthz` },
    );
    base = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}`;
    // vLLM connects a non-wildcard tcp PUB endpoint and binds its replay ROUTER, as in central mode.
    const common = [
      '--endpoint',
      `tcp://127.0.0.1:${zmqPort}`,
      '--replay',
      `tcp://${POD}:${replayPort}`,
      '--topic',
      `kv@${POD}@${MODEL}`,
      '--block-size',
      String(BLOCK),
    ];
    vllm = new VllmPublisher(common);
    rank1 = new VllmPublisher([...common, '--dp-rank', '1']);
    expect(await vllm.next()).toMatchObject({ ready: true, vllm: '0.33.0' });
    expect(await rank1.next()).toMatchObject({ ready: true, vllm: '0.33.0' });
    await syncWith(vllm, 1000);
    await syncWith(rank1, 2000);
  }, 120_000);

  afterAll(async () => {
    await vllm?.stop();
    await rank1?.stop();
    await indexer?.stop();
  });

  it("recovers a batch lost on the wire from vLLM's replay ROUTER and scores across it", async () => {
    const before = await metrics();
    const start = (await ingestion()).batches;
    const tokens = tokensOf(7, 5);
    const first = await vllm.send({ op: 'store', tokens, from: 0, to: 2 });
    // Block 2 is numbered and buffered by vLLM but never reaches the indexer; blocks 3-4 chain onto it,
    // so without the replay they would be dropped for an unknown parent and the score would stay 2.
    const lost = await vllm.send({ op: 'store', tokens, from: 2, to: 3, drop: true });
    const last = await vllm.send({ op: 'store', tokens, from: 3, to: 5 });
    expect([lost, last]).toEqual([first + 1, first + 2]);
    await applied(start, last - first + 1, 'blocks 0-4, block 2 through replay');
    expect(await score(tokens)).toEqual({ [POD]: tokens.length / BLOCK });
    const after = await metrics();
    const delta = (series: string) => (sample(after, series) ?? 0) - (sample(before, series) ?? 0);
    expect(delta('kvroute_indexer_replays_total{result="ok"}')).toBe(1);
    expect(delta('kvroute_indexer_sequence_gaps_total')).toBe(1);
    expect(after).not.toMatch(/kvroute_indexer_source_resets_total\{[^}]*\} [1-9]/);
    expect(after).not.toMatch(/kvroute_indexer_replays_total\{result="failed"\} [1-9]/);

    // A removal from vLLM cuts the prefix at the removed block: blocks 0-2 still match.
    const beforeRemoval = (await ingestion()).batches;
    await vllm.send({ op: 'remove', tokens, block: 3 });
    await applied(beforeRemoval, 1, 'the removal of block 3');
    expect(await score(tokens)).toEqual({ [POD]: 3 });
    expect(indexer.logs()).toContain('sequence gap recovered by replay');
  }, 60_000);

  it('takes data-parallel rank 1 on the next bound port and replays its gap from the replay port + 1', async () => {
    const before = await metrics();
    const start = (await ingestion()).batches;
    const tokens = tokensOf(11, 4);
    const first = await rank1.send({ op: 'store', tokens, from: 0, to: 1 });
    await rank1.send({ op: 'store', tokens, from: 1, to: 2, drop: true });
    const last = await rank1.send({ op: 'store', tokens, from: 2, to: 4 });
    await applied(start, last - first + 1, 'rank 1 blocks 0-3, block 1 through replay');
    expect(await score(tokens)).toEqual({ [POD]: tokens.length / BLOCK });
    const after = await metrics();
    expect(
      (sample(after, 'kvroute_indexer_replays_total{result="ok"}') ?? 0) -
        (sample(before, 'kvroute_indexer_replays_total{result="ok"}') ?? 0),
    ).toBe(1);
    expect(after).toContain(`source="${POD}|dp1"`);
    expect(after).not.toMatch(/kvroute_indexer_source_resets_total\{[^}]*\} [1-9]/);
  }, 60_000);
});
