import { describe, expect, it } from '@jest/globals';
import { createLogger } from '../../../common/log.ts';
import type { PrefixScorer, ScoreRequest, ScoreResult } from '../../../indexer/public.ts';
import { endpoint, metricValue, profileConfig, request, testScheduler } from '../test-helpers.ts';
import { indexerRequest } from './precise-prefix.ts';

/** An in-process PrefixScorer with fixed answers, recording what it was asked and where. */
function fixedIndexer(result: ScoreResult | (() => Promise<ScoreResult>)) {
  const asked: Array<{ address: string; request: ScoreRequest }> = [];
  const factory = (address: string): PrefixScorer => ({
    score: async (req) => {
      asked.push({ address, request: req });
      return typeof result === 'function' ? result() : result;
    },
  });
  return { asked, factory };
}

const pool = [
  endpoint('10.0.0.1:8000', { name: 'vllm-0' }),
  endpoint('10.0.0.2:8000', { name: 'vllm-1' }),
  endpoint('10.0.0.3:8000', { name: 'vllm-2' }),
];
const preciseAlone = (parameters: Record<string, unknown> = {}) =>
  profileConfig([
    { type: 'precise-prefix-cache-scorer', parameters, weight: 1 },
    { type: 'queue-scorer', weight: 0.1 },
  ]);

describe('precise prefix scoring', () => {
  it("scores matched / total blocks per endpoint from the indexer's pod ids and predicts the pick's prefix", async () => {
    const indexer = fixedIndexer({ scores: { '10.0.0.2': 6, 'vllm-2': 3 }, totalBlocks: 8 });
    const scheduler = testScheduler(preciseAlone({ indexerAddress: 'indexer:9004' }), { indexer: indexer.factory });
    const result = await scheduler.schedule(request({ prompt: 'hello', targetModel: 'qwen', cacheSalt: 's', loraName: 'sql' }), pool);
    expect(result.scores).toEqual({ '10.0.0.1:8000': 0.1, '10.0.0.2:8000': 0.75 + 0.1, '10.0.0.3:8000': 0.375 + 0.1 });
    expect(result.targets[0]!.address).toBe('10.0.0.2:8000');
    expect(result.predictedPrefix).toEqual({ matchedBlocks: 6, totalBlocks: 8 });
    expect(indexer.asked).toEqual([
      { address: 'indexer:9004', request: { model: 'qwen', prompt: 'hello', cacheSalt: 's', loraName: 'sql' } },
    ]);
  });

  it('scores 0 everywhere when the request has no full block, and does not ask without a prompt', async () => {
    const indexer = fixedIndexer({ scores: {}, totalBlocks: 0 });
    const scheduler = testScheduler(preciseAlone(), { indexer: indexer.factory });
    const result = await scheduler.schedule(request({ prompt: 'hi' }), pool);
    expect(Object.values(result.scores)).toEqual([0.1, 0.1, 0.1]);
    expect(result.predictedPrefix).toEqual({ matchedBlocks: 0, totalBlocks: 0 });
    const other = await scheduler.schedule(request({ kind: 'other', path: '/v1/models' }), pool);
    expect(other.predictedPrefix).toBeUndefined();
    expect(indexer.asked).toHaveLength(1);
  });

  it('sends chat messages with their tools and template settings, and tokens when the request has them', () => {
    const messages = [{ role: 'user', content: 'hi' }];
    const tools = [{ type: 'function' as const, function: { name: 'f' } }];
    expect(
      indexerRequest(request({ messages, tools, chatTemplateKwargs: { enable_thinking: false }, addGenerationPrompt: false })),
    ).toEqual({
      model: 'm',
      messages,
      tools,
      chatTemplateKwargs: { enable_thinking: false },
      addGenerationPrompt: false,
    });
    expect(indexerRequest(request({ tokens: [1, 2], prompt: 'x' }))).toEqual({ model: 'm', tokens: [1, 2] });
    expect(indexerRequest(request())).toBeUndefined();
  });

  it('abstains for every endpoint when the indexer fails, logs it rate-limited and counts it; the other scorers decide', async () => {
    const lines: string[] = [];
    const log = createLogger({ write: (line) => void lines.push(line), perInterval: 2 });
    const indexer = fixedIndexer(() => Promise.reject(new Error('indexer Score at 127.0.0.1:9004 failed: UNAVAILABLE')));
    const scheduler = testScheduler(
      profileConfig([
        { type: 'precise-prefix-cache-scorer', weight: 3 },
        { type: 'queue-scorer', weight: 1 },
      ]),
      { indexer: indexer.factory, log },
    );
    const busy = [
      endpoint('10.0.0.1:8000', { metrics: { waitingRequests: 5 } }),
      endpoint('10.0.0.2:8000', { metrics: { waitingRequests: 0 } }),
    ];
    for (let i = 0; i < 5; i++) {
      const result = await scheduler.schedule(request({ prompt: 'hello' }), busy);
      expect(result.targets[0]!.address).toBe('10.0.0.2:8000');
      expect(result.scores).toEqual({ '10.0.0.1:8000': 0, '10.0.0.2:8000': 1 });
      expect(result.predictedPrefix).toBeUndefined();
    }
    expect(await metricValue(scheduler.registry, 'kvroute_router_indexer_errors_total{reason="error"}')).toBe(5);
    expect(
      await metricValue(
        scheduler.registry,
        'kvroute_router_scorer_abstentions_total{plugin_type="precise-prefix-cache-scorer",plugin_name="precise-prefix-cache-scorer"}',
      ),
    ).toBe(10);
    const warnings = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'indexer score failed: the precise prefix scorer abstains');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ level: 'warn', reason: 'error', err: 'indexer Score at 127.0.0.1:9004 failed: UNAVAILABLE' });
  });

  it('abstains when the indexer does not answer within timeoutMs', async () => {
    const indexer = fixedIndexer(() => new Promise<ScoreResult>(() => {}));
    const scheduler = testScheduler(preciseAlone({ timeoutMs: 20 }), { indexer: indexer.factory });
    const started = performance.now();
    const result = await scheduler.schedule(request({ prompt: 'hello' }), pool);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(Object.values(result.scores)).toEqual([0.1, 0.1, 0.1]);
    expect(await metricValue(scheduler.registry, 'kvroute_router_indexer_errors_total{reason="timeout"}')).toBe(1);
  });

  it('reaches the indexer through a precise producer named by prefix-cache-scorer, once per request', async () => {
    const indexer = fixedIndexer({ scores: { '10.0.0.3:8000': 4 }, totalBlocks: 4 });
    const config = profileConfig([
      { type: 'precise-prefix-cache-producer', name: 'kv-index', inProfile: false },
      { type: 'prefix-cache-scorer', parameters: { prefixMatchInfoProducerName: 'kv-index' }, weight: 2 },
      { type: 'no-hit-lru-scorer', weight: 1 },
    ]);
    const scheduler = testScheduler(config, { indexer: indexer.factory });
    const result = await scheduler.schedule(request({ prompt: 'hello' }), pool);
    expect(result.targets[0]!.address).toBe('10.0.0.3:8000');
    expect(result.scores['10.0.0.3:8000']).toBe(2 + 0.5);
    expect(result.predictedPrefix).toEqual({ matchedBlocks: 4, totalBlocks: 4 });
    expect(indexer.asked).toHaveLength(1);
  });

  it('lets the --indexer override win over the configured address', async () => {
    const indexer = fixedIndexer({ scores: {}, totalBlocks: 1 });
    const scheduler = testScheduler(preciseAlone({ indexerAddress: 'configured:9004' }), {
      indexer: indexer.factory,
      indexerAddressOverride: 'flag:9999',
    });
    await scheduler.schedule(request({ prompt: 'hello' }), pool);
    expect(indexer.asked.map((a) => a.address)).toEqual(['flag:9999']);
  });

  it('uses a gRPC client by default and abstains when nothing listens there', async () => {
    const scheduler = testScheduler(preciseAlone({ indexerAddress: '127.0.0.1:1', timeoutMs: 2_000 }));
    try {
      const result = await scheduler.schedule(request({ prompt: 'hello' }), pool);
      expect(Object.values(result.scores)).toEqual([0.1, 0.1, 0.1]);
      expect(await metricValue(scheduler.registry, 'kvroute_router_indexer_errors_total{reason="error"}')).toBe(1);
    } finally {
      scheduler.close();
    }
  });
});
