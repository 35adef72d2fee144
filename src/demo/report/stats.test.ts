import { describe, expect, it } from '@jest/globals';
import { empiricalCdf, percentile } from './stats.ts';

describe('report statistics', () => {
  it('takes nearest-rank percentiles of unsorted samples', () => {
    const samples = [50, 10, 40, 20, 30];
    expect(percentile(samples, 50)).toBe(30);
    expect(percentile(samples, 90)).toBe(50);
    expect(percentile(samples, 0)).toBe(10);
    expect(percentile([], 50)).toBeNull();
    expect(samples).toEqual([50, 10, 40, 20, 30]);
  });

  it('steps the CDF once per distinct value', () => {
    expect(empiricalCdf([3, 1, 3, 2])).toEqual([
      [1, 0.25],
      [2, 0.5],
      [3, 1],
    ]);
  });
});
