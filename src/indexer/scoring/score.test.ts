import { describe, it, expect } from '@jest/globals';
import { ScoreScratch, scoreLongestPrefix, type BlockHolderLookup } from './score.ts';

/** A lookup over a literal table: block number (key lo) -> [source, weight][]. */
function table(blocks: Array<Array<[number, number]>>): { lookup: BlockHolderLookup; calls: () => number } {
  let calls = 0;
  const lookup: BlockHolderLookup = (lo, _hi, sources, weights) => {
    calls++;
    const holders = blocks[lo] ?? [];
    holders.forEach(([s, w], i) => {
      sources[i] = s;
      weights[i] = w;
    });
    return holders.length;
  };
  return { lookup, calls: () => calls };
}

function keysFor(n: number): Uint32Array {
  const keys = new Uint32Array(n * 2);
  for (let i = 0; i < n; i++) keys[2 * i] = i;
  return keys;
}

function scored(r: ReturnType<typeof scoreLongestPrefix>): Record<number, number> {
  return Object.fromEntries(r.sources.map((s) => [s, Math.round(r.scores[s]! * 1000) / 1000]));
}

describe('scoreLongestPrefix', () => {
  it('counts consecutive blocks from block 0 and stops each source at its first missing block', () => {
    const t = table([
      [
        [0, 1],
        [1, 1],
      ],
      [[0, 1]],
      [
        [0, 1],
        [1, 1],
      ],
    ]);
    expect(scored(scoreLongestPrefix(keysFor(3), 3, t.lookup, 4, 8))).toEqual({ 0: 3, 1: 1 });
  });

  it('gives nothing to a source that lacks block 0 even if it holds later blocks', () => {
    const t = table([
      [[0, 1]],
      [
        [0, 1],
        [2, 1],
      ],
      [
        [0, 1],
        [2, 1],
      ],
    ]);
    expect(scored(scoreLongestPrefix(keysFor(3), 3, t.lookup, 4, 8))).toEqual({ 0: 3 });
  });

  it('weights each block by the best tier the source holds it in', () => {
    const t = table([
      [
        [0, 0.8],
        [0, 1],
      ],
      [[0, 0.8]],
      [
        [0, 0.5],
        [0, 0.8],
      ],
    ]);
    expect(scored(scoreLongestPrefix(keysFor(3), 3, t.lookup, 2, 8))).toEqual({ 0: 2.6 });
  });

  it('leaves out sources that are not allowed', () => {
    const t = table([
      [
        [0, 1],
        [1, 1],
      ],
      [
        [0, 1],
        [1, 1],
      ],
    ]);
    const allowed = Uint8Array.of(0, 1);
    expect(scored(scoreLongestPrefix(keysFor(2), 2, t.lookup, 2, 8, allowed))).toEqual({ 1: 2 });
  });

  it('stops looking up blocks once no candidate remains', () => {
    const blocks: Array<Array<[number, number]>> = [[[0, 1]], [[0, 1]], [], [[0, 1]], [[0, 1]]];
    const t = table(blocks);
    scoreLongestPrefix(keysFor(5), 5, t.lookup, 1, 8);
    expect(t.calls()).toBe(3);
    const none = table([[], [[0, 1]]]);
    expect(scoreLongestPrefix(keysFor(2), 2, none.lookup, 1, 8).sources).toEqual([]);
    expect(none.calls()).toBe(1);
  });

  it('returns nothing for a prompt shorter than one block', () => {
    const t = table([[[0, 1]]]);
    expect(scoreLongestPrefix(keysFor(0), 0, t.lookup, 1, 8).sources).toEqual([]);
    expect(t.calls()).toBe(0);
  });

  it('gives the same scores when one scratch is reused across calls of different shapes', () => {
    const scratch = new ScoreScratch();
    const long = table([
      [
        [0, 1],
        [1, 0.8],
      ],
      [
        [0, 1],
        [1, 0.8],
      ],
      [[0, 1]],
    ]);
    expect(scored(scoreLongestPrefix(keysFor(3), 3, long.lookup, 2, 4, undefined, scratch))).toEqual({ 0: 3, 1: 1.6 });
    // Stale marks of the previous call must not extend a run: source 1 lacks block 1 here.
    const short = table([
      [
        [1, 1],
        [0, 1],
      ],
      [[0, 1]],
      [
        [0, 1],
        [1, 1],
      ],
    ]);
    expect(scored(scoreLongestPrefix(keysFor(3), 3, short.lookup, 2, 4, undefined, scratch))).toEqual({ 0: 3, 1: 1 });
    const more = table([[[5, 1]], [[5, 1]]]);
    expect(scored(scoreLongestPrefix(keysFor(2), 2, more.lookup, 6, 4, undefined, scratch))).toEqual({ 5: 2 });
    expect(scored(scoreLongestPrefix(keysFor(3), 3, long.lookup, 2, 4, undefined, scratch))).toEqual({ 0: 3, 1: 1.6 });
  });
});
