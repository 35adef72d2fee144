import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { encode } from '@msgpack/msgpack';
import { decodeEventBatch, KvEventDecodeError, type SkippedItems } from './decode.ts';
import type { EventBatch } from './types.ts';

interface FixtureCase {
  name: string;
  payload: string;
  expected: unknown;
  unknownFields: string[];
  unknownEventTypes: string[];
}

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/payloads.json', import.meta.url), 'utf8')) as { cases: FixtureCase[] };

/** The decoded batch as plain JSON: uint64 values as decimal strings, typed arrays as arrays. */
export function batchToJson(batch: EventBatch): unknown {
  return {
    ts: batch.ts,
    dpRank: batch.dpRank,
    events: batch.events.map((e) => {
      if (e.type === 'BlockStored') {
        return {
          type: e.type,
          blockHashes: Array.from(e.blockHashes, String),
          parentBlockHash: e.parentBlockHash === null ? null : String(e.parentBlockHash),
          tokenIds: Array.from(e.tokenIds),
          blockSize: e.blockSize,
          loraId: e.loraId,
          loraName: e.loraName,
          medium: e.medium,
          extraKeys: e.extraKeys,
          groupIdx: e.groupIdx,
          kvCacheSpecKind: e.kvCacheSpecKind,
        };
      }
      if (e.type === 'BlockRemoved')
        return { type: e.type, blockHashes: Array.from(e.blockHashes, String), medium: e.medium, groupIdx: e.groupIdx };
      return { type: e.type, medium: e.medium };
    }),
  };
}

function decodeError(payload: Uint8Array): KvEventDecodeError {
  try {
    decodeEventBatch(payload);
  } catch (err) {
    if (err instanceof KvEventDecodeError) return err;
    throw new Error(`expected a KvEventDecodeError, got ${String(err)}`);
  }
  throw new Error('expected the payload to be rejected');
}

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
/** Concatenates raw msgpack pieces: numbers are single header bytes, other values are msgpack-encoded. */
const raw = (...parts: unknown[]) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'number' && p >= 0x80 && p <= 0xff && Number.isInteger(p) ? [p] : [...encode(p)])));
const batchHead = [0x92, 1.5, 0x91];

describe('decodeEventBatch on msgspec-encoded payloads', () => {
  it.each(fixtures.cases.map((c) => [c.name, c] as const))('decodes %s', (_name, c) => {
    const skipped: SkippedItems = { unknownFields: [], unknownEventTypes: [] };
    const batch = decodeEventBatch(hex(c.payload), skipped);
    expect(batchToJson(batch)).toEqual(c.expected);
    expect(skipped.unknownFields).toEqual(c.unknownFields);
    expect(skipped.unknownEventTypes).toEqual(c.unknownEventTypes);
  });

  it('decodes a payload that sits inside a larger buffer at an offset', () => {
    const c = fixtures.cases[0]!;
    const inner = hex(c.payload);
    const outer = new Uint8Array(inner.length + 7);
    outer.set(inner, 3);
    expect(batchToJson(decodeEventBatch(outer.subarray(3, 3 + inner.length)))).toEqual(c.expected);
  });
});

describe('decodeEventBatch on malformed payloads', () => {
  const stored = {
    type: 'BlockStored',
    block_hashes: [1],
    parent_block_hash: null,
    token_ids: [1, 2],
    block_size: 2,
    lora_id: null,
    medium: 'GPU',
    lora_name: null,
  };
  const cases: Array<[string, Uint8Array, string, RegExp]> = [
    ['an empty payload', new Uint8Array(0), 'truncated', /batch: payload ends/],
    ['a string instead of a batch', encode('hello'), 'bad_batch', /expected an array or a map, got string/],
    ['a batch array with one element', encode([1.0]), 'bad_batch', /got 1 element/],
    ['a batch whose events are not an array', encode([1.0, 5]), 'bad_field', /events: expected an array, got integer/],
    ['a non-numeric ts', encode(['now', []]), 'bad_field', /ts: expected an integer, got string/],
    ['a negative dp rank', encode([1.0, [], -1]), 'bad_field', /data_parallel_rank: expected an integer >= 0, got -1/],
    ['a map batch without events', encode({ ts: 1.0 }), 'bad_batch', /no "events"/],
    ['an event that is a number', encode([1.0, [7]]), 'bad_event', /events\[0\]\.event: expected an array or a map, got integer/],
    ['an event map without a type', encode([1.0, [{ block_hashes: [1] }]]), 'bad_event', /events\[0\]\.event: map has no "type" tag/],
    ['an empty event array', encode([1.0, [[]]]), 'bad_event', /empty array/],
    ['a non-string tag', encode([1.0, [[5, [1]]]]), 'bad_event', /tag must be a string, got integer/],
    [
      'a BlockStored without token_ids',
      encode([1.0, [{ type: 'BlockStored', block_hashes: [1], parent_block_hash: null, block_size: 2 }]]),
      'bad_event',
      /required field token_ids is missing/,
    ],
    [
      'an array BlockStored with too few fields',
      encode([1.0, [['BlockStored', [1], null]]]),
      'bad_event',
      /events\[0\]\.BlockStored: required field token_ids is missing/,
    ],
    [
      'a hash that is a string',
      encode([1.0, [{ ...stored, block_hashes: ['abc'] }]]),
      'bad_field',
      /block_hashes: expected an integer or byte string hash, got string/,
    ],
    ['an empty byte-string hash', encode([1.0, [{ ...stored, block_hashes: [new Uint8Array(0)] }]]), 'bad_field', /empty byte string/],
    ['a negative token id', encode([1.0, [{ ...stored, token_ids: [1, -3] }]]), 'bad_field', /token_ids\[1\]: token id -3/],
    ['a token id beyond uint32', encode([1.0, [{ ...stored, token_ids: [2 ** 33] }]]), 'bad_field', /token_ids\[0\]: token id 8589934592/],
    ['a zero block size', encode([1.0, [{ ...stored, block_size: 0 }]]), 'bad_field', /block_size: expected a positive integer, got 0/],
    ['a numeric medium', encode([1.0, [{ ...stored, medium: 3 }]]), 'bad_field', /medium: expected a string or nil, got integer/],
    ['a negative group_idx', encode([1.0, [{ ...stored, group_idx: -1 }]]), 'bad_field', /group_idx: expected an integer >= 0/],
    [
      'extra_keys of the wrong length',
      encode([1.0, [{ ...stored, extra_keys: [null, null] }]]),
      'bad_field',
      /extra_keys: has 2 entries for 1 block hashes/,
    ],
    [
      'an extra_keys entry that is a string',
      encode([1.0, [{ ...stored, extra_keys: ['x'] }]]),
      'bad_field',
      /extra_keys\[0\]: expected an array \(tuple\) or nil, got string/,
    ],
    [
      'an event type given twice',
      raw(...batchHead, 0x82, 'type', 'AllBlocksCleared', 'type', 'AllBlocksCleared'),
      'bad_event',
      /"type" appears twice/,
    ],
    ['trailing bytes after the batch', Uint8Array.from([...encode([1.0, []]), 0xc0]), 'trailing_bytes', /1 unexpected byte/],
    [
      'the reserved byte 0xc1 in a skipped field',
      raw(...batchHead, 0x83, 'type', 'BlockRemoved', 'block_hashes', [10], 'foo', 0xc1),
      'invalid_msgpack',
      /0xc1 is not valid msgpack/,
    ],
    [
      'an array length larger than the payload',
      Uint8Array.from([...raw(0x92, 1.5), 0xdd, 0x7f, 0xff, 0xff, 0xff]),
      'truncated',
      /claims 2147483647 elements/,
    ],
  ];
  it.each(cases.map(([name, payload, reason, message]) => ({ name, payload, reason, message })))(
    'rejects $name as $reason with a message that says what was wrong',
    ({ payload, reason, message }) => {
      const err = decodeError(payload);
      expect(err.reason).toBe(reason);
      expect(err.message).toMatch(message);
    },
  );

  it('rejects every truncation of a valid payload without throwing anything but KvEventDecodeError', () => {
    const full = hex(fixtures.cases[0]!.payload);
    for (let n = 0; n < full.length; n++) expect(decodeError(full.subarray(0, n)).reason).toBe('truncated');
  });

  it('never throws anything but KvEventDecodeError on corrupted bytes', () => {
    const full = hex(fixtures.cases[1]!.payload);
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0);
    let rejected = 0;
    for (let round = 0; round < 2000; round++) {
      const copy = full.slice();
      for (let k = 0; k < 3; k++) copy[next() % copy.length] = next() & 0xff;
      try {
        decodeEventBatch(copy);
      } catch (err) {
        expect(err).toBeInstanceOf(KvEventDecodeError);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(0);
  });

  it('does not overflow the stack on deeply nested unknown fields', () => {
    const depth = 100_000;
    const nested = new Uint8Array(depth + 1).fill(0x91);
    nested[depth] = 0xc0;
    const prefix = raw(...batchHead, 0x82, 'type', 'AllBlocksCleared', 'x');
    const skipped: SkippedItems = { unknownFields: [], unknownEventTypes: [] };
    const batch = decodeEventBatch(Uint8Array.from([...prefix, ...nested]), skipped);
    expect(batch.events).toEqual([{ type: 'AllBlocksCleared', medium: null }]);
    expect(skipped.unknownFields).toEqual(['x']);
  });
});

describe('decodeEventBatch on golden payloads encoded by vLLM 0.33 and SGLang code (testdata/kv-events.json)', () => {
  interface GoldenBatch {
    name: string;
    encoding: string;
    payloadHex: string;
    expected: unknown;
  }
  const golden = JSON.parse(readFileSync(new URL('./testdata/kv-events.json', import.meta.url), 'utf8')) as { batches: GoldenBatch[] };

  it.each(golden.batches.map((b) => [`${b.encoding}: ${b.name}`, b] as const))('decodes %s exactly', (_name, b) => {
    expect(batchToJson(decodeEventBatch(hex(b.payloadHex)))).toEqual(b.expected);
  });

  it('covers every wire encoding kvroute claims to read', () => {
    expect(new Set(golden.batches.map((b) => b.encoding))).toEqual(
      new Set(['vllm-0.33', 'vllm-array-0.23', 'vllm-array-0.10', 'vllm-map-batch', 'sglang']),
    );
  });
});
