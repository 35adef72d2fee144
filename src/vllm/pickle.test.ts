import { describe, it, expect } from '@jest/globals';
import { PickleWriter, pickleString, utf8Of } from './pickle.ts';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function pickleInt(value: number): string {
  const w = new PickleWriter();
  w.begin();
  w.int(value);
  return hex(w.finish());
}

// Expected bytes are CPython 3.11's pickle.dumps(value, protocol=5).
describe('pickle protocol 5 writer', () => {
  it.each([
    [0, '80054b002e'],
    [255, '80054bff2e'],
    [256, '80059504000000000000004d00012e'],
    [65535, '80059504000000000000004dffff2e'],
    [65536, '80059506000000000000004a000001002e'],
    [2147483647, '80059506000000000000004affffff7f2e'],
    [2147483648, '80059508000000000000008a0500000080002e'],
    [4294967296, '80059508000000000000008a0500000000012e'],
    [9007199254740991, '8005950a000000000000008a07ffffffffffff1f2e'],
    [-1, '80059506000000000000004affffffff2e'],
    [-13, '80059506000000000000004af3ffffff2e'],
    [-2147483648, '80059506000000000000004a000000802e'],
    [-2147483649, '80059508000000000000008a05ffffff7fff2e'],
    [-4294967296, '80059508000000000000008a0500000000ff2e'],
    [-9007199254740991, '8005950a000000000000008a07010000000000e02e'],
    [-128, '80059506000000000000004a80ffffff2e'],
  ])('pickles the int %d with the opcode CPython picks', (value, expected) => {
    expect(pickleInt(value)).toBe(expected);
  });

  it('writes a run of token ids like one int at a time', () => {
    const values = [0, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1];
    const run = new PickleWriter();
    run.begin();
    expect(run.uintRun(values, 0, values.length)).toBe(-1);
    const single = new PickleWriter();
    single.begin();
    for (const v of values) single.int(v);
    expect(hex(run.finish())).toBe(hex(single.finish()));
    expect(run.uintRun([1, -1], 0, 2)).toBe(1);
  });

  it('pickles strings short and long with MEMOIZE, in a frame', () => {
    expect(hex(pickleString('0'))).toBe('80059505000000000000008c0130942e');
    const w = new PickleWriter();
    w.begin();
    w.text(utf8Of('x'.repeat(300)));
    w.endTuple(1);
    expect(hex(w.finish()).slice(0, 40)).toBe('8005953501000000000000582c01000078787878');
  });

  it('refers back to a memoized object with BINGET', () => {
    // pickle.dumps((b"\x01" * 32, (5,), None), protocol=5)
    const w = new PickleWriter();
    w.begin();
    w.bytes(new Uint8Array(32).fill(1));
    w.beginTuple(1);
    w.int(5);
    w.endTuple(1);
    w.none();
    w.endTuple(3);
    expect(hex(w.finish())).toBe(
      '8005952b0000000000000043200101010101010101010101010101010101010101010101010101010101010101944b0585944e87942e',
    );
    const g = new PickleWriter();
    g.begin();
    const memo = g.text(utf8Of('mm'));
    g.get(memo);
    g.endTuple(2);
    expect(hex(g.finish())).toBe('8005950a000000000000008c026d6d94680086942e');
  });
});
