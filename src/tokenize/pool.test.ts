import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { mulberry32 } from '../common/random.ts';
import { TokenizeInputError } from './model-tokenizer.ts';
import { TokenizerPool } from './pool.ts';
import { TokenizeShedError, UnknownModelError } from './tokenizers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const golden = JSON.parse(fs.readFileSync(path.join(here, 'testdata', 'golden.json'), 'utf8')) as {
  models: Record<
    string,
    { texts: Array<{ text: string; prompt: number[] }>; chats: Array<{ messages: never[]; tokens: number[]; rendered: string }> }
  >;
};

describe('tokenizer worker pool', () => {
  const registry = new Registry();
  let pool: TokenizerPool;
  beforeAll(async () => {
    pool = new TokenizerPool({ workers: 2, sources: { llama: 'npm:llama3_1', '*': 'npm:qwen3' }, registry });
    await pool.load();
  }, 60_000);
  afterAll(async () => {
    await pool?.close();
  });

  it('tokenizes prompts and chats in worker threads with the golden ids', async () => {
    expect(pool.models).toEqual(['llama', '*']);
    for (const t of golden.models.llama3_1!.texts) expect((await pool.tokenize('llama', { prompt: t.text })).tokens).toEqual(t.prompt);
    for (const c of golden.models.qwen3!.chats) {
      const out = await pool.tokenize('Qwen/Qwen3-8B', { messages: c.messages });
      expect(out).toMatchObject({ tokenizerModel: '*', tokens: c.tokens, rendered: c.rendered });
    }
  });

  it('answers concurrent requests each with its own ids', async () => {
    const texts = golden.models.qwen3!.texts;
    const outs = await Promise.all(texts.map((t) => pool.tokenize('any', { prompt: t.text })));
    expect(outs.map((o) => o.tokens)).toEqual(texts.map((t) => t.prompt));
  });

  it('rejects with the same error types as in-process tokenization and counts cache use', async () => {
    const noFallback = new TokenizerPool({ workers: 1, sources: { llama: 'tiktoken:cl100k_base' } });
    await noFallback.load();
    await expect(noFallback.tokenize('other', { prompt: 'x' })).rejects.toThrow(UnknownModelError);
    await expect(noFallback.tokenize('llama', { messages: [{ role: 'user', content: 'x' }] })).rejects.toThrow(TokenizeInputError);
    await noFallback.close();
    await pool.tokenize('llama', { prompt: 'counted twice' });
    await pool.tokenize('llama', { prompt: 'counted twice' });
    const metrics = await registry.getSingleMetricAsString('kvroute_tokenizer_cache_lookups_total');
    expect(metrics).toMatch(/model="llama",result="hit"\} [1-9]/);
  });

  it("exports each worker's heap and the bytes the workers' caches hold", async () => {
    await pool.tokenize('llama', { prompt: 'a prompt the cache now holds' });
    const cache = await registry.getSingleMetricAsString('kvroute_tokenizer_cache_bytes');
    expect(cache).toMatch(/kvroute_tokenizer_cache_bytes\{model="llama"\} [1-9]/);
    for (const name of ['kvroute_tokenizer_worker_heap_used_bytes', 'kvroute_tokenizer_worker_heap_size_bytes']) {
      const page = await registry.getSingleMetricAsString(name);
      for (const worker of ['0', '1']) expect(page).toMatch(new RegExp(`${name}\\{worker="${worker}"\\} [1-9]\\d{5,}`));
    }
    // Scraped together, as the registry collects them concurrently, both still read every worker.
    expect(await registry.metrics()).toMatch(/kvroute_tokenizer_worker_heap_size_bytes\{worker="1"\} [1-9]/);
  });

  it('fails to load naming the model whose source is bad', async () => {
    const bad = new TokenizerPool({ workers: 1, sources: { broken: 'dir:/nonexistent-kvroute' } });
    await expect(bad.load()).rejects.toThrow(/tokenizers\.broken: .*tokenizer\.json/);
    await bad.close();
  });
});

describe('tokenizer worker pool with fallbacks', () => {
  it('loads a family or default tokenizer in the worker on first use and says which one served', async () => {
    const pool = new TokenizerPool({ workers: 1, sources: {}, defaultSource: 'npm:qwen3' });
    try {
      await pool.load();
      expect(pool.models).toEqual([]);
      const llamaText = golden.models.llama3_1!.texts[0]!;
      const qwenText = golden.models.qwen3!.texts[0]!;
      // Two at once: the second waits for the same load rather than starting another.
      const [family, again] = await Promise.all([
        pool.tokenize('meta-llama/Llama-3.1-70B-Instruct', { prompt: llamaText.text }),
        pool.tokenize('Meta-Llama-3.1-8B', { prompt: llamaText.text }),
      ]);
      expect(family).toMatchObject({
        tokenizerModel: 'npm:llama3_1',
        tokens: llamaText.prompt,
        fallback: { source: 'npm:llama3_1', reason: 'family', family: 'Llama 3.1' },
      });
      expect(again.tokens).toEqual(llamaText.prompt);
      const other = await pool.tokenize('acme/custom', { prompt: qwenText.text });
      expect(other).toMatchObject({
        tokenizerModel: 'npm:qwen3',
        tokens: qwenText.prompt,
        fallback: { source: 'npm:qwen3', reason: 'default' },
      });
    } finally {
      await pool.close();
    }
  }, 60_000);
});

/** A prompt of `words` distinct made-up words: cold for every cache, so tokenizing it takes a while. */
function coldPrompt(seed: number, words: number): string {
  const random = mulberry32(seed);
  return Array.from({ length: words }, () => Math.floor(random() * 2 ** 40).toString(36)).join(' ');
}

/** How many tokenizations the workers ran (the pool records each result it receives). */
async function jobsRun(registry: Registry): Promise<number> {
  const text = await registry.getSingleMetricAsString('kvroute_tokenize_duration_seconds');
  return [...text.matchAll(/^kvroute_tokenize_duration_seconds_count\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

describe('tokenizer worker pool shedding', () => {
  let clock = 0;
  const registry = new Registry();
  let pool: TokenizerPool;
  beforeAll(async () => {
    pool = new TokenizerPool({ workers: 1, sources: { '*': 'npm:qwen3' }, registry, now: () => clock });
    await pool.load();
  }, 60_000);
  afterAll(async () => {
    await pool?.close();
  });

  it('sheds calls whose deadline passed while they waited behind a slow job, without running them', async () => {
    clock = 1_000;
    const before = await jobsRun(registry);
    const slow = pool.tokenize('m', { prompt: coldPrompt(1, 60_000) });
    const queued = Array.from({ length: 50 }, (_, i) => pool.tokenize('m', { prompt: `short ${i}` }, { deadline: clock + 10 }));
    expect(pool.queued).toBe(50);
    // Their deadline passes while the slow job still holds the only worker.
    clock += 11;
    const outcomes = await Promise.allSettled(queued);
    expect((await slow).tokens.length).toBeGreaterThan(60_000);
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(TokenizeShedError);
      expect(((o as PromiseRejectedResult).reason as TokenizeShedError).reason).toBe('deadline');
    }
    expect(await jobsRun(registry)).toBe(before + 1);
    expect(pool.queued).toBe(0);
  }, 60_000);

  it('drops queued calls the moment their caller cancels them, and never runs them', async () => {
    const before = await jobsRun(registry);
    const slow = pool.tokenize('m', { prompt: coldPrompt(2, 60_000) });
    const controllers = Array.from({ length: 20 }, () => new AbortController());
    const queued = controllers.map((c, i) => pool.tokenize('m', { prompt: `short ${i}` }, { signal: c.signal }));
    const kept = pool.tokenize('m', { prompt: 'kept' });
    for (const c of controllers) c.abort();
    expect(pool.queued).toBe(1);
    for (const o of await Promise.allSettled(queued))
      expect(o.status === 'rejected' && (o.reason as TokenizeShedError).reason).toBe('cancelled');
    await slow;
    expect((await kept).tokens.length).toBeGreaterThan(0);
    expect(await jobsRun(registry)).toBe(before + 2);
  }, 60_000);

  it('refuses at once a call already cancelled or past its deadline', async () => {
    const cancelled = new AbortController();
    cancelled.abort();
    await expect(pool.tokenize('m', { prompt: 'x' }, { signal: cancelled.signal })).rejects.toMatchObject({ reason: 'cancelled' });
    await expect(pool.tokenize('m', { prompt: 'x' }, { deadline: clock })).rejects.toMatchObject({ reason: 'deadline' });
  });

  it('refuses a call the queue ahead of it cannot clear before its deadline, but takes one finding the worker idle', async () => {
    // No deadline, worker idle: taken whatever its size.
    const slow = pool.tokenize('m', { prompt: coldPrompt(3, 60_000) });
    // Behind the slow job, whose estimate alone (its overhead, at least) exceeds a 0.05 ms budget.
    await expect(pool.tokenize('m', { prompt: 'x' }, { deadline: clock + 0.05 })).rejects.toMatchObject({ reason: 'overloaded' });
    const roomy = pool.tokenize('m', { prompt: 'y' }, { deadline: clock + 60_000 });
    await slow;
    expect((await roomy).tokens.length).toBeGreaterThan(0);
  }, 60_000);

  it('bounds the queue for calls without a deadline by maxQueueMs', async () => {
    const bounded = new TokenizerPool({ workers: 1, sources: { '*': 'npm:qwen3' }, maxQueueMs: 0.05 });
    try {
      await bounded.load();
      const first = bounded.tokenize('m', { prompt: coldPrompt(4, 20_000) });
      await expect(bounded.tokenize('m', { prompt: 'x' })).rejects.toMatchObject({ reason: 'overloaded' });
      expect((await first).tokens.length).toBeGreaterThan(0);
      // Idle again: admitted.
      expect((await bounded.tokenize('m', { prompt: 'x' })).tokens.length).toBeGreaterThan(0);
    } finally {
      await bounded.close();
    }
  }, 60_000);
});

describe('tokenizer worker pool with two workers and one model', () => {
  it('runs a second job on the idle worker instead of queueing it behind the busy one', async () => {
    const pool = new TokenizerPool({ workers: 2, sources: { '*': 'npm:qwen3' } });
    try {
      await pool.load();
      const order: string[] = [];
      const slow = pool.tokenize('m', { prompt: coldPrompt(5, 60_000) }).then(() => order.push('slow'));
      const quick = pool.tokenize('m', { prompt: 'quick' }).then(() => order.push('quick'));
      await Promise.all([slow, quick]);
      expect(order).toEqual(['quick', 'slow']);
    } finally {
      await pool.close();
    }
  }, 60_000);
});
