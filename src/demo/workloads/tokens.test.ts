import { describe, expect, it } from '@jest/globals';
import { mulberry32 } from '../../common/random.ts';
import { checkInt, deriveSeed, randomTokenIds, seededPermutation, seededTokens, TOKEN_ID_MAX, TOKEN_ID_MIN } from './tokens.ts';

describe('workload token content', () => {
  it('draws token ids only from the ordinary-token range', () => {
    const ids = randomTokenIds(mulberry32(1), 10_000);
    expect(Math.min(...ids)).toBeGreaterThanOrEqual(TOKEN_ID_MIN);
    expect(Math.max(...ids)).toBeLessThan(TOKEN_ID_MAX);
    expect(ids.every(Number.isInteger)).toBe(true);
  });

  it('derives distinct seeds for distinct parts, including parts above 32 bits', () => {
    expect(deriveSeed(1, 2, 3)).toBe(deriveSeed(1, 2, 3));
    expect(deriveSeed(1, 2, 3)).not.toBe(deriveSeed(1, 3, 2));
    expect(deriveSeed(1, 5)).not.toBe(deriveSeed(2, 5));
    expect(deriveSeed(0, 7)).not.toBe(deriveSeed(0, 7 + 2 ** 32));
  });

  it('gives one item the same content whatever else was generated', () => {
    expect(seededTokens(50, 9, 1, 4)).toEqual(seededTokens(50, 9, 1, 4));
    expect(seededTokens(50, 9, 1, 4)).not.toEqual(seededTokens(50, 9, 1, 5));
    expect(seededTokens(80, 9, 1, 4).slice(0, 50)).toEqual(seededTokens(50, 9, 1, 4));
  });

  it('shuffles into a permutation', () => {
    const p = seededPermutation(20, mulberry32(3));
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(p).not.toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('names the option and the expected range when a count is invalid', () => {
    expect(() => checkInt('groups', 0, 1)).toThrow('groups: expected an integer >= 1, got 0');
    expect(() => checkInt('k', 1.5, 1, 4)).toThrow('k: expected an integer in [1, 4], got 1.5');
  });
});
