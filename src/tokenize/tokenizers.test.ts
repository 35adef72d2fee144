import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { TokenizerSet } from './tokenizers.ts';

describe('tokenizer set', () => {
  it("exports the bytes each model's cache holds, fallbacks included", async () => {
    const registry = new Registry();
    const set = new TokenizerSet({ sources: { llama: 'npm:llama3_1' }, defaultSource: 'npm:qwen3', registry });
    await set.load();
    const bytes = async () => (await registry.getSingleMetric('kvroute_tokenizer_cache_bytes')!.get()).values;
    expect(await bytes()).toEqual([{ labels: { model: 'llama' }, value: 0 }]);
    await set.tokenize('llama', { prompt: 'one short prompt' });
    await set.tokenize('Qwen/Qwen3-8B', { prompt: 'another prompt' });
    const after = await bytes();
    expect(after.map((v) => v.labels.model)).toEqual(['llama', 'npm:qwen3']);
    // One piece: 2 bytes per character of its text and 4 per id (encode reads it back from the cache).
    const ids = set.get('llama').encode('one short prompt');
    expect(after[0]!.value).toBe('one short prompt'.length * 2 + ids.length * 4);
    expect(after[1]!.value).toBeGreaterThan(0);
  });
});
