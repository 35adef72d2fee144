import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/log.ts';
import { Director, type RoutingState } from '../director.ts';
import { createRouterMetrics, type RouterMetrics } from '../metrics.ts';
import { ModelTable } from '../request/models.ts';
import {
  SchedulingError,
  type Endpoint,
  type EndpointMetrics,
  type EndpointSource,
  type EndpointState,
  type InferenceRequest,
  type Scheduler,
  type SchedulingResult,
} from '../types.ts';
import {
  ExternalProcessorClient,
  fromStruct,
  headersToRecord,
  toStruct,
  type BodySendMode,
  type ProcessingRequest,
  type ProcessingResponse,
} from '../../envoy/ext-proc.ts';
import { startExtProcServer, type RunningExtProcServer } from './server.ts';
import { handleProcessStream } from './stream.ts';

// ---- in-test implementations of the router's interfaces ------------------------------------------

function endpoint(ip: string, port = 8000): Endpoint {
  return { address: `${ip}:${port}`, ip, port, name: `pod-${ip}`, namespace: 'default', labels: {} };
}

function freshMetrics(overrides: Partial<EndpointMetrics> = {}): EndpointMetrics {
  return {
    waitingRequests: 0,
    runningRequests: 0,
    kvCacheUsage: 0.1,
    runningLoras: [],
    waitingLoras: [],
    maxLoras: 0,
    scrapedAtMs: Date.now(),
    inFlightAtScrape: 0,
    ...overrides,
  };
}

/** A fixed endpoint list with real in-flight counting, as an EndpointSource must do it. */
class TestEndpoints implements EndpointSource {
  endpoints: Endpoint[] = [];
  metrics = new Map<string, EndpointMetrics | null>();
  readonly inFlight = new Map<string, number>();
  readonly started: string[] = [];
  readonly finished: string[] = [];
  isSynced = true;

  snapshot(): EndpointState[] {
    return this.endpoints.map((e) => ({
      endpoint: e,
      metrics: this.metrics.has(e.address) ? this.metrics.get(e.address)! : freshMetrics(),
      inFlight: this.inFlight.get(e.address) ?? 0,
      load: this.inFlight.get(e.address) ?? 0,
    }));
  }
  synced(): boolean {
    return this.isSynced;
  }
  requestStarted(address: string): void {
    this.started.push(address);
    this.inFlight.set(address, (this.inFlight.get(address) ?? 0) + 1);
  }
  requestFinished(address: string): void {
    this.finished.push(address);
    this.inFlight.set(address, (this.inFlight.get(address) ?? 0) - 1);
  }
  async close(): Promise<void> {}
}

/** Picks the candidates in the order given (or as `pick` says) and remembers what it was asked. */
class TestScheduler implements Scheduler {
  readonly calls: Array<{ request: InferenceRequest; candidates: string[] }> = [];
  pick: (request: InferenceRequest, candidates: EndpointState[]) => SchedulingResult | Promise<SchedulingResult> = (_r, candidates) => ({
    targets: candidates.slice(0, 1).map((c) => c.endpoint),
    profile: 'default',
    scores: {},
  });
  async schedule(request: InferenceRequest, candidates: EndpointState[]): Promise<SchedulingResult> {
    this.calls.push({ request, candidates: candidates.map((c) => c.endpoint.address) });
    return this.pick(request, candidates);
  }
}

// ---- a gRPC client as Envoy ---------------------------------------------------------------------------

interface ProcessClient extends grpc.Client {
  Process(): grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
}

/** One Process stream with a queue of the router's answers. */
class EnvoyStream {
  readonly call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
  private readonly received: ProcessingResponse[] = [];
  private readonly waiting: Array<(m: ProcessingResponse | null) => void> = [];
  ended = false;
  error: grpc.ServiceError | undefined;

  constructor(client: ProcessClient) {
    this.call = client.Process();
    this.call.on('data', (m: ProcessingResponse) => {
      const w = this.waiting.shift();
      if (w) w(m);
      else this.received.push(m);
    });
    const end = () => {
      this.ended = true;
      for (const w of this.waiting.splice(0)) w(null);
    };
    this.call.on('end', end);
    this.call.on('error', (err: grpc.ServiceError) => {
      this.error = err;
      end();
    });
  }

  send(...messages: ProcessingRequest[]): this {
    for (const m of messages) this.call.write(m);
    return this;
  }

  /** The next answer; fails after 5 s, or when the stream ends first. */
  next(): Promise<ProcessingResponse> {
    const queued = this.received.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(new Error('the stream ended with no further answer'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5_000);
      this.waiting.push((m) => {
        clearTimeout(timer);
        if (m) resolve(m);
        else reject(new Error(`the stream ended with no further answer${this.error ? `: ${this.error.message}` : ''}`));
      });
    });
  }

  async nextOf(kind: NonNullable<ProcessingResponse['response']>): Promise<ProcessingResponse> {
    const m = await this.next();
    expect(m.response).toBe(kind);
    return m;
  }

  /** Waits until the router ends the stream, with no answer left unread. */
  async closedByRouter(): Promise<void> {
    await until('the router to end the stream', () => this.ended);
    expect(this.received).toEqual([]);
  }
}

async function until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ---- messages as Envoy sends them ----------------------------------------------------------------------

function requestHeaders(
  headers: Record<string, string>,
  opts: { eos?: boolean; mode?: BodySendMode; subset?: unknown[] | null } = {},
): ProcessingRequest {
  const message: ProcessingRequest = {
    request_headers: {
      headers: {
        headers: Object.entries({ ':method': 'POST', ':authority': 'gw', ...headers }).map(([key, v]) => ({
          key,
          raw_value: Buffer.from(v),
        })),
      },
      end_of_stream: opts.eos ?? false,
    },
    protocol_config: { request_body_mode: opts.mode ?? 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' },
  };
  if (opts.subset !== undefined) {
    message.metadata_context = {
      filter_metadata: {
        'envoy.lb.subset_hint': toStruct(opts.subset === null ? {} : { 'x-gateway-destination-endpoint-subset': opts.subset as never }),
      },
    };
  }
  return message;
}

const requestBody = (body: Buffer | string, eos: boolean): ProcessingRequest => ({
  request_body: { body: Buffer.from(body), end_of_stream: eos },
});
const responseHeaders = (headers: Record<string, string>, opts: { eos?: boolean; served?: string } = {}): ProcessingRequest => ({
  response_headers: {
    headers: { headers: Object.entries({ ':status': '200', ...headers }).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
    end_of_stream: opts.eos ?? false,
  },
  ...(opts.served
    ? { metadata_context: { filter_metadata: { 'envoy.lb': toStruct({ 'x-gateway-destination-endpoint-served': opts.served }) } } }
    : {}),
});
const responseBody = (body: Buffer | string, eos: boolean): ProcessingRequest => ({
  response_body: { body: Buffer.from(body), end_of_stream: eos },
});

const COMPLETIONS = { ':path': '/v1/completions' };
const CHAT = { ':path': '/v1/chat/completions?api-version=1' };

function setHeaders(m: ProcessingResponse, member: 'request_headers' | 'request_body' | 'response_headers'): Record<string, string> {
  return headersToRecord({ headers: (m[member]?.response?.header_mutation?.set_headers ?? []).map((o) => o.header) });
}

function streamedBody(m: ProcessingResponse): { body: Buffer; eos: boolean } {
  const mutation = m.request_body?.response?.body_mutation ?? m.response_body?.response?.body_mutation;
  expect(mutation?.mutation).toBe('streamed_response');
  return { body: Buffer.from(mutation?.streamed_response?.body ?? []), eos: mutation?.streamed_response?.end_of_stream ?? false };
}

/** Reads streamed request-body answers until end_of_stream; returns the chunks. */
async function readStreamedRequestBody(s: EnvoyStream): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for (;;) {
    const { body, eos } = streamedBody(await s.nextOf('request_body'));
    chunks.push(body);
    if (eos) return chunks;
  }
}

// ---- the router under test -----------------------------------------------------------------------------

let endpoints: TestEndpoints;
let scheduler: TestScheduler;
let state: RoutingState;
let registry: Registry;
let metrics: RouterMetrics;
let server: RunningExtProcServer;
let client: ProcessClient;

beforeAll(async () => {
  const director = new Director({
    endpoints: {
      snapshot: () => endpoints.snapshot(),
      synced: () => true,
      requestStarted: (a) => endpoints.requestStarted(a),
      requestFinished: (a) => endpoints.requestFinished(a),
      close: async () => {},
    },
    state: () => state,
    log: silentLogger,
    metrics: lazyMetrics(),
    testHooks: true,
  });
  server = await startExtProcServer({
    host: '127.0.0.1',
    port: 0,
    healthPort: 0,
    secureServing: false,
    synced: () => true,
    log: silentLogger,
    handler: (call) =>
      handleProcessStream(call, {
        director,
        log: silentLogger,
        metrics: lazyMetrics(),
        maxRequestBodyBytes: 4 * 1024 * 1024,
        testHooks: true,
      }),
  });
  client = new ExternalProcessorClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as ProcessClient;
});

/** The metrics object of the current test (each test gets a fresh registry). */
function lazyMetrics(): RouterMetrics {
  return new Proxy({} as RouterMetrics, { get: (_t, key) => metrics[key as keyof RouterMetrics] });
}

afterAll(async () => {
  client.close();
  await server.close();
});

beforeEach(() => {
  endpoints = new TestEndpoints();
  endpoints.endpoints = [endpoint('10.0.0.1'), endpoint('10.0.0.2'), endpoint('10.0.0.3')];
  scheduler = new TestScheduler();
  state = {
    scheduler,
    models: new ModelTable([]),
    saturation: { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessMs: 60_000 },
  };
  registry = new Registry();
  metrics = createRouterMetrics(registry, { endpoints: () => endpoints.snapshot() });
});

const opened: EnvoyStream[] = [];
const open = () => {
  const s = new EnvoyStream(client);
  opened.push(s);
  return s;
};

// A test that fails half-way leaves its stream open; cancel it so the next test starts clean.
afterEach(async () => {
  for (const s of opened.splice(0)) if (!s.ended) s.call.cancel();
  await until('every stream to close', () => server.activeStreams() === 0);
});

/** A sample's value by its full name (histograms: name_sum, name_count) and labels. */
async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  for (const metric of await registry.getMetricsAsJSON()) {
    const values = metric.values as Array<{ metricName?: string; labels: Record<string, unknown>; value: number }>;
    const match = values.find(
      (v) => (v.metricName ?? metric.name) === name && Object.entries(labels).every(([k, val]) => v.labels[k] === val),
    );
    if (match) return match.value;
  }
  return undefined;
}

// ---- tests -------------------------------------------------------------------------------------------

describe('ext_proc stream: request path (FULL_DUPLEX_STREAMED)', () => {
  it('answers a complete body with the pick as header and envoy.lb metadata, then the body in streamed chunks', async () => {
    const body = JSON.stringify({ model: 'm', prompt: 'hello world', max_tokens: 4 });
    const s = open().send(requestHeaders(COMPLETIONS), requestBody(body.slice(0, 10), false), requestBody(body.slice(10), true));

    const headers = await s.nextOf('request_headers');
    expect(headers.request_headers?.response?.clear_route_cache).toBe(true);
    expect(setHeaders(headers, 'request_headers')).toEqual({
      'x-gateway-destination-endpoint': '10.0.0.1:8000',
      'content-length': String(Buffer.byteLength(body)),
    });
    expect(fromStruct(headers.dynamic_metadata)).toEqual({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.1:8000' } });
    const chunks = await readStreamedRequestBody(s);
    expect(Buffer.concat(chunks).toString()).toBe(body);

    expect(scheduler.calls).toHaveLength(1);
    expect(scheduler.calls[0]!.request).toMatchObject({
      kind: 'completions',
      requestedModel: 'm',
      targetModel: 'm',
      prompt: 'hello world',
      priority: 0,
      bodyBytes: body.length,
    });
    expect(scheduler.calls[0]!.candidates).toEqual(['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000']);
    expect(endpoints.started).toEqual(['10.0.0.1:8000']);
    s.call.end();
    await s.closedByRouter();
    expect(endpoints.finished).toEqual(['10.0.0.1:8000']);
  });

  it('sends every target in order, comma-separated, in the header and the metadata alike', async () => {
    scheduler.pick = (_r, c) => ({ targets: [c[2]!.endpoint, c[0]!.endpoint], profile: 'default', scores: {} });
    const s = open().send(requestHeaders(COMPLETIONS), requestBody('{"model":"m","prompt":"x"}', true));
    const headers = await s.nextOf('request_headers');
    expect(setHeaders(headers, 'request_headers')['x-gateway-destination-endpoint']).toBe('10.0.0.3:8000,10.0.0.1:8000');
    expect(fromStruct(headers.dynamic_metadata)).toEqual({
      'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.3:8000,10.0.0.1:8000' },
    });
    await readStreamedRequestBody(s);
    expect(endpoints.started).toEqual(['10.0.0.3:8000']);
    s.call.end();
    await s.closedByRouter();
  });

  it('re-emits a 2 MB body in chunks of at most 62,000 bytes and ignores the second end of stream Envoy sends', async () => {
    const prompt = 'x'.repeat(2 * 1024 * 1024);
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt }));
    const s = open().send(requestHeaders(COMPLETIONS));
    for (let at = 0; at < body.length; at += 256 * 1024)
      s.send(requestBody(body.subarray(at, at + 256 * 1024), at + 256 * 1024 >= body.length));
    s.send(requestBody(Buffer.alloc(0), true)); // Envoy >= 1.35 repeats end_of_stream for bodies over 1 MB

    const headers = await s.nextOf('request_headers');
    expect(setHeaders(headers, 'request_headers')['content-length']).toBe(String(body.length));
    const chunks = await readStreamedRequestBody(s);
    expect(chunks.length).toBe(Math.ceil(body.length / 62_000));
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(62_000);
    expect(Buffer.concat(chunks).equals(body)).toBe(true);

    // The duplicate end of stream produced nothing: the next answer is to the response headers.
    s.send(responseHeaders({ 'content-type': 'application/json' }));
    await s.nextOf('response_headers');
    expect(scheduler.calls).toHaveLength(1);
    s.call.end();
    await s.closedByRouter();
  });

  it('still sends one (empty) body chunk for an empty body on a non-inference path', async () => {
    const s = open().send(requestHeaders({ ':path': '/v1/embeddings' }), requestBody('', true));
    const headers = await s.nextOf('request_headers');
    expect(setHeaders(headers, 'request_headers')['content-length']).toBe('0');
    const chunks = await readStreamedRequestBody(s);
    expect(chunks).toEqual([Buffer.alloc(0)]);
    expect(scheduler.calls[0]!.request.kind).toBe('other');
    s.call.end();
    await s.closedByRouter();
  });

  it('routes a request without a body (headers end_of_stream) as kind other and answers the headers at once', async () => {
    const s = open().send(requestHeaders({ ':path': '/v1/models', ':method': 'GET' }, { eos: true }));
    const headers = await s.nextOf('request_headers');
    expect(setHeaders(headers, 'request_headers')).toEqual({ 'x-gateway-destination-endpoint': '10.0.0.1:8000' });
    expect(scheduler.calls[0]!.request).toMatchObject({ kind: 'other', path: '/v1/models', requestedModel: '' });
    s.call.end();
    await s.closedByRouter();
  });

  it('rewrites the model in the body when an InferenceModel maps it, with the new content-length', async () => {
    state.models = new ModelTable([{ modelName: 'chat', targetModels: [{ name: 'lora-a' }] }], { baseModel: 'base' });
    const body = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const s = open().send(requestHeaders(CHAT), requestBody(body, true));
    const headers = await s.nextOf('request_headers');
    const out = Buffer.concat(await readStreamedRequestBody(s));
    expect(JSON.parse(out.toString())).toEqual({ model: 'lora-a', messages: [{ role: 'user', content: 'hi' }], stream: true });
    expect(setHeaders(headers, 'request_headers')['content-length']).toBe(String(out.length));
    expect(scheduler.calls[0]!.request).toMatchObject({
      kind: 'chat',
      path: '/v1/chat/completions',
      requestedModel: 'chat',
      targetModel: 'lora-a',
      loraName: 'lora-a',
      stream: true,
    });
    s.call.end();
    await s.closedByRouter();
  });

  it('passes the client bytes through untouched when the model is not mapped', async () => {
    state.models = new ModelTable([{ modelName: 'chat' }]);
    const body = '{ "model" : "chat",\n  "prompt": "spacing kept", "temperature": 1.0 }';
    const s = open().send(requestHeaders(COMPLETIONS), requestBody(body, true));
    await s.nextOf('request_headers');
    expect(Buffer.concat(await readStreamedRequestBody(s)).toString()).toBe(body);
    s.call.end();
    await s.closedByRouter();
  });

  it('answers trailers with an empty trailers response, after the body when the trailers end the request', async () => {
    const body = '{"model":"m","prompt":"t"}';
    const s = open().send(requestHeaders(COMPLETIONS), requestBody(body, false), { request_trailers: { trailers: { headers: [] } } });
    await s.nextOf('request_headers');
    const { body: chunk, eos } = streamedBody(await s.nextOf('request_body'));
    expect(chunk.toString()).toBe(body);
    expect(eos).toBe(false); // the trailers end the request
    const trailers = await s.nextOf('request_trailers');
    expect(trailers.request_trailers).toEqual({});
    s.call.end();
    await s.closedByRouter();
  });
});

describe('ext_proc stream: BUFFERED request body', () => {
  it('answers the headers at once, then the body with the pick, the full body and the metadata', async () => {
    state.models = new ModelTable([{ modelName: 'chat', targetModels: [{ name: 'base' }] }]);
    const s = open().send(requestHeaders(COMPLETIONS, { mode: 'BUFFERED' }));
    const headers = await s.nextOf('request_headers');
    expect(headers.request_headers?.response?.header_mutation).toBeUndefined();
    s.send(requestBody('{"model":"chat","prompt":"p"}', true));
    const answer = await s.nextOf('request_body');
    const common = answer.request_body?.response;
    expect(common?.clear_route_cache).toBe(true);
    expect(common?.body_mutation?.mutation).toBe('body');
    const out = Buffer.from(common?.body_mutation?.body ?? []);
    expect(JSON.parse(out.toString())).toEqual({ model: 'base', prompt: 'p' });
    expect(setHeaders(answer, 'request_body')).toEqual({
      'x-gateway-destination-endpoint': '10.0.0.1:8000',
      'content-length': String(out.length),
    });
    expect(fromStruct(answer.dynamic_metadata)).toEqual({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.1:8000' } });
    s.call.end();
    await s.closedByRouter();
  });
});

describe('ext_proc stream: refusals', () => {
  async function refusal(
    messages: ProcessingRequest[],
  ): Promise<{ code: unknown; reason: string; body: { error: { message: string; type: string; code: string } } }> {
    const s = open().send(...messages);
    const m = await s.nextOf('immediate_response');
    const ir = m.immediate_response!;
    const headers = headersToRecord({ headers: (ir.headers?.set_headers ?? []).map((o) => o.header) });
    expect(headers['content-type']).toBe('application/json');
    await s.closedByRouter();
    return {
      code: ir.status.code,
      reason: headers['x-llm-d-request-dropped-reason']!,
      body: JSON.parse(Buffer.from(ir.body as Uint8Array).toString()),
    };
  }

  it('answers an unparseable body with 400 bad-request and an OpenAI-shaped error', async () => {
    const r = await refusal([requestHeaders(COMPLETIONS), requestBody('{"model": "m", "prompt": ', true)]);
    expect(r.code).toBe('BadRequest');
    expect(r.reason).toBe('bad-request');
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', code: 'bad-request' });
    expect(r.body.error.message).toMatch(/not valid JSON/);
    expect(await metricValue('kvroute_router_request_errors_total', { code: '400', reason: 'bad-request' })).toBe(1);
    expect(endpoints.started).toEqual([]);
  });

  it('answers a body without a model with 400 naming the field', async () => {
    const r = await refusal([requestHeaders(CHAT), requestBody('{"messages":[{"role":"user","content":"x"}]}', true)]);
    expect(r.reason).toBe('bad-request');
    expect(r.body.error.message).toMatch(/^model: /);
  });

  it('answers a model the pool does not serve with 404 model-not-found', async () => {
    state.models = new ModelTable([{ modelName: 'served' }]);
    const r = await refusal([requestHeaders(COMPLETIONS), requestBody('{"model":"other","prompt":"x"}', true)]);
    expect(r.code).toBe('NotFound');
    expect(r.reason).toBe('model-not-found');
    expect(scheduler.calls).toEqual([]);
  });

  it('answers 503 rejected-no-endpoints when the pool has no endpoint', async () => {
    endpoints.endpoints = [];
    const r = await refusal([requestHeaders(COMPLETIONS), requestBody('{"model":"m","prompt":"x"}', true)]);
    expect(r.code).toBe('ServiceUnavailable');
    expect(r.reason).toBe('rejected-no-endpoints');
  });

  it('answers 429 rejected-saturated for a sheddable request when every candidate is saturated', async () => {
    state.models = new ModelTable([{ modelName: 'batch', criticality: 'Sheddable' }, { modelName: 'chat' }]);
    for (const e of endpoints.endpoints) endpoints.metrics.set(e.address, freshMetrics({ waitingRequests: 50 }));
    const r = await refusal([requestHeaders(COMPLETIONS), requestBody('{"model":"batch","prompt":"x"}', true)]);
    expect(r.code).toBe('TooManyRequests');
    expect(r.reason).toBe('rejected-saturated');
    expect(r.body.error.type).toBe('rate_limit_exceeded');

    // The same saturation does not stop a standard request.
    const s = open().send(requestHeaders(COMPLETIONS), requestBody('{"model":"chat","prompt":"x"}', true));
    await s.nextOf('request_headers');
    await readStreamedRequestBody(s);
    s.call.end();
    await s.closedByRouter();
  });

  it('passes on the status and reason of a SchedulingError, and answers 500 when the scheduler fails otherwise', async () => {
    scheduler.pick = () => {
      throw new SchedulingError(429, 'rejected-load-bound', 'every endpoint is past its load bound');
    };
    const shed = await refusal([requestHeaders(COMPLETIONS), requestBody('{"model":"m","prompt":"x"}', true)]);
    expect(shed).toMatchObject({ code: 'TooManyRequests', reason: 'rejected-load-bound' });
    scheduler.pick = () => {
      throw new TypeError('a bug');
    };
    const broken = await refusal([requestHeaders(COMPLETIONS), requestBody('{"model":"m","prompt":"x"}', true)]);
    expect(broken).toMatchObject({ code: 'InternalServerError', reason: 'internal-error' });
    expect(broken.body.error.message).not.toMatch(/a bug/);
  });

  it('answers 413 when the body outgrows the limit, without buffering the rest', async () => {
    const big = Buffer.alloc(1024 * 1024, 0x61);
    const r = await refusal([requestHeaders(COMPLETIONS), ...[0, 1, 2, 3, 4].map(() => requestBody(big, false))]);
    expect(r.code).toBe('PayloadTooLarge');
    expect(r.reason).toBe('request-too-large');
  });
});

describe('ext_proc stream: subset hint and conformance header', () => {
  const routed = async (...messages: ProcessingRequest[]) => {
    const s = open().send(...messages);
    const headers = await s.nextOf('request_headers');
    await readStreamedRequestBody(s);
    s.call.end();
    await s.closedByRouter();
    return setHeaders(headers, 'request_headers')['x-gateway-destination-endpoint'];
  };

  it('restricts the candidates to the hinted IPs (whatever port the hint carries)', async () => {
    const dest = await routed(
      requestHeaders(COMPLETIONS, { subset: ['10.0.0.3:54321', '10.0.0.2'] }),
      requestBody('{"model":"m","prompt":"x"}', true),
    );
    expect(scheduler.calls[0]!.candidates).toEqual(['10.0.0.2:8000', '10.0.0.3:8000']);
    expect(dest).toBe('10.0.0.2:8000');
  });

  it('treats a namespace without the subset key as no hint', async () => {
    await routed(requestHeaders(COMPLETIONS, { subset: null }), requestBody('{"model":"m","prompt":"x"}', true));
    expect(scheduler.calls[0]!.candidates).toHaveLength(3);
  });

  it('answers 503 for an empty subset, and for a subset that matches no endpoint', async () => {
    for (const subset of [[], ['192.168.1.1:8000']]) {
      const s = open().send(requestHeaders(COMPLETIONS, { subset }), requestBody('{"model":"m","prompt":"x"}', true));
      const m = await s.nextOf('immediate_response');
      expect(m.immediate_response?.status.code).toBe('ServiceUnavailable');
      await s.closedByRouter();
    }
    expect(scheduler.calls).toEqual([]);
  });

  it('honours test-epp-endpoint-selection by IP, or by address when it has a port', async () => {
    endpoints.endpoints.push(endpoint('10.0.0.2', 8001));
    await routed(
      requestHeaders({ ...COMPLETIONS, 'test-epp-endpoint-selection': '10.0.0.2' }),
      requestBody('{"model":"m","prompt":"x"}', true),
    );
    expect(scheduler.calls[0]!.candidates).toEqual(['10.0.0.2:8000', '10.0.0.2:8001']);
    await routed(
      requestHeaders({ ...COMPLETIONS, 'test-epp-endpoint-selection': '10.0.0.9,10.0.0.2:8001' }),
      requestBody('{"model":"m","prompt":"x"}', true),
    );
    expect(scheduler.calls[1]!.candidates).toEqual(['10.0.0.2:8001']);
  });
});

describe('ext_proc stream: response path', () => {
  async function routedStream(body = '{"model":"m","prompt":"x","stream":true}'): Promise<EnvoyStream> {
    const s = open().send(requestHeaders(COMPLETIONS), requestBody(body, true));
    await s.nextOf('request_headers');
    await readStreamedRequestBody(s);
    return s;
  }

  it('passes SSE chunks through unchanged, each answered before the next is sent', async () => {
    scheduler.pick = (_r, c) => ({
      targets: [c[0]!.endpoint],
      profile: 'default',
      scores: {},
      responseHeaders: { 'x-session-token': 'dG9rZW4=' },
    });
    const s = await routedStream();
    s.send(responseHeaders({ 'content-type': 'text/event-stream' }));
    const headers = await s.nextOf('response_headers');
    expect(setHeaders(headers, 'response_headers')).toEqual({ 'x-session-token': 'dG9rZW4=' });

    const events = [
      'data: {"choices":[{"text":"a"}],"usage":null}\n\n',
      'data: {"choices":[{"text":"b"}],"usage":null}\n\n',
      'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":8}}}\n\ndata: [DONE]\n\n',
    ];
    for (const [i, event] of events.entries()) {
      const last = i === events.length - 1;
      s.send(responseBody(event, last));
      const { body, eos } = streamedBody(await s.nextOf('response_body'));
      expect(body.toString()).toBe(event);
      expect(eos).toBe(last);
    }
    expect(await metricValue('kvroute_router_prompt_tokens_sum', { model: 'm' })).toBe(12);
    expect(await metricValue('kvroute_router_completion_tokens_sum', { model: 'm' })).toBe(2);
    expect(await metricValue('kvroute_router_cached_tokens_sum', { model: 'm' })).toBe(8);
    expect(await metricValue('kvroute_router_response_size_bytes_sum', { model: 'm' })).toBe(events.join('').length);
    // Released at the response's end, before Envoy closes the stream.
    expect(endpoints.finished).toEqual(['10.0.0.1:8000']);
    s.send({ response_trailers: { trailers: { headers: [] } } });
    expect((await s.nextOf('response_trailers')).response_trailers).toEqual({});
    s.call.end();
    await s.closedByRouter();
    expect(endpoints.finished).toEqual(['10.0.0.1:8000']);
  });

  it('reads usage at the end of a JSON body', async () => {
    const s = await routedStream('{"model":"m","prompt":"x"}');
    s.send(responseHeaders({ 'content-type': 'application/json' }));
    await s.nextOf('response_headers');
    const json = JSON.stringify({
      id: 'c',
      choices: [{ text: 'hello' }],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
    });
    s.send(responseBody(json.slice(0, 20), false), responseBody(json.slice(20), true));
    expect(streamedBody(await s.nextOf('response_body')).body.toString()).toBe(json.slice(0, 20));
    expect(streamedBody(await s.nextOf('response_body')).body.toString()).toBe(json.slice(20));
    expect(await metricValue('kvroute_router_prompt_tokens_sum', { model: 'm' })).toBe(3);
    s.call.end();
    await s.closedByRouter();
  });

  it('moves the in-flight count to the endpoint the gateway says served, and echoes it for conformance', async () => {
    scheduler.pick = (_r, c) => ({ targets: [c[0]!.endpoint, c[1]!.endpoint], profile: 'default', scores: {} });
    const s = await routedStream();
    expect(endpoints.inFlight.get('10.0.0.1:8000')).toBe(1);
    s.send(responseHeaders({ 'content-type': 'text/event-stream' }, { served: '10.0.0.2:8000' }));
    const headers = await s.nextOf('response_headers');
    expect(setHeaders(headers, 'response_headers')).toEqual({ 'x-conformance-test-served-endpoint': '10.0.0.2:8000' });
    expect(endpoints.inFlight.get('10.0.0.1:8000')).toBe(0);
    expect(endpoints.inFlight.get('10.0.0.2:8000')).toBe(1);
    s.call.end();
    await s.closedByRouter();
    expect(endpoints.inFlight.get('10.0.0.2:8000')).toBe(0);
  });

  it('releases the in-flight count once when the response has no body', async () => {
    const s = await routedStream();
    s.send(responseHeaders({ ':status': '204' }, { eos: true }));
    await s.nextOf('response_headers');
    expect(endpoints.finished).toEqual(['10.0.0.1:8000']);
    s.call.end();
    await s.closedByRouter();
    expect(endpoints.finished).toEqual(['10.0.0.1:8000']);
  });

  it('releases the in-flight count when Envoy cancels the stream mid-response', async () => {
    const s = await routedStream();
    s.send(responseHeaders({ 'content-type': 'text/event-stream' }), responseBody('data: {}\n\n', false));
    await s.nextOf('response_headers');
    await s.nextOf('response_body');
    expect(endpoints.inFlight.get('10.0.0.1:8000')).toBe(1);
    s.call.cancel();
    await until('the in-flight count to be released', () => endpoints.inFlight.get('10.0.0.1:8000') === 0);
    await until('the router to forget the stream', () => server.activeStreams() === 0);
    expect(endpoints.finished).toEqual(['10.0.0.1:8000']);
  });

  it('gives back the count of a pick whose stream was cancelled while it was being scheduled', async () => {
    let release: () => void = () => {};
    scheduler.pick = (_r, c) =>
      new Promise((resolve) => (release = () => resolve({ targets: [c[0]!.endpoint], profile: 'default', scores: {} })));
    const s = open().send(requestHeaders(COMPLETIONS), requestBody('{"model":"m","prompt":"x"}', true));
    await until('the scheduler to be asked', () => scheduler.calls.length === 1);
    s.call.cancel();
    await until('the router to forget the stream', () => server.activeStreams() === 0);
    release();
    // The pick was counted when it was made; the stream that can no longer send it gives it back.
    await until('the pick to be released', () => endpoints.finished.length === 1);
    expect(endpoints.started).toEqual(['10.0.0.1:8000']);
    expect(endpoints.inFlight.get('10.0.0.1:8000')).toBe(0);
  });
});
