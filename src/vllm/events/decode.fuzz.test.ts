// Fuzzes the KV-event decoder with hostile msgpack: random bytes, valid batches truncated, corrupted
// or spliced with length headers that claim far more than the buffer holds, and well-formed msgpack of
// the wrong shape (2^64 and negative hashes, bigints, NaN, ext types, unknown tags, deep nesting).
// The contract: a KvEventDecodeError naming the problem, or a batch; never another exception, and
// never memory in proportion to a declared but absent length. Recorded inputs: testdata/fuzz/.

import { describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { encode, ExtData } from '@msgpack/msgpack';
import { fuzzParams, fuzzTimeout, readCorpus } from '../../../test/support/fuzz.ts';
import { decodeEventBatch, KvEventDecodeError } from './decode.ts';
import type { DecodeFailureReason } from './msgpack-reader.ts';
import type { EventBatch } from './types.ts';

const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata', 'fuzz');
const REASONS: DecodeFailureReason[] = [
  'truncated',
  'invalid_msgpack',
  'bad_batch',
  'bad_event',
  'bad_field',
  'trailing_bytes',
  'too_many_events',
];

type Outcome = { ok: true; batch: EventBatch } | { ok: false; reason: DecodeFailureReason; message: string };

/** Decodes, failing the property on anything but a batch or a KvEventDecodeError with a message. */
function outcome(payload: Uint8Array, maxEvents?: number): Outcome {
  try {
    return { ok: true, batch: decodeEventBatch(payload, { unknownFields: [], unknownEventTypes: [] }, maxEvents) };
  } catch (err) {
    if (!(err instanceof KvEventDecodeError)) throw new Error(`decoder threw ${String(err)} for ${Buffer.from(payload).toString('hex')}`);
    expect(REASONS).toContain(err.reason);
    expect(err.message.length).toBeGreaterThan(0);
    return { ok: false, reason: err.reason, message: err.message };
  }
}

/** Typed arrays a decoded batch holds are views of at most a few arena chunks sized by the payload. */
function decodedBytes(batch: EventBatch): number {
  let bytes = 0;
  for (const e of batch.events) {
    if (e.type !== 'AllBlocksCleared') bytes += e.blockHashes.byteLength;
    if (e.type === 'BlockStored') bytes += e.tokenIds.byteLength;
  }
  return bytes;
}

function check(payload: Uint8Array, maxEvents?: number): Outcome {
  const out = outcome(payload, maxEvents);
  // Each hash or token id takes at least one payload byte and at most 8 decoded bytes.
  if (out.ok) expect(decodedBytes(out.batch)).toBeLessThanOrEqual(8 * payload.byteLength);
  return out;
}

// ---- arbitraries ---------------------------------------------------------------------------------

const U64_MAX = 2n ** 64n - 1n;
const I64_MIN = -(2n ** 63n);

/** Any msgpack value @msgpack/msgpack can encode, bigints over the full int64/uint64 range included. */
const anyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 2 ** 53, Number.NaN, Infinity, -Infinity, -0, U64_MAX, I64_MIN, 2n ** 63n),
    fc.integer(),
    fc.bigInt({ min: I64_MIN, max: U64_MAX }),
    fc.double(),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.constantFrom('BlockStored', 'BlockRemoved', 'AllBlocksCleared', 'GPU', 'CPU', 'type', 'block_hashes'),
    fc.uint8Array({ maxLength: 24 }),
    fc.tuple(fc.integer({ min: -128, max: 127 }), fc.uint8Array({ maxLength: 20 })).map(([t, d]) => new ExtData(t, d)),
    fc.array(tie('value'), { maxLength: 6 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('value'), { maxKeys: 6 }),
  ),
})).value;

const hash = fc.oneof(fc.bigInt({ min: I64_MIN, max: U64_MAX }), fc.uint8Array({ minLength: 0, maxLength: 40 }), anyValue);

/** A field's value: usually the right type, sometimes anything at all. */
const field = <T>(right: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: right }, { weight: 1, arbitrary: anyValue });

const eventMap = fc.record(
  {
    type: field(fc.constantFrom('BlockStored', 'BlockRemoved', 'AllBlocksCleared', 'BlockPinned', '')),
    block_hashes: field(fc.array(hash, { maxLength: 8 })),
    parent_block_hash: field(fc.option(hash)),
    token_ids: field(fc.array(fc.oneof(fc.nat(), fc.integer(), fc.bigInt({ min: I64_MIN, max: U64_MAX })), { maxLength: 40 })),
    block_size: field(fc.oneof(fc.constantFrom(1, 2, 4, 16), fc.integer())),
    lora_id: field(fc.option(fc.integer())),
    medium: field(fc.option(fc.constantFrom('GPU', 'CPU', 'DISK', 'TAPE'))),
    lora_name: field(fc.option(fc.string())),
    extra_keys: field(fc.option(fc.array(fc.option(fc.array(anyValue, { maxLength: 3 })), { maxLength: 8 }))),
    group_idx: field(fc.option(fc.integer())),
    kv_cache_spec_kind: field(fc.option(fc.string())),
    future_field: anyValue,
  },
  { requiredKeys: [] },
);

/** The array form: a tag and positional fields, as older vLLM and SGLang send. */
const eventArray = fc.tuple(
  field(fc.constantFrom('BlockStored', 'BlockRemoved', 'AllBlocksCleared', 'X')),
  fc.array(anyValue, { maxLength: 16 }),
);

const event = fc.oneof(
  eventMap,
  eventArray.map(([tag, rest]) => [tag, ...rest]),
  anyValue,
);

const batchValue = fc.oneof(
  fc.tuple(field(fc.double()), field(fc.array(event, { maxLength: 6 })), field(fc.option(fc.nat()))),
  fc.tuple(field(fc.double()), field(fc.array(event, { maxLength: 6 }))),
  fc.record(
    { ts: field(fc.double()), events: field(fc.array(event, { maxLength: 6 })), data_parallel_rank: anyValue },
    { requiredKeys: [] },
  ),
  anyValue,
);

const encodeValue = (v: unknown) => encode(v, { useBigInt64: true });

/** A well-formed BlockStored batch, the base the mutations start from. */
const validBatch = fc
  .tuple(fc.array(fc.bigInt({ min: 0n, max: U64_MAX }), { minLength: 1, maxLength: 6 }), fc.constantFrom(1, 4, 16))
  .map(([hashes, bs]) =>
    encodeValue([
      1.5,
      [
        {
          type: 'BlockStored',
          block_hashes: hashes,
          parent_block_hash: null,
          token_ids: Array.from({ length: hashes.length * bs }, (_, i) => i * 977),
          block_size: bs,
          lora_id: null,
          medium: 'GPU',
          lora_name: null,
          extra_keys: hashes.map(() => ['salt']),
        },
        { type: 'BlockRemoved', block_hashes: [hashes[0]!] },
      ],
      0,
    ]),
  );

/** msgpack headers that announce a large value: 2^32-1 elements, bytes or pairs, which no payload here holds. */
const HUGE_HEADERS = [
  [0xdd, 0xff, 0xff, 0xff, 0xff],
  [0xdf, 0xff, 0xff, 0xff, 0xff],
  [0xdb, 0xff, 0xff, 0xff, 0xff],
  [0xc6, 0xff, 0xff, 0xff, 0xff],
  [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
  [0xdc, 0xff, 0xff],
  [0xde, 0xff, 0xff],
  [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
  [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],
  [0xc1],
];

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; byte: number }
  | { kind: 'splice'; at: number; header: number[]; replace: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), header: fc.constantFrom(...HUGE_HEADERS), replace: fc.nat({ max: 5 }) }),
);

function mutate(payload: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = [...payload];
  for (const m of mutations) {
    if (bytes.length === 0) break;
    const at = m.at % bytes.length;
    if (m.kind === 'truncate') bytes = bytes.slice(0, at);
    else if (m.kind === 'flip') bytes[at] = m.byte;
    else bytes.splice(at, m.replace, ...m.header);
  }
  return Uint8Array.from(bytes);
}

// ---- properties ----------------------------------------------------------------------------------

describe('decodeEventBatch under hostile input (fast-check, fixed seed)', () => {
  it(
    'rejects random bytes with a KvEventDecodeError or decodes them, nothing else',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => void check(bytes)),
        fuzzParams(3000),
      );
    },
    fuzzTimeout(3000, 30_000),
  );

  it(
    'survives valid batches truncated, corrupted and spliced with lengths beyond the buffer',
    () => {
      fc.assert(
        fc.property(
          validBatch,
          fc.array(mutation, { minLength: 1, maxLength: 4 }),
          (payload, mutations) => void check(mutate(payload, mutations)),
        ),
        fuzzParams(3000),
      );
    },
    fuzzTimeout(3000, 30_000),
  );

  it(
    'answers well-formed msgpack of the wrong shape (bigints, NaN, ext types, unknown tags) with a reason',
    () => {
      fc.assert(
        fc.property(batchValue, (value) => {
          const out = check(encodeValue(value));
          if (!out.ok) return;
          for (const e of out.batch.events) {
            // What the decoder lets through is what the index may rely on.
            expect(['BlockStored', 'BlockRemoved', 'AllBlocksCleared']).toContain(e.type);
            if (e.type === 'BlockStored') {
              expect(Number.isSafeInteger(e.blockSize) && e.blockSize > 0).toBe(true);
              if (e.extraKeys) expect(e.extraKeys.length).toBe(e.blockHashes.length);
            }
          }
        }),
        fuzzParams(2000),
      );
    },
    fuzzTimeout(2000, 30_000),
  );

  it(
    'never decodes more events than the batch limit allows',
    () => {
      fc.assert(
        fc.property(fc.array(eventMap, { maxLength: 12 }), fc.nat({ max: 8 }), (events, maxEvents) => {
          const out = check(encodeValue([0, events]), maxEvents);
          if (events.length > maxEvents) expect(out).toMatchObject({ ok: false, reason: 'too_many_events' });
          if (out.ok) expect(out.batch.events.length).toBeLessThanOrEqual(maxEvents);
        }),
        fuzzParams(1000),
      );
    },
    fuzzTimeout(1000, 30_000),
  );

  it('fails fast on a 64 KiB payload that declares 2^32 elements everywhere, allocating nothing in proportion', () => {
    const before = process.memoryUsage().arrayBuffers;
    for (const header of HUGE_HEADERS) {
      const payload = Uint8Array.from([
        0x93,
        0xcb,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0x91,
        0x82,
        0xa4,
        ...Buffer.from('type'),
        0xab,
        ...Buffer.from('BlockStored'),
        0xac,
        ...Buffer.from('block_hashes'),
        ...header,
        ...new Uint8Array(65_536),
      ]);
      const out = check(payload);
      expect(out.ok).toBe(false);
    }
    // A 4 GiB claim taken at its word would show up here; the arena is bounded by the payload size.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('skips an unknown field nested a million arrays deep without overflowing the stack', () => {
    const depth = 1_000_000;
    const nested = new Uint8Array(depth + 1).fill(0x91);
    nested[depth] = 0xc0;
    const head = encodeValue({ type: 'AllBlocksCleared', medium: null });
    // The event map gains one pair: "deep" -> [[[...nil...]]].
    const event = Uint8Array.from([0x83, ...head.subarray(1), 0xa4, ...Buffer.from('deep'), ...nested]);
    const out = check(Uint8Array.from([0x92, 0x00, 0x91, ...event]));
    expect(out).toMatchObject({ ok: true });
  });

  it('rejects extra_keys nested deeper than the decoder keeps, naming the depth', () => {
    const nested = new Uint8Array(64).fill(0x91);
    const stored = encodeValue({ type: 'BlockStored', block_hashes: [1], parent_block_hash: null, token_ids: [1], block_size: 1 });
    const event = Uint8Array.from([0x86, ...stored.subarray(1), 0xaa, ...Buffer.from('extra_keys'), 0x91, ...nested, 0xc0]);
    const out = check(Uint8Array.from([0x92, 0x00, 0x91, ...event]));
    expect(out).toMatchObject({ ok: false, reason: 'bad_field' });
    expect(!out.ok && out.message).toMatch(/nested deeper than/);
  });
});

// ---- recorded corpus ------------------------------------------------------------------------------

interface DecodeCorpusCase {
  /** What the input is and why it is kept. */
  about: string;
  hex: string;
  /** The reason it is rejected with, or "ok" and how many events it decodes to. */
  expect: { reason: DecodeFailureReason } | { ok: true; events: number };
  /** The batch limit to decode under (default none). */
  maxEvents?: number;
}

describe('decodeEventBatch recorded corpus (testdata/fuzz)', () => {
  const corpus = readCorpus<DecodeCorpusCase>(CORPUS);
  it('has recorded inputs', () => expect(corpus.length).toBeGreaterThan(0));
  for (const { file, value } of corpus) {
    it(`${file}: ${value.about}`, () => {
      const out = check(Uint8Array.from(Buffer.from(value.hex, 'hex')), value.maxEvents);
      if ('reason' in value.expect) expect(out).toMatchObject({ ok: false, reason: value.expect.reason });
      else expect(out.ok && out.batch.events.length).toBe(value.expect.events);
    });
  }
});
