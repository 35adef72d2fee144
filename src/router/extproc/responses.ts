// The ProcessingResponses the router sends Envoy, built in one place so they match the GIE
// endpoint-picker protocol: the pick (header + envoy.lb dynamic metadata), the request body re-emitted
// in chunks of at most 62,000 bytes, pass-through response chunks, and OpenAI-shaped refusals.

import { setHeader, toStruct, type HeaderValueOption, type ProcessingResponse } from '../../envoy/ext-proc.ts';

const DESTINATION_ENDPOINT = 'x-gateway-destination-endpoint';
export const DESTINATION_ENDPOINT_SERVED = 'x-gateway-destination-endpoint-served';
export const DESTINATION_NAMESPACE = 'envoy.lb';
export const SUBSET_NAMESPACE = 'envoy.lb.subset_hint';
export const SUBSET_KEY = 'x-gateway-destination-endpoint-subset';
const DROPPED_REASON_HEADER = 'x-llm-d-request-dropped-reason';

/** GIE's bound on one streamed body message, under gRPC's and Envoy's per-message limits. */
export const MAX_BODY_CHUNK = 62_000;

/** `body` in slices of at most `max` bytes (views, not copies); an empty body is one empty slice. */
export function chunkBody(body: Buffer, max = MAX_BODY_CHUNK): Buffer[] {
  if (body.length === 0) return [body];
  const chunks: Buffer[] = [];
  for (let at = 0; at < body.length; at += max) chunks.push(body.subarray(at, Math.min(at + max, body.length)));
  return chunks;
}

function destinationMetadata(destination: string) {
  return toStruct({ [DESTINATION_NAMESPACE]: { [DESTINATION_ENDPOINT]: destination } });
}

function pickHeaders(destination: string, bodyLength: number | undefined): HeaderValueOption[] {
  const headers = [setHeader(DESTINATION_ENDPOINT, destination)];
  // The body may have been rewritten (model), so its length is stated again.
  if (bodyLength !== undefined) headers.push(setHeader('content-length', String(bodyLength)));
  return headers;
}

/**
 * FULL_DUPLEX_STREAMED: the answer to the request headers, sent once the body is complete, carrying
 * the pick as a header and as envoy.lb dynamic metadata (the same string, as the protocol requires).
 * `bodyLength` is undefined for a request without a body.
 */
export function pickHeadersResponse(destination: string, bodyLength: number | undefined): ProcessingResponse {
  return {
    request_headers: { response: { clear_route_cache: true, header_mutation: { set_headers: pickHeaders(destination, bodyLength) } } },
    dynamic_metadata: destinationMetadata(destination),
  };
}

/**
 * FULL_DUPLEX_STREAMED: the request body as streamed body responses. The last carries end_of_stream
 * unless trailers follow (then the trailers end the request).
 */
export function streamedRequestBody(body: Buffer, trailersFollow = false): ProcessingResponse[] {
  const chunks = chunkBody(body);
  return chunks.map((chunk, i) => ({
    request_body: {
      response: { body_mutation: { streamed_response: { body: chunk, end_of_stream: i === chunks.length - 1 && !trailersFollow } } },
    },
  }));
}

/** BUFFERED: the pick in the answer to the whole body (headers, full body mutation, metadata), as GIE v0.3 did. */
export function bufferedPickResponse(destination: string, body: Buffer): ProcessingResponse {
  return {
    request_body: {
      response: {
        clear_route_cache: true,
        header_mutation: { set_headers: pickHeaders(destination, body.length) },
        body_mutation: { body },
      },
    },
    dynamic_metadata: destinationMetadata(destination),
  };
}

/** BUFFERED: the answer to the request headers, sent at once since Envoy waits for it before sending the body. */
export function continueRequestHeaders(): ProcessingResponse {
  return { request_headers: { response: {} } };
}

export function responseHeadersResponse(set: Record<string, string>): ProcessingResponse {
  const headers = Object.entries(set).map(([k, v]) => setHeader(k, v));
  return { response_headers: { response: headers.length > 0 ? { header_mutation: { set_headers: headers } } : {} } };
}

/** A response chunk passed on unchanged, at once (FULL_DUPLEX_STREAMED), so SSE streams. */
export function streamedResponseChunk(body: Uint8Array, endOfStream: boolean): ProcessingResponse {
  return { response_body: { response: { body_mutation: { streamed_response: { body, end_of_stream: endOfStream } } } } };
}

/** A response chunk left as it is, in the non-duplex body modes. */
export function continueResponseBody(): ProcessingResponse {
  return { response_body: { response: {} } };
}

export function requestTrailersResponse(): ProcessingResponse {
  return { request_trailers: {} };
}

export function responseTrailersResponse(): ProcessingResponse {
  return { response_trailers: {} };
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  404: 'invalid_request_error',
  413: 'invalid_request_error',
  431: 'invalid_request_error',
  429: 'rate_limit_exceeded',
  500: 'server_error',
  503: 'service_unavailable',
};

/** A refusal: HTTP status, the dropped-reason header, and an OpenAI-shaped JSON error body. */
export function immediateErrorResponse(status: number, reason: string, message: string): ProcessingResponse {
  const body = JSON.stringify({ error: { message, type: ERROR_TYPES[status] ?? 'server_error', code: reason } });
  return {
    immediate_response: {
      status: { code: status },
      headers: { set_headers: [setHeader(DROPPED_REASON_HEADER, reason), setHeader('content-type', 'application/json')] },
      body: Buffer.from(body, 'utf8'),
      details: reason,
    },
  };
}
