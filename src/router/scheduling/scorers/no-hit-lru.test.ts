import { describe, expect, it } from '@jest/globals';
import { endpoint, profileConfig, request, testScheduler } from '../test-helpers.ts';
import { isWarm, lruScores } from './no-hit-lru.ts';

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

  it('counts a request warm when some endpoint holds a block (llm-d), or at least warmMatchFraction of its blocks', () => {
    expect(isWarm([1, 6], 27, 0)).toBe(true);
    expect(isWarm([0, 0], 27, 0)).toBe(false);
    expect(isWarm([], 0, 0)).toBe(false);
    // 6 of 27 is under a quarter, 7 of 27 is not.
    expect(isWarm([1, 6], 27, 0.25)).toBe(false);
    expect(isWarm([7], 27, 0.25)).toBe(true);
  });

  it('treats a preamble every prompt shares as a new prefix under warmMatchFraction, and rotates those requests', async () => {
    const pool = [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];
    const picks = async (warmMatchFraction: number) => {
      const scheduler = testScheduler(
        profileConfig([
          { type: 'approx-prefix-cache-producer', parameters: { blockSizeChars: 8 }, inProfile: false },
          { type: 'prefix-cache-scorer', weight: 3 },
          { type: 'no-hit-lru-scorer', parameters: { warmMatchFraction }, weight: 2 },
        ]),
      );
      const out: string[] = [];
      // 8 shared characters (one block) then 64 of the request's own.
      for (let i = 0; i < 6; i++)
        out.push((await scheduler.schedule(request({ prompt: `preamble${String(i).repeat(64)}` }), pool)).targets[0]!.address);
      scheduler.close();
      return out;
    };
    // Any hit is warm: after the first request the preamble's pod wins every time.
    expect(new Set((await picks(0)).slice(1)).size).toBe(1);
    const rotated = await picks(0.25);
    expect(new Set(rotated.slice(0, 3)).size).toBe(3);
    expect(rotated.slice(3)).toEqual(rotated.slice(0, 3));
  });
});
