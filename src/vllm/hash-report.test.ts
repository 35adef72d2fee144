import { describe, it, expect } from '@jest/globals';
import { HashInputError, parseTokenIds, vllmHashReport } from './hash-report.ts';
import { vllmBlockHashes } from './block-hash.ts';

describe('parseTokenIds', () => {
  it('accepts a JSON array of non-negative integers, including an empty one', () => {
    expect(parseTokenIds(' [0, 1, 151645, 4294967296]\n')).toEqual([0, 1, 151645, 4294967296]);
    expect(parseTokenIds('[]')).toEqual([]);
  });

  it.each([
    ['', /empty/],
    ['[1,', /not valid JSON/],
    ['42', /JSON array .* got number/],
    ['null', /got null/],
    ['[1, 2.5]', /index 1 .* got 2.5/],
    ['[true]', /index 0 .* got true/],
    ['[1e300]', /index 0/],
    ['[18446744073709551615]', /2\^53-1/],
  ])('rejects %j with a message naming the problem', (text, message) => {
    expect(() => parseTokenIds(text)).toThrow(HashInputError);
    expect(() => parseTokenIds(text)).toThrow(message);
  });
});

describe('vllmHashReport', () => {
  it('lists hex digests and decimal engine keys, one per full block', () => {
    const tokens = Array.from({ length: 35 }, (_, i) => i);
    const report = vllmHashReport(tokens, { blockSize: 16, hashSeed: '0' });
    const digests = vllmBlockHashes(tokens, { blockSize: 16, hashSeed: '0' });
    expect(report.hashes).toEqual(digests.map((d) => Buffer.from(d).toString('hex')));
    expect(report.uint64).toEqual(digests.map((d) => BigInt('0x' + Buffer.from(d.subarray(24)).toString('hex')).toString()));
    expect(report.hashes).toHaveLength(2);
  });
});
