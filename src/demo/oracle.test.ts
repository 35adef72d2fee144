import { describe, expect, it } from '@jest/globals';
import { computeOracle, maxCacheableTokens, PrefixOracle, promptTokenArrays, tokenPrompts } from './oracle.ts';

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('the unlimited-cache bound', () => {
  it('never lets a hit cover the last prompt token, like the simulator', () => {
    expect(maxCacheableTokens(16, 16)).toBe(0);
    expect(maxCacheableTokens(17, 16)).toBe(16);
    expect(maxCacheableTokens(32, 16)).toBe(16);
    expect(maxCacheableTokens(33, 16)).toBe(32);
    expect(maxCacheableTokens(0, 16)).toBe(0);
  });

  it('counts whole blocks whose whole prefix chain was seen before, on a hand-made sequence', () => {
    // Block size 4. Expected hits, by hand:
    const sequence = [
      range(1, 10), // blocks [1-4] [5-8] + 2 tokens: nothing seen yet -> 0
      [...range(1, 8), 99], // 9 tokens: both blocks seen, cap floor(8/4)*4 = 8 -> 8
      range(1, 8), // 8 tokens: cap floor(7/4)*4 = 4 -> 4
      [2, 2, 3, 4, ...range(5, 8), 0], // first block new, so the seen [5-8] content does not count -> 0
      [...range(1, 4), 9, 9, 9, 9, ...range(5, 8), 1], // [1-4] hit, [9 9 9 9] new, [5-8] on another chain -> 4
      [1, 2, 3], // shorter than a block -> 0
      [], // empty -> 0
      [...range(1, 4), 9, 9, 9, 9, ...range(5, 8), 1], // the fifth again: 3 blocks, cap 12 -> 12
    ];
    const result = computeOracle(sequence, 4);
    expect(result.hitTokens).toEqual([0, 8, 4, 0, 4, 0, 0, 12]);
    expect(result.totalHitTokens).toBe(28);
    expect(result.promptTokens).toBe(10 + 9 + 8 + 9 + 13 + 3 + 0 + 13);
    expect(result.tokenHitRate).toBeCloseTo(28 / 65, 12);
    // Distinct blocks: [1-4] [5-8] | [2 2 3 4] [5-8 after it] | [9 9 9 9] [5-8 after that].
    expect(result.distinctBlocks).toBe(6);
  });

  it('looks up without recording with match, and records with observe', () => {
    const oracle = new PrefixOracle(2);
    expect(oracle.match([1, 2, 3])).toBe(0);
    expect(oracle.observe([1, 2, 3])).toBe(0);
    expect(oracle.match([1, 2, 3])).toBe(2);
    expect(oracle.match([1, 2, 5, 6, 7])).toBe(2);
    expect(oracle.distinctBlocks).toBe(1);
  });

  it('rejects a block size that is not a positive integer', () => {
    expect(() => new PrefixOracle(0)).toThrow('blockSize: expected a positive integer, got 0');
  });

  it('takes token-id prompts as they are and tokenizes text and chat prompts', async () => {
    const calls: unknown[] = [];
    const tokenizer = {
      tokenize: async (model: string, input: unknown) => {
        calls.push([model, input]);
        return { tokens: [7, 8] };
      },
    };
    const tokens = [1, 2, 3];
    const out = await promptTokenArrays(
      [
        { tMs: 0, model: 'm', tokens, maxTokens: 1 },
        { tMs: 0, model: 'm', prompt: 'hi', maxTokens: 1 },
        { tMs: 0, model: 'n', messages: [{ role: 'user', content: 'yo' }], maxTokens: 1 },
      ],
      tokenizer,
    );
    expect(out[0]).toBe(tokens);
    expect(out.slice(1)).toEqual([
      [7, 8],
      [7, 8],
    ]);
    expect(calls).toEqual([
      ['m', { prompt: 'hi' }],
      ['n', { messages: [{ role: 'user', content: 'yo' }] }],
    ]);
    await expect(promptTokenArrays([{ tMs: 0, model: 'm', prompt: 'x', maxTokens: 1 }])).rejects.toThrow(
      'request 0: a text or chat prompt needs a tokenizer',
    );
  });

  it('streams token-id prompts into the bound and refuses text prompts there', () => {
    const requests = [
      { tMs: 0, model: 'm', tokens: [1, 2, 3, 4, 5], maxTokens: 1 },
      { tMs: 0, model: 'm', tokens: [1, 2, 3, 4, 6], maxTokens: 1 },
    ];
    expect(computeOracle(tokenPrompts(requests), 2).hitTokens).toEqual([0, 4]);
    expect(() => [...tokenPrompts([{ tMs: 0, model: 'm', prompt: 'x', maxTokens: 1 }])]).toThrow('request 0: not a token-id prompt');
  });
});
