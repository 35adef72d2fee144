import { describe, expect, it } from '@jest/globals';
import { endpoint, profileConfig, request, testScheduler } from '../test-helpers.ts';
import { lruScores } from './no-hit-lru.ts';

describe('no-hit-lru-scorer', () => {
  it('ranks never-used endpoints first, then the least recently used', () => {
    expect(lruScores(['a', 'b', 'c'], new Map())).toEqual([1, 1, 1]);
    expect(
      lruScores(
        ['a', 'b', 'c'],
        new Map([
          ['b', 2],
          ['c', 1],
        ]),
      ),
    ).toEqual([1, 0, 0.5]);
    expect(lruScores(['a'], new Map([['a', 5]]))).toEqual([1]);
  });

  it('spreads cold requests over the endpoints, and leaves warm ones to the prefix scorer', async () => {
    const scheduler = testScheduler(
      profileConfig([
        { type: 'approx-prefix-cache-producer', parameters: { blockSizeChars: 8 }, inProfile: false },
        { type: 'prefix-cache-scorer', weight: 3 },
        { type: 'no-hit-lru-scorer', weight: 2 },
      ]),
    );
    const pool = [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];
    const cold: string[] = [];
    for (let i = 0; i < 6; i++)
      cold.push((await scheduler.schedule(request({ prompt: `${i}: a cold prefix `.repeat(3) }), pool)).targets[0]!.address);
    // Each cold request goes to the endpoint that took a cold request least recently: a rotation.
    expect(new Set(cold.slice(0, 3)).size).toBe(3);
    expect(cold.slice(3)).toEqual(cold.slice(0, 3));
    const warm = await scheduler.schedule(request({ prompt: '4: a cold prefix '.repeat(3) }), pool);
    expect(warm.targets[0]!.address).toBe(cold[4]);
    expect(warm.scores[cold[4]!]).toBe(3 + 1);
    expect(Object.values(warm.scores).filter((s) => s === 1)).toHaveLength(2);
  });
});
