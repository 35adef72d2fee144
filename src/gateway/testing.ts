// Real peers for the gateway's tests, shared by src/gateway/*.test.ts and the Envoy parity e2e test:
// a small ext_proc server (real grpc-js, real protos) that records every message a gateway sends and
// answers like GIE's endpoint picker does (buffer the body, pick, re-emit the body in chunks of at
// most 62,000 bytes, echo response chunks), and an HTTP upstream that echoes requests and can hold an
// SSE stream open until the test lets it go.

import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { selfSignedCertificate } from '../common/tls/self-signed.ts';
import {
  ExternalProcessorService,
  fromStruct,
  headersToRecord,
  setHeader,
  toStruct,
  type JsonValue,
  type ProcessStream,
  type ProcessingRequest,
  type ProcessingResponse,
} from '../envoy/ext-proc.ts';
import { DESTINATION_HEADER, LB_NAMESPACE } from './destination.ts';

/** One message a gateway sent, reduced to what the tests compare. */
export interface RecordedMessage {
  kind: NonNullable<ProcessingRequest['request']>;
  endOfStream: boolean;
  /** Body bytes of a body message. */
  body?: Buffer;
  /** Headers of a headers or trailers message, lower-cased names joined as Envoy's map would be. */
  headers?: Record<string, string>;
  /** Header names in the order sent. */
  headerOrder?: string[];
  /** Whether every header came as raw_value bytes with `value` empty (Envoy's current form). */
  rawValuesOnly?: boolean;
  /** metadata_context.filter_metadata as plain objects; undefined when the message had no metadata_context. */
  metadata?: Record<string, JsonValue>;
  protocolConfig?: ProcessingRequest['protocol_config'];
}

export interface RecordedStream {
  messages: RecordedMessage[];
  /** How the gateway ended the stream: 'cancelled' (Envoy resets it), 'half-closed', or still 'open'. */
  end: 'open' | 'cancelled' | 'half-closed';
}

/**
 * What the processor does with a request, chosen by the request's `x-test-behaviour` header:
 * - pick (default): pick `destination`, rewrite the body with `rewriteBody`, tag the response
 * - immediate-400: refuse with ImmediateResponse 400 once the body is in
 * - hang: never answer
 * - no-destination: answer the headers without a destination
 * - plain-body: answer the body with a non-streamed body mutation (wrong in FULL_DUPLEX_STREAMED)
 * - close-before-pick: end the stream (status OK) before answering
 * - mismatch: a header and envoy.lb metadata naming different endpoints
 */
export type ProcessorBehaviour = 'pick' | 'immediate-400' | 'hang' | 'no-destination' | 'plain-body' | 'close-before-pick' | 'mismatch';

export interface RecordingProcessorOptions {
  /** The endpoint (ip:port) every pick names. */
  destination: () => string;
  /** The other endpoint a `mismatch` pick puts in the metadata. */
  otherDestination?: () => string;
  /** How the picked request's body is changed (default: unchanged). */
  rewriteBody?: (body: Buffer) => Buffer;
  /** Serve TLS with a self-signed certificate (as the router does by default). */
  tls?: boolean;
}

export interface RecordingProcessor {
  port: number;
  streams: RecordedStream[];
  close(): Promise<void>;
}

/** GIE's bound on one streamed body message. */
const MAX_CHUNK = 62_000;
export const SESSION_HEADER = 'x-session-token';

function record(message: ProcessingRequest): RecordedMessage {
  const kind = message.request!;
  const out: RecordedMessage = { kind, endOfStream: false };
  const part = message[kind] as { headers?: unknown; trailers?: unknown; body?: Uint8Array; end_of_stream?: boolean } | undefined;
  out.endOfStream = part?.end_of_stream === true;
  if (kind === 'request_body' || kind === 'response_body') out.body = Buffer.from(part?.body ?? []);
  const map =
    (kind.endsWith('trailers') ? message[kind as 'request_trailers']?.trailers : message[kind as 'request_headers']?.headers) ?? undefined;
  if (!kind.endsWith('body')) {
    out.headers = headersToRecord(map);
    out.headerOrder = (map?.headers ?? []).map((h) => h.key);
    out.rawValuesOnly = (map?.headers ?? []).every((h) => (h.value ?? '') === '' && h.raw_value !== undefined);
  }
  if (message.metadata_context) {
    const md: Record<string, JsonValue> = {};
    for (const [ns, struct] of Object.entries(message.metadata_context.filter_metadata ?? {})) md[ns] = fromStruct(struct);
    out.metadata = md;
  }
  if (message.protocol_config) out.protocolConfig = message.protocol_config;
  return out;
}

function pick(destination: string, metadataDestination: string, bodyLength: number | undefined): ProcessingResponse {
  const set = [setHeader(DESTINATION_HEADER, destination)];
  if (bodyLength !== undefined) set.push(setHeader('content-length', String(bodyLength)));
  return {
    request_headers: { response: { clear_route_cache: true, header_mutation: { set_headers: set } } },
    dynamic_metadata: toStruct({ [LB_NAMESPACE]: { [DESTINATION_HEADER]: metadataDestination } }),
  };
}

function streamedChunks(kind: 'request_body' | 'response_body', body: Buffer): ProcessingResponse[] {
  const out: ProcessingResponse[] = [];
  for (let at = 0; at < body.length || at === 0; at += MAX_CHUNK) {
    const chunk = body.subarray(at, at + MAX_CHUNK);
    out.push({
      [kind]: { response: { body_mutation: { streamed_response: { body: chunk, end_of_stream: at + MAX_CHUNK >= body.length } } } },
    });
    if (body.length === 0) break;
  }
  return out;
}

export async function startRecordingProcessor(options: RecordingProcessorOptions): Promise<RecordingProcessor> {
  const streams: RecordedStream[] = [];
  const server = new grpc.Server();
  server.addService(ExternalProcessorService, {
    Process: (call: ProcessStream) => {
      const stream: RecordedStream = { messages: [], end: 'open' };
      streams.push(stream);
      const body: Buffer[] = [];
      let behaviour: ProcessorBehaviour = 'pick';
      let picked = false;
      const send = (m: ProcessingResponse) => call.write(m);
      const answerPick = (hasBody: boolean) => {
        picked = true;
        const destination = options.destination();
        if (behaviour === 'no-destination') {
          send({ request_headers: { response: {} } });
        } else {
          const other = behaviour === 'mismatch' ? (options.otherDestination?.() ?? destination) : destination;
          const rewritten = hasBody ? (options.rewriteBody ?? ((b: Buffer) => b))(Buffer.concat(body)) : undefined;
          send(pick(destination, other, rewritten?.length));
          if (rewritten) {
            if (behaviour === 'plain-body') send({ request_body: { response: { body_mutation: { body: rewritten } } } });
            else for (const m of streamedChunks('request_body', rewritten)) send(m);
          }
        }
      };
      call.on('data', (message: ProcessingRequest) => {
        const rec = record(message);
        stream.messages.push(rec);
        switch (rec.kind) {
          case 'request_headers': {
            behaviour = (rec.headers?.['x-test-behaviour'] as ProcessorBehaviour | undefined) ?? 'pick';
            if (behaviour === 'close-before-pick') {
              call.end();
              return;
            }
            if (rec.endOfStream && behaviour !== 'hang') {
              if (behaviour === 'immediate-400') send(immediate400());
              else answerPick(false);
            }
            return;
          }
          case 'request_body':
            if (picked || behaviour === 'hang' || behaviour === 'close-before-pick') return;
            body.push(rec.body!);
            if (rec.endOfStream) {
              if (behaviour === 'immediate-400') {
                send(immediate400());
                call.end();
              } else answerPick(true);
            }
            return;
          case 'request_trailers':
            send({ request_trailers: {} });
            return;
          case 'response_headers':
            send({ response_headers: { response: { header_mutation: { set_headers: [setHeader(SESSION_HEADER, 'session-1')] } } } });
            return;
          case 'response_body':
            for (const m of streamedChunks('response_body', rec.body!)) {
              const streamed = m.response_body!.response!.body_mutation!.streamed_response!;
              streamed.end_of_stream = rec.endOfStream && streamed.end_of_stream;
              send(m);
            }
            return;
          case 'response_trailers':
            send({ response_trailers: {} });
            return;
        }
      });
      call.on('end', () => {
        if (stream.end === 'open') stream.end = 'half-closed';
        call.end();
      });
      call.on('cancelled', () => {
        stream.end = 'cancelled';
      });
      call.on('error', () => {});
    },
  });
  const credentials = options.tls
    ? await selfSignedCertificate({ commonName: 'kvroute-test-processor', days: 1 }).then(({ key, cert }) =>
        grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(key), cert_chain: Buffer.from(cert) }], false),
      )
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    streams,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };
}

function immediate400(): ProcessingResponse {
  return {
    immediate_response: {
      status: { code: 400 },
      body: Buffer.from('{"error":"bad request from the router"}'),
      headers: { set_headers: [setHeader('x-llm-d-request-dropped-reason', 'bad-request'), setHeader('content-type', 'application/json')] },
    },
  };
}

/** One request as the upstream received it. */
export interface UpstreamRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface EchoUpstream {
  port: number;
  /** 127.0.0.1:port */
  address: string;
  requests: UpstreamRequest[];
  /** SSE streams waiting for the test: call one to send the remaining events and end the response. */
  heldStreams: Array<() => void>;
  /** Responses whose connection closed before they were finished (the gateway gave up on them). */
  abandoned: number;
  close(): Promise<void>;
}

/**
 * An HTTP upstream: `/sse` answers text/event-stream, sends one event, then holds the response open
 * until the test calls the function it pushed on heldStreams (then two more events and [DONE]);
 * `/empty` answers 204; every other path echoes {method, url, bodyBytes, bodySha256, server}.
 */
export async function startEchoUpstream(name = 'upstream'): Promise<EchoUpstream> {
  const requests: UpstreamRequest[] = [];
  const heldStreams: Array<() => void> = [];
  const upstream = { abandoned: 0 };
  const server = http.createServer((req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) upstream.abandoned++;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('data: {"n":1}\n\n');
        heldStreams.push(() => {
          if (res.destroyed) return;
          res.write('data: {"n":2}\n\n');
          res.write('data: {"n":3}\n\n');
          res.end('data: [DONE]\n\n');
        });
        return;
      }
      if (req.url === '/empty') {
        res.writeHead(204, { 'x-server': name });
        res.end();
        return;
      }
      const text = JSON.stringify({
        method: req.method,
        url: req.url,
        bodyBytes: body.length,
        bodySha256: crypto.createHash('sha256').update(body).digest('hex'),
        server: name,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-server': name });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    requests,
    heldStreams,
    get abandoned() {
      return upstream.abandoned;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const release of heldStreams.splice(0)) release();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The kinds of a stream's messages with their end-of-stream flags, e.g. "request_body(eos)". */
export function messageKinds(stream: RecordedStream): string[] {
  return stream.messages.map((m) => (m.endOfStream ? `${m.kind}(eos)` : m.kind));
}

/** All body bytes of one kind in a stream, reassembled. */
export function reassembled(stream: RecordedStream, kind: 'request_body' | 'response_body'): Buffer {
  return Buffer.concat(stream.messages.filter((m) => m.kind === kind).map((m) => m.body ?? Buffer.alloc(0)));
}
