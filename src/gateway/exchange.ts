// One HTTP request through the built-in gateway, driven the way Envoy 1.40's ext_proc filter drives
// the router in GIE's standalone gateway (request and response bodies FULL_DUPLEX_STREAMED, trailers
// SEND, envoy.lb metadata forwarded and received): request headers, then every body chunk as it comes
// off the client socket and an empty end-of-stream chunk, the router's pick, the router's re-emitted
// body streamed to the picked endpoint, then the response headers and each response chunk through the
// router and on to the client as the router hands them back (so SSE streams), and the stream reset
// once the response is over. e2e/gateway-envoy-parity.test.ts checks the message sequence against a
// real Envoy.
//
// Where the built-in front deliberately differs from Envoy, it says so below ("Envoy:").

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../common/log.ts';
import { extProcPackageDefinition, fromStruct, type ImmediateResponse, type ProcessingResponse } from '../envoy/ext-proc.ts';
import {
  DESTINATION_HEADER,
  DESTINATION_SERVED_KEY,
  LB_NAMESPACE,
  SUBSET_KEY,
  SUBSET_NAMESPACE,
  resolveDestination,
  type Endpoint,
  type RoundRobin,
} from './destination.ts';
import { bodyMessage, headersMessage, type ExtProcClient, type MetadataNamespaces, type ProcessCall } from './extproc-client.ts';
import {
  HeaderMutationError,
  applyHeaderMutation,
  getHeader,
  removeHeader,
  requestHeaderList,
  responseHeaderList,
  toNodeHeaders,
  type HeaderList,
} from './headers.ts';
import type { FailureStage, GatewayMetrics } from './metrics.ts';

export type FailureMode = 'FailOpen' | 'FailClose';

export interface ExchangeDeps {
  client: ExtProcClient;
  failureMode: FailureMode;
  /** Where requests go without a usable pick (the pool's endpoints, round robin); may be empty. */
  fallback: RoundRobin;
  /** Longest wait for the router's answer to the request headers; 0 waits for ever (as Envoy does). */
  pickTimeoutMs: number;
  /** Sent as envoy.lb.subset_hint / x-gateway-destination-endpoint-subset when set. */
  subsetHint: readonly string[] | undefined;
  /** FailOpen keeps a copy of the request body until the pick, up to this size, to replay it to a fallback endpoint. */
  maxFallbackBodyBytes: number;
  agent: http.Agent;
  log: Logger;
  metrics: GatewayMetrics | undefined;
}

/** The router broke the protocol (an answer out of order or of the wrong kind). */
class ProtocolError extends Error {}

/** Envoy's body for a request it cannot route (ORIGINAL_DST without an address, or an empty fallback). */
const NO_HEALTHY_UPSTREAM = 'no healthy upstream';

type Phase =
  /** Waiting for the router's answer to the request headers. */
  | 'pick'
  /** Picked; the router is streaming the (possibly rewritten) request body to the endpoint. */
  | 'request-body'
  /** The request is with the endpoint; waiting for its response headers. */
  | 'upstream'
  /** Response headers sent to the router; waiting for its answer. */
  | 'response-headers'
  /** Response headers are with the client; body chunks flow through the router. */
  | 'response-body'
  | 'done';

const statusCodes: Map<string, number> = (() => {
  const out = new Map<string, number>();
  const def = extProcPackageDefinition['envoy.type.v3.StatusCode'];
  const values = def && 'type' in def ? ((def.type as { value?: Array<{ name: string; number: number }> }).value ?? []) : [];
  for (const v of values) out.set(v.name, v.number);
  return out;
})();

/** An ImmediateResponse's HTTP status: Envoy answers 200 when it is absent or not a valid HTTP status. */
function immediateStatus(response: ImmediateResponse): number {
  const code = response.status?.code;
  const n = typeof code === 'number' ? code : code !== undefined ? (statusCodes.get(code) ?? Number(code)) : NaN;
  return Number.isInteger(n) && n >= 200 && n <= 599 ? n : 200;
}

function bodyBytes(body: Uint8Array | string | undefined): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** Whether an HTTP/1.1 request carries a body: Envoy's codec ends the stream at the headers otherwise. */
function requestHasBody(req: http.IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && Number(length) > 0;
}

/** Whether a response ends at its headers (no body can follow), as Envoy's HTTP/1 codec reports it. */
function responseEndsAtHeaders(method: string, res: http.IncomingMessage): boolean {
  const status = res.statusCode ?? 0;
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) return true;
  return res.headers['transfer-encoding'] === undefined && res.headers['content-length'] === '0';
}

export class Exchange {
  private readonly req: http.IncomingMessage;
  private readonly res: http.ServerResponse;
  private readonly deps: ExchangeDeps;
  private readonly log: Logger;
  private readonly started = performance.now();

  private phase: Phase = 'pick';
  private call: ProcessCall | undefined;
  /** The router still takes part (false after fail-open, a clean close, or once we reset the stream). */
  private extProc = true;
  private firstMessage = true;
  private pickTimer: NodeJS.Timeout | undefined;
  /** Forwarded to the router on every message, as Envoy forwards the envoy.lb namespaces. */
  private readonly metadata: MetadataNamespaces = {};

  private readonly hasBody: boolean;
  private readonly originalHeaders: HeaderList;
  private clientBodyDone = false;
  /** FailOpen only: the request body as the client sent it, until the pick (null once too large). */
  private bodyCopy: Buffer[] | null;
  private bodyCopyBytes = 0;
  /** Where client body chunks go: to the router, or straight to a fallback endpoint. */
  private bodySink: 'router' | 'upstream' = 'router';

  private method = 'GET';
  private upstreamReq: http.ClientRequest | undefined;
  private upstreamRes: http.IncomingMessage | undefined;
  private upstreamStarted = 0;
  private responseHeaders: HeaderList = [];
  private responseEndsEarly = false;
  /** mode_override from the router (Envoy honours it with allow_mode_override, as GIE's config sets). */
  private sendResponseHeaders = true;
  private sendResponseBody = true;
  private readonly requestId: string;

  constructor(req: http.IncomingMessage, res: http.ServerResponse, deps: ExchangeDeps) {
    this.req = req;
    this.res = res;
    this.deps = deps;
    this.method = req.method ?? 'GET';
    this.hasBody = requestHasBody(req);
    this.originalHeaders = requestHeaderList(req.rawHeaders, {
      method: this.method,
      path: req.url ?? '/',
      scheme: 'http',
      requestId: randomUUID,
    });
    this.requestId = getHeader(this.originalHeaders, 'x-request-id') ?? '';
    this.log = deps.log.child({ requestId: this.requestId });
    this.bodyCopy = deps.failureMode === 'FailOpen' && this.hasBody ? [] : null;
    if (deps.subsetHint) this.metadata[SUBSET_NAMESPACE] = { [SUBSET_KEY]: [...deps.subsetHint] };
  }

  start(): void {
    this.deps.metrics?.inFlight.inc();
    this.res.once('close', () => this.onClientClose());
    if (this.hasBody) {
      this.req.on('data', (chunk: Buffer) => this.onClientChunk(chunk));
      this.req.once('end', () => this.onClientEnd());
    }
    try {
      this.call = this.deps.client.open();
    } catch (err) {
      this.routerFailed('connect', err);
      return;
    }
    const call = this.call;
    call.on('data', (message: ProcessingResponse) => this.onRouterMessage(message));
    // Every end of the call arrives as a status; 'error' repeats non-OK ones and needs a listener.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => this.onRouterStatus(status));
    if (this.deps.pickTimeoutMs > 0) {
      this.pickTimer = setTimeout(
        () => this.routerFailed('timeout', new Error(`no pick within ${this.deps.pickTimeoutMs} ms`)),
        this.deps.pickTimeoutMs,
      );
    }
    // Envoy removes Content-Length from a request whose body goes through a FULL_DUPLEX_STREAMED
    // processor (the router may change the body) after showing it to the router; the router sets it
    // again if it wants it.
    this.sendToRouter(headersMessage('request_headers', this.originalHeaders, !this.hasBody, this.metadata, this.takeFirst()));
  }

  private takeFirst(): boolean {
    const first = this.firstMessage;
    this.firstMessage = false;
    return first;
  }

  private sendToRouter(message: Parameters<ProcessCall['write']>[0]): boolean {
    if (!this.extProc || !this.call) return true;
    return this.call.write(message);
  }

  // ---- client request body ------------------------------------------------------------------------

  private onClientChunk(chunk: Buffer): void {
    if (this.phase === 'done') return;
    if (this.bodyCopy) {
      this.bodyCopyBytes += chunk.length;
      // Past the bound FailOpen can no longer replay the body: a failure then answers 500, as Envoy
      // does for every request whose body reached the stream.
      if (this.bodyCopyBytes > this.deps.maxFallbackBodyBytes) this.bodyCopy = null;
      else this.bodyCopy.push(chunk);
    }
    if (this.bodySink === 'upstream') {
      this.writeUpstreamFromClient(chunk);
      return;
    }
    if (!this.extProc) return;
    // Each chunk as it came off the socket, no end_of_stream: Envoy's HTTP/1 codec does the same.
    if (!this.sendToRouter(bodyMessage('request_body', chunk, false, this.metadata))) this.pauseClientUntil(this.call!);
  }

  private onClientEnd(): void {
    this.clientBodyDone = true;
    if (this.phase === 'done') return;
    if (this.bodySink === 'upstream') {
      this.upstreamReq?.end();
      return;
    }
    // Envoy's HTTP/1 codec reports the end of a body as an empty chunk with end_of_stream.
    this.sendToRouter(bodyMessage('request_body', Buffer.alloc(0), true, this.metadata));
  }

  private pauseClientUntil(stream: { once(event: 'drain', fn: () => void): unknown }): void {
    this.req.pause();
    stream.once('drain', () => this.req.resume());
  }

  private writeUpstreamFromClient(chunk: Buffer): void {
    const up = this.upstreamReq;
    if (up && !up.write(chunk)) this.pauseClientUntil(up);
  }

  // ---- router messages ----------------------------------------------------------------------------

  private onRouterMessage(message: ProcessingResponse): void {
    if (this.phase === 'done' || !this.extProc) return;
    try {
      switch (message.response) {
        case 'immediate_response':
          return this.onImmediateResponse(message.immediate_response!);
        case 'request_headers':
          return this.onPick(message);
        case 'request_body':
          return this.onRequestBodyChunk(message);
        case 'response_headers':
          return this.onResponseHeadersAnswer(message);
        case 'response_body':
          return this.onResponseBodyChunk(message);
        default:
          // override_message_timeout alone (Envoy has no message timer in FULL_DUPLEX_STREAMED), or
          // an answer to trailers this gateway never sends (HTTP/1.1 has none, as Envoy's codec drops them).
          if (message.response === undefined) return;
          throw new ProtocolError(`unexpected ${message.response} response`);
      }
    } catch (err) {
      if (err instanceof ProtocolError || err instanceof HeaderMutationError) {
        this.routerFailed('protocol', err);
        return;
      }
      throw err;
    }
  }

  private receiveMetadata(message: ProcessingResponse): void {
    // Only the receiving namespace (envoy.lb) is taken, merged into what is there (Envoy's setDynamicMetadata).
    const lb = fromStruct(message.dynamic_metadata)[LB_NAMESPACE];
    if (lb && typeof lb === 'object' && !Array.isArray(lb)) this.metadata[LB_NAMESPACE] = { ...this.metadata[LB_NAMESPACE], ...lb };
  }

  private onPick(message: ProcessingResponse): void {
    if (this.phase !== 'pick') throw new ProtocolError('a second answer to the request headers');
    clearTimeout(this.pickTimer);
    this.deps.metrics?.pickSeconds.observe((performance.now() - this.started) / 1000);
    this.receiveMetadata(message);
    const override = message.mode_override;
    if (override?.response_header_mode === 'SKIP') this.sendResponseHeaders = false;
    if (override?.response_body_mode === 'NONE') this.sendResponseBody = false;

    const base = this.hasBody ? removeHeader(this.originalHeaders, 'content-length') : this.originalHeaders;
    const { headers, ignored } = applyHeaderMutation(base, message.request_headers?.response?.header_mutation);
    if (ignored.length > 0) this.log.debug('ignored header mutations the default rules forbid', { headers: ignored });

    const outcome = resolveDestination(getHeader(headers, DESTINATION_HEADER), this.metadata[LB_NAMESPACE]?.[DESTINATION_HEADER]);
    let endpoint: Endpoint | undefined;
    if (outcome.kind === 'picked') {
      endpoint = outcome.endpoint;
      if (!outcome.agree) {
        this.deps.metrics?.destinationMismatches.inc();
        this.log.limited(
          'gateway-destination-mismatch',
          'warn',
          'the router named different endpoints in the header and in envoy.lb metadata; using the header',
          {
            header: outcome.header,
            metadata: outcome.metadata,
          },
        );
      }
    } else {
      endpoint = this.deps.fallback.pick();
      this.log.limited('gateway-no-destination', 'warn', 'the router answered without a usable destination', {
        reason: outcome.reason,
        header: outcome.header,
        metadata: outcome.metadata,
        fallback: endpoint?.address ?? null,
      });
      if (!endpoint) {
        // Envoy: the ORIGINAL_DST cluster has no address to connect to.
        this.respondLocal(503, NO_HEALTHY_UPSTREAM);
        return;
      }
      this.deps.metrics?.fallbacks.inc({ reason: 'no_destination' });
    }
    this.phase = this.hasBody ? 'request-body' : 'upstream';
    this.bodyCopy = null;
    this.startUpstream(endpoint, headers);
    if (!this.hasBody) this.upstreamReq?.end();
  }

  private onRequestBodyChunk(message: ProcessingResponse): void {
    if (this.phase !== 'request-body') throw new ProtocolError(`a request body response in phase ${this.phase}`);
    const mutation = message.request_body?.response?.body_mutation;
    const streamed = mutation?.streamed_response;
    // Envoy 1.40 answers 500 to anything but a streamed_response in this mode ("Normal body mutation
    // response is received while body_mode_ is FULL_DUPLEX_STREAMED").
    if (!streamed) throw new ProtocolError('a request body response without streamed_response in FULL_DUPLEX_STREAMED mode');
    const up = this.upstreamReq!;
    const chunk = bodyBytes(streamed.body);
    if (chunk.length > 0 && !up.write(chunk) && this.call) {
      // Backpressure: stop reading the router's stream until the endpoint takes more.
      const call = this.call;
      call.pause();
      up.once('drain', () => call.resume());
    }
    if (streamed.end_of_stream) {
      up.end();
      this.phase = 'upstream';
    }
  }

  private onResponseHeadersAnswer(message: ProcessingResponse): void {
    if (this.phase !== 'response-headers') throw new ProtocolError(`a response headers answer in phase ${this.phase}`);
    this.receiveMetadata(message);
    const { headers, ignored } = applyHeaderMutation(this.responseHeaders, message.response_headers?.response?.header_mutation);
    if (ignored.length > 0) this.log.debug('ignored header mutations the default rules forbid', { headers: ignored });
    this.writeClientHead(headers);
    if (this.responseEndsEarly || !this.sendResponseBody) {
      if (this.responseEndsEarly) this.res.end();
      else this.passThroughResponse();
      return;
    }
    this.phase = 'response-body';
  }

  private onResponseBodyChunk(message: ProcessingResponse): void {
    if (this.phase !== 'response-body') throw new ProtocolError(`a response body chunk in phase ${this.phase}`);
    const streamed = message.response_body?.response?.body_mutation?.streamed_response;
    if (!streamed) throw new ProtocolError('a response body response without streamed_response in FULL_DUPLEX_STREAMED mode');
    const chunk = bodyBytes(streamed.body);
    if (chunk.length > 0 && !this.res.write(chunk) && this.call) {
      const call = this.call;
      call.pause();
      this.res.once('drain', () => call.resume());
    }
    if (streamed.end_of_stream) this.res.end();
  }

  private onImmediateResponse(response: ImmediateResponse): void {
    const status = immediateStatus(response);
    this.deps.metrics?.immediateResponses.inc({ code: String(status) });
    clearTimeout(this.pickTimer);
    this.log.debug('router answered the request', { status, details: response.details });
    this.respondLocal(status, bodyBytes(response.body), response.headers);
  }

  private onRouterStatus(status: grpc.StatusObject): void {
    if (!this.extProc || this.phase === 'done') return;
    if (status.code !== grpc.status.OK) {
      this.routerFailed(
        this.phase === 'pick' && status.code === grpc.status.UNAVAILABLE ? 'connect' : 'stream',
        new Error(`${grpc.status[status.code]}: ${status.details}`),
      );
      return;
    }
    // The router ended the stream cleanly. Like Envoy, carry on without it once the request is with
    // the endpoint: the rest of the response passes through unprocessed. Before that nothing usable
    // has come back, and the failure mode decides.
    if (this.phase === 'upstream' || this.phase === 'response-headers' || this.phase === 'response-body') {
      this.log.debug('router closed the stream; passing the rest of the response through', { phase: this.phase });
      const waitingForHeaders = this.phase === 'response-headers';
      this.extProc = false;
      this.call = undefined;
      if (waitingForHeaders) {
        this.writeClientHead(this.responseHeaders);
        if (this.responseEndsEarly) this.res.end();
        else this.passThroughResponse();
      } else if (this.phase === 'response-body') {
        this.passThroughResponse();
      }
      return;
    }
    this.routerFailed('stream', new Error('the router closed the stream before it finished the request'));
  }

  /**
   * The router cannot be used for this request. Before the pick the failure mode decides: FailOpen
   * sends the request, unchanged, to a fallback endpoint; FailClose answers 500 (504 for the pick
   * timeout), as Envoy's failure_mode_allow does. After the pick the request fails either way.
   *
   * Envoy: with FULL_DUPLEX_STREAMED bodies Envoy fails open only while no body chunk has been sent
   * on the stream (Filter::failureModeAllow), so a request with a body that met a dead router gets
   * 500 even with failure_mode_allow. The built-in front keeps a copy of the body until the pick
   * (FailOpen only, up to maxFallbackBodyBytes) and fails open for such requests too.
   */
  private routerFailed(stage: FailureStage, err: unknown): void {
    if (this.phase === 'done') return;
    clearTimeout(this.pickTimer);
    this.resetStream();
    const detail = err instanceof Error ? err.message : String(err);
    if (this.phase === 'pick') {
      const canReplay = !this.hasBody || this.bodyCopy !== null;
      const open = this.deps.failureMode === 'FailOpen' && canReplay;
      this.deps.metrics?.extProcFailures.inc({ stage, outcome: open ? 'fail_open' : 'fail_close' });
      this.log.limited(`gateway-extproc-${stage}`, 'warn', 'ext_proc failed before the pick', { stage, err: detail, failOpen: open });
      if (open) {
        this.failOpen();
        return;
      }
      this.respondLocal(stage === 'timeout' ? 504 : 500, Buffer.alloc(0));
      return;
    }
    this.log.limited(`gateway-extproc-late-${stage}`, 'warn', 'ext_proc failed after the pick', { stage, err: detail, phase: this.phase });
    this.respondLocal(500, Buffer.alloc(0));
  }

  private failOpen(): void {
    const endpoint = this.deps.fallback.pick();
    if (!endpoint) {
      // Envoy: ext_proc lets the request through, but the ORIGINAL_DST cluster has no address for it.
      this.respondLocal(503, NO_HEALTHY_UPSTREAM);
      return;
    }
    this.deps.metrics?.fallbacks.inc({ reason: 'fail_open' });
    this.phase = 'upstream';
    this.bodySink = 'upstream';
    this.startUpstream(endpoint, this.originalHeaders);
    if (!this.hasBody) {
      this.upstreamReq?.end();
      return;
    }
    for (const chunk of this.bodyCopy ?? []) this.writeUpstreamFromClient(chunk);
    this.bodyCopy = null;
    if (this.clientBodyDone) this.upstreamReq?.end();
  }

  // ---- upstream -----------------------------------------------------------------------------------

  private startUpstream(endpoint: Endpoint, headers: HeaderList): void {
    const path = getHeader(headers, ':path') ?? '/';
    const authority = getHeader(headers, ':authority') ?? '';
    if (this.extProc) this.metadata[LB_NAMESPACE] = { ...this.metadata[LB_NAMESPACE], [DESTINATION_SERVED_KEY]: endpoint.address };
    this.upstreamStarted = performance.now();
    const up = http.request({
      host: endpoint.host,
      port: endpoint.port,
      method: this.method,
      path,
      agent: this.deps.agent,
      setHost: false,
      headers: ['host', authority, ...toNodeHeaders(headers)],
    });
    this.upstreamReq = up;
    up.on('response', (res) => this.onUpstreamResponse(res));
    up.on('error', (err) => this.onUpstreamError(err));
    this.log.debug('proxying', { endpoint: endpoint.address, path, viaRouter: this.extProc });
  }

  private onUpstreamError(err: Error): void {
    if (this.phase === 'done') return;
    this.resetStream();
    // Envoy's wording, so clients and tests see the same reason either way.
    this.respondLocal(503, `upstream connect error or disconnect/reset before headers. reset reason: ${err.message}`);
  }

  private onUpstreamResponse(res: http.IncomingMessage): void {
    if (this.phase === 'done') {
      res.resume();
      return;
    }
    this.upstreamRes = res;
    this.deps.metrics?.upstreamSeconds.observe((performance.now() - this.upstreamStarted) / 1000);
    const list = responseHeaderList(res.statusCode ?? 502, res.rawHeaders);
    this.responseEndsEarly = responseEndsAtHeaders(this.method, res);
    res.on('aborted', () => this.onUpstreamAborted());
    res.on('error', () => this.onUpstreamAborted());

    if (!this.extProc || !this.sendResponseHeaders) {
      // Nothing to ask the router: headers and body go straight to the client.
      this.writeClientHead(list);
      this.passThroughResponse();
      return;
    }
    const viaRouter = this.sendResponseBody && !this.responseEndsEarly;
    // As on the request path, Envoy drops Content-Length after showing the headers to the router
    // when the body will go through it (the router may change the body length).
    this.responseHeaders = viaRouter ? removeHeader(list, 'content-length') : list;
    this.phase = 'response-headers';
    this.sendToRouter(headersMessage('response_headers', list, this.responseEndsEarly, this.metadata, this.takeFirst()));
    if (this.responseEndsEarly) {
      res.resume();
      return;
    }
    if (!viaRouter) return; // the body waits (paused) for the router's answer to the headers
    res.on('data', this.onUpstreamChunk);
    res.once('end', this.onUpstreamEnd);
  }

  // Named so that passThroughResponse can detach exactly these (node's agent listens to 'end' too).
  private readonly onUpstreamChunk = (chunk: Buffer): void => {
    if (!this.extProc) return;
    if (!this.sendToRouter(bodyMessage('response_body', chunk, false, this.metadata)) && this.call) {
      const res = this.upstreamRes!;
      res.pause();
      this.call.once('drain', () => res.resume());
    }
  };

  private readonly onUpstreamEnd = (): void => {
    if (this.extProc) this.sendToRouter(bodyMessage('response_body', Buffer.alloc(0), true, this.metadata));
  };

  /** The rest of the upstream response, straight to the client (router not involved or gone). */
  private passThroughResponse(): void {
    const res = this.upstreamRes;
    if (!res) return;
    this.phase = 'response-body';
    res.off('data', this.onUpstreamChunk);
    res.off('end', this.onUpstreamEnd);
    if (res.readableEnded) {
      this.res.end();
      return;
    }
    res.on('data', (chunk: Buffer) => {
      if (!this.res.write(chunk)) {
        res.pause();
        this.res.once('drain', () => res.resume());
      }
    });
    res.once('end', () => this.res.end());
    res.resume();
  }

  private onUpstreamAborted(): void {
    if (this.phase === 'done' || this.upstreamRes?.complete) return;
    this.log.debug('the endpoint reset the response');
    this.resetStream();
    if (this.res.headersSent) this.res.destroy();
    else this.respondLocal(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection termination');
  }

  // ---- client response ----------------------------------------------------------------------------

  private writeClientHead(headers: HeaderList): void {
    const status = Number(getHeader(headers, ':status') ?? 502);
    this.res.writeHead(status, toNodeHeaders(headers));
    // Send the head now: an SSE client must see it before the first event.
    this.res.flushHeaders();
  }

  /**
   * A response made here (Envoy's sendLocalReply): the status, Content-Length, text/plain when there
   * is a body, then the router's header mutation for an ImmediateResponse.
   */
  private respondLocal(status: number, body: Buffer | string, mutation?: ImmediateResponse['headers']): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    clearTimeout(this.pickTimer);
    this.resetStream();
    this.upstreamReq?.destroy();
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    let headers: HeaderList = [
      [':status', String(status)],
      ['content-length', String(bytes.length)],
    ];
    if (bytes.length > 0) headers.push(['content-type', 'text/plain']);
    if (mutation) {
      try {
        headers = applyHeaderMutation(headers, mutation).headers;
      } catch (err) {
        this.log.limited('gateway-immediate-mutation', 'error', 'immediate response header mutation failed', { err });
      }
    }
    this.res.writeHead(Number(getHeader(headers, ':status') ?? status), toNodeHeaders(headers));
    this.res.end(bytes);
  }

  /** Ends our use of the ext_proc stream. Envoy resets it (the router sees CANCELLED), so do we. */
  private resetStream(): void {
    this.extProc = false;
    const call = this.call;
    this.call = undefined;
    call?.cancel();
  }

  private onClientClose(): void {
    const finished = this.res.writableFinished;
    this.phase = 'done';
    clearTimeout(this.pickTimer);
    this.resetStream();
    if (!finished || !this.upstreamRes?.complete) this.upstreamReq?.destroy();
    this.deps.metrics?.inFlight.dec();
    this.deps.metrics?.requests.inc({ code: finished ? String(this.res.statusCode) : 'aborted' });
    this.log.debug('request done', {
      status: this.res.statusCode,
      complete: finished,
      ms: Math.round(performance.now() - this.started),
    });
  }
}
