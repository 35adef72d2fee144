import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MULTI_TURN_QUICK, multiTurnWorkload } from './multi-turn.ts';
import { RAG_QUICK } from './rag.ts';
import { SHARED_PREFIX_QUICK, sharedPrefixWorkload } from './shared-prefix.ts';
import { parseWorkloadSpec } from './spec.ts';

const dir = mkdtempSync(join(tmpdir(), 'workload-spec-'));
const base = { seed: 11, model: 'qwen' };

describe('parseWorkloadSpec', () => {
  it('builds the quick shared-prefix preset and names it with its parameters', async () => {
    const w = await parseWorkloadSpec('shared-prefix', { ...base, quick: true });
    expect(w.requests).toEqual(sharedPrefixWorkload({ ...SHARED_PREFIX_QUICK, ...base }));
    expect(w.name).toBe(
      'shared-prefix(groups=12,usersPerGroup=5,systemPromptLen=3400,sharedPrefixLen=64,questionLen=600,outputLen=16,questionsPerUser=1,rounds=4,seed=11)',
    );
  });

  it('applies key=value overrides and --requests to a built-in', async () => {
    const w = await parseWorkloadSpec('shared-prefix:groups=2,systemPromptLen=32,sharedPrefixLen=16,questionLen=8', {
      ...base,
      quick: true,
      requests: 7,
    });
    expect(w.requests).toHaveLength(7);
    expect(w.requests[0]!.tokens).toHaveLength(40);
    expect(new Set(w.requests.map((r) => r.group))).toEqual(new Set(['g0', 'g1']));
    expect(w.name).toContain('requests=7');
  });

  it('builds multi-turn and rag', async () => {
    expect((await parseWorkloadSpec('multi-turn', { ...base, quick: true })).requests).toEqual(
      multiTurnWorkload({ ...MULTI_TURN_QUICK, ...base }),
    );
    expect((await parseWorkloadSpec('rag', { ...base, quick: true })).requests).toHaveLength(RAG_QUICK.requests);
  });

  it('reads mooncake:FILE and FILE.jsonl', async () => {
    const trace = join(dir, 'trace.jsonl');
    writeFileSync(trace, '{"timestamp": 0, "input_length": 20, "output_length": 3, "hash_ids": [1]}\n');
    const m = await parseWorkloadSpec(`mooncake:${trace}`, { ...base, maxOutputTokens: 2 });
    expect(m.requests.map((r) => [r.tokens!.length, r.maxTokens, r.model])).toEqual([[20, 2, 'qwen']]);
    expect(m.name).toBe('mooncake:trace.jsonl(1 requests, max_tokens <= 2)');

    const file = join(dir, 'chat.jsonl');
    writeFileSync(file, '{"prompt": "a"}\n{"prompt": "b"}\n');
    const j = await parseWorkloadSpec(file, { ...base, requests: 1 });
    expect(j.requests).toEqual([{ tMs: 0, model: 'qwen', prompt: 'a', maxTokens: 64 }]);
  });

  it('explains unknown workloads, parameters and values', async () => {
    await expect(parseWorkloadSpec('sharedprefix', base)).rejects.toThrow(
      'unknown workload "sharedprefix": expected one of shared-prefix, multi-turn, rag, mooncake:FILE, FILE.jsonl',
    );
    await expect(parseWorkloadSpec('rag:docs=3', base)).rejects.toThrow(
      'workload rag: unknown parameter "docs"; expected key=value with key one of documents,',
    );
    await expect(parseWorkloadSpec('rag:documents=many', base)).rejects.toThrow('workload rag: documents: expected a number, got "many"');
    await expect(parseWorkloadSpec('multi-turn:turns=0', base)).rejects.toThrow('turns: expected an integer >= 1, got 0');
    await expect(parseWorkloadSpec('mooncake:', base)).rejects.toThrow('expected mooncake:FILE');
    await expect(parseWorkloadSpec('shared-prefix', { ...base, requests: 0 })).rejects.toThrow('requests: expected an integer >= 1, got 0');
  });
});
