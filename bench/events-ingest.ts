// Quick end-to-end ingestion check through real ZMQ over loopback TCP: an in-process PUB sends
// pre-encoded vLLM 0.33 batches to an EventIngestor whose sink only counts, and we report blocks/s
// (wall clock and the process's CPU time). Not a test; bench/indexer.ts has the official numbers.
// Run: node bench/events-ingest.ts [batches] [eventsPerBatch] [blocksPerEvent] [port]

import { Publisher } from 'zeromq';
import { silentLogger } from '../src/common/log.ts';
import type { EventSource, KvEventSink } from '../src/indexer/types.ts';
import type { EventBatch } from '../src/vllm/events/types.ts';
import { EventIngestor } from '../src/indexer/events/ingestor.ts';
import { encodeBatch, storedEvent } from '../src/indexer/events/test-helpers.ts';
import { sequenceFrame } from '../src/vllm/events/topic.ts';

const batches = Number(process.argv[2] ?? 20_000);
const eventsPerBatch = Number(process.argv[3] ?? 64);
const blocksPerEvent = Number(process.argv[4] ?? 1);
/** 0 (the default): the kernel picks, and the publisher connects to what the ingestor bound. */
const port = Number(process.argv[5] ?? 0);

let blocks = 0;
let applied = 0;
const sink: KvEventSink = {
  apply(_s: EventSource, batch: EventBatch) {
    applied++;
    for (const e of batch.events) if (e.type === 'BlockStored') blocks += e.blockHashes.length;
  },
  resetSource() {},
  forgetSource() {},
};

let seed = 7;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0);
const payloads = Array.from({ length: 64 }, () =>
  encodeBatch(
    Array.from({ length: eventsPerBatch }, () =>
      storedEvent(
        Array.from({ length: blocksPerEvent }, () => (BigInt(rand()) << 32n) | BigInt(rand())),
        null,
        16,
      ),
    ),
  ),
);

const ingestor = new EventIngestor({ sink, log: silentLogger, maxQueuedPerSource: 1 << 20 });
const bound = await ingestor.bind(`tcp://127.0.0.1:${port}`);
const pub = new Publisher({ sendHighWaterMark: 0 });
pub.connect(bound);
let seq = 0;
while (applied === 0) {
  await pub.send(['kv@bench@m', sequenceFrame(seq++), payloads[0]!]);
  await new Promise((r) => setTimeout(r, 10));
}
blocks = 0;
applied = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < batches; i++) await pub.send(['kv@bench@m', sequenceFrame(seq++), payloads[i % payloads.length]!]);
while (applied < batches) await new Promise((r) => setTimeout(r, 1));
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuSec = (cpu.user + cpu.system) / 1e6;
console.log(
  JSON.stringify({
    batches,
    blocksPerBatch: eventsPerBatch * blocksPerEvent,
    payloadBytes: payloads[0]!.length,
    blocks,
    wallSeconds: +wall.toFixed(3),
    blocksPerSecWall: Math.round(blocks / wall),
    processCpuSeconds: +cpuSec.toFixed(3),
    blocksPerCpuSecond: Math.round(blocks / cpuSec),
    stats: ingestor.stats(),
  }),
);
pub.close();
await ingestor.close();
