import { describe, expect, it } from '@jest/globals';
import v8 from 'node:v8';
import vm from 'node:vm';
import { detachedString } from './detached-string.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Heap growth, after collection, from keeping what `keep` returns for each of `count` distinct 1 MB strings. */
function retainedBytes(count: number, keep: (big: string) => string): number {
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept: string[] = [];
  for (let i = 0; i < count; i++) {
    const big = `${i} `.padEnd(1_000_000, 'abcdefgh ');
    kept.push(keep(big));
  }
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  expect(kept).toHaveLength(count);
  return grown;
}

describe('detachedString', () => {
  it('is equal to its input, short, long or empty', () => {
    for (const s of ['', 'a', 'twelve chars', 'thirteen char', 'x'.repeat(100_000), 'Ünïcödé 🙂 你好']) expect(detachedString(s)).toBe(s);
  });

  it('keeps nothing of the string a piece was cut from alive', () => {
    // 40 pieces of 100 characters cut from 40 distinct 1 MB strings: as views (plain slices) they would
    // keep the 40 MB alive; detached, only their own few kilobytes.
    expect(retainedBytes(40, (big) => detachedString(big.slice(500, 600)))).toBeLessThan(4_000_000);
  });
});
