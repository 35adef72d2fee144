import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type * as grpc from '@grpc/grpc-js';
import { encodeProcessingResponse } from '../../envoy/ext-proc-codec.ts';
import {
  ExternalProcessorService,
  fromStruct,
  headersToRecord,
  type ProcessingRequest,
  type ProcessingResponse,
} from '../../envoy/ext-proc.ts';
import {
  MAX_BODY_CHUNK,
  bufferedPickResponse,
  chunkBody,
  continueRequestHeaders,
  continueResponseBody,
  immediateErrorResponse,
  pickHeadersResponse,
  requestTrailersResponse,
  responseHeadersResponse,
  responseTrailersResponse,
  streamedRequestBody,
  streamedResponseChunk,
} from './responses.ts';

describe('the responses on the wire', () => {
  // The router's server encodes with the hand-written codec; proto-loader's is the reference.
  const reference = ExternalProcessorService['Process'] as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>;
  const all: ProcessingResponse[] = [
    pickHeadersResponse('10.0.0.1:8000', 13_027),
    pickHeadersResponse('10.0.0.1:8000,10.0.0.2:8000', undefined),
    ...streamedRequestBody(Buffer.alloc(130_000, 0x61), true),
    ...streamedRequestBody(Buffer.alloc(0)),
    bufferedPickResponse('[fd00::1]:8000', Buffer.from('{"model":"x"}')),
    continueRequestHeaders(),
    responseHeadersResponse({ 'x-session-token': 'MTAuMC4wLjE6ODAwMA==' }),
    responseHeadersResponse({}),
    streamedResponseChunk(Buffer.from('data: {}\n\n'), false),
    streamedResponseChunk(new Uint8Array(0), true),
    continueResponseBody(),
    requestTrailersResponse(),
    responseTrailersResponse(),
    immediateErrorResponse(429, 'rejected-saturated', 'every endpoint is saturated'),
    immediateErrorResponse(400, 'bad-request', 'prompt: expected a string ✗'),
  ];

  it('encodes every response the router sends to the same bytes as proto-loader', () => {
    for (const message of all) {
      expect(encodeProcessingResponse(message).toString('hex')).toBe(reference.responseSerialize(message).toString('hex'));
    }
  });
});

describe('chunkBody', () => {
  it('reassembles to the same bytes for any body, every chunk within the bound and only the last short', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5_000 }), fc.integer({ min: 1, max: 700 }), (bytes, max) => {
        const body = Buffer.from(bytes);
        const chunks = chunkBody(body, max);
        expect(Buffer.concat(chunks).equals(body)).toBe(true);
        expect(chunks.length).toBe(Math.max(1, Math.ceil(body.length / max)));
        chunks.forEach((c, i) => {
          expect(c.length).toBeLessThanOrEqual(max);
          if (i < chunks.length - 1) expect(c.length).toBe(max);
        });
      }),
    );
  });

  it('uses 62,000 bytes by default and gives an empty body one empty chunk', () => {
    expect(chunkBody(Buffer.alloc(124_001)).map((c) => c.length)).toEqual([MAX_BODY_CHUNK, MAX_BODY_CHUNK, 1]);
    expect(chunkBody(Buffer.alloc(0))).toEqual([Buffer.alloc(0)]);
  });
});

describe('streamedRequestBody', () => {
  it('marks only the last chunk end_of_stream, or none when trailers follow', () => {
    const eos = (trailers: boolean) =>
      streamedRequestBody(Buffer.alloc(130_000), trailers).map(
        (m) => m.request_body?.response?.body_mutation?.streamed_response?.end_of_stream,
      );
    expect(eos(false)).toEqual([false, false, true]);
    expect(eos(true)).toEqual([false, false, false]);
  });
});

describe('pickHeadersResponse', () => {
  it('carries the same destination in the header and in envoy.lb metadata', () => {
    const m = pickHeadersResponse('10.0.0.1:8000,10.0.0.2:8000', 42);
    const set = headersToRecord({ headers: m.request_headers!.response!.header_mutation!.set_headers!.map((h) => h.header) });
    expect(set).toEqual({ 'x-gateway-destination-endpoint': '10.0.0.1:8000,10.0.0.2:8000', 'content-length': '42' });
    expect(m.request_headers!.response!.header_mutation!.set_headers!.every((h) => h.append_action === 'OVERWRITE_IF_EXISTS_OR_ADD')).toBe(
      true,
    );
    expect(fromStruct(m.dynamic_metadata)).toEqual({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.1:8000,10.0.0.2:8000' } });
  });
});

describe('immediateErrorResponse', () => {
  it('sets the status, the dropped-reason header and an OpenAI-shaped JSON body', () => {
    const ir = immediateErrorResponse(404, 'model-not-found', 'model "x" is not served by this pool').immediate_response!;
    expect(ir.status.code).toBe(404);
    expect(headersToRecord({ headers: ir.headers!.set_headers!.map((h) => h.header) })).toEqual({
      'x-llm-d-request-dropped-reason': 'model-not-found',
      'content-type': 'application/json',
    });
    expect(JSON.parse(Buffer.from(ir.body as Uint8Array).toString())).toEqual({
      error: { message: 'model "x" is not served by this pool', type: 'invalid_request_error', code: 'model-not-found' },
    });
  });
});
