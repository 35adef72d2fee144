import { describe, it, expect } from '@jest/globals';
import type * as grpc from '@grpc/grpc-js';
import {
  ExternalProcessorService,
  enumValueNames,
  fromStruct,
  headersToRecord,
  headerValueText,
  setHeader,
  toStruct,
  type ProcessingRequest,
  type ProcessingResponse,
} from './ext-proc.ts';

type ProcessMethod = grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>;
const processMethod = (): ProcessMethod => {
  const method = ExternalProcessorService['Process'];
  if (!method) throw new Error('ExternalProcessor has no Process method');
  return method as ProcessMethod;
};

describe('ext_proc v3 protos', () => {
  it('defines Process as a bidi-streaming method', () => {
    const method = processMethod();
    expect(method.path).toBe('/envoy.service.ext_proc.v3.ExternalProcessor/Process');
    expect(method.requestStream).toBe(true);
    expect(method.responseStream).toBe(true);
  });

  it('has the FULL_DUPLEX_STREAMED body mode', () => {
    expect(enumValueNames('envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode')).toEqual([
      'NONE',
      'STREAMED',
      'BUFFERED',
      'BUFFERED_PARTIAL',
      'FULL_DUPLEX_STREAMED',
    ]);
  });

  it('round-trips a ProcessingResponse with a streamed body mutation and dynamic metadata', () => {
    const method = processMethod();
    const sent: ProcessingResponse = {
      request_body: {
        response: {
          header_mutation: { set_headers: [setHeader('x-gateway-destination-endpoint', '10.0.0.7:8000')] },
          body_mutation: { streamed_response: { body: Buffer.from('{"model":"m"}'), end_of_stream: true } },
          clear_route_cache: true,
        },
      },
      dynamic_metadata: toStruct({
        'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.7:8000', score: 0.5, sticky: false, tags: ['a', null] },
      }),
    };
    const got = method.responseDeserialize(method.responseSerialize(sent));

    expect(got.response).toBe('request_body');
    const common = got.request_body?.response;
    expect(common?.clear_route_cache).toBe(true);
    expect(common?.body_mutation?.mutation).toBe('streamed_response');
    const streamed = common?.body_mutation?.streamed_response;
    expect(Buffer.from(streamed?.body ?? []).toString()).toBe('{"model":"m"}');
    expect(streamed?.end_of_stream).toBe(true);
    const header = common?.header_mutation?.set_headers?.[0];
    expect(header?.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    expect(header && headerValueText(header.header)).toBe('10.0.0.7:8000');
    expect(fromStruct(got.dynamic_metadata)).toEqual({
      'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.7:8000', score: 0.5, sticky: false, tags: ['a', null] },
    });
  });

  it('round-trips an immediate response', () => {
    const method = processMethod();
    const got = method.responseDeserialize(
      method.responseSerialize({ immediate_response: { status: { code: 429 }, body: Buffer.from('busy'), details: 'no_capacity' } }),
    );
    expect(got.response).toBe('immediate_response');
    expect(got.immediate_response?.status.code).toBe('TooManyRequests');
    expect(got.immediate_response?.details).toBe('no_capacity');
  });

  it('round-trips a ProcessingRequest, reading raw_value and value headers alike', () => {
    const method = processMethod();
    const sent: ProcessingRequest = {
      request_headers: {
        headers: {
          headers: [
            { key: ':path', raw_value: Buffer.from('/v1/chat/completions') },
            { key: 'x-legacy', value: 'plain' },
            { key: 'accept', raw_value: Buffer.from('a') },
            { key: 'accept', raw_value: Buffer.from('b') },
          ],
        },
        end_of_stream: false,
      },
      metadata_context: { filter_metadata: { 'envoy.lb': toStruct({ subset: 'x' }) } },
    };
    const got = method.requestDeserialize(method.requestSerialize(sent));

    expect(got.request).toBe('request_headers');
    expect(headersToRecord(got.request_headers?.headers)).toEqual({ ':path': '/v1/chat/completions', 'x-legacy': 'plain', accept: 'a, b' });
    expect(fromStruct(got.metadata_context?.filter_metadata?.['envoy.lb'])).toEqual({ subset: 'x' });

    const body = method.requestDeserialize(method.requestSerialize({ request_body: { body: Buffer.from('{}'), end_of_stream: true } }));
    expect(body.request).toBe('request_body');
    expect(Buffer.from(body.request_body?.body ?? []).toString()).toBe('{}');
    expect(body.request_body?.end_of_stream).toBe(true);
  });
});
