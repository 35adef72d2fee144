import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { TokenizeInputError } from './model-tokenizer.ts';
import { TokenizerPool } from './pool.ts';
import { UnknownModelError } from './tokenizers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const golden = JSON.parse(fs.readFileSync(path.join(here, 'testdata', 'golden.json'), 'utf8')) as {
  models: Record<string, { texts: Array<{ text: string; prompt: number[] }>; chats: Array<{ messages: never[]; tokens: number[]; rendered: string }> }>;
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
      expect(family).toMatchObject({ tokenizerModel: 'npm:llama3_1', tokens: llamaText.prompt, fallback: { source: 'npm:llama3_1', reason: 'family', family: 'Llama 3.1' } });
      expect(again.tokens).toEqual(llamaText.prompt);
      const other = await pool.tokenize('acme/custom', { prompt: qwenText.text });
      expect(other).toMatchObject({ tokenizerModel: 'npm:qwen3', tokens: qwenText.prompt, fallback: { source: 'npm:qwen3', reason: 'default' } });
    } finally {
      await pool.close();
    }
  }, 60_000);
});
