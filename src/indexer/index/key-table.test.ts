import { describe, it, expect } from '@jest/globals';
import { KeyTable } from './key-table.ts';

/** A seeded generator, so a failure replays. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

describe('KeyTable', () => {
  it('agrees with a Map through random inserts and removals, across growth and probe-chain deletions', () => {
    const next = rng(42);
    const table = new KeyTable(1 << 20, 4);
    const model = new Map<string, number>();
    const live: Array<[number, number]> = [];
    for (let op = 0; op < 30_000; op++) {
      if (live.length === 0 || next() % 3 !== 0) {
        // Few distinct hi values and small lo values make colliding home slots common.
        const lo = next() % 5000;
        const hi = next() % 3;
        const k = `${lo}:${hi}`;
        if (model.has(k)) continue;
        model.set(k, table.insert(lo, hi));
        live.push([lo, hi]);
      } else {
        const [lo, hi] = live.splice(next() % live.length, 1)[0]!;
        const k = `${lo}:${hi}`;
        table.remove(model.get(k)!);
        model.delete(k);
      }
      if (op % 1000 === 0) {
        for (const [lo, hi] of live) expect(table.find(lo, hi)).toBe(model.get(`${lo}:${hi}`));
        expect(table.find(999_999, 7)).toBe(-1);
      }
    }
    expect(table.size).toBe(model.size);
    for (const [lo, hi] of live) expect(table.find(lo, hi)).toBe(model.get(`${lo}:${hi}`));
  });

  it('reuses freed record ids before growing', () => {
    const table = new KeyTable(8, 4);
    const ids = [1, 2, 3, 4].map((k) => table.insert(k, 0));
    table.remove(ids[1]!);
    expect(table.insert(99, 0)).toBe(ids[1]);
    expect(table.find(2, 0)).toBe(-1);
    expect(table.find(99, 0)).toBe(ids[1]);
  });
});
