import { describe, it, expect } from '@jest/globals';
import type * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { ExternalProcessorServerDefinition, decodeProcessingRequest, encodeProcessingResponse } from './ext-proc-codec.ts';
import { ExternalProcessorService, setHeader, toStruct, type ProcessingRequest, type ProcessingResponse } from './ext-proc.ts';
// proto-loader's codec (protobufjs reflection) is the reference the hand-written codec must match.
const reference = ExternalProcessorService['Process'] as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>;

/** What a proto-loader peer reads from the bytes: the wire meaning, independent of field order. */
const readBack = (bytes: Buffer) => reference.responseDeserialize(bytes);

const pick = (destination: string, bodyLength?: number): ProcessingResponse => ({
  request_headers: {
    response: {
      clear_route_cache: true,
      header_mutation: {
        set_headers: [
          setHeader('x-gateway-destination-endpoint', destination),
          ...(bodyLength !== undefined ? [setHeader('content-length', String(bodyLength))] : []),
        ],
      },
    },
  },
  dynamic_metadata: toStruct({ 'envoy.lb': { 'x-gateway-destination-endpoint': destination } }),
});
const streamed = (member: 'request_body' | 'response_body', body: Uint8Array, eos: boolean): ProcessingResponse => ({
  [member]: { response: { body_mutation: { streamed_response: { body, end_of_stream: eos } } } },
});
const refusal = (status: number, reason: string, message: string): ProcessingResponse => ({
  immediate_response: {
    status: { code: status },
    headers: { set_headers: [setHeader('x-llm-d-request-dropped-reason', reason), setHeader('content-type', 'application/json')] },
    body: Buffer.from(JSON.stringify({ error: { message, code: reason } })),
    details: reason,
  },
});

// The shapes of src/router/extproc/responses.ts (its own test runs each of them through this codec).
const RESPONSES: Array<[string, ProcessingResponse]> = [
  ['the pick (headers + envoy.lb metadata)', pick('10.0.0.1:8000', 13027)],
  ['a pick without a body', pick('10.0.0.1:8000,10.0.0.2:8000')],
  ['a streamed request body chunk', streamed('request_body', Buffer.from('{"model":"m","prompt":"hi"}'), true)],
  ['a large streamed body chunk', streamed('request_body', Buffer.alloc(62_000, 0x61), false)],
  ['an empty final body chunk', streamed('request_body', Buffer.alloc(0), true)],
  [
    'a BUFFERED pick',
    {
      request_body: {
        response: {
          clear_route_cache: true,
          header_mutation: { set_headers: [setHeader('x-gateway-destination-endpoint', '[fd00::1]:8000')] },
          body_mutation: { body: Buffer.from('{"model":"x"}') },
        },
      },
      dynamic_metadata: toStruct({ 'envoy.lb': { 'x-gateway-destination-endpoint': '[fd00::1]:8000' } }),
    },
  ],
  ['continue', { request_headers: { response: {} } }],
  [
    'response headers with a header set',
    { response_headers: { response: { header_mutation: { set_headers: [setHeader('x-session-token', 'MTAuMC4wLjE6ODAwMA==')] } } } },
  ],
  ['response headers, nothing set', { response_headers: { response: {} } }],
  ['a streamed response chunk', streamed('response_body', Buffer.from('data: {"x":1}\n\n'), false)],
  ['the last response chunk', streamed('response_body', new Uint8Array(0), true)],
  ['request trailers', { request_trailers: {} }],
  ['response trailers', { response_trailers: {} }],
  ['a 429 immediate response', refusal(429, 'saturated', 'every endpoint is saturated')],
  ['a 400 with non-ASCII text', refusal(400, 'bad-request', 'prompt: expected a string, got ✗ "ünïcode"')],
  [
    'every other field: status, trailers, clear_body, remove_headers, append, mode override, timeout, grpc status',
    {
      request_body: {
        response: {
          status: 'CONTINUE_AND_REPLACE',
          header_mutation: {
            set_headers: [{ header: { key: 'a', value: 'v' }, append: { value: true }, keep_empty_value: true }],
            remove_headers: ['x-drop', 'x-drop-2'],
          },
          body_mutation: { clear_body: true },
          trailers: { headers: [{ key: 't', raw_value: Buffer.from('1') }] },
        },
      },
      mode_override: { response_body_mode: 'NONE', response_trailer_mode: 'SKIP', request_header_mode: 1 as unknown as 'SEND' },
      override_message_timeout: { seconds: 300, nanos: 5 },
    } as unknown as ProcessingResponse,
  ],
  [
    'an immediate response with a status name, a gRPC status and a base64 body',
    {
      immediate_response: {
        status: { code: 'ServiceUnavailable' },
        grpc_status: { status: 14 },
        body: Buffer.from('plain text').toString('base64'),
        details: 'd',
      },
    },
  ],
  [
    'metadata of every Value kind',
    {
      response_headers: { response: {} },
      dynamic_metadata: toStruct({
        ns: { s: 'x', n: -1.5, b: false, z: null, list: [1, 'two', [true], {}], nested: { deep: { er: 'y' } }, empty: [] },
      }),
    },
  ],
];

describe('ext_proc codec: encodeProcessingResponse', () => {
  it.each(RESPONSES)('writes %s as proto-loader reads it back', (_name, message) => {
    expect(readBack(encodeProcessingResponse(message))).toEqual(readBack(reference.responseSerialize(message)));
  });

  it('writes the same bytes as proto-loader for the messages the router sends', () => {
    for (const [, message] of RESPONSES.slice(0, 15)) {
      expect(encodeProcessingResponse(message).toString('hex')).toBe(reference.responseSerialize(message).toString('hex'));
    }
  });

  it('refuses an enum name that is not in the protos, naming the field', () => {
    expect(() => encodeProcessingResponse({ request_body: { response: { status: 'MAYBE' as 'CONTINUE' } } })).toThrow(
      /CommonResponse.status: "MAYBE" is not a envoy.service.ext_proc.v3.CommonResponse.ResponseStatus value/,
    );
  });

  it('encodes any header text and body bytes as proto-loader does (property)', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.uint8Array({ maxLength: 600 }), fc.boolean(), (key, value, body, eos) => {
        const message: ProcessingResponse = {
          request_headers: { response: { clear_route_cache: true, header_mutation: { set_headers: [setHeader(key, value)] } } },
          request_body: { response: { body_mutation: { streamed_response: { body, end_of_stream: eos } } } },
          dynamic_metadata: toStruct({ [key]: { [value]: value } }),
        };
        expect(readBack(encodeProcessingResponse(message))).toEqual(readBack(reference.responseSerialize(message)));
      }),
      { numRuns: 200 },
    );
  });
});

const REQUESTS: Array<[string, ProcessingRequest]> = [
  [
    'request headers with protocol config and metadata',
    {
      request_headers: {
        headers: {
          headers: [
            { key: ':path', raw_value: Buffer.from('/v1/completions') },
            { key: 'x-request-id', raw_value: Buffer.from('abc') },
            { key: 'legacy', value: 'text' },
            { key: 'empty', raw_value: Buffer.alloc(0) },
          ],
        },
        end_of_stream: false,
        attributes: { 'envoy.filters.http.ext_proc': toStruct({ 'request.path': '/x' }) },
      } as ProcessingRequest['request_headers'],
      metadata_context: {
        filter_metadata: {
          'envoy.lb.subset_hint': toStruct({ 'x-gateway-destination-endpoint-subset': ['10.0.0.1:8000', '10.0.0.2:8000'] }),
          'envoy.lb': toStruct({ 'x-gateway-destination-endpoint-served': '10.0.0.1:8000', n: 3, b: true, z: null, e: [], o: {} }),
        },
      },
      protocol_config: {
        request_body_mode: 'FULL_DUPLEX_STREAMED',
        response_body_mode: 'BUFFERED',
        send_body_without_waiting_for_header_response: true,
      },
      observability_mode: false,
    },
  ],
  ['a request body chunk', { request_body: { body: Buffer.from('{"model":"m"}'), end_of_stream: true } }],
  ['an empty request body chunk', { request_body: { body: Buffer.alloc(0), end_of_stream: false } }],
  ['a large response body chunk', { response_body: { body: Buffer.alloc(70_000, 0x62) } }],
  [
    'response headers ending the stream',
    { response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] }, end_of_stream: true } },
  ],
  ['request trailers', { request_trailers: { trailers: { headers: [{ key: 'grpc-status', raw_value: Buffer.from('0') }] } } }],
  ['response trailers, empty', { response_trailers: {} }],
  ['top-level attributes', { response_body: { end_of_stream: true }, attributes: { a: toStruct({ k: 'v' }) } }],
];

describe('ext_proc codec: decodeProcessingRequest', () => {
  it.each(REQUESTS)('reads %s as proto-loader does', (_name, message) => {
    const bytes = reference.requestSerialize(message);
    expect(decodeProcessingRequest(bytes)).toEqual(reference.requestDeserialize(bytes));
  });

  it('reads typed_filter_metadata and an unknown enum number as proto-loader does', () => {
    const message = {
      request_body: { body: Buffer.from('x') },
      metadata_context: { typed_filter_metadata: { t: { type_url: 'type.googleapis.com/x', value: Buffer.from([1, 2]) } } },
      protocol_config: { request_body_mode: 9 },
    } as unknown as ProcessingRequest;
    const bytes = reference.requestSerialize(message);
    expect(decodeProcessingRequest(bytes)).toEqual(reference.requestDeserialize(bytes));
  });

  it('skips fields it does not know (a newer Envoy) and keeps reading', () => {
    const known = reference.requestSerialize({ request_body: { body: Buffer.from('b'), end_of_stream: true } });
    // field 99 varint, field 98 length-delimited, field 97 fixed32, field 96 fixed64
    const unknown = Buffer.from([
      0x98, 0x06, 0x05, 0x92, 0x06, 0x02, 0x61, 0x62, 0x8d, 0x06, 1, 2, 3, 4, 0x81, 0x06, 1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    const bytes = Buffer.concat([unknown, known]);
    expect(decodeProcessingRequest(bytes)).toEqual(reference.requestDeserialize(bytes));
  });

  it('leaves the body a view of the message, not a copy', () => {
    const bytes = reference.requestSerialize({ request_body: { body: Buffer.alloc(1000, 7) } });
    const decoded = decodeProcessingRequest(bytes);
    expect(decoded.request_body?.body?.buffer).toBe(bytes.buffer);
  });

  it('refuses truncated or malformed input with an error instead of reading past the end', () => {
    const bytes = reference.requestSerialize(REQUESTS[0]![1]);
    for (let cut = 1; cut < bytes.length; cut++) {
      try {
        decodeProcessingRequest(bytes.subarray(0, cut));
      } catch (err) {
        expect((err as Error).message).toMatch(/^invalid ProcessingRequest: /);
      }
    }
    expect(() => decodeProcessingRequest(Buffer.from([0x22, 0x7f]))).toThrow(/runs past the end/);
    expect(() => decodeProcessingRequest(Buffer.from([0x23]))).toThrow(/wire type 3/);
    expect(() => decodeProcessingRequest(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toThrow(
      /varint/,
    );
  });

  it('never hangs or crashes on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (raw) => {
        try {
          decodeProcessingRequest(Buffer.from(raw));
        } catch (err) {
          expect((err as Error).message).toMatch(/^invalid ProcessingRequest: /);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('ExternalProcessorServerDefinition', () => {
  it('is the Process method with the codec on the server side only', () => {
    const method = ExternalProcessorServerDefinition['Process'] as typeof reference;
    expect(method.path).toBe(reference.path);
    expect(method.requestStream && method.responseStream).toBe(true);
    expect(method.requestDeserialize).toBe(decodeProcessingRequest);
    expect(method.requestSerialize).toBe(reference.requestSerialize);
    expect(method.responseDeserialize).toBe(reference.responseDeserialize);
  });
});
