// One ext_proc Process stream, i.e. one HTTP request through the gateway, as a state machine: buffer
// the request body, route it through the director, answer with the pick and the (possibly rewritten)
// body, pass the response through chunk by chunk, and count the request in flight on its endpoint
// until the stream ends, however it ends. Messages are handled strictly in arrival order, so Envoy
// gets its answers in the order the protocol requires (headers, body, trailers, each way).

import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/log.ts';
import { RouteError, type Director, type InFlight, type RouteDecision } from '../director.ts';
import type { RouterMetrics } from '../metrics.ts';
import { RequestParseError, parseRequestBody, requestPath, withModel, type ParsedBody } from '../request/parse.ts';
import {
  fromStruct,
  headersToRecord,
  type BodySendMode,
  type HttpBody,
  type HttpHeaders,
  type ProcessStream,
  type ProcessingRequest,
  type ProcessingResponse,
} from '../../envoy/ext-proc.ts';
import {
  DESTINATION_ENDPOINT_SERVED,
  DESTINATION_NAMESPACE,
  SUBSET_KEY,
  SUBSET_NAMESPACE,
  bufferedPickResponse,
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
import { StreamTail, extractUsage } from './usage.ts';

const DEFAULT_MAX_REQUEST_BODY_BYTES = 64 * 1024 * 1024;
/** Above Envoy's own defaults (100 headers, 60 KiB), so only a gateway configured past them meets these. */
const DEFAULT_MAX_REQUEST_HEADERS = 256;
const DEFAULT_MAX_REQUEST_HEADER_BYTES = 256 * 1024;
/** GIE's conformance hook: the endpoint that served, echoed to the client. */
const SERVED_ECHO_HEADER = 'x-conformance-test-served-endpoint';

export interface StreamDeps {
  director: Director;
  log: Logger;
  metrics?: RouterMetrics;
  /** Larger request bodies are refused with 413 rather than buffered (default 64 MiB). */
  maxRequestBodyBytes?: number;
  /** Requests with more headers are refused with 431 (default 256). */
  maxRequestHeaders?: number;
  /** Requests whose header names and values total more bytes are refused with 431 (default 256 KiB). */
  maxRequestHeaderBytes?: number;
  /** Echo the served endpoint in x-conformance-test-served-endpoint (GIE's conformance suite). */
  testHooks?: boolean;
}

type RequestBodyHandling = 'duplex' | 'buffered' | 'none';

function requestBodyHandling(mode: BodySendMode | undefined): RequestBodyHandling {
  if (mode === 'BUFFERED' || mode === 'BUFFERED_PARTIAL') return 'buffered';
  if (mode === 'NONE') return 'none';
  // FULL_DUPLEX_STREAMED, and any gateway that does not say (GIE's only supported mode).
  return 'duplex';
}

class ProcessStreamHandler {
  private readonly call: ProcessStream;
  private readonly deps: StreamDeps;
  private readonly log: Logger;
  private readonly maxBody: number;

  private queue: Promise<void> = Promise.resolve();
  /** No more messages are handled (a refusal was sent, or the stream ended). */
  private done = false;
  private finished = false;
  private onDone: (() => void) | undefined;
  readonly closed: Promise<void>;

  private headers: Record<string, string> = {};
  private path = '/';
  private requestId = '';
  /** request_headers came: the protocol sends them once, first (a body before them has no path to route by). */
  private headersSeen = false;
  private requestMode: RequestBodyHandling = 'duplex';
  private responseDuplex = true;
  private subset: unknown[] | undefined;
  private served: string | undefined;

  private bodyChunks: Buffer[] = [];
  private bodyBytes = 0;
  /** The request body is complete; later body messages (Envoy's second EoS over 1 MB) are ignored. */
  private bodyComplete = false;
  private routed = false;
  private decision: RouteDecision | undefined;
  private inFlight: InFlight | undefined;

  private responseBytes = 0;
  private readonly tail = new StreamTail();

  constructor(call: ProcessStream, deps: StreamDeps) {
    this.call = call;
    this.deps = deps;
    this.log = deps.log;
    this.maxBody = deps.maxRequestBodyBytes ?? DEFAULT_MAX_REQUEST_BODY_BYTES;
    this.closed = new Promise((resolve) => (this.onDone = resolve));

    call.on('data', (message: ProcessingRequest) => this.enqueue(() => this.handle(message)));
    // Envoy half-closes once the request is over; finish our side after the answers still queued.
    call.on('end', () =>
      this.enqueue(() => {
        if (!this.done) this.call.end();
        this.finish();
      }),
    );
    call.on('cancelled', () => this.finish());
    call.on('error', (err: Error) => {
      this.log.debug('ext_proc stream error', { requestId: this.requestId, err });
      this.finish();
    });
    call.on('close', () => this.finish());
  }

  private enqueue(step: () => Promise<void> | void): void {
    this.queue = this.queue.then(step).catch((err: unknown) => {
      // Only a failure to even refuse the request lands here: give the stream up.
      this.log.error('ext_proc stream failed', { requestId: this.requestId, err });
      this.finish();
    });
  }

  /** Ends the request's life in the router exactly once: releases its in-flight count. */
  private finish(): void {
    this.done = true;
    if (this.finished) return;
    this.finished = true;
    this.inFlight?.release();
    this.onDone?.();
  }

  private async send(message: ProcessingResponse): Promise<void> {
    if (this.done) return;
    if (this.call.write(message)) return;
    // Respect backpressure (a large body is many messages), but never wait on a stream that is gone.
    await Promise.race([new Promise<void>((resolve) => this.call.once('drain', () => resolve())), this.closed]);
  }

  private async handle(message: ProcessingRequest): Promise<void> {
    if (this.done) return;
    try {
      this.readMetadata(message);
      switch (message.request) {
        case 'request_headers':
          return await this.onRequestHeaders(message.request_headers ?? {}, message);
        case 'request_body':
          return await this.onRequestBody(message.request_body ?? {});
        case 'request_trailers':
          return await this.onRequestTrailers();
        case 'response_headers':
          return await this.onResponseHeaders(message.response_headers ?? {});
        case 'response_body':
          return await this.onResponseBody(message.response_body ?? {});
        case 'response_trailers':
          this.completeResponse();
          return await this.send(responseTrailersResponse());
        default:
          this.log.limited('extproc-unknown-message', 'warn', 'ignoring an ext_proc message with no known member', {
            requestId: this.requestId,
          });
      }
    } catch (err) {
      await this.refuse(err);
    }
  }

  private readMetadata(message: ProcessingRequest): void {
    const filter = message.metadata_context?.filter_metadata;
    if (!filter) return;
    const hint = filter[SUBSET_NAMESPACE];
    if (hint) {
      // Only a list counts as a hint (GIE): a malformed value leaves every endpoint a candidate.
      const entries = fromStruct(hint)[SUBSET_KEY];
      if (Array.isArray(entries)) this.subset = entries;
    }
    const lb = filter[DESTINATION_NAMESPACE];
    if (lb) {
      const served = fromStruct(lb)[DESTINATION_ENDPOINT_SERVED];
      if (typeof served === 'string' && served !== '') this.served = served;
    }
  }

  private async onRequestHeaders(h: HttpHeaders, message: ProcessingRequest): Promise<void> {
    // A second pick would overwrite the first one's in-flight count, which then never ends.
    if (this.headersSeen) throw new RouteError(400, 'bad-request', 'ext_proc request_headers arrived twice on one stream');
    this.headersSeen = true;
    this.checkHeaderBounds(h);
    this.headers = headersToRecord(h.headers);
    this.path = requestPath(this.headers[':path'] ?? '/');
    this.requestId = this.headers['x-request-id'] || randomUUID();
    this.requestMode = requestBodyHandling(message.protocol_config?.request_body_mode);
    const responseMode = message.protocol_config?.response_body_mode;
    this.responseDuplex = responseMode === undefined || responseMode === 'FULL_DUPLEX_STREAMED';

    if (h.end_of_stream || this.requestMode === 'none') {
      // No body will come (a GET, or a gateway that does not send bodies): route on the headers alone.
      this.bodyComplete = true;
      return this.routeAndAnswer(Buffer.alloc(0), { hasBody: false, trailersFollow: false });
    }
    if (this.requestMode === 'buffered') await this.send(continueRequestHeaders());
  }

  /** Refuses a header block past the count or byte bound with 431, before anything is copied out of it. */
  private checkHeaderBounds(h: HttpHeaders): void {
    const list = h.headers?.headers ?? [];
    const maxCount = this.deps.maxRequestHeaders ?? DEFAULT_MAX_REQUEST_HEADERS;
    if (list.length > maxCount)
      throw new RouteError(431, 'request-headers-too-large', `request has ${list.length} headers, more than ${maxCount}`);
    const maxBytes = this.deps.maxRequestHeaderBytes ?? DEFAULT_MAX_REQUEST_HEADER_BYTES;
    let bytes = 0;
    for (const header of list) bytes += header.key.length + (header.raw_value?.length ?? 0) + (header.value?.length ?? 0);
    if (bytes > maxBytes)
      throw new RouteError(431, 'request-headers-too-large', `request headers total ${bytes} bytes, more than ${maxBytes} bytes`);
  }

  private async onRequestBody(b: HttpBody): Promise<void> {
    if (!this.headersSeen) throw new RouteError(400, 'bad-request', 'ext_proc request_body arrived before the request headers');
    if (this.bodyComplete) {
      this.log.debug('ignoring request body after end of stream', { requestId: this.requestId, bytes: b.body?.length ?? 0 });
      return;
    }
    const chunk = b.body;
    if (chunk && chunk.length > 0) {
      this.bodyBytes += chunk.length;
      if (this.bodyBytes > this.maxBody) {
        throw new RouteError(413, 'request-too-large', `request body exceeds ${this.maxBody} bytes`);
      }
      this.bodyChunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
    // BUFFERED sends the whole body in one message.
    if (b.end_of_stream || this.requestMode === 'buffered') {
      this.bodyComplete = true;
      await this.routeAndAnswer(this.takeBody(), { hasBody: true, trailersFollow: false });
    }
  }

  private async onRequestTrailers(): Promise<void> {
    if (!this.headersSeen) throw new RouteError(400, 'bad-request', 'ext_proc request_trailers arrived before the request headers');
    if (!this.bodyComplete) {
      // Trailers end a request whose last body chunk had no end_of_stream.
      this.bodyComplete = true;
      await this.routeAndAnswer(this.takeBody(), { hasBody: true, trailersFollow: true });
      if (this.done) return;
    }
    await this.send(requestTrailersResponse());
  }

  private takeBody(): Buffer {
    const body = this.bodyChunks.length === 1 ? this.bodyChunks[0]! : Buffer.concat(this.bodyChunks, this.bodyBytes);
    this.bodyChunks = [];
    return body;
  }

  private parse(body: Buffer, hasBody: boolean): ParsedBody {
    if (!hasBody) return { kind: 'other', path: this.path, model: '', stream: false };
    try {
      return parseRequestBody(this.path, body);
    } catch (err) {
      if (err instanceof RequestParseError) throw new RouteError(400, 'bad-request', err.message);
      throw err;
    }
  }

  private async routeAndAnswer(body: Buffer, opts: { hasBody: boolean; trailersFollow: boolean }): Promise<void> {
    const parsed = this.parse(body, opts.hasBody);
    const decision = await this.deps.director.route({
      requestId: this.requestId,
      parsed,
      headers: this.headers,
      bodyBytes: body.length,
      ...(this.subset !== undefined ? { subset: this.subset } : {}),
    });
    if (this.done) {
      // The stream went away while the scheduler ran: the pick was counted, and will never be sent.
      decision.inFlight.release();
      return;
    }
    this.decision = decision;
    this.routed = true;
    // Counted since the pick; finish() releases it however the stream ends from here on.
    this.inFlight = decision.inFlight;
    const destination = decision.result.targets.map((t) => t.address).join(',');

    // Re-serialize only when the model changes; otherwise the client's bytes go on untouched.
    const target = decision.request.targetModel;
    const outBody = parsed.json && parsed.model !== '' && target !== parsed.model ? withModel(parsed.json, target) : body;

    this.log.debug('routed', {
      requestId: this.requestId,
      path: this.path,
      model: parsed.model,
      targetModel: target,
      destination,
      profile: decision.result.profile,
    });

    if (!opts.hasBody) {
      await this.send(pickHeadersResponse(destination, undefined));
      return;
    }
    if (this.requestMode === 'buffered') {
      await this.send(bufferedPickResponse(destination, outBody));
      return;
    }
    await this.send(pickHeadersResponse(destination, outBody.length));
    for (const chunk of streamedRequestBody(outBody, opts.trailersFollow)) await this.send(chunk);
  }

  private async onResponseHeaders(h: HttpHeaders): Promise<void> {
    const served = this.served;
    // The gateway may have walked our list to a fallback: count the request where it runs.
    if (served && this.inFlight && this.decision?.result.targets.some((t) => t.address === served)) this.inFlight.moveTo(served);
    const set: Record<string, string> = { ...this.decision?.result.responseHeaders };
    if (this.deps.testHooks && served) set[SERVED_ECHO_HEADER] = served;
    if (h.end_of_stream) this.completeResponse();
    await this.send(responseHeadersResponse(set));
  }

  private async onResponseBody(b: HttpBody): Promise<void> {
    const chunk = b.body ?? new Uint8Array(0);
    this.responseBytes += chunk.length;
    this.tail.push(chunk);
    if (b.end_of_stream) this.completeResponse();
    await this.send(this.responseDuplex ? streamedResponseChunk(chunk, b.end_of_stream ?? false) : continueResponseBody());
  }

  /** The response is over (end of body, trailers or a body-less response): record it and release the endpoint. */
  private completeResponse(): void {
    if (this.finished) return;
    const m = this.deps.metrics;
    const request = this.decision?.request;
    if (m && request) {
      const labels = { model: request.requestedModel };
      m.responseBytes.observe(labels, this.responseBytes);
      const usage = extractUsage(this.tail.text());
      if (usage?.promptTokens !== undefined) m.promptTokens.observe(labels, usage.promptTokens);
      if (usage?.completionTokens !== undefined) m.completionTokens.observe(labels, usage.completionTokens);
      if (usage?.cachedTokens !== undefined) m.cachedTokens.observe(labels, usage.cachedTokens);
    }
    this.inFlight?.release();
  }

  /** Answers the request with an ImmediateResponse and stops handling the stream. */
  private async refuse(err: unknown): Promise<void> {
    const routeError = err instanceof RouteError ? err : new RouteError(500, 'internal-error', 'the router failed to process the request');
    if (!(err instanceof RouteError)) this.log.error('ext_proc stream failed', { requestId: this.requestId, err });
    else
      this.log.debug('request refused', {
        requestId: this.requestId,
        status: routeError.status,
        reason: routeError.reason,
        msg: routeError.message,
      });
    this.deps.metrics?.errors.inc({ code: String(routeError.status), reason: routeError.reason });
    if (this.routed) {
      // The pick is already with Envoy; an immediate response now would contradict it. End the stream.
      this.call.end();
      this.finish();
      return;
    }
    await this.send(immediateErrorResponse(routeError.status, routeError.reason, routeError.message));
    this.call.end();
    this.finish();
  }
}

/**
 * Serves one Process stream; resolves when the stream is over (ended, cancelled or failed) and its
 * in-flight count released.
 */
export function handleProcessStream(call: ProcessStream, deps: StreamDeps): Promise<void> {
  return new ProcessStreamHandler(call, deps).closed;
}
