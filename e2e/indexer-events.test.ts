// KV-event ingestion against real publishers in other processes: hack/kv_publisher.py (pyzmq +
// msgspec, vLLM's wire forms and replay protocol) feeding an EventIngestor over TCP, and feeding the
// real `kvroute indexer` process, whose scores are checked over HTTP.

import { describe, it, expect, afterEach } from '@jest/globals';
import { Registry } from 'prom-client';
import { silentLogger } from '../src/common/log.ts';
import { EventIngestor } from '../src/indexer/events/ingestor.ts';
import { RecordingSink } from '../src/indexer/events/test-helpers.ts';
import { vllmEngineKeys } from '../src/vllm/block-hash.ts';
import { cleared, KvPublisherProcess, removed, stored, type KvPublisherOptions } from '../test/support/kv-publisher.ts';
import { portOf, spawnKvroute } from '../test/support/kvroute.ts';
import { freePortBlock } from '../test/support/ports.ts';
import { until } from '../test/support/until.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startPublisher(options: KvPublisherOptions): Promise<KvPublisherProcess> {
  const p = await KvPublisherProcess.start(options);
  cleanups.push(() => p.stop());
  return p;
}

/** ZMQ drops what a PUB sends before the subscription reaches it: publish empty batches until one lands. */
async function sync(pub: KvPublisherProcess, landed: () => boolean): Promise<void> {
  await until(
    async () => {
      if (landed()) return true;
      await pub.publish([]);
      return landed();
    },
    { message: 'a batch from the publisher process to arrive', timeoutMs: 15_000 },
  );
}

const applied = (sink: RecordingSink, source: string) =>
  sink.records.flatMap((r) =>
    r.op === 'apply' && r.source === source ? r.events : r.op === 'reset' && r.source === source ? ['reset'] : [],
  );

describe('EventIngestor fed by hack/kv_publisher.py over TCP (central mode)', () => {
  it('applies store, remove and clear with parent chains, recovers a gap by replay, and survives garbage', async () => {
    const sink = new RecordingSink();
    const registry = new Registry();
    // Each pod's replay ROUTER binds a kernel-picked port; the ingestor looks it up when it needs it.
    const replay: Record<string, string> = {};
    const ingestor = new EventIngestor({ sink, log: silentLogger, registry, replayEndpoints: (pod) => replay[pod] });
    cleanups.push(() => ingestor.close());
    const bound = await ingestor.bind('tcp://127.0.0.1:0');

    const a = await startPublisher({ endpoint: bound, replay: 'tcp://127.0.0.1:0', topic: 'kv@pod-a@meta-llama/Llama-3.1-8B@main' });
    const b = await startPublisher({
      endpoint: bound,
      replay: 'tcp://127.0.0.1:0',
      topic: 'kv@10.0.0.2:8000@Qwen/Qwen3-8B',
      encoding: 'array',
      replyForm: 'legacy',
    });
    const c = await startPublisher({ endpoint: bound, topic: 'kv@pod-c@m' });
    replay['pod-a'] = a.replayEndpoint!;
    replay['10.0.0.2:8000'] = b.replayEndpoint!;
    await sync(a, () => sink.applied('pod-a') > 0);
    await sync(b, () => sink.applied('10.0.0.2:8000') > 0);
    await sync(c, () => sink.applied('pod-c') > 0);
    expect(sink.records.find((r) => r.op === 'apply' && r.source === 'pod-a')).toMatchObject({ model: 'meta-llama/Llama-3.1-8B@main' });

    // Store with parent chains, then remove; vLLM 0.33 map form (a) and the older array form (b).
    for (const p of [a, b]) {
      await p.publish([stored([1n, 2n], null)]);
      await p.publish([stored([3n, 0xffff_ffff_ffff_fff0n], 2n), removed([1n])]);
    }
    await until(
      () => sink.chain('pod-a', 0xffff_ffff_ffff_fff0n).length === 3 && sink.chain('10.0.0.2:8000', 0xffff_ffff_ffff_fff0n).length === 3,
      { message: 'stores and removes of both pods' },
    );
    expect(sink.chain('pod-a', 0xffff_ffff_ffff_fff0n)).toEqual([0xffff_ffff_ffff_fff0n, 3n, 2n]);
    expect(sink.blocks.get('pod-a')?.has(1n)).toBe(false);
    expect(sink.chain('10.0.0.2:8000', 0xffff_ffff_ffff_fff0n)).toEqual([0xffff_ffff_ffff_fff0n, 3n, 2n]);

    // Garbage of every kind: counted, logged, and no effect on the sequence that follows.
    for (const kind of ['frames', 'topic', 'seq', 'payload', 'truncated'] as const) await a.garbage(kind);

    // Lost messages: recovered through each pod's replay endpoint (0.33 and legacy reply forms), in order.
    for (const p of [a, b]) {
      await p.publish([stored([10n], 0xffff_ffff_ffff_fff0n)], { drop: true });
      await p.publish([stored([11n], 10n)], { drop: true });
      await p.publish([stored([12n], 11n)]);
    }
    await until(() => sink.chain('pod-a', 12n).length === 6 && sink.chain('10.0.0.2:8000', 12n).length === 6, {
      message: 'replayed chains',
    });

    // A lost message without a replay endpoint: the source is reset, never left with wrong entries.
    await c.publish([stored([40n], null)]);
    await c.publish([stored([41n], 40n)], { drop: true });
    await c.publish([stored([42n], 41n)]);
    await until(() => sink.blocks.get('pod-c')?.has(42n) === true, { message: 'reset of pod-c' });
    expect(sink.blocks.get('pod-c')?.has(40n)).toBe(false);

    // A restarted publisher numbers from 0 again: reset, then its new events.
    await a.restart();
    await a.publish([stored([50n], null)]);
    await until(() => sink.blocks.get('pod-a')?.has(50n) === true, { message: 'restart of pod-a' });
    expect(sink.blocks.get('pod-a')?.has(12n)).toBe(false);

    await b.publish([cleared]);
    await until(() => sink.blocks.get('10.0.0.2:8000')?.size === 0, { message: 'clear of 10.0.0.2:8000' });

    expect(
      applied(sink, 'pod-a')
        .filter((e) => e !== 'reset')
        .slice(-4),
    ).toEqual(['BlockStored:10', 'BlockStored:11', 'BlockStored:12', 'BlockStored:50']);
    expect(applied(sink, 'pod-c').slice(-3)).toEqual(['BlockStored:40', 'reset', 'BlockStored:42']);
    const stats = ingestor.stats();
    expect(stats).toMatchObject({ malformed: 5, gaps: 3, replays: 2, replayFailures: 0, resets: 2 });
    const text = await registry.metrics();
    expect(text).toMatch(/kvroute_indexer_malformed_messages_total\{reason="frame_count"\} 1/);
    expect(text).toMatch(/kvroute_indexer_malformed_messages_total\{reason="invalid_msgpack"\} 1/);
    expect(text).toMatch(/kvroute_indexer_source_resets_total\{reason="restart"\} 1/);
    expect(text).toMatch(/kvroute_indexer_events_total\{type="BlockStored"\} \d+/);
  }, 60_000);
});

describe('data-parallel ranks as separate publisher processes (central mode)', () => {
  it("keeps ranks apart and replays a rank's gap from rank 0's replay port offset by the rank", async () => {
    const sink = new RecordingSink();
    // Rank r replays on rank 0's replay port + r, as vLLM binds them: two consecutive free ports.
    const replayPort = await freePortBlock(2);
    const ingestor = new EventIngestor({
      sink,
      log: silentLogger,
      replayEndpoints: (pod) => (pod === 'pod-d' ? `tcp://127.0.0.1:${replayPort}` : undefined),
    });
    cleanups.push(() => ingestor.close());
    const bound = await ingestor.bind('tcp://127.0.0.1:0');
    const topic = 'kv@pod-d@m';
    const rank0 = await startPublisher({ endpoint: bound, replay: `tcp://127.0.0.1:${replayPort}`, topic, dpRank: 0 });
    const rank1 = await startPublisher({ endpoint: bound, replay: `tcp://127.0.0.1:${replayPort + 1}`, topic, dpRank: 1 });
    await sync(rank0, () => sink.applied('pod-d') > 0);
    await sync(rank1, () => sink.applied('pod-d|dp1') > 0);
    await rank0.publish([stored([1n], null)]);
    await rank1.publish([stored([1n], null)]);
    await rank1.publish([stored([2n], 1n)], { drop: true });
    await rank1.publish([stored([3n], 2n)]);
    await rank0.publish([stored([7n], 1n)]);
    await until(() => sink.chain('pod-d|dp1', 3n).length === 3 && sink.chain('pod-d', 7n).length === 2, { message: 'both ranks' });
    expect(sink.chain('pod-d|dp1', 3n)).toEqual([3n, 2n, 1n]);
    expect(sink.blocks.get('pod-d')?.has(2n)).toBe(false);
    expect(ingestor.stats()).toMatchObject({ gaps: 1, replays: 1, resets: 0 });
  }, 60_000);
});

describe('kvroute indexer process fed by hack/kv_publisher.py (per-pod mode)', () => {
  it('scores pods over HTTP from published vLLM block hashes, across a replayed gap, removal and clear', async () => {
    const BLOCK = 16;
    const pub = await startPublisher({
      endpoint: 'tcp://127.0.0.1:0',
      bind: true,
      replay: 'tcp://127.0.0.1:0',
      topic: 'kv@pod-x@Qwen/Qwen3-8B',
    });
    const indexer = await spawnKvroute(
      [
        'indexer',
        '--pod',
        `pod-x=${pub.endpoint},${pub.replayEndpoint}`,
        '--http-port',
        '0',
        '--grpc-port',
        '0',
        '--listen-host',
        '127.0.0.1',
        '--block-size',
        String(BLOCK),
        '--hash-seed',
        '0',
        '--log-level',
        'info',
      ],
      { readyLine: 'indexer ready', readyUrl: (r) => `http://127.0.0.1:${portOf(r, 'httpPort')}/healthz` },
    );
    cleanups.push(() => indexer.stop().then(() => undefined));
    const base = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}`;
    const score = async (tokens: number[]): Promise<Record<string, number>> => {
      const res = await fetch(`${base}/v1/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'Qwen/Qwen3-8B', tokens }),
      });
      if (res.status !== 200) throw new Error(`score answered ${res.status}: ${await res.text()}`);
      return ((await res.json()) as { scores: Record<string, number> }).scores;
    };
    const scoreOf = async (tokens: number[]) => (await score(tokens))['pod-x'];

    const tokens = Array.from({ length: 5 * BLOCK }, (_, i) => 3000 + ((i * 7919) % 20000));
    const keys = vllmEngineKeys(tokens, { blockSize: BLOCK, hashSeed: '0' });
    const blockTokens = (from: number, to: number) => tokens.slice(from * BLOCK, to * BLOCK);
    const hashes = (from: number, to: number) => Array.from(keys.subarray(from, to));

    // The subscription is live once a first batch (blocks 0-1) lands.
    await until(
      async () => {
        await pub.publish([stored(hashes(0, 2), null, blockTokens(0, 2), BLOCK)]);
        return (await scoreOf(tokens)) === 2;
      },
      { message: 'the first batch to be indexed', timeoutMs: 15_000 },
    );
    // Block 2 is lost on the wire; block 3 reveals the gap; replay brings block 2 back in order.
    await pub.publish([stored(hashes(2, 3), keys[1]!, blockTokens(2, 3), BLOCK)], { drop: true });
    await pub.publish([stored(hashes(3, 5), keys[2]!, blockTokens(3, 5), BLOCK)]);
    await until(async () => (await scoreOf(tokens)) === 5, { message: 'score 5 across the replayed gap', timeoutMs: 15_000 });

    await pub.publish([removed([keys[2]!])]);
    await until(async () => (await scoreOf(tokens)) === 2, { message: 'score 2 after removing block 2', timeoutMs: 15_000 });

    await pub.publish([cleared]);
    await until(async () => (await score(tokens))['pod-x'] === undefined, { message: 'no score after clear', timeoutMs: 15_000 });

    const pods = (await (await fetch(`${base}/v1/pods`)).json()) as { ingestion: { gaps: number; replays: number } };
    expect(pods.ingestion).toMatchObject({ gaps: 1, replays: 1 });
    expect(await indexer.stop()).toBe(0);
  }, 90_000);
});
