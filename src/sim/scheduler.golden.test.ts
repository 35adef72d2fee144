import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { encodeEventBatch } from '../vllm/events/encode.ts';
import type { KvEventsEncoding, KvEventsHashForm, SimKvEvent } from '../vllm/events/engine-events.ts';
import { requestHasher } from './hashing.ts';
import { SimRequest, type LoraAdapter } from './request.ts';
import { Scheduler } from './scheduler.ts';

interface GoldenRequest {
  id: string;
  arrive: number;
  prompt: number[];
  outputs: number[];
  lora?: LoraAdapter;
  cacheSalt?: string;
}
interface GoldenStep {
  step: number;
  map: string;
  array: string;
  usage?: number;
  freeQueue?: number[];
}
interface Golden {
  config: {
    blockSize: number;
    numBlocks: number;
    maxNumSeqs: number;
    maxNumBatchedTokens: number;
    maxModelLen: number;
    hashSeed: string;
    resetAtStep: number;
    numSteps: number;
  };
  requests: GoldenRequest[];
  uint64: {
    steps: GoldenStep[];
    cachedTokens: Record<string, number>;
    preemptions: Record<string, number>;
    prefixCache: { queries: number; hits: number };
  };
  bytes: { steps: GoldenStep[] };
}

const golden = JSON.parse(readFileSync(new URL('./testdata/golden-events.json', import.meta.url), 'utf8')) as Golden;

interface Replayed {
  steps: Array<{ step: number; events: SimKvEvent[]; usage: number; freeQueue: number[] }>;
  requests: Map<string, SimRequest>;
  scheduler: Scheduler;
}

/** Runs the golden request sequence through the simulator's scheduler, step by step like the generator. */
function replay(): Replayed {
  const c = golden.config;
  const scheduler = new Scheduler({
    maxNumSeqs: c.maxNumSeqs,
    maxNumBatchedTokens: c.maxNumBatchedTokens,
    maxModelLen: c.maxModelLen,
    blockSize: c.blockSize,
    numBlocks: c.numBlocks,
  });
  const requests = new Map<string, SimRequest>();
  const outputs = new Map<SimRequest, number[]>();
  for (const g of golden.requests) {
    const lora = g.lora ?? null;
    const r = new SimRequest({
      id: g.id,
      promptTokens: g.prompt,
      maxTokens: g.outputs.length,
      blockSize: c.blockSize,
      hasher: requestHasher({ blockSize: c.blockSize, hashSeed: c.hashSeed }, lora, g.cacheSalt ?? null),
      lora,
      cacheSalt: g.cacheSalt ?? null,
      arrivalMs: g.arrive,
    });
    requests.set(g.id, r);
    outputs.set(r, g.outputs);
  }
  const sampler = (r: SimRequest) => outputs.get(r)![r.numOutputTokens]!;
  const steps: Replayed['steps'] = [];
  for (let step = 0; step < c.numSteps; step++) {
    for (const g of golden.requests) if (g.arrive === step) scheduler.add(requests.get(g.id)!);
    if (step === c.resetAtStep) expect(scheduler.resetPrefixCache()).toBe(true);
    if (!scheduler.hasWork()) continue;
    const events = scheduler.update(scheduler.schedule(), sampler).events;
    if (events.length > 0)
      steps.push({ step, events, usage: scheduler.kv.usage(), freeQueue: scheduler.kv.pool.freeBlocksInEvictionOrder() });
  }
  return { steps, requests, scheduler };
}

function hex(step: number, events: SimKvEvent[], encoding: KvEventsEncoding, hashForm: KvEventsHashForm): string {
  return Buffer.from(encodeEventBatch(step, events, { encoding, hashForm, dpRank: 0 })).toString('hex');
}

describe('simulator prefix cache against vLLM 0.33 KVCacheManager (golden)', () => {
  const run = replay();

  it('emits event batches in the same scheduler steps as vLLM', () => {
    expect(run.steps.map((s) => s.step)).toEqual(golden.uint64.steps.map((s) => s.step));
  });

  it('encodes each step byte-for-byte like vLLM in map form with uint64 hashes', () => {
    for (const [i, s] of run.steps.entries())
      expect({ step: s.step, hex: hex(s.step, s.events, 'map', 'uint64') }).toEqual({ step: s.step, hex: golden.uint64.steps[i]!.map });
  });

  it('encodes each step byte-for-byte like the older array form', () => {
    for (const [i, s] of run.steps.entries())
      expect({ step: s.step, hex: hex(s.step, s.events, 'array', 'uint64') }).toEqual({ step: s.step, hex: golden.uint64.steps[i]!.array });
  });

  it('encodes raw 32-byte hashes like vLLM with VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0', () => {
    for (const [i, s] of run.steps.entries()) {
      expect(hex(s.step, s.events, 'map', 'bytes')).toBe(golden.bytes.steps[i]!.map);
      expect(hex(s.step, s.events, 'array', 'bytes')).toBe(golden.bytes.steps[i]!.array);
    }
  });

  it('keeps the free queue in vLLM eviction order and reports the same usage', () => {
    for (const [i, s] of run.steps.entries()) {
      expect({ step: s.step, free: s.freeQueue }).toEqual({ step: s.step, free: golden.uint64.steps[i]!.freeQueue });
      expect(s.usage).toBeCloseTo(golden.uint64.steps[i]!.usage!, 12);
    }
  });

  it('reports the same cached tokens per request, preemptions and prefix cache counters', () => {
    const cached: Record<string, number | null> = {};
    const preemptions: Record<string, number> = {};
    for (const [id, r] of run.requests) {
      cached[id] = r.numCachedTokens;
      preemptions[id] = r.numPreemptions;
    }
    expect(cached).toEqual(golden.uint64.cachedTokens);
    expect(preemptions).toEqual(golden.uint64.preemptions);
    expect(run.scheduler.kv.prefixCache).toEqual(golden.uint64.prefixCache);
  });
});
