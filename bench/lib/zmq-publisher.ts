// The indexer benchmark's KV-event publisher, run in a worker thread: encodes the whole workload as
// vLLM-format msgpack batches (tagged-map events, uint64 hashes) up front, connects a PUB socket to
// the benchmark's bound SUB socket, says hello until the main thread answers, then sends every batch
// as [topic, seq, payload] and a final "end" message.

import { parentPort, workerData } from 'node:worker_threads';
import { encode } from '@msgpack/msgpack';
import { Publisher } from 'zeromq';
import {
  BLOCK_SIZE,
  FILLER_BLOCKS,
  MODEL,
  PODS,
  PREFILL_BLOCKS,
  fillerPromptsPerPod,
  fillerSeed,
  lcgTokens,
  podName,
  sharedBlocksOf,
  sharedPrompt,
} from './indexer-workload.ts';

interface PublisherData {
  endpoint: string;
}

const { endpoint } = workerData as PublisherData;
const port = parentPort!;

type Frames = [string, Buffer, Uint8Array];
const messages: Frames[] = [];
const seqs = new Map<string, bigint>();
let blocks = 0;

function push(pod: number, events: object[]): void {
  const topic = `kv@${podName(pod)}@${MODEL}`;
  const seq = seqs.get(topic) ?? 0n;
  seqs.set(topic, seq + 1n);
  const seqFrame = Buffer.alloc(8);
  seqFrame.writeBigInt64BE(seq);
  messages.push([topic, seqFrame, encode([Date.now() / 1000, events, 0], { useBigInt64: true })]);
}

function storedEvent(hashes: bigint[], parent: bigint | null, tokens: Uint32Array): object {
  blocks += hashes.length;
  return {
    type: 'BlockStored',
    block_hashes: hashes,
    parent_block_hash: parent,
    token_ids: Array.from(tokens),
    block_size: BLOCK_SIZE,
    lora_id: null,
    medium: 'GPU',
    lora_name: null,
  };
}

// Engine hashes as a vLLM with a per-pod random seed would publish them: opaque and pod-specific.
const nextHash = (pod: number, counter: number): bigint => (BigInt(pod + 1) << 40n) | BigInt(counter);

const shared = sharedPrompt();
const perPod = fillerPromptsPerPod();
for (let p = 0; p < PODS; p++) {
  let counter = 0;
  const n = sharedBlocksOf(p);
  push(p, [
    storedEvent(
      Array.from({ length: n }, () => nextHash(p, counter++)),
      null,
      shared.subarray(0, n * BLOCK_SIZE),
    ),
  ]);
  for (let i = 0; i < perPod; i++) {
    const tokens = lcgTokens(fillerSeed(p, i), FILLER_BLOCKS * BLOCK_SIZE);
    const prefill = Array.from({ length: PREFILL_BLOCKS }, () => nextHash(p, counter++));
    const events = [storedEvent(prefill, null, tokens.subarray(0, PREFILL_BLOCKS * BLOCK_SIZE))];
    let parent = prefill[PREFILL_BLOCKS - 1]!;
    for (let b = PREFILL_BLOCKS; b < FILLER_BLOCKS; b++) {
      const h = nextHash(p, counter++);
      events.push(storedEvent([h], parent, tokens.subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE)));
      parent = h;
    }
    push(p, events);
  }
}
port.postMessage({ type: 'encoded', messages: messages.length, blocks });

const pub = new Publisher({ sendHighWaterMark: 0, linger: 2000 });
pub.connect(endpoint);
let go = false;
port.on('message', (m: { type: string }) => {
  if (m.type === 'go') go = true;
});
while (!go) {
  await pub.send(['hello', Buffer.alloc(8), Buffer.alloc(0)]);
  await new Promise((r) => setTimeout(r, 5));
}
for (const m of messages) await pub.send(m);
await pub.send(['end', Buffer.alloc(8), Buffer.alloc(0)]);
port.postMessage({ type: 'sent' });
pub.close();
