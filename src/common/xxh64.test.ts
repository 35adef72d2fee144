import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { xxh64Hex, xxh64Into } from './xxh64.ts';

const seedHalves = (seed: bigint): [number, number] => [Number(seed >> 32n), Number(seed & 0xffffffffn)];

describe('xxh64', () => {
  it('matches the published XXH64 test vectors', () => {
    expect(xxh64Hex('')).toBe('ef46db3751d8e999');
    expect(xxh64Hex('a')).toBe('d24ec4f1a98c6e5b');
    expect(xxh64Hex('abc')).toBe('44bc2cf5ad770999');
    // python-xxhash's README examples.
    expect(xxh64Hex('Nobody inspects the spammish repetition')).toBe('fbcea83c8a378bf1');
    expect(xxh64Hex('xxhash', ...seedHalves(20141025n))).toBe('b559b98d844e0635');
  });

  // From python-xxhash (the C reference), seeds 0, 1, a random one and 2^64 - 1; the lengths cover
  // the tail paths (byte, 4-byte, 8-byte) and the 32-byte stripe loop.
  const vectors: Array<[string, bigint, string]> = [
    ['69dd206e18', 0n, '9ce1d261e8fa6628'],
    ['69dd206e18', 1n, '17505e06c68872f5'],
    ['69dd206e18', 625878096252837266n, '373239a983f8483e'],
    ['69dd206e18', 18446744073709551615n, '4b7021acdc77957e'],
    ['e376802ccd3076fbbad57ddfe42dfcf60bf080d67aa63d765f39023bc76366', 5155366069699196756n, 'a6f1c6f07e895593'],
    ['12d97cbef5c0848a003a9c5ec04f5fd5487217d96b9c14637fefa8b12c57d9e5', 0n, '56e7e822de60401a'],
    ['12d97cbef5c0848a003a9c5ec04f5fd5487217d96b9c14637fefa8b12c57d9e5', 18446744073709551615n, '8763a06f84be0ef0'],
    ['90286614af26e839d9398486ea0eb27dd49b04596cc59841f14e198ec8835b293b', 4395440396258121310n, '2f69e553f1f9bc98'],
    [
      'c8bab17c559fbd316fb8cc8dba9c81bc34087af31e94d70a219866fcadd49b0c8a6a16d64f299ecc7d6ac60722517a76e3b1823a33528234e7f1e6950e4cc515aa09b5344cba7a',
      7207642865522751856n,
      '5c17aeb7cca318f5',
    ],
    [
      'fa1a47f04c9706ec89d1325bbde71e935703d912e4ed5e1890c1093824fa4cfb56f758d258ff7057e5ea0ef7358ff28a8ed40ebec2d6f1e059c5912c0c2fdbdce3f66f9f4d2539a9ce230953b8d9459600170af210411bec87c886a17c273f4cc7b040e0',
      1104673881659082852n,
      'eacb71792b928447',
    ],
  ];
  it.each(vectors.map(([hex, seed, want]) => [hex.length / 2, seed, hex, want] as const))(
    'hashes %i bytes with seed %s like the C reference',
    (_length, seed, hex, want) => {
      expect(xxh64Hex(Buffer.from(hex, 'hex'), ...seedHalves(seed))).toBe(want);
    },
  );

  it('hashes a slice of a larger buffer exactly as the slice alone', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(50), fc.nat(50), fc.nat(), fc.nat(), (bytes, pre, post, hi, lo) => {
        const framed = new Uint8Array(pre + bytes.length + post).fill(0xab);
        framed.set(bytes, pre);
        const out = new Uint32Array(4);
        xxh64Into(framed, pre, bytes.length, hi, lo, out, 2);
        expect(out[0]! * 2 ** 32 + out[1]!).toBe(0);
        expect(out[2]!.toString(16).padStart(8, '0') + out[3]!.toString(16).padStart(8, '0')).toBe(xxh64Hex(bytes, hi, lo));
      }),
    );
  });
});
