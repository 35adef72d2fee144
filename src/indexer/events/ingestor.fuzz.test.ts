// Fuzzes the indexer's ingest path end to end over real ZMQ sockets: a publisher sends hostile
// payloads (random bytes, valid batches truncated or spliced with huge length headers, msgpack of the
// wrong shape) between good batches into an EventIngestor feeding a real BlockIndex. The contract:
// the receive loop never stops, every payload is either applied or counted as malformed with a reason
// (and logged), and the index's books balance afterwards. Also the ingestion bounds: batch bytes,
// events per batch, and libzmq's hard frame limit.

import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { encode } from '@msgpack/msgpack';
import { Registry } from 'prom-client';
import { Publisher } from 'zeromq';
import { silentLogger, type Logger } from '../../common/log.ts';
import { fuzzParams, fuzzTimeout } from '../../../test/support/fuzz.ts';
import { until } from '../../../test/support/until.ts';
import { decodeEventBatch, KvEventDecodeError } from '../../vllm/events/decode.ts';
import { sequenceFrame } from '../../vllm/events/topic.ts';
import type { EventBatch } from '../../vllm/events/types.ts';
import { BlockIndex } from '../index/block-index.ts';
import type { EventSource } from '../types.ts';
import { EventIngestor } from './ingestor.ts';
import { encodeBatch, RecordingSink, storedEvent } from './test-helpers.ts';

const enc = (v: unknown) => encode(v, { useBigInt64: true });

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + v.value, 0);
}

/** A logger that keeps every line's message and fields. */
function recordingLogger(lines: Array<{ msg: string; fields: Record<string, unknown> }>): Logger {
  const log: Logger = {
    ...silentLogger,
    child: () => log,
    limited: (_key: string, _level: string, msg: string, fields?: Record<string, unknown>) =>
      void lines.push({ msg, fields: fields ?? {} }),
    warn: (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, fields: fields ?? {} }),
  } as Logger;
  return log;
}

/** A BlockIndex that also notes each applied batch's ts, so a test can wait for a sentinel. */
class WatchedIndex extends BlockIndex {
  readonly appliedTs: number[] = [];
  override apply(source: EventSource, batch: EventBatch): void {
    this.appliedTs.push(batch.ts);
    super.apply(source, batch);
  }
}

const HUGE_HEADERS = [
  [0xdd, 0xff, 0xff, 0xff, 0xff],
  [0xdf, 0xff, 0xff, 0xff, 0xff],
  [0xdb, 0xff, 0xff, 0xff, 0xff],
  [0xc6, 0xff, 0xff, 0xff, 0xff],
  [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0xc1],
];

const goodBatch = fc
  .array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { minLength: 1, maxLength: 4 })
  .map((hashes) => encodeBatch([storedEvent(hashes, null, 4)], 0, 1));

/** A hostile payload, or a good one (so the stream mixes both). */
const payload = fc.oneof(
  goodBatch,
  fc.uint8Array({ maxLength: 64 }),
  fc.tuple(goodBatch, fc.nat()).map(([p, at]) => p.subarray(0, at % p.length)),
  fc
    .tuple(goodBatch, fc.nat(), fc.constantFrom(...HUGE_HEADERS))
    .map(([p, at, h]) => Uint8Array.from([...p.subarray(0, at % p.length), ...h, ...p.subarray(at % p.length)])),
  fc
    .tuple(
      fc.double(),
      fc.array(fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }), fc.string(), fc.double(), fc.constant(null)), {
        maxLength: 5,
      }),
    )
    .map(([ts, junk]) =>
      enc([
        ts,
        [{ type: 'BlockStored', block_hashes: junk, parent_block_hash: junk[0] ?? null, token_ids: junk, block_size: junk[1] ?? 4 }],
        0,
      ]),
    ),
);

/** Whether the ingestor must count this payload as malformed: what the decoder, under its limits, says. */
function rejected(bytes: Uint8Array, maxEvents: number): boolean {
  try {
    decodeEventBatch(bytes, undefined, maxEvents);
    return false;
  } catch (err) {
    if (err instanceof KvEventDecodeError) return true;
    throw err;
  }
}

describe('EventIngestor fed hostile payloads over ZMQ (fast-check, fixed seed)', () => {
  const registry = new Registry();
  const lines: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const index = new WatchedIndex({ blockSize: 4 });
  const ingestor = new EventIngestor({ sink: index, log: recordingLogger(lines), registry, maxBatchEvents: 64 });
  const pub = new Publisher({ linger: 0 });
  const topic = 'kv@fuzz-pod@m';
  let seq = 0;
  let sentinel = 1000;

  const send = (bytes: Uint8Array) => pub.send([topic, sequenceFrame(seq++), bytes]);
  /** Sends a good batch with a unique ts until the index has applied it: everything before it is done. */
  async function flush(): Promise<void> {
    const ts = ++sentinel;
    await until(
      () => {
        if (index.appliedTs.includes(ts)) return true;
        void send(encodeBatch([], 0, ts));
        return false;
      },
      { message: `sentinel batch ${ts}` },
    );
  }

  beforeAll(async () => {
    const bound = await ingestor.bind('inproc://ingestor-fuzz');
    pub.connect(bound);
    await flush();
  });
  afterAll(async () => {
    pub.close();
    await ingestor.close();
  });

  it(
    'applies or counts every payload, keeps receiving, and leaves the index consistent',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(payload, { minLength: 1, maxLength: 8 }), async (payloads) => {
          const malformedBefore = ingestor.stats().malformed;
          const metricBefore = await metric(registry, 'kvroute_indexer_malformed_messages_total');
          const linesBefore = lines.length;
          let bad = 0;
          for (const p of payloads) {
            if (rejected(p, 64)) bad++;
            await send(p);
          }
          await flush();
          expect(ingestor.stats().malformed - malformedBefore).toBe(bad);
          expect((await metric(registry, 'kvroute_indexer_malformed_messages_total')) - metricBefore).toBe(bad);
          // Each drop is logged with its reason and what was wrong (rate-limited per reason in production).
          const dropLines = lines.slice(linesBefore).filter((l) => l.msg === 'malformed KV-event message dropped');
          expect(dropLines.length).toBe(bad);
          for (const l of dropLines) expect(l.fields).toMatchObject({ reason: expect.any(String), problem: expect.any(String) });
          const stats = index.stats();
          expect(Object.values(stats.pods).reduce((a, b) => a + b, 0)).toBe(stats.entries);
        }),
        fuzzParams(60),
      );
      expect(ingestor.stats().malformed).toBeGreaterThan(0);
    },
    fuzzTimeout(60, 60_000),
  );
});

describe('EventIngestor bounds', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setUp(options: { maxBatchBytes?: number; maxBatchEvents?: number; zmqMaxMessageBytes?: number }, endpoint: string) {
    const registry = new Registry();
    const sink = new RecordingSink();
    const ingestor = new EventIngestor({ sink, log: silentLogger, registry, ...options });
    const bound = await ingestor.bind(endpoint);
    cleanups.push(() => ingestor.close());
    const pub = new Publisher({ linger: 0 });
    pub.connect(bound);
    cleanups.push(() => pub.close());
    let seq = 0;
    const send = (events: ReturnType<typeof storedEvent>[], extra: Uint8Array = new Uint8Array(0)) =>
      pub.send(['kv@pod-b@m', sequenceFrame(seq++), extra.length > 0 ? extra : encodeBatch(events)]);
    // ZMQ drops what is sent before the subscription reaches the publisher: send until one arrives.
    await until(
      () => {
        if (sink.applied('pod-b') > 0) return true;
        void send([]);
        return false;
      },
      { message: 'first batch' },
    );
    return { registry, sink, ingestor, send };
  }

  it('drops a payload over maxBatchBytes undecoded, counts it as too_large, and keeps ingesting', async () => {
    const { registry, sink, ingestor, send } = await setUp({ maxBatchBytes: 1024 }, 'inproc://ingestor-bound-bytes');
    const big = encodeBatch([storedEvent([1n], null, 512)]);
    expect(big.length).toBeGreaterThan(1024);
    await send([], big);
    await send([storedEvent([2n], null, 4)]);
    await until(() => sink.blocks.get('pod-b')?.has(2n), { message: 'the batch after the large one' });
    expect(sink.blocks.get('pod-b')?.has(1n)).toBe(false);
    expect(await metric(registry, 'kvroute_indexer_malformed_messages_total', { reason: 'too_large' })).toBe(1);
    expect(ingestor.stats().malformed).toBe(1);
  });

  it('drops a batch of more than maxBatchEvents events before decoding them, counted as too_many_events', async () => {
    const { registry, sink, send } = await setUp({ maxBatchEvents: 2 }, 'inproc://ingestor-bound-events');
    await send([storedEvent([1n], null), storedEvent([2n], 1n), storedEvent([3n], 2n)]);
    await send([storedEvent([4n], null), storedEvent([5n], 4n)]);
    await until(() => sink.blocks.get('pod-b')?.has(5n), { message: 'the two-event batch' });
    expect(sink.blocks.get('pod-b')?.has(1n)).toBe(false);
    expect(await metric(registry, 'kvroute_indexer_malformed_messages_total', { reason: 'too_many_events' })).toBe(1);
  });

  it('has libzmq cut a peer sending a frame over zmqMaxMessageBytes before buffering it, then takes it back', async () => {
    const { registry, sink, ingestor, send } = await setUp({ zmqMaxMessageBytes: 4096, maxBatchBytes: 1 << 20 }, 'tcp://127.0.0.1:0');
    await send([storedEvent([1n], null, 4096)]);
    // The publisher reconnects; its later batches arrive, the lost one shows as a sequence gap.
    await until(
      () => {
        if (sink.blocks.get('pod-b')?.has(9n)) return true;
        void send([storedEvent([9n], null)]);
        return false;
      },
      { message: 'a batch after the reconnect' },
    );
    expect(sink.blocks.get('pod-b')?.has(1n)).toBe(false);
    // Never received, so never decoded or counted as malformed: the bound held at the socket.
    expect(await metric(registry, 'kvroute_indexer_malformed_messages_total')).toBe(0);
    expect(ingestor.stats().gaps).toBeGreaterThan(0);
  });
});
