import { describe, expect, it } from '@jest/globals';
import { encode } from '@msgpack/msgpack';
import { ByteLookup, KvEventDecodeError, MsgpackReader } from './msgpack-reader.ts';

const reader = (value: unknown) => new MsgpackReader(encode(value, { useBigInt64: true }));
const failure = (read: () => unknown): KvEventDecodeError => {
  try {
    read();
  } catch (err) {
    if (err instanceof KvEventDecodeError) return err;
    throw err;
  }
  throw new Error('expected the read to fail');
};

describe('MsgpackReader', () => {
  it('reads block hashes of every integer width and byte strings into uint64 values, as vLLM converts them', () => {
    const r = reader([0, 127, 255, 65_535, 2 ** 32 - 1, 2n ** 64n - 1n, -1, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9])]);
    expect(Array.from(r.hashes('block_hashes'), String)).toEqual([
      '0',
      '127',
      '255',
      '65535',
      '4294967295',
      '18446744073709551615',
      '18446744073709551615',
      String(0x0203040506070809n),
    ]);
    expect(r.pos).toBe(r.end);
  });

  it('reads token ids into a Uint32Array and rejects one outside 0..2^32-1, naming its index', () => {
    expect(Array.from(reader([1, 300, 70_000, 4_000_000_000]).tokenIds('token_ids'))).toEqual([1, 300, 70_000, 4_000_000_000]);
    const err = failure(() => reader([1, -2]).tokenIds('token_ids'));
    expect([err.reason, err.message]).toEqual(['bad_field', 'token_ids[1]: token id -2 is outside 0..2^32-1']);
  });

  it('refuses an integer a JS number cannot hold exactly, and a value of the wrong type, naming the field', () => {
    expect(failure(() => reader(2n ** 60n).integer('block_size')).message).toBe(`block_size: integer ${2n ** 60n} is out of range`);
    expect(failure(() => reader('16').integer('block_size')).message).toBe('block_size: expected an integer, got string');
  });

  it('skips nested values of any type without recursion and stops exactly after them', () => {
    // Ten thousand one-element arrays around a 1 (0x91 is fixarray(1)): deeper than any stack-based reader survives.
    const deep = [
      0x82,
      ...encode('a'),
      ...encode([1.5, 'x', null, true, Uint8Array.of(1)]),
      ...encode('b'),
      ...new Array(10_000).fill(0x91),
      0x01,
    ];
    const bytes = Uint8Array.from([...deep, ...encode(7)]);
    const r = new MsgpackReader(bytes);
    r.skip('value');
    expect(r.integer('next')).toBe(7);
  });

  it('returns the shared constant for a known string and reads an unknown one', () => {
    const known = ['GPU', 'CPU'];
    const lookup = new ByteLookup({ GPU: 0, CPU: 1 });
    const r = new MsgpackReader(Uint8Array.from([...encode('CPU'), ...encode('NVME'), ...encode(null)]));
    expect(r.optionalKnownString('medium', lookup, known)).toBe('CPU');
    expect(r.optionalKnownString('medium', lookup, known)).toBe('NVME');
    expect(r.optionalKnownString('medium', lookup, known)).toBeNull();
  });

  it('reports a payload that ends mid-value as truncated', () => {
    const bytes = encode([1, 2, 3]).subarray(0, 2);
    const r = new MsgpackReader(bytes);
    expect(r.expectArray('events')).toBe(3);
    r.integer('events[0]');
    expect(failure(() => r.integer('events[1]')).reason).toBe('truncated');
  });
});
