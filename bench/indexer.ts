// `npm run bench:indexer`: the indexer's key computation, scoring latency, ZMQ ingestion rate and
// memory per entry, next to llm-d's Go indexer built and run on the same machine in the same run
// (hack/llmd-bench.sh). Prints a table, writes bench/results/indexer.json. Not a test: never fails on
// timing. Re-executes itself with --expose-gc to measure memory after collection.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Subscriber } from 'zeromq';
import { decodeEventBatch } from '../src/vllm/events/decode.ts';
import { BlockIndex } from '../src/indexer/index/block-index.ts';
import { RequestKeyer } from '../src/indexer/keys/request.ts';
import { vllmEngineKeys } from '../src/vllm/block-hash.ts';
import { readGoBenchOutput, runGoBench, type GoBenchResult } from './lib/go-bench.ts';
import {
  BLOCK_SIZE,
  MODEL,
  PODS,
  SHARED_BLOCKS,
  fillerPromptsPerPod,
  podName,
  sharedBlocksOf,
  sharedPrompt,
} from './lib/indexer-workload.ts';
import { progress } from './lib/progress.ts';
import { environment, percentile, writeResults } from './lib/results.ts';
import { fmt, formatTable } from '../src/common/table.ts';
import { xxh64WordsJs } from './lib/xxh64-js.ts';
import { repoRoot } from '../test/support/repo-root.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}
const collect = (): void => {
  for (let i = 0; i < 3; i++) gc!();
};

const RESULTS = path.join(repoRoot, 'bench/results/indexer.json');
/** Where the ingestion SUB binds; port 0 by default, the bound endpoint is handed to the publisher. */
const ZMQ_BIND = process.env.KVROUTE_BENCH_ZMQ ?? 'tcp://127.0.0.1:0';

/** Mean microseconds per call of `fn`, timed over at least `minMs` after a warm-up. */
function timeUs(fn: () => void, minMs = 1500): number {
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < minMs) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    now = performance.now();
  }
  return ((now - start) * 1000) / n;
}

// ---- 1. key computation for a 10k-token prompt (tokens 0..9999, as llm-d's benchmark uses) ----
const prompt10k = Array.from({ length: 10_000 }, (_, i) => i);
const keyer = new RequestKeyer(BLOCK_SIZE);
const requestKeysUs = timeUs(() => keyer.compute(prompt10k));
const words10k = Uint32Array.from(prompt10k);
const jsKeys = new Uint32Array(2 * Math.floor(prompt10k.length / BLOCK_SIZE));
const requestKeysJs = (): void => {
  let lo = 0;
  let hi = 0;
  for (let b = 0; b < jsKeys.length / 2; b++) {
    xxh64WordsJs(words10k, b * BLOCK_SIZE, BLOCK_SIZE, lo, hi, jsKeys, 2 * b);
    lo = jsKeys[2 * b]!;
    hi = jsKeys[2 * b + 1]!;
  }
};
requestKeysJs();
keyer.compute(prompt10k);
if (!jsKeys.every((v, i) => v === keyer.keys[i])) throw new Error('the JavaScript XXH64 port disagrees with the WebAssembly build');
const requestKeysJsUs = timeUs(requestKeysJs, 1000);
const engineKeysUs = timeUs(() => vllmEngineKeys(prompt10k, { blockSize: BLOCK_SIZE, hashSeed: '0' }));
process.stderr.write(
  `keys: request ${fmt(requestKeysUs)} us, request (JS port) ${fmt(requestKeysJsUs)} us, vLLM sha256_cbor ${fmt(engineKeysUs)} us per 10k tokens\n`,
);

// ---- 2. ZMQ ingestion of ~1M (block, pod) entries into the index ----
collect();
const mem0 = process.memoryUsage();
const index = new BlockIndex({ blockSize: BLOCK_SIZE, maxKeys: 4_000_000, maxPodsPerKey: PODS });
const sub = new Subscriber({ receiveHighWaterMark: 0 });
await sub.bind(ZMQ_BIND);
sub.subscribe();
const worker = new Worker(new URL('./lib/zmq-publisher.ts', import.meta.url), { workerData: { endpoint: sub.lastEndpoint } });
const encoded = new Promise<{ messages: number; blocks: number }>((resolve, reject) => {
  worker.on('message', (m: { type: string; messages: number; blocks: number }) => {
    if (m.type === 'encoded') resolve(m);
  });
  worker.on('error', reject);
});
const encodeProgress = progress('publisher: encoding vLLM msgpack batches');
const plan = await encoded;
encodeProgress.end(`${plan.messages} batches, ${plan.blocks} blocks`);

const ingestProgress = progress('ingest: ZMQ -> decode -> index');
let received = 0;
let blocksIn = 0;
let started = 0;
let finished = 0;
let told = false;
for await (const [topicFrame, , payload] of sub) {
  const topic = topicFrame!.toString();
  if (topic === 'hello') {
    if (!told) worker.postMessage({ type: 'go' });
    told = true;
    continue;
  }
  if (topic === 'end') {
    finished = performance.now();
    break;
  }
  if (started === 0) started = performance.now();
  const [, podId = '', model = ''] = topic.split('@');
  const batch = decodeEventBatch(payload!);
  index.apply({ podId, model, dpRank: batch.dpRank ?? 0 }, batch);
  for (const ev of batch.events) if (ev.type === 'BlockStored') blocksIn += ev.blockHashes.length;
  received++;
  if ((received & 255) === 0) ingestProgress.update(received, plan.messages);
}
sub.close();
await worker.terminate();
const ingestSeconds = (finished - started) / 1000;
const ingestRate = blocksIn / ingestSeconds;
ingestProgress.end(`${received}/${plan.messages} batches, ${fmt(ingestRate)} blocks/s`);
if (received !== plan.messages) process.stderr.write(`warning: ${plan.messages - received} batches lost in transit\n`);

collect();
const mem1 = process.memoryUsage();
const stats = index.stats();
const heapDelta = mem1.heapUsed + mem1.arrayBuffers - (mem0.heapUsed + mem0.arrayBuffers);
const heapBytesPerEntry = heapDelta / stats.entries;
const tableBytesPerEntry = stats.bytes / stats.entries;
// The larger of the two: the heap delta can undercount when something alive at the first snapshot
// was collected since; the table bytes count allocated capacity, not only the part in use.
const bytesPerEntry = Math.max(heapBytesPerEntry, tableBytesPerEntry);

// ---- 3. scoring the 8k-token prompt against ~1M entries over 32 pods ----
// Scored for the topics' model, as the router asks: the per-model source filter is on the timed path.
const scoreOptions = { model: MODEL };
const prompt8k = Array.from(sharedPrompt());
const expected = Object.fromEntries(Array.from({ length: PODS }, (_, p) => [podName(p), sharedBlocksOf(p)]));
const got = index.scoreTokens(prompt8k, scoreOptions);
if (Object.keys(index.scoreTokens(prompt8k, { model: 'another-model' })).length !== 0)
  throw new Error('pods publishing under the bench model scored for another model');
if (Object.keys(got).length !== PODS || Object.entries(expected).some(([pod, blocks]) => got[pod] !== blocks)) {
  throw new Error(`unexpected scores for the 8k prompt: ${JSON.stringify(got)}`);
}
const scoreProgress = progress('score: 8k-token prompt');
for (let i = 0; i < 500; i++) index.scoreTokens(prompt8k, scoreOptions);
const samples: number[] = [];
const SCORE_RUNS = 5000;
for (let i = 0; i < SCORE_RUNS; i++) {
  const t0 = performance.now();
  index.scoreTokens(prompt8k, scoreOptions);
  samples.push((performance.now() - t0) * 1000);
  if ((i & 511) === 0) scoreProgress.update(i, SCORE_RUNS);
}
samples.sort((a, b) => a - b);
const scoreP50 = percentile(samples, 50);
const scoreP99 = percentile(samples, 99);
const scoreMean = samples.reduce((a, b) => a + b, 0) / samples.length;
scoreProgress.end(`p50 ${fmt(scoreP50)} us, p99 ${fmt(scoreP99)} us`);

// ---- 4. llm-d's Go indexer, same machine, same run ----
// LLMD_BENCH_OUTPUT names the output of the same Go benchmarks run elsewhere, for when the module
// proxy does not serve llm-d's module (see hack/llmd-bench.sh).
const recordedGoBench = process.env.LLMD_BENCH_OUTPUT;
const goProgress = progress(
  recordedGoBench ? `llm-d: read recorded Go benchmarks (${recordedGoBench})` : 'llm-d: build and run Go benchmarks (hack/llmd-bench.sh)',
);
const llmd: GoBenchResult = recordedGoBench
  ? readGoBenchOutput(recordedGoBench)
  : await runGoBench(path.join(repoRoot, 'hack/llmd-bench.sh'), process.env, (line) => process.stderr.write(`  ${line.trim()}\n`));
goProgress.end(llmd.available ? llmd.source : `unavailable: ${llmd.reason}`);

// ---- report ----
const us = (name: string): number | null => (llmd.nsPerOp[name] !== undefined ? llmd.nsPerOp[name]! / 1000 : null);
const theirAddPerBlockUs = us('BenchmarkLlmdIndexAddPer128Blocks');
interface Comparison {
  metric: string;
  unit: string;
  ours: number;
  theirs: number | null;
  theirsBenchmark: string;
  /** ours / theirs; for times lower is better, for rates higher is better. */
  ratio: number | null;
  oursBetter: boolean | null;
  note?: string;
}
const compare = (
  metric: string,
  unit: string,
  ours: number,
  theirs: number | null,
  theirsBenchmark: string,
  lowerIsBetter: boolean,
  note?: string,
): Comparison => ({
  metric,
  unit,
  ours,
  theirs,
  theirsBenchmark,
  ratio: theirs === null ? null : ours / theirs,
  oursBetter: theirs === null ? null : lowerIsBetter ? ours <= theirs : ours >= theirs,
  ...(note ? { note } : {}),
});
const comparisons: Comparison[] = [
  compare(
    'request keys, 10k tokens',
    'us/op',
    requestKeysUs,
    us('BenchmarkTokensToKVBlockKeysXXH64'),
    'BenchmarkTokensToKVBlockKeysXXH64',
    true,
    'their fastest key function',
  ),
  compare(
    'request keys, 10k tokens (vs their default)',
    'us/op',
    requestKeysUs,
    us('BenchmarkTokensToKVBlockKeysCBORFNV'),
    'BenchmarkTokensToKVBlockKeysCBORFNV',
    true,
    'their default key function',
  ),
  compare(
    'vLLM sha256_cbor engine keys, 10k tokens',
    'us/op',
    engineKeysUs,
    null,
    '-',
    true,
    'llm-d has no vLLM-parity key function to compare',
  ),
  compare(
    'score 8k prompt (keys + lookup + score), mean',
    'us/op',
    scoreMean,
    us('BenchmarkLlmdScore8kPrompt'),
    'BenchmarkLlmdScore8kPrompt (wrapper)',
    true,
  ),
  compare(
    'ingestion',
    'blocks/s',
    ingestRate,
    theirAddPerBlockUs === null ? null : 128 / (theirAddPerBlockUs / 1e6),
    'BenchmarkLlmdIndexAddPer128Blocks (wrapper)',
    false,
    'ours: ZMQ + msgpack decode + key computation + index; theirs: InMemoryIndex.Add of precomputed keys only',
  ),
  compare('memory per (block, pod) entry', 'bytes', bytesPerEntry, llmd.bytesPerEntry ?? null, 'TestLlmdBytesPerEntry (wrapper)', true),
];
const keysVsLlmd = comparisons[0]!.oursBetter;
const scoreVsLlmd = comparisons[3]!.oursBetter;
const targets = [
  { target: 'key computation at least as fast as llm-d (their fastest, XXH64)', met: keysVsLlmd },
  { target: 'scoring at least as fast as llm-d', met: scoreVsLlmd },
  { target: 'score p99 < 1 ms at 1M blocks over 32 pods', met: scoreP99 < 1000 },
  { target: 'ingestion >= 1M blocks/s on one core', met: ingestRate >= 1e6 },
  { target: 'memory < 64 bytes per (block, pod) entry at 1M entries', met: bytesPerEntry < 64 },
];

const results = {
  environment: environment(),
  workload: {
    pods: PODS,
    blockSize: BLOCK_SIZE,
    sharedPromptTokens: SHARED_BLOCKS * BLOCK_SIZE,
    fillerPromptsPerPod: fillerPromptsPerPod(),
    entries: stats.entries,
    keys: stats.keys,
    batches: plan.messages,
    blocksPublished: plan.blocks,
  },
  ours: {
    requestKeys10kUs: requestKeysUs,
    requestKeys10kJsPortUs: requestKeysJsUs,
    vllmEngineKeys10kUs: engineKeysUs,
    scoreP50Us: scoreP50,
    scoreP99Us: scoreP99,
    scoreMeanUs: scoreMean,
    ingestBlocksPerSec: ingestRate,
    ingestSeconds,
    batchesReceived: received,
    bytesPerEntry,
    heapBytesPerEntry,
    tableBytesPerEntry,
    droppedBlocks: stats.dropped,
  },
  llmd,
  comparisons,
  targets,
};
writeResults(RESULTS, results);

const rows = comparisons.map((c) => [
  c.metric,
  c.unit,
  fmt(c.ours),
  fmt(c.theirs),
  c.ratio === null ? '-' : fmt(c.ratio),
  c.oursBetter === null ? '-' : c.oursBetter ? 'ours' : 'llm-d',
]);
rows.push(['score 8k prompt p50 / p99', 'us', `${fmt(scoreP50)} / ${fmt(scoreP99)}`, '-', '-', '-']);
rows.push(['request keys, JS-port candidate', 'us/op', fmt(requestKeysJsUs), '-', '-', '-']);
process.stdout.write(`${formatTable(['metric', 'unit', 'kvroute', 'llm-d', 'ours/theirs', 'better'], rows)}\n\n`);
process.stdout.write(
  `${formatTable(
    ['target', 'met'],
    targets.map((t) => [t.target, t.met === null ? 'n/a (llm-d unavailable)' : t.met ? 'yes' : 'NO']),
  )}\n`,
);
process.stdout.write(`\nwrote ${RESULTS}${llmd.available ? '' : `\nllm-d unavailable: ${llmd.reason}`}\n`);
process.exit(0);
