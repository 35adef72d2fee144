// Fuzzes the router's ext_proc server in-process over real gRPC, as a hostile or broken gateway would
// drive it: messages out of order (body before headers, trailers first, headers twice), bodies
// without end_of_stream then a half-close or a cancel, invalid UTF-8, non-JSON and wrongly typed JSON,
// header names such as __proto__, huge header counts and values, and a 100 MB body. The contract: an
// ImmediateResponse 4xx with a message for what cannot be routed (413 too large, 431 headers, 400
// malformed), never a 500, never a crash; every stream ends and releases its in-flight count; the body
// cap holds while the body streams in. Recorded sequences: testdata/fuzz/.

import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { silentLogger } from '../../common/log.ts';
import { fuzzParams, fuzzTimeout, readCorpus } from '../../../test/support/fuzz.ts';
import { until } from '../../../test/support/until.ts';
import { DEFAULT_SATURATION, Director } from '../director.ts';
import { ModelTable } from '../request/models.ts';
import type { Endpoint, EndpointSource } from '../types.ts';
import {
  ExternalProcessorClient,
  headersToRecord,
  type BodySendMode,
  type HeaderValue,
  type ProcessingRequest,
  type ProcessingResponse,
} from '../../envoy/ext-proc.ts';
import { startExtProcServer, type RunningExtProcServer } from './server.ts';
import { handleProcessStream } from './stream.ts';

const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata', 'fuzz');
const MAX_BODY = 64 * 1024;
const MAX_HEADERS = 64;
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_STREAMS = 64;
/** What an ImmediateResponse may say: the request's fault (4xx) or overload (503), never a 500. */
const ALLOWED = ['BadRequest', 'NotFound', 'PayloadTooLarge', 'RequestHeaderFieldsTooLarge', 'TooManyRequests', 'ServiceUnavailable'];

interface ProcessClient extends grpc.Client {
  Process(): grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
}

const ENDPOINTS: Endpoint[] = ['10.2.0.1', '10.2.0.2'].map((ip) => ({
  address: `${ip}:8000`,
  ip,
  port: 8000,
  name: `pod-${ip}`,
  namespace: 'default',
  labels: {},
}));

/** Two endpoints, counting requests in flight on each, as an EndpointSource must. */
const inFlight = new Map<string, number>();
const endpointSource: EndpointSource = {
  snapshot: () => ENDPOINTS.map((endpoint) => ({ endpoint, metrics: null, inFlight: inFlight.get(endpoint.address) ?? 0, load: 0 })),
  synced: () => true,
  requestStarted: (a) => void inFlight.set(a, (inFlight.get(a) ?? 0) + 1),
  requestFinished: (a) => void inFlight.set(a, (inFlight.get(a) ?? 0) - 1),
  close: async () => {},
};
const totalInFlight = () => [...inFlight.values()].reduce((a, b) => a + b, 0);

let server: RunningExtProcServer;
let client: ProcessClient;

beforeAll(async () => {
  const director = new Director({
    endpoints: endpointSource,
    state: () => ({
      scheduler: { schedule: async (_r, c) => ({ targets: [c[0]!.endpoint], profile: 'default', scores: {} }) },
      models: new ModelTable([]),
      saturation: DEFAULT_SATURATION,
    }),
    log: silentLogger,
  });
  server = await startExtProcServer({
    host: '127.0.0.1',
    port: 0,
    healthPort: 0,
    secureServing: false,
    synced: () => true,
    log: silentLogger,
    maxConcurrentStreams: MAX_STREAMS,
    handler: (call) =>
      handleProcessStream(call, {
        director,
        log: silentLogger,
        maxRequestBodyBytes: MAX_BODY,
        maxRequestHeaders: MAX_HEADERS,
        maxRequestHeaderBytes: MAX_HEADER_BYTES,
      }),
  });
  client = new ExternalProcessorClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as ProcessClient;
});

afterAll(async () => {
  client.close();
  await server.close();
});

afterEach(async () => {
  await until(() => server.activeStreams() === 0 && totalInFlight() === 0, {
    message: `every stream closed and released (open ${server.activeStreams()}, in flight ${totalInFlight()})`,
    timeoutMs: 5_000,
  });
});

type Ending = 'half-close' | 'cancel';

/**
 * Sends the messages in order, gives the router `settleMs` to answer, then half-closes or cancels the
 * stream as `ending` says (a router that already ended it is unaffected). Resolves with every answer
 * once the stream is over; a router that never lets it end fails the afterEach wait.
 */
function drive(messages: ProcessingRequest[], ending: Ending, settleMs = 150): Promise<ProcessingResponse[]> {
  return new Promise((resolve) => {
    const call = client.Process();
    const answers: ProcessingResponse[] = [];
    let done = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = () => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      resolve(answers);
    };
    call.on('data', (m: ProcessingResponse) => answers.push(m));
    call.on('error', () => finish());
    call.on('status', () => finish());
    for (const m of messages) call.write(m);
    timers.push(
      setTimeout(() => {
        if (ending === 'cancel') call.cancel();
        else call.end();
        timers.push(setTimeout(finish, 1_000));
      }, settleMs),
    );
  });
}

/** Checks every answer: ImmediateResponses carry an allowed status and an OpenAI-shaped error naming the problem. */
function checkAnswers(answers: ProcessingResponse[]): void {
  const immediate = answers.filter((a) => a.immediate_response);
  expect(immediate.length).toBeLessThanOrEqual(1);
  for (const a of immediate) {
    const ir = a.immediate_response!;
    expect(ALLOWED).toContain(ir.status.code);
    const body = JSON.parse(Buffer.from(ir.body as Uint8Array).toString('utf8')) as { error: { message: string; code: string } };
    expect(body.error.message.length).toBeGreaterThan(0);
    // Nothing follows a refusal.
    expect(answers[answers.length - 1]).toBe(a);
  }
}

// ---- arbitraries ---------------------------------------------------------------------------------

const PATHS = [
  '/v1/completions',
  '/v1/chat/completions',
  '/v1/chat/completions/',
  '/v1/models',
  '/',
  '',
  '/v1/completions?x=%zz',
  '\u0000',
];
const headerKey = fc.oneof(
  fc.constantFrom(
    ':path',
    ':method',
    ':authority',
    'content-type',
    'x-request-id',
    '__proto__',
    'constructor',
    'toString',
    'hasOwnProperty',
    'x-gateway-model-name',
  ),
  fc.string({ maxLength: 16 }),
);
const headerValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 32 }) },
  { weight: 1, arbitrary: fc.constant('v'.repeat(MAX_HEADER_BYTES + 1)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }) },
);
const header: fc.Arbitrary<HeaderValue> = fc
  .tuple(headerKey, headerValue, fc.boolean())
  .map(([key, value, raw]) =>
    typeof value === 'string' ? (raw ? { key, raw_value: Buffer.from(value) } : { key, value }) : { key, raw_value: Buffer.from(value) },
  );
const headerList: fc.Arbitrary<HeaderValue[]> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(fc.constantFrom(...PATHS), fc.array(header, { maxLength: 6 }))
      .map(([p, hs]): HeaderValue[] => [{ key: ':path', raw_value: Buffer.from(p) }, ...hs]),
  },
  { weight: 1, arbitrary: fc.array(header, { maxLength: 4 }) },
  {
    weight: 1,
    arbitrary: fc
      .nat({ max: 3 * MAX_HEADERS })
      .map((n): HeaderValue[] => Array.from({ length: n }, (_, i) => ({ key: `x-h${i % 7}`, raw_value: Buffer.from('1') }))),
  },
);
const mode = fc.constantFrom<BodySendMode | undefined>(
  'FULL_DUPLEX_STREAMED',
  'BUFFERED',
  'STREAMED',
  'NONE',
  'BUFFERED_PARTIAL',
  undefined,
);

const contentPart = fc.oneof(
  fc.record({ type: fc.constant('text'), text: fc.string({ unit: 'grapheme', maxLength: 20 }) }),
  fc.record({ type: fc.constantFrom('image_url', 'input_audio', 'x'), image_url: fc.anything() }, { requiredKeys: ['type'] }),
  fc.anything({ maxDepth: 2 }),
);
const message = fc.record(
  {
    role: fc.oneof(fc.constantFrom('user', 'system', 'assistant', 'tool', 'developer'), fc.anything({ maxDepth: 1 })),
    content: fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.array(contentPart, { maxLength: 3 }),
      fc.constant(null),
      fc.anything({ maxDepth: 2 }),
    ),
    tool_calls: fc.anything({ maxDepth: 2 }),
    name: fc.string(),
  },
  { requiredKeys: ['role'] },
);
const jsonBody = fc
  .oneof(
    fc.record(
      {
        model: fc.oneof(fc.constantFrom('m', ''), fc.string({ unit: 'grapheme' }), fc.anything({ maxDepth: 1 })),
        prompt: fc.oneof(
          fc.string({ unit: 'grapheme' }),
          fc.array(fc.nat()),
          fc.array(fc.string()),
          fc.array(fc.array(fc.integer())),
          fc.anything({ maxDepth: 2 }),
        ),
        messages: fc.oneof(fc.array(message, { maxLength: 3 }), fc.anything({ maxDepth: 2 })),
        tools: fc.anything({ maxDepth: 3 }),
        n: fc.oneof(fc.integer(), fc.constant(1e308), fc.constant(Number.MAX_SAFE_INTEGER + 2)),
        stream: fc.anything({ maxDepth: 1 }),
        cache_salt: fc.anything({ maxDepth: 1 }),
        chat_template_kwargs: fc.anything({ maxDepth: 2 }),
        add_generation_prompt: fc.anything({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    ),
    fc.jsonValue({ maxDepth: 3 }),
  )
  .map((v) => Buffer.from(JSON.stringify(v) ?? 'null'));
const body = fc.oneof(
  { weight: 4, arbitrary: jsonBody },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 64 }).map((s) => Buffer.from(s)) },
  {
    weight: 1,
    arbitrary: jsonBody.map((b) => Buffer.concat([b.subarray(0, b.length - 1), Buffer.from([0xc3, 0x28]), b.subarray(b.length - 1)])),
  },
  { weight: 1, arbitrary: fc.nat({ max: 20_000 }).map((n) => Buffer.from(`${'['.repeat(n)}${']'.repeat(n)}`)) },
  { weight: 1, arbitrary: fc.constant(Buffer.alloc(MAX_BODY + 1, 0x20)) },
);

const requestMessage: fc.Arbitrary<ProcessingRequest> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ headers: headerList, eos: fc.boolean(), mode }).map(({ headers, eos, mode: m }) => ({
      request_headers: { headers: { headers }, end_of_stream: eos },
      ...(m ? { protocol_config: { request_body_mode: m, response_body_mode: 'FULL_DUPLEX_STREAMED' as const } } : {}),
    })),
  },
  {
    weight: 4,
    arbitrary: fc.record({ b: body, eos: fc.boolean() }).map(({ b, eos }) => ({ request_body: { body: b, end_of_stream: eos } })),
  },
  { weight: 1, arbitrary: fc.constant<ProcessingRequest>({ request_trailers: { trailers: { headers: [] } } }) },
  {
    weight: 1,
    arbitrary: fc
      .record({ headers: headerList, eos: fc.boolean() })
      .map(({ headers, eos }) => ({ response_headers: { headers: { headers }, end_of_stream: eos } })),
  },
  {
    weight: 1,
    arbitrary: fc.record({ b: body, eos: fc.boolean() }).map(({ b, eos }) => ({ response_body: { body: b, end_of_stream: eos } })),
  },
  { weight: 1, arbitrary: fc.constant<ProcessingRequest>({ response_trailers: { trailers: { headers: [] } } }) },
  { weight: 1, arbitrary: fc.constant<ProcessingRequest>({}) },
);

/** A plausible exchange (headers, body chunks, response) with some messages dropped, repeated or swapped. */
const plausible = fc
  .tuple(
    fc.constantFrom('/v1/completions', '/v1/chat/completions'),
    body,
    fc.nat({ max: 4 }),
    mode,
    fc.array(fc.tuple(fc.constantFrom('drop', 'dup', 'swap'), fc.nat()), { maxLength: 3 }),
  )
  .map(([p, b, cuts, m, edits]) => {
    const chunks: ProcessingRequest[] = [];
    const size = Math.ceil(b.length / (cuts + 1)) || 1;
    for (let at = 0; at < b.length || chunks.length === 0; at += size)
      chunks.push({ request_body: { body: b.subarray(at, at + size), end_of_stream: at + size >= b.length } });
    let seq: ProcessingRequest[] = [
      {
        request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from(p) }] }, end_of_stream: false },
        ...(m ? { protocol_config: { request_body_mode: m } } : {}),
      },
      ...chunks,
      { response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] }, end_of_stream: false } },
      { response_body: { body: Buffer.from('data: {"usage": {"prompt_tokens": 3}}\n\n'), end_of_stream: true } },
    ];
    for (const [edit, at] of edits) {
      const i = at % seq.length;
      if (edit === 'drop') seq = seq.filter((_, j) => j !== i);
      else if (edit === 'dup') seq.splice(i, 0, seq[i]!);
      else if (i + 1 < seq.length) [seq[i], seq[i + 1]] = [seq[i + 1]!, seq[i]!];
    }
    return seq;
  });

const ending = fc.constantFrom<Ending>('half-close', 'cancel');

// ---- properties ----------------------------------------------------------------------------------

describe('ext_proc server under hostile streams (fast-check, fixed seed)', () => {
  it(
    'answers arbitrary message sequences with a pick or a 4xx, ends every stream and leaks no in-flight count',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(requestMessage, { minLength: 1, maxLength: 6 }), ending, async (messages, end) => {
          inFlight.clear();
          const answers = await drive(messages, end, 30);
          checkAnswers(answers);
          await until(() => server.activeStreams() === 0 && totalInFlight() === 0, {
            message: 'stream closed and released',
            timeoutMs: 3_000,
          });
        }),
        fuzzParams(150),
      );
    },
    fuzzTimeout(150, 180_000),
  );

  it(
    'answers plausible exchanges with messages dropped, repeated or swapped the same way',
    async () => {
      await fc.assert(
        fc.asyncProperty(plausible, ending, async (messages, end) => {
          inFlight.clear();
          const answers = await drive(messages, end, 30);
          checkAnswers(answers);
          await until(() => server.activeStreams() === 0 && totalInFlight() === 0, {
            message: 'stream closed and released',
            timeoutMs: 3_000,
          });
        }),
        fuzzParams(150),
      );
    },
    fuzzTimeout(150, 180_000),
  );
});

// ---- named cases ---------------------------------------------------------------------------------

const headersMessage = (p: string, extra: HeaderValue[] = [], eos = false): ProcessingRequest => ({
  request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from(p) }, ...extra] }, end_of_stream: eos },
  protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' },
});
const bodyMessage = (b: Buffer | string, eos: boolean): ProcessingRequest => ({
  request_body: { body: Buffer.from(b), end_of_stream: eos },
});

function refusal(answers: ProcessingResponse[]): { code: unknown; message: string; reason: string } {
  const ir = answers.find((a) => a.immediate_response)?.immediate_response;
  if (!ir) throw new Error(`expected an ImmediateResponse, got ${JSON.stringify(answers.map((a) => Object.keys(a)))}`);
  const body = JSON.parse(Buffer.from(ir.body as Uint8Array).toString('utf8')) as { error: { message: string; code: string } };
  return { code: ir.status.code, message: body.error.message, reason: body.error.code };
}

describe('ext_proc server: named hostile cases', () => {
  it('answers 413 to a 100 MB body streamed without end_of_stream, before the gateway has sent past the cap', async () => {
    const call = client.Process();
    const answers: ProcessingResponse[] = [];
    let answered: () => void = () => {};
    const firstAnswer = new Promise<void>((resolve) => (answered = resolve));
    call.on('data', (m: ProcessingResponse) => {
      answers.push(m);
      answered();
    });
    const ended = new Promise<void>((resolve) => {
      call.on('status', () => resolve());
      call.on('error', () => resolve());
    });
    call.write(headersMessage('/v1/completions'));
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    let sent = 0;
    // 100 chunks of 1 MiB, each written once the previous one is flushed (a router that stops reading
    // never lets it flush: then the answer ends the wait), stopping at the refusal.
    for (let i = 0; i < 100 && answers.length === 0; i++) {
      const flushed = call.write(bodyMessage(chunk, false));
      sent += chunk.length;
      if (!flushed) await Promise.race([new Promise((resolve) => call.once('drain', resolve)), firstAnswer, ended]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => answers.length > 0, { message: 'the 413' });
    call.end();
    await ended;
    expect(refusal(answers)).toMatchObject({ code: 'PayloadTooLarge', reason: 'request-too-large' });
    // The refusal came while the body streamed, not once 100 MB were in: the gateway (whose gRPC
    // client queues what the stream's flow-control window does not yet take) stopped well short.
    expect(sent).toBeLessThan(100 * 1024 * 1024);
  });

  it('answers 400 to a body that is not valid UTF-8', async () => {
    const bad = Buffer.concat([Buffer.from('{"model":"m","prompt":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const answers = await drive([headersMessage('/v1/completions'), bodyMessage(bad, true)], 'half-close');
    expect(refusal(answers)).toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/UTF-8/) });
  });

  it('answers 400 to a request body that arrives before the request headers', async () => {
    const answers = await drive([bodyMessage('{"model":"m","prompt":"x"}', true)], 'half-close');
    expect(refusal(answers)).toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/before the request headers/) });
  });

  it('ends the stream on request headers sent twice after a pick, releasing the one in-flight count', async () => {
    const answers = await drive([headersMessage('/v1/models', [], true), headersMessage('/v1/models', [], true)], 'half-close');
    expect(answers.filter((a) => a.request_headers)).toHaveLength(1);
    await until(() => totalInFlight() === 0, { message: 'the in-flight count released' });
  });

  it('answers 431 to more headers than the bound, and to a header block over the byte bound', async () => {
    const many = Array.from({ length: MAX_HEADERS + 1 }, (_, i) => ({ key: `x-${i}`, raw_value: Buffer.from('1') }));
    expect(refusal(await drive([headersMessage('/v1/completions', many)], 'half-close'))).toMatchObject({
      code: 'RequestHeaderFieldsTooLarge',
      message: expect.stringMatching(new RegExp(`more than ${MAX_HEADERS}`)),
    });
    const big = [{ key: 'x-big', raw_value: Buffer.alloc(MAX_HEADER_BYTES, 0x61) }];
    expect(refusal(await drive([headersMessage('/v1/completions', big)], 'half-close'))).toMatchObject({
      code: 'RequestHeaderFieldsTooLarge',
      message: expect.stringMatching(new RegExp(`${MAX_HEADER_BYTES} bytes`)),
    });
  });

  it('routes a request whose header names are __proto__, constructor and hasOwnProperty as ordinary headers', async () => {
    const odd = ['__proto__', 'constructor', 'hasOwnProperty'].map((key) => ({ key, raw_value: Buffer.from('x') }));
    const answers = await drive([headersMessage('/v1/models', odd, true)], 'half-close');
    expect(answers[0]?.request_headers).toBeDefined();
    expect(Object.entries(headersToRecord({ headers: odd }))).toEqual([
      ['__proto__', 'x'],
      ['constructor', 'x'],
      ['hasownproperty', 'x'],
    ]);
  });

  it(`answers 503 to streams beyond ${MAX_STREAMS} open at once, and serves again once they close`, async () => {
    const held = Array.from({ length: MAX_STREAMS }, () => {
      const call = client.Process();
      call.on('error', () => {});
      call.write(headersMessage('/v1/completions'));
      return call;
    });
    await until(() => server.activeStreams() === MAX_STREAMS, { message: `${MAX_STREAMS} open streams` });
    const answers = await drive([headersMessage('/v1/models', [], true)], 'half-close');
    expect(refusal(answers)).toMatchObject({ code: 'ServiceUnavailable', reason: 'router-overloaded' });
    for (const call of held) call.end();
    await until(() => server.activeStreams() === 0, { message: 'the held streams closed' });
    const again = await drive([headersMessage('/v1/models', [], true)], 'half-close');
    expect(again[0]?.request_headers).toBeDefined();
  });
});

// ---- recorded corpus ------------------------------------------------------------------------------

interface StreamCorpusCase {
  about: string;
  /** ProcessingRequests as JSON; bodies and raw header values as { "hex": "..." } or { "text": "..." }. */
  messages: unknown[];
  ending: Ending;
  /** The ImmediateResponse status expected, "routed" for a pick, or "none" for no answer at all. */
  expect: string;
}

/** Turns the corpus' { hex } / { text } byte fields into Buffers. */
function revive(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.hex === 'string' && Object.keys(o).length === 1) return Buffer.from(o.hex, 'hex');
    if (typeof o.text === 'string' && Object.keys(o).length === 1) return Buffer.from(o.text, 'utf8');
    if (typeof o.repeat === 'string' && typeof o.times === 'number') return Buffer.from(o.repeat.repeat(o.times), 'utf8');
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, revive(v)]));
  }
  return value;
}

describe('ext_proc server recorded corpus (testdata/fuzz)', () => {
  const corpus = readCorpus<StreamCorpusCase>(CORPUS);
  it('has recorded inputs', () => expect(corpus.length).toBeGreaterThan(0));
  for (const { file, value } of corpus) {
    it(`${file}: ${value.about}`, async () => {
      const answers = await drive(revive(value.messages) as ProcessingRequest[], value.ending);
      checkAnswers(answers);
      if (value.expect === 'routed') expect(answers.some((a) => a.request_headers || a.request_body)).toBe(true);
      else if (value.expect === 'none') expect(answers).toEqual([]);
      else expect(refusal(answers).code).toBe(value.expect);
      await until(() => server.activeStreams() === 0 && totalInFlight() === 0, { message: 'stream closed and released' });
    });
  }
});
