import { describe, expect, it } from '@jest/globals';
import { ApproxPrefixIndex } from './approx-index.ts';

const A = '10.0.0.1:8000';
const B = '10.0.0.2:8000';

describe('ApproxPrefixIndex', () => {
  it('counts the consecutive blocks each endpoint holds from the first', () => {
    const index = new ApproxPrefixIndex(100);
    index.add(A, [1, 2, 3, 4], 4);
    index.add(B, [1, 2, 9], 3);
    expect(index.match([1, 2, 3, 4, 5], 5, [A, B])).toEqual(
      new Map([
        [A, 4],
        [B, 2],
      ]),
    );
    // A gap ends the run even if later blocks are held.
    expect(index.match([1, 7, 3, 4], 4, [A, B])).toEqual(
      new Map([
        [A, 1],
        [B, 1],
      ]),
    );
    expect(index.match([2, 3], 2, [A, B])).toEqual(
      new Map([
        [A, 2],
        [B, 1],
      ]),
    );
    // Only the endpoints asked about.
    expect(index.match([1, 2, 3], 3, [B])).toEqual(new Map([[B, 2]]));
    expect(index.match([8], 1, [A, B])).toEqual(new Map());
  });

  it("evicts an endpoint's least recently added blocks past its capacity, and forgets them in the lookup", () => {
    const index = new ApproxPrefixIndex(3);
    index.add(A, [1, 2, 3], 3);
    index.add(B, [1, 2, 3], 3);
    index.add(A, [10, 11], 2);
    // A's LRU keeps 3 entries: 10, 11 and the most recent of the first request (its first block, added last).
    expect(index.size).toBe(6);
    expect(index.match([1, 2, 3], 3, [A, B])).toEqual(
      new Map([
        [A, 1],
        [B, 3],
      ]),
    );
    expect(index.match([10, 11], 2, [A, B])).toEqual(new Map([[A, 2]]));
  });

  it('forgets everything an endpoint held when it is removed', () => {
    const index = new ApproxPrefixIndex(10);
    index.add(A, [1, 2], 2);
    index.add(B, [1, 2], 2);
    index.remove(A);
    expect(index.match([1, 2], 2, [A, B])).toEqual(new Map([[B, 2]]));
    index.clear();
    expect(index.size).toBe(0);
    expect(index.match([1, 2], 2, [A, B])).toEqual(new Map());
  });
});
