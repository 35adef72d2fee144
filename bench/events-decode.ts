// Quick single-core throughput check of KV-event payload decoding (blocks/s): the hand-written
// decoder against @msgpack/msgpack followed by the same conversion to typed arrays. Not a test;
// the official ingestion benchmark lives in bench/indexer.ts.
// Run: node bench/events-decode.ts [eventsPerBatch] [blocksPerEvent] [blockSize]

import { decode, encode } from '@msgpack/msgpack';
import { decodeEventBatch } from '../src/vllm/events/decode.ts';

const eventsPerBatch = Number(process.argv[2] ?? 64);
const blocksPerEvent = Number(process.argv[3] ?? 1);
const blockSize = Number(process.argv[4] ?? 16);

let seed = 42;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0);
const hash = () => (BigInt(rand()) << 32n) | BigInt(rand());

// A current-vLLM batch: map-tagged BlockStored events, uint64 hashes, token ids of a 150k vocabulary.
const events = Array.from({ length: eventsPerBatch }, (_, i) => ({
  type: 'BlockStored',
  block_hashes: Array.from({ length: blocksPerEvent }, hash),
  parent_block_hash: i === 0 ? null : hash(),
  token_ids: Array.from({ length: blocksPerEvent * blockSize }, () => rand() % 151_000),
  block_size: blockSize,
  lora_id: null,
  medium: 'GPU',
  lora_name: null,
  group_idx: 0,
}));
const payload = encode([Date.now() / 1000, events, 0], { useBigInt64: true });
const blocksPerBatch = eventsPerBatch * blocksPerEvent;

/** The general-library path: decode to JS values, then copy into the same typed arrays. */
function decodeWithLibrary(bytes: Uint8Array): number {
  const [, evs] = decode(bytes, { useBigInt64: true }) as [number, Array<Record<string, unknown>>];
  let blocks = 0;
  for (const e of evs) {
    const hs = e.block_hashes as Array<bigint | number>;
    const out = new BigUint64Array(hs.length);
    for (let i = 0; i < hs.length; i++) out[i] = BigInt.asUintN(64, BigInt(hs[i]!));
    const toks = Uint32Array.from(e.token_ids as number[]);
    if (toks.length !== out.length * blockSize) throw new Error('token count does not match the blocks');
    blocks += out.length;
  }
  return blocks;
}

function measure(name: string, fn: () => number): { name: string; blocksPerSec: number; mbPerSec: number } {
  for (let i = 0; i < 200; i++) fn();
  let iterations = 0;
  let blocks = 0;
  // CPU time of this process, not wall time: the machine may be shared with other work.
  const start = process.cpuUsage();
  let elapsed = 0;
  while (elapsed < 1.5) {
    for (let i = 0; i < 50; i++) blocks += fn();
    iterations += 50;
    const used = process.cpuUsage(start);
    elapsed = (used.user + used.system) / 1e6;
  }
  return { name, blocksPerSec: Math.round(blocks / elapsed), mbPerSec: Math.round((iterations * payload.length) / elapsed / 1e5) / 10 };
}

const results = [
  measure('decodeEventBatch (hand-written)', () => {
    const b = decodeEventBatch(payload);
    let n = 0;
    for (const e of b.events) if (e.type === 'BlockStored') n += e.blockHashes.length;
    return n;
  }),
  measure('@msgpack/msgpack + typed arrays', () => decodeWithLibrary(payload)),
];
console.log(
  `batch: ${eventsPerBatch} BlockStored x ${blocksPerEvent} block(s) of ${blockSize} tokens = ${blocksPerBatch} blocks, ${payload.length} bytes`,
);
console.table(results);
