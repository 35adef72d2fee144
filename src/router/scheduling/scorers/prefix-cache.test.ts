import { describe, expect, it } from '@jest/globals';
import { endpoint } from '../test-helpers.ts';
import { prefixScores } from './prefix-cache.ts';

const pool = [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000')];

describe('prefix-cache-scorer', () => {
  it("scores the fraction of the request's blocks each endpoint holds", () => {
    expect(prefixScores({ kind: 'matched', info: { totalBlocks: 4, matched: new Map([['10.0.0.2:8000', 3]]) } }, pool)).toEqual([0, 0.75]);
    // Tier-weighted matches never score above 1.
    expect(prefixScores({ kind: 'matched', info: { totalBlocks: 2, matched: new Map([['10.0.0.1:8000', 2.5]]) } }, pool)).toEqual([1, 0]);
    expect(prefixScores({ kind: 'matched', info: { totalBlocks: 0, matched: new Map() } }, pool)).toEqual([0, 0]);
  });

  it('abstains for all endpoints when the match failed, and does not apply without a prompt', () => {
    expect(prefixScores({ kind: 'failed', reason: 'timeout' }, pool)).toEqual([null, null]);
    expect(prefixScores({ kind: 'no-input' }, pool)).toBeNull();
  });
});
