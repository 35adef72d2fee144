import { describe, it, expect, afterEach } from '@jest/globals';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/log.ts';
import type { EventSource } from '../types.ts';
import type { EventBatch } from '../../vllm/events/types.ts';
import { EventIngestor } from './ingestor.ts';
import { Router } from 'zeromq';
import { RecordingSink, storedEvent, TestPublisher, type TestPublisherOptions } from './test-helpers.ts';
import { until } from '../../../test/support/until.ts';
import { sequenceFrame } from '../../vllm/events/topic.ts';

let n = 0;
const endpoint = (name: string) => `inproc://ingestor-test-${name}-${n++}`;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function centralIngestor(
  opts: {
    replay?: Record<string, string>;
    replayTimeoutMs?: number;
    sink?: RecordingSink;
    now?: () => number;
    sourceIdleTimeoutMs?: number;
    expirySweepMs?: number;
  } = {},
) {
  const sink = opts.sink ?? new RecordingSink();
  const registry = new Registry();
  const ingestor = new EventIngestor({
    sink,
    log: silentLogger,
    registry,
    replayEndpoints: (pod) => opts.replay?.[pod],
    replayTimeoutMs: opts.replayTimeoutMs ?? 2000,
    now: opts.now,
    sourceIdleTimeoutMs: opts.sourceIdleTimeoutMs,
    expirySweepMs: opts.expirySweepMs,
  });
  const bind = endpoint('central');
  await ingestor.bind(bind);
  cleanups.push(() => ingestor.close());
  return { sink, ingestor, registry, bind };
}

async function publisher(options: TestPublisherOptions): Promise<TestPublisher> {
  const p = await TestPublisher.start(options);
  cleanups.push(() => p.close());
  return p;
}

/** Publishes empty batches until the subscriber has one (ZMQ drops what is sent before the subscription arrives). */
async function sync(pub: TestPublisher, sink: RecordingSink, source: string, dpRank = 0): Promise<void> {
  await until(
    () => {
      if (sink.applied(source) > 0) return true;
      void pub.publish([], { dpRank });
      return false;
    },
    { message: `first batch of ${source}` },
  );
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + v.value, 0);
}

const storedHashes = (sink: RecordingSink, source: string) =>
  sink.records.flatMap((r) => (r.op === 'apply' && r.source === source ? r.events.filter((e) => e !== 'AllBlocksCleared') : []));

describe('EventIngestor (central mode, real ZMQ sockets)', () => {
  it('applies a source in sequence order, names pod and model from the topic, and keeps dp ranks apart', async () => {
    const { sink, ingestor, bind } = await centralIngestor();
    // Each data-parallel rank runs its own publisher with its own sequence numbers, as in vLLM.
    const pub = await publisher({ topic: 'kv@pod-a@org/model@rev', connect: bind });
    const rank1 = await publisher({ topic: 'kv@pod-a@org/model@rev', connect: bind });
    await sync(pub, sink, 'pod-a');
    await sync(rank1, sink, 'pod-a|dp1', 1);
    await pub.publish([storedEvent([1n, 2n], null)]);
    await rank1.publish([storedEvent([3n], 2n)], { dpRank: 1 });
    await pub.publish([storedEvent([4n], 2n), { type: 'BlockRemoved', block_hashes: [1n], medium: 'GPU' }]);
    await until(() => storedHashes(sink, 'pod-a').length === 3 && storedHashes(sink, 'pod-a|dp1').length === 1, {
      message: 'three batches',
    });
    expect(storedHashes(sink, 'pod-a')).toEqual(['BlockStored:1,2', 'BlockStored:4', 'BlockRemoved:1']);
    expect(storedHashes(sink, 'pod-a|dp1')).toEqual(['BlockStored:3']);
    expect(sink.records.find((r) => r.op === 'apply')).toMatchObject({ model: 'org/model@rev' });
    expect(sink.chain('pod-a', 4n)).toEqual([4n, 2n]);
    expect(ingestor.stats()).toMatchObject({ gaps: 0, malformed: 0 });
  });

  it('forgets a source idle past the timeout in the sink and the metrics, and takes it afresh if it returns', async () => {
    let now = 1_000_000;
    const { sink, ingestor, registry, bind } = await centralIngestor({ now: () => now, sourceIdleTimeoutMs: 60_000, expirySweepMs: 5 });
    const quiet = await publisher({ topic: 'kv@pod-quiet@m', connect: bind });
    const busy = await publisher({ topic: 'kv@pod-busy@m', connect: bind });
    await sync(quiet, sink, 'pod-quiet');
    await sync(busy, sink, 'pod-busy');
    await quiet.publish([storedEvent([1n], null)]);
    await until(() => sink.chain('pod-quiet', 1n).length === 1, { message: 'pod-quiet block' });
    expect(await registry.metrics()).toContain('source="pod-quiet"');
    now += 30_000;
    const before = sink.applied('pod-busy');
    await busy.publish([]);
    await until(() => sink.applied('pod-busy') > before, { message: 'pod-busy batch' });
    now += 31_000;
    await until(() => sink.records.some((r) => r.op === 'forget' && r.source === 'pod-quiet'), { message: 'pod-quiet to be forgotten' });
    expect(sink.records.filter((r) => r.op === 'forget').map((r) => r.source)).toEqual(['pod-quiet']);
    expect(sink.blocks.has('pod-quiet')).toBe(false);
    expect(ingestor.stats()).toMatchObject({ sources: 1, expired: 1 });
    const text = await registry.metrics();
    expect(text).not.toContain('source="pod-quiet"');
    expect(text).toContain('source="pod-busy"');
    expect(await metric(registry, 'kvroute_indexer_sources_expired_total')).toBe(1);
    // Back after the expiry, with a later sequence number: a new source, not a gap to recover.
    await quiet.publish([storedEvent([2n], null)]);
    await until(() => sink.chain('pod-quiet', 2n).length === 1, { message: 'pod-quiet again' });
    expect(ingestor.stats()).toMatchObject({ sources: 2, gaps: 0 });
  });

  it.each(['topic', 'legacy'] as const)('recovers a gap through the replay endpoint (%s reply form) in order', async (replyForm) => {
    const replayBind = endpoint('replay');
    const { sink, ingestor, registry, bind } = await centralIngestor({ replay: { 'pod-r': replayBind } });
    const pub = await publisher({ topic: 'kv@pod-r@m', connect: bind, replayBind, replyForm });
    await sync(pub, sink, 'pod-r');
    await pub.publish([storedEvent([10n], null)]);
    await pub.publish([storedEvent([11n], 10n)], { drop: true });
    await pub.publish([storedEvent([12n], 11n)], { drop: true });
    await pub.publish([storedEvent([13n], 12n)]);
    await pub.publish([storedEvent([14n], 13n)]);
    await until(() => storedHashes(sink, 'pod-r').length === 5, { message: 'replayed batches' });
    expect(storedHashes(sink, 'pod-r')).toEqual(['BlockStored:10', 'BlockStored:11', 'BlockStored:12', 'BlockStored:13', 'BlockStored:14']);
    expect(sink.chain('pod-r', 14n)).toEqual([14n, 13n, 12n, 11n, 10n]);
    expect(sink.resets('pod-r')).toBe(0);
    expect(ingestor.stats()).toMatchObject({ gaps: 1, replays: 1, replayFailures: 0 });
    expect(await metric(registry, 'kvroute_indexer_replays_total', { result: 'ok' })).toBe(1);
  });

  it('resets a source on a gap when it has no replay endpoint, then carries on', async () => {
    const { sink, ingestor, registry, bind } = await centralIngestor();
    const pub = await publisher({ topic: 'kv@pod-n@m', connect: bind });
    await sync(pub, sink, 'pod-n');
    await pub.publish([storedEvent([20n], null)]);
    await pub.publish([storedEvent([21n], 20n)], { drop: true });
    await pub.publish([storedEvent([22n], 21n)]);
    await until(() => storedHashes(sink, 'pod-n').includes('BlockStored:22'), { message: 'batch after the gap' });
    const ops = sink.records.filter((r) => r.source === 'pod-n').map((r) => (r.op === 'apply' ? r.events.join() : r.op));
    expect(ops.slice(-3)).toEqual(['BlockStored:20', 'reset', 'BlockStored:22']);
    expect(sink.blocks.get('pod-n')?.has(20n)).toBe(false);
    expect(ingestor.stats()).toMatchObject({ gaps: 1, resets: 1 });
    expect(await metric(registry, 'kvroute_indexer_source_resets_total', { reason: 'gap' })).toBe(1);
  });

  it('resets a gap of a data-parallel rank whose replay endpoint vLLM could not offset (ipc), and carries on', async () => {
    const { sink, ingestor, bind } = await centralIngestor({ replay: { 'pod-i': 'ipc:///tmp/kvroute-no-such-replay' } });
    const pub = await publisher({ topic: 'kv@pod-i@m', connect: bind });
    await sync(pub, sink, 'pod-i|dp1', 1);
    await pub.publish([storedEvent([30n], null)], { dpRank: 1 });
    await pub.publish([storedEvent([31n], 30n)], { dpRank: 1, drop: true });
    await pub.publish([storedEvent([32n], 31n)], { dpRank: 1 });
    await until(() => storedHashes(sink, 'pod-i|dp1').includes('BlockStored:32'), { message: 'batch after the gap' });
    const ops = sink.records.filter((r) => r.source === 'pod-i|dp1').map((r) => (r.op === 'apply' ? r.events.join() : r.op));
    expect(ops.slice(-3)).toEqual(['BlockStored:30', 'reset', 'BlockStored:32']);
    expect(ingestor.stats()).toMatchObject({ gaps: 1, resets: 1 });
  });

  it('resets a source when the replay buffer no longer holds the missing batches', async () => {
    const replayBind = endpoint('replay');
    const { sink, ingestor, bind } = await centralIngestor({ replay: { 'pod-e': replayBind } });
    const pub = await publisher({ topic: 'kv@pod-e@m', connect: bind, replayBind, bufferSteps: 2 });
    await sync(pub, sink, 'pod-e');
    await pub.publish([storedEvent([30n], null)]);
    for (let i = 0; i < 4; i++) await pub.publish([storedEvent([31n + BigInt(i)], null)], { drop: true });
    await pub.publish([storedEvent([40n], null)]);
    await until(() => sink.resets('pod-e') === 1 && storedHashes(sink, 'pod-e').includes('BlockStored:40'), {
      message: 'reset after a failed replay',
    });
    expect(ingestor.stats()).toMatchObject({ gaps: 1, replays: 0, replayFailures: 1 });
    expect(sink.blocks.get('pod-e')?.has(30n)).toBe(false);
    expect(sink.blocks.get('pod-e')?.has(40n)).toBe(true);
  });

  it('resets a source when its replay endpoint does not answer in time, and applies what arrived meanwhile', async () => {
    const { sink, ingestor, bind } = await centralIngestor({ replay: { 'pod-t': endpoint('nobody') }, replayTimeoutMs: 150 });
    const pub = await publisher({ topic: 'kv@pod-t@m', connect: bind });
    await sync(pub, sink, 'pod-t');
    await pub.publish([storedEvent([50n], null)], { drop: true });
    await pub.publish([storedEvent([51n], null)]);
    await pub.publish([storedEvent([52n], 51n)]);
    await until(() => storedHashes(sink, 'pod-t').length === 2, { message: 'batches after the failed replay' });
    expect(storedHashes(sink, 'pod-t')).toEqual(['BlockStored:51', 'BlockStored:52']);
    expect(sink.resets('pod-t')).toBe(1);
    expect(ingestor.stats()).toMatchObject({ replayFailures: 1 });
  });

  it('treats a sequence that goes back to 0 as a publisher restart: reset, not a gap', async () => {
    const { sink, ingestor, bind } = await centralIngestor();
    const pub = await publisher({ topic: 'kv@pod-s@m', connect: bind });
    await sync(pub, sink, 'pod-s');
    await pub.publish([storedEvent([60n], null)]);
    await until(() => storedHashes(sink, 'pod-s').length === 1, { message: 'first block' });
    pub.seq = 0;
    await pub.publish([storedEvent([61n], null)]);
    await until(() => storedHashes(sink, 'pod-s').length === 2, { message: 'block after restart' });
    expect(sink.resets('pod-s')).toBe(1);
    expect(sink.blocks.get('pod-s')?.has(60n)).toBe(false);
    expect(ingestor.stats()).toMatchObject({ gaps: 0, resets: 1 });
  });

  it('drops a live batch that arrives after its replayed copy as a duplicate, not a restart (issue 10 race)', async () => {
    const replayBind = endpoint('replay');
    const { sink, ingestor, registry, bind } = await centralIngestor({ replay: { 'pod-l': replayBind } });
    const topic = 'kv@pod-l@m';
    const pub = await publisher({ topic, connect: bind, replayBind });
    await sync(pub, sink, 'pod-l');
    const sendLive = async (seq: number) => pub.raw([topic, sequenceFrame(seq), pub.buffer.find((b) => b.seq === seq)!.payload]);
    await pub.publish([storedEvent([70n], null)]);
    await pub.publish([storedEvent([71n], 70n)], { drop: true }); // lost on the wire
    const revealing = await pub.publish([storedEvent([72n], 71n)], { drop: true });
    // Buffered by the publisher but not yet delivered on PUB when the replay reads the buffer.
    const late = await pub.publish([storedEvent([73n], 72n)], { drop: true });
    await sendLive(revealing); // reveals the gap: the replay applies 71, 72 and 73
    await until(() => sink.chain('pod-l', 73n).length === 4 && ingestor.stats().replays === 1, { message: 'replay ran ahead of PUB' });
    const duplicatesBefore = await metric(registry, 'kvroute_indexer_dropped_batches_total', { reason: 'duplicate' });
    await sendLive(late); // the late live copy of 73
    await pub.publish([storedEvent([74n], 73n)]);
    await pub.publish([storedEvent([75n], 74n)]);
    await until(() => sink.chain('pod-l', 75n).length === 6, { message: 'live batches after the late one' });
    expect(sink.resets('pod-l')).toBe(0);
    expect(storedHashes(sink, 'pod-l')).toEqual([
      'BlockStored:70',
      'BlockStored:71',
      'BlockStored:72',
      'BlockStored:73',
      'BlockStored:74',
      'BlockStored:75',
    ]);
    expect(ingestor.stats()).toMatchObject({ gaps: 1, replays: 1, resets: 0 });
    // The late live copy of 73, skipped and counted.
    expect(await metric(registry, 'kvroute_indexer_dropped_batches_total', { reason: 'duplicate' })).toBe(duplicatesBefore + 1);
  });

  it('learns on first contact what the publisher still buffers, by a replay from 0', async () => {
    const replayBind = endpoint('replay');
    const { sink, ingestor, registry, bind } = await centralIngestor({ replay: { 'pod-c': replayBind } });
    const pub = await publisher({ topic: 'kv@pod-c@m', connect: bind, replayBind });
    // Stored before the indexer heard of the pod (as before an indexer restart): never delivered live.
    await pub.publish([storedEvent([80n], null)], { drop: true });
    await pub.publish([storedEvent([81n], 80n)], { drop: true });
    await pub.publish([storedEvent([82n], 81n)], { drop: true });
    await sync(pub, sink, 'pod-c');
    await pub.publish([storedEvent([83n], 82n)]);
    await until(() => sink.chain('pod-c', 83n).length === 4, { message: 'blocks stored before first contact' });
    expect(storedHashes(sink, 'pod-c')).toEqual(['BlockStored:80', 'BlockStored:81', 'BlockStored:82', 'BlockStored:83']);
    expect(sink.resets('pod-c')).toBe(0);
    expect(ingestor.stats()).toMatchObject({ catchUps: 1, catchUpFailures: 0, gaps: 0, resets: 0 });
    expect(await metric(registry, 'kvroute_indexer_catch_up_replays_total', { result: 'ok' })).toBe(1);
  });

  it('learns on first contact only what the bounded replay buffer still holds', async () => {
    const replayBind = endpoint('replay');
    const { sink, ingestor, bind } = await centralIngestor({ replay: { 'pod-b': replayBind } });
    const pub = await publisher({ topic: 'kv@pod-b@m', connect: bind, replayBind, bufferSteps: 3 });
    for (let i = 0; i < 6; i++) await pub.publish([storedEvent([90n + BigInt(i)], i === 0 ? null : 89n + BigInt(i))], { drop: true });
    // Live from here (seq 6 on); the catch-up starts at the oldest batch still buffered, seq 4 at best.
    await sync(pub, sink, 'pod-b');
    await pub.publish([storedEvent([96n], 95n)]);
    await until(() => sink.blocks.get('pod-b')?.has(96n) === true, { message: 'the live batch after the catch-up' });
    for (const gone of [90n, 91n, 92n, 93n]) expect(sink.blocks.get('pod-b')?.has(gone)).toBe(false);
    expect(ingestor.stats()).toMatchObject({ catchUps: 1, catchUpFailures: 0, resets: 0, gaps: 0 });
  });

  it('after a publisher restart whose first batches were lost, replays them from 0', async () => {
    const replayBind = endpoint('replay');
    const { sink, ingestor, bind } = await centralIngestor({ replay: { 'pod-x': replayBind } });
    const pub = await publisher({ topic: 'kv@pod-x@m', connect: bind, replayBind });
    await sync(pub, sink, 'pod-x');
    await pub.publish([storedEvent([60n], null)]);
    await pub.publish([storedEvent([61n], 60n)]);
    await until(() => sink.chain('pod-x', 61n).length === 2, { message: 'before the restart' });
    pub.seq = 0;
    pub.buffer.length = 0; // a new publisher, a new buffer
    await pub.publish([storedEvent([160n], null)], { drop: true });
    await pub.publish([storedEvent([161n], 160n)]);
    await until(() => sink.chain('pod-x', 161n).length === 2, { message: 'the new publisher from 0' });
    expect(sink.resets('pod-x')).toBe(1);
    expect(sink.blocks.get('pod-x')?.has(60n)).toBe(false);
    expect(ingestor.stats()).toMatchObject({ gaps: 0, resets: 1 });
  });

  it('counts malformed frames by reason and keeps ingesting', async () => {
    const { sink, ingestor, registry, bind } = await centralIngestor();
    const pub = await publisher({ topic: 'kv@pod-m@m', connect: bind });
    await sync(pub, sink, 'pod-m');
    const seq = Buffer.alloc(8);
    seq.writeBigInt64BE(BigInt(pub.seq));
    await pub.raw(['kv@pod-m@m', seq]);
    await pub.raw(['not-a-kv-topic', seq, Buffer.from([0x90])]);
    await pub.raw(['kv@pod-m@m', Buffer.from([1, 2, 3]), Buffer.from([0x90])]);
    await pub.raw(['kv@pod-m@m', seq, Buffer.from('garbage')]);
    await pub.raw(['kv@pod-m@m', seq, Buffer.from([0x92, 0xcb])]);
    await pub.publish([storedEvent([70n], null)]);
    await until(() => storedHashes(sink, 'pod-m').includes('BlockStored:70'), { message: 'batch after garbage' });
    expect(ingestor.stats()).toMatchObject({ malformed: 5, gaps: 0 });
    expect(await metric(registry, 'kvroute_indexer_malformed_messages_total', { reason: 'frame_count' })).toBe(1);
    expect(await metric(registry, 'kvroute_indexer_malformed_messages_total', { reason: 'topic' })).toBe(1);
    expect(await metric(registry, 'kvroute_indexer_malformed_messages_total', { reason: 'seq' })).toBe(1);
    expect(await metric(registry, 'kvroute_indexer_malformed_messages_total', { reason: 'bad_batch' })).toBe(1);
    expect(await metric(registry, 'kvroute_indexer_malformed_messages_total', { reason: 'truncated' })).toBe(1);
  });

  it('skips unknown fields and event types, counts them, and applies the rest', async () => {
    const { sink, registry, bind } = await centralIngestor();
    const pub = await publisher({ topic: 'kv@pod-u@m', connect: bind });
    await sync(pub, sink, 'pod-u');
    await pub.publish([{ type: 'BlockPinned', block_hashes: [1n] }, storedEvent([80n], null, 4, { future_field: 'x', another: [1, 2] })]);
    await until(() => storedHashes(sink, 'pod-u').includes('BlockStored:80'), { message: 'batch with unknown items' });
    expect(await metric(registry, 'kvroute_indexer_skipped_unknown_total', { kind: 'field' })).toBe(2);
    expect(await metric(registry, 'kvroute_indexer_skipped_unknown_total', { kind: 'event_type' })).toBe(1);
  });

  it('applies every batch already queued when closed', async () => {
    const sink = new (class extends RecordingSink {
      override apply(source: EventSource, batch: EventBatch): void {
        const busyUntil = performance.now() + 5;
        while (performance.now() < busyUntil);
        super.apply(source, batch);
      }
    })();
    const ingestor = new EventIngestor({ sink, log: silentLogger });
    const bind = endpoint('central');
    await ingestor.bind(bind);
    const pub = await publisher({ topic: 'kv@pod-c@m', connect: bind });
    await sync(pub, sink, 'pod-c');
    for (let i = 0; i < 20; i++) await pub.publish([storedEvent([BigInt(200 + i)], null)]);
    await until(() => ingestor.stats().batches + ingestor.stats().queued >= 21, { message: 'all 20 received' });
    expect(ingestor.stats().queued).toBeGreaterThan(0);
    await ingestor.close();
    expect(storedHashes(sink, 'pod-c').length).toBe(20);
  });

  it('does not let a slow source hold back another one', async () => {
    const order: string[] = [];
    const sink = new (class extends RecordingSink {
      override apply(source: EventSource, batch: EventBatch): void {
        if (source.podId === 'slow' && batch.events.length > 0) {
          const busyUntil = performance.now() + 2;
          while (performance.now() < busyUntil);
        }
        if (batch.events.length > 0) order.push(source.podId);
        super.apply(source, batch);
      }
    })();
    const { bind } = await centralIngestor({ sink });
    const slow = await publisher({ topic: 'kv@slow@m', connect: bind });
    const fast = await publisher({ topic: 'kv@fast@m', connect: bind });
    await sync(slow, sink, 'slow');
    await sync(fast, sink, 'fast');
    for (let i = 0; i < 200; i++) await slow.publish([storedEvent([BigInt(1000 + i)], null)]);
    await fast.publish([storedEvent([1n], null)]);
    await until(() => order.includes('fast'), { message: 'fast batch' });
    // The fast pod's batch is applied while most of the slow pod's 200 (2 ms each) still wait.
    expect(order.filter((p) => p === 'slow').length).toBeLessThan(150);
    await until(() => order.length === 201, { message: 'slow backlog', timeoutMs: 10_000 });
  });
});

describe('EventIngestor under overload', () => {
  function slowSink(msPerBatch: number): RecordingSink {
    return new (class extends RecordingSink {
      override apply(source: EventSource, batch: EventBatch): void {
        const busyUntil = performance.now() + msPerBatch;
        while (performance.now() < busyUntil);
        super.apply(source, batch);
      }
    })();
  }

  it.each([
    ['recovers batches dropped for a full queue through replay, in order', true],
    ['resets a source whose dropped batches cannot be replayed', false],
  ])('%s', async (_name, withReplay) => {
    const sink = slowSink(3);
    const replayBind = endpoint('replay');
    const ingestor = new EventIngestor({
      sink,
      log: silentLogger,
      maxQueuedPerSource: 2,
      replayEndpoints: () => (withReplay ? replayBind : undefined),
    });
    cleanups.push(() => ingestor.close());
    const bind = endpoint('central');
    await ingestor.bind(bind);
    const pub = await publisher({ topic: 'kv@busy@m', connect: bind, ...(withReplay ? { replayBind } : {}) });
    await sync(pub, sink, 'busy');
    for (let i = 0; i < 30; i++) await pub.publish([storedEvent([BigInt(100 + i)], i === 0 ? null : BigInt(99 + i))]);
    if (withReplay) {
      await until(() => sink.chain('busy', 129n).length === 30, { message: 'all 30 blocks', timeoutMs: 10_000 });
      expect(storedHashes(sink, 'busy')).toEqual(Array.from({ length: 30 }, (_, i) => `BlockStored:${100 + i}`));
      expect(sink.resets('busy')).toBe(0);
      expect(ingestor.stats().replays).toBeGreaterThan(0);
    } else {
      await until(() => sink.resets('busy') > 0 && ingestor.stats().batches === sink.applied('busy'), {
        message: 'a reset and an idle queue',
        timeoutMs: 10_000,
      });
      // Whatever survived after the last reset is a consistent chain: nothing applied over a hole.
      const blocks = [...(sink.blocks.get('busy')?.keys() ?? [])];
      for (const h of blocks) if (h !== blocks[0]) expect(sink.blocks.get('busy')!.has(h - 1n)).toBe(true);
    }
    expect(ingestor.stats().gaps).toBeGreaterThan(0);
  });

  it('records batches dropped while a replay is in flight as lost, and replays them once the replay is done', async () => {
    const replayBind = endpoint('replay');
    const registry = new Registry();
    const sink = new RecordingSink();
    const ingestor = new EventIngestor({ sink, log: silentLogger, registry, maxQueuedPerSource: 2, replayEndpoints: () => replayBind });
    cleanups.push(() => ingestor.close());
    const bind = endpoint('central');
    await ingestor.bind(bind);
    const topic = 'kv@held@m';
    const pub = await publisher({ topic, connect: bind });
    // A replay ROUTER that answers its first request late, with only what it held when asked (up to
    // seq `snapshot`), as a publisher whose buffer was read before the drops; later requests get all.
    const router = new Router({ linger: 0 });
    await router.bind(replayBind);
    cleanups.push(() => router.close());
    let requests = 0;
    let heldDrops = 0;
    let snapshot = -1;
    void (async () => {
      try {
        for await (const [id, , start] of router) {
          const from = Number(start!.readBigInt64BE());
          if (from === 0) {
            // The catch-up on first contact (when the first batch seen was not seq 0): answer it in full.
            for (const b of pub.buffer) await router.send([id!, '', topic, sequenceFrame(b.seq), b.payload]);
            await router.send([id!, '', '', Buffer.alloc(8, 0xff), '']);
            continue;
          }
          const first = requests++ === 0;
          if (first)
            await until(() => ingestor.stats().queued === 0 && heldDrops >= 2, {
              message: 'batches dropped while holding',
              timeoutMs: 10_000,
            });
          for (const b of pub.buffer) {
            if (b.seq < from || (first && b.seq > snapshot)) continue;
            await router.send([id!, '', topic, sequenceFrame(b.seq), b.payload]);
          }
          await router.send([id!, '', '', Buffer.alloc(8, 0xff), '']);
        }
      } catch {
        // closed by the test's cleanup
      }
    })();
    const countHeldDrops = async () => {
      heldDrops = await metric(registry, 'kvroute_indexer_dropped_batches_total', { reason: 'held_full' });
    };
    await sync(pub, sink, 'held');
    const base = pub.seq;
    await pub.publish([storedEvent([1n], null)]);
    await pub.publish([storedEvent([2n], 1n)], { drop: true });
    snapshot = await pub.publish([storedEvent([3n], 2n)]); // reveals the gap: replay starts, 3 is held
    await pub.publish([storedEvent([4n], 3n)]); // held: the hold is full (2)
    await pub.publish([storedEvent([5n], 4n)]); // dropped while holding
    await pub.publish([storedEvent([6n], 5n)]); // dropped while holding; nothing is published after it
    await until(
      () => {
        void countHeldDrops();
        return heldDrops >= 2;
      },
      { message: 'two held_full drops' },
    );
    await until(() => sink.chain('held', 6n).length === 6, { message: 'the whole chain, the dropped tail included', timeoutMs: 10_000 });
    expect(storedHashes(sink, 'held')).toEqual([
      'BlockStored:1',
      'BlockStored:2',
      'BlockStored:3',
      'BlockStored:4',
      'BlockStored:5',
      'BlockStored:6',
    ]);
    expect(sink.resets('held')).toBe(0);
    expect(requests).toBe(2);
    expect(pub.seq - base).toBe(6);
    expect(await metric(registry, 'kvroute_indexer_replays_total', { result: 'ok' })).toBe(2);
  });
});

describe('EventIngestor (per-pod mode)', () => {
  it('connects to pods, uses the connection for the pod id, and forgets a disconnected pod', async () => {
    const sink = new RecordingSink();
    const ingestor = new EventIngestor({ sink, log: silentLogger });
    cleanups.push(() => ingestor.close());
    const bindA = endpoint('pod-a');
    const replayA = endpoint('pod-a-replay');
    const pubA = await publisher({ topic: 'kv@ignored@model-x', bind: bindA, replayBind: replayA });
    await ingestor.connectPod('10.0.0.1:8000', bindA, replayA);
    await ingestor.connectPod('10.0.0.1:8000', bindA, replayA);
    await sync(pubA, sink, '10.0.0.1:8000');
    await pubA.publish([storedEvent([1n], null)]);
    await pubA.publish([storedEvent([2n], 1n)], { drop: true });
    await pubA.publish([storedEvent([3n], 2n)]);
    await until(() => sink.chain('10.0.0.1:8000', 3n).length === 3, { message: 'replayed chain' });
    expect(sink.records.find((r) => r.op === 'apply')).toMatchObject({ model: 'model-x' });
    await ingestor.disconnectPod('10.0.0.1:8000');
    await until(() => sink.records.some((r) => r.op === 'forget' && r.source === '10.0.0.1:8000'), { message: 'forget on disconnect' });
    expect(sink.blocks.has('10.0.0.1:8000')).toBe(false);
    expect(ingestor.stats()).toMatchObject({ replays: 1 });
  });
});
