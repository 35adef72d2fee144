import { describe, it, expect } from '@jest/globals';
import { CborWriter, encodeCbor } from './cbor.ts';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

// Expected bytes are RFC 8949 Appendix A examples and the shortest-head rules of §4.2.1.
describe('canonical CBOR writer', () => {
  it.each([
    [0, '00'],
    [23, '17'],
    [24, '1818'],
    [255, '18ff'],
    [256, '190100'],
    [65535, '19ffff'],
    [65536, '1a00010000'],
    [4294967295, '1affffffff'],
    [4294967296, '1b0000000100000000'],
    [2 ** 53 - 1, '1b001fffffffffffff'],
    [-1, '20'],
    [-24, '37'],
    [-25, '3818'],
    [-256, '38ff'],
    [-257, '390100'],
    [-(2 ** 32) - 1, '3b0000000100000000'],
  ])('encodes the integer %d with its shortest head', (value, expected) => {
    expect(hex(encodeCbor(value))).toBe(expected);
  });

  it('encodes text as UTF-8 with its byte length, byte strings, arrays and null', () => {
    expect(hex(encodeCbor('a'))).toBe('6161');
    expect(hex(encodeCbor('\u00fc'))).toBe('62c3bc');
    expect(hex(encodeCbor('\u6c34'))).toBe('63e6b0b4');
    expect(hex(encodeCbor(''))).toBe('60');
    expect(hex(encodeCbor(Uint8Array.of(1, 2, 3, 4)))).toBe('4401020304');
    expect(hex(encodeCbor([1, [2, 3], [4, 5]]))).toBe('8301820203820405');
    expect(hex(encodeCbor(null))).toBe('f6');
    expect(hex(encodeCbor(Array.from({ length: 25 }, (_, i) => i + 1)))).toBe('98190102030405060708090a0b0c0d0e0f101112131415161718181819');
  });

  it('writes a run of unsigned integers identically to one-by-one writes', () => {
    const values = [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 7];
    const run = new CborWriter(4);
    expect(run.uintRun(values, 0, values.length)).toBe(-1);
    const single = new CborWriter(4);
    for (const v of values) single.uint(v);
    expect(hex(run.view())).toBe(hex(single.view()));
  });

  it('reports the first value of a run that is not a non-negative safe integer', () => {
    const writer = new CborWriter();
    expect(writer.uintRun([1, 2, 3, -1, 5], 1, 4)).toBe(2);
    expect(writer.uintRun([1, NaN], 0, 2)).toBe(1);
    expect(writer.uintRun([2 ** 53], 0, 1)).toBe(0);
    expect(() => writer.int(1.5)).toThrow(/safe integer/);
  });

  it('keeps a retained prefix across resets and grows past its initial capacity', () => {
    const writer = new CborWriter(2);
    writer.raw(Uint8Array.of(0x83));
    writer.reset(1);
    writer.text('x'.repeat(300));
    expect(writer.length).toBe(1 + 3 + 300);
    expect(hex(writer.view().subarray(0, 4))).toBe('8379012c');
  });
});
