import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { ManualClock } from './clock.ts';
import { Engine } from './engine.ts';
import type { SimKvEvent } from '../vllm/events/engine-events.ts';
import { requestHasher } from './hashing.ts';
import { DEFAULT_LATENCY } from './latency.ts';
import { registerVllmMetrics } from './metrics.ts';
import { SimRequest } from './request.ts';

const BS = 16;
let ids = 0;

function setup(options: { maxNumSeqs?: number; kvBlocks?: number; flushOnReset?: boolean } = {}) {
  const clock = new ManualClock(1_000_000);
  const batches: Array<{ ts: number; events: SimKvEvent[] }> = [];
  const engine = new Engine({
    scheduler: {
      maxNumSeqs: options.maxNumSeqs ?? 8,
      maxNumBatchedTokens: 8192,
      maxModelLen: 16384,
      blockSize: BS,
      numBlocks: options.kvBlocks ?? 2048,
    },
    latency: DEFAULT_LATENCY,
    clock,
    sampler: (r) => 1000 + r.numOutputTokens,
    sink: (ts, events) => batches.push({ ts, events }),
    flushOnReset: options.flushOnReset ?? false,
  });
  const registry = new Registry();
  engine.setObserver(
    registerVllmMetrics(
      registry,
      { modelName: 'm', engine: '0', blockSize: BS, numGpuBlocks: 2048, maxLoras: 1 },
      engine.scheduler,
      () => clock.now() / 1000,
    ),
  );
  engine.start();
  return { clock, engine, registry, batches };
}

function request(clock: ManualClock, prompt: number[], maxTokens: number): SimRequest {
  return new SimRequest({
    id: `q${ids++}`,
    promptTokens: prompt,
    maxTokens,
    blockSize: BS,
    hasher: requestHasher({ blockSize: BS, hashSeed: null }, null, null),
    arrivalMs: clock.now(),
  });
}

function run(engine: Engine, r: SimRequest): Promise<{ tokens: number[]; times: number[] }> {
  const tokens: number[] = [];
  const times: number[] = [];
  return new Promise((resolve) =>
    engine.submit(r, { onToken: (t, ms) => (tokens.push(t), times.push(ms)), onFinish: () => resolve({ tokens, times }) }),
  );
}

async function metric(registry: Registry, name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  if (!m) throw new Error(`metric ${name} not registered`);
  const values = (m as unknown as { values: Array<{ value: number; metricName?: string }> }).values;
  return values.filter((v) => !v.metricName || v.metricName === name || v.metricName === `${name}_count`).reduce((s, v) => s + v.value, 0);
}

const prompt = (start: number, n: number) => Array.from({ length: n }, (_, i) => start + i);

describe('Engine timing (simulated ms)', () => {
  it('takes about 2,850 ms to the first token of a cold 4,000-token prompt and about 340 ms when cached', async () => {
    const { clock, engine } = setup();
    const p = prompt(10, 4000);
    const cold = request(clock, p, 2);
    const coldRun = await run(engine, cold);
    expect(coldRun.times[0]! - cold.arrivalMs).toBeGreaterThan(2700);
    expect(coldRun.times[0]! - cold.arrivalMs).toBeLessThan(3000);
    const warm = request(clock, p, 2);
    const warmRun = await run(engine, warm);
    expect(warm.numCachedTokens).toBe(3984);
    expect(warmRun.times[0]! - warm.arrivalMs).toBeGreaterThan(300);
    expect(warmRun.times[0]! - warm.arrivalMs).toBeLessThan(380);
    await engine.stop();
  });

  it('slows decode when more sequences share a step', async () => {
    const { clock, engine } = setup();
    const solo = await run(engine, request(clock, prompt(1, 32), 20));
    const soloItl = solo.times[19]! - solo.times[18]!;
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => run(engine, request(clock, prompt(100 * (i + 1), 32), 20))));
    const busyItl = many[0]!.times[19]! - many[0]!.times[18]!;
    expect(busyItl).toBeGreaterThan(soloItl);
    await engine.stop();
  });

  it('queues requests beyond --max-num-seqs and serves them in arrival order', async () => {
    const { clock, engine } = setup({ maxNumSeqs: 1 });
    const a = request(clock, prompt(1, 64), 5);
    const b = request(clock, prompt(500, 64), 5);
    const [ra, rb] = await Promise.all([run(engine, a), run(engine, b)]);
    expect(rb.times[0]!).toBeGreaterThan(ra.times[4]!);
    await engine.stop();
  });
});

describe('vLLM metrics', () => {
  it('moves running, waiting, usage, prefix cache, TTFT and success metrics as requests run', async () => {
    const { clock, engine, registry } = setup({ maxNumSeqs: 1 });
    expect(await metric(registry, 'vllm:num_requests_running')).toBe(0);
    const p = prompt(7, 64);
    const first = request(clock, p, 50);
    const second = request(clock, p, 3);
    const done = Promise.all([run(engine, first), run(engine, second)]);
    const deadline = Date.now() + 5000;
    while ((await metric(registry, 'vllm:num_requests_waiting')) !== 1 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(await metric(registry, 'vllm:num_requests_running')).toBe(1);
    expect(await metric(registry, 'vllm:num_requests_waiting')).toBe(1);
    expect(await metric(registry, 'vllm:kv_cache_usage_perc')).toBeGreaterThan(0);
    await done;
    expect(await metric(registry, 'vllm:num_requests_running')).toBe(0);
    expect(await metric(registry, 'vllm:kv_cache_usage_perc')).toBe(0);
    expect(await metric(registry, 'vllm:prefix_cache_queries_total')).toBe(128);
    expect(await metric(registry, 'vllm:prefix_cache_hits_total')).toBe(48);
    expect(await metric(registry, 'vllm:time_to_first_token_seconds')).toBe(2);
    expect(await metric(registry, 'vllm:request_success_total')).toBe(2);
    expect(await metric(registry, 'vllm:generation_tokens_total')).toBe(53);
    await engine.stop();
  });

  it('reports LoRA adapters of running and waiting requests in vllm:lora_requests_info', async () => {
    const { clock, engine, registry } = setup({ maxNumSeqs: 1 });
    const lora = { name: 'ad-1', id: 1, path: '/ad' };
    const r = new SimRequest({
      id: 'l',
      promptTokens: prompt(1, 40),
      maxTokens: 30,
      blockSize: BS,
      hasher: requestHasher({ blockSize: BS, hashSeed: null }, lora, null),
      lora,
      arrivalMs: clock.now(),
    });
    const done = run(engine, r);
    const deadline = Date.now() + 5000;
    while (engine.scheduler.running.length === 0 && Date.now() < deadline) await new Promise((res) => setImmediate(res));
    const text = await registry.metrics();
    expect(text).toMatch(/vllm:lora_requests_info\{max_lora="1",waiting_lora_adapters="",running_lora_adapters="ad-1"\} \d+/);
    await done;
    await engine.stop();
  });

  it('publishes one event batch per step that changed the cache, timestamped in simulated seconds', async () => {
    const { clock, engine, batches } = setup();
    await run(engine, request(clock, prompt(1, 40), 1));
    expect(batches).toHaveLength(1);
    expect(batches[0]!.events).toHaveLength(1);
    expect(batches[0]!.ts * 1000).toBeCloseTo(clock.now(), 3);
    await engine.stop();
  });

  it('publishes AllBlocksCleared with the next step that runs, as vLLM does after a reset', async () => {
    const { clock, engine, batches } = setup();
    await run(engine, request(clock, prompt(1, 40), 1));
    expect(engine.resetPrefixCache()).toBe(true);
    expect(batches).toHaveLength(1);
    await run(engine, request(clock, prompt(1, 40), 1));
    expect(batches[1]!.events.map((e) => e.type)).toEqual(['AllBlocksCleared', 'BlockStored']);
    await engine.stop();
  });

  it('publishes AllBlocksCleared at once with --kv-events-flush-on-reset', async () => {
    const { clock, engine, batches } = setup({ flushOnReset: true });
    await run(engine, request(clock, prompt(1, 40), 1));
    expect(engine.resetPrefixCache()).toBe(true);
    expect(batches[1]!.events).toEqual([{ type: 'AllBlocksCleared' }]);
    await engine.stop();
  });
});
