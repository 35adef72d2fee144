// Fuzzes the router's hand-written ext_proc request decoder with hostile protobuf: random bytes,
// valid ProcessingRequests (encoded by proto-loader, the reference) truncated, corrupted or spliced
// with lengths and varints that run past the message, and Struct metadata nested deep. The contract:
// a ProcessingRequest, or an Error saying "invalid ProcessingRequest: ..." (grpc-js then ends the call
// with a status); never a TypeError or RangeError from inside the decoder.

import { describe, expect, it } from '@jest/globals';
import type * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { fuzzParams, fuzzTimeout } from '../../test/support/fuzz.ts';
import { decodeProcessingRequest } from './ext-proc-codec.ts';
import { ExternalProcessorService, toStruct, type ProcessingRequest, type ProcessingResponse } from './ext-proc.ts';

const reference = ExternalProcessorService['Process'] as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>;

function decode(bytes: Uint8Array): ProcessingRequest | Error {
  try {
    return decodeProcessingRequest(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    if (!(err instanceof Error) || !/^invalid ProcessingRequest: /.test(err.message))
      throw new Error(`decoder threw ${String(err)} for ${Buffer.from(bytes).toString('hex').slice(0, 200)}`);
    return err;
  }
}

const text = fc.string({ maxLength: 12 });
const request: fc.Arbitrary<ProcessingRequest> = fc.oneof(
  fc.record({ key: text, value: text, eos: fc.boolean() }).map(({ key, value, eos }) => ({
    request_headers: { headers: { headers: [{ key, raw_value: Buffer.from(value) }] }, end_of_stream: eos },
    protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED' as const, response_body_mode: 'BUFFERED' as const },
    metadata_context: {
      filter_metadata: { 'envoy.lb.subset_hint': toStruct({ 'x-gateway-destination-endpoint-subset': [value, 1, true, null] }) },
    },
  })),
  fc
    .record({ body: fc.uint8Array({ maxLength: 40 }), eos: fc.boolean() })
    .map(({ body, eos }) => ({ request_body: { body: Buffer.from(body), end_of_stream: eos } })),
  fc.constant<ProcessingRequest>({ request_trailers: { trailers: { headers: [{ key: 'k', raw_value: Buffer.from('v') }] } } }),
  fc
    .record({ body: fc.uint8Array({ maxLength: 40 }) })
    .map(({ body }) => ({ response_body: { body: Buffer.from(body), end_of_stream: true } })),
);
const encoded = request.map((m) => new Uint8Array(reference.requestSerialize(m)));

type Mutation =
  { at: number; kind: 'truncate' } | { at: number; kind: 'flip'; byte: number } | { at: number; kind: 'splice'; bytes: readonly number[] };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ at: fc.nat(), kind: fc.constant('truncate' as const) }),
  fc.record({ at: fc.nat(), kind: fc.constant('flip' as const), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    at: fc.nat(),
    kind: fc.constant('splice' as const),
    // A length-delimited field claiming 2^32, an 11-byte varint, field number 0, wire types 3..7.
    bytes: fc.constantFrom(
      [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
      [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
      [0x00, 0x00],
      [0x0b],
      [0x0f],
      [0x11, 0x01],
    ),
  }),
);

function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = [...bytes];
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    if (m.kind === 'truncate') b = b.slice(0, at);
    else if (m.kind === 'flip') {
      if (b.length > 0) b[at] = m.byte;
    } else b.splice(at, 0, ...m.bytes);
  }
  return Uint8Array.from(b);
}

describe('decodeProcessingRequest under hostile protobuf (fast-check, fixed seed)', () => {
  it(
    'decodes random bytes or refuses them as an invalid ProcessingRequest',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 128 }), (bytes) => void decode(bytes)),
        fuzzParams(3000),
      );
    },
    fuzzTimeout(3000, 30_000),
  );

  it(
    'decodes what proto-loader encodes as proto-loader does, and survives it truncated, corrupted or spliced',
    () => {
      fc.assert(
        fc.property(encoded, fc.array(mutation, { maxLength: 3 }), (bytes, mutations) => {
          const out = decode(mutate(bytes, mutations));
          if (mutations.length === 0) expect(out).toEqual(reference.requestDeserialize(Buffer.from(bytes)));
        }),
        fuzzParams(3000),
      );
    },
    fuzzTimeout(3000, 30_000),
  );

  it('refuses metadata whose Struct nests 5,000 lists deep as invalid, without overflowing the stack', () => {
    // ListValue{values: [Value{list_value: ...}]}, innermost an empty ListValue, inside filter_metadata["x"].fields["k"].
    let list: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 5_000; i++) {
      const value = Buffer.concat([Buffer.from([0x32]), varint(list.length), list]); // Value.list_value (6)
      list = Buffer.concat([Buffer.from([0x0a]), varint(value.length), value]); // ListValue.values (1)
    }
    const value = Buffer.concat([Buffer.from([0x32]), varint(list.length), list]);
    const entry = Buffer.concat([Buffer.from([0x0a, 0x01, 0x6b, 0x12]), varint(value.length), value]); // fields {key "k", value}
    const struct = Buffer.concat([Buffer.from([0x0a]), varint(entry.length), entry]);
    const mapEntry = Buffer.concat([Buffer.from([0x0a, 0x01, 0x78, 0x12]), varint(struct.length), struct]); // filter_metadata {"x": struct}
    const metadata = Buffer.concat([Buffer.from([0x0a]), varint(mapEntry.length), mapEntry]);
    const message = Buffer.concat([Buffer.from([0x42]), varint(metadata.length), metadata]); // ProcessingRequest.metadata_context (8)
    expect(decode(message)).toEqual(new Error('invalid ProcessingRequest: Struct values nest deeper than 100 levels'));
  });
});

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
