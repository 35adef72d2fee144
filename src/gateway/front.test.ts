import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { Registry } from 'prom-client';
import { until } from '../../test/support/until.ts';
import { silentLogger } from '../common/log.ts';
import { parseEndpointList } from './destination.ts';
import { startGatewayFront, type GatewayFront, type GatewayFrontOptions } from './front.ts';
import {
  SESSION_HEADER,
  messageKinds,
  reassembled,
  startEchoUpstream,
  startRecordingProcessor,
  type EchoUpstream,
  type RecordedStream,
  type RecordingProcessor,
} from './testing.ts';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function send(port: number, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A port nothing listens on: bound, then released. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** The processor's rewrite: the model named in the body becomes "rewritten-model". */
const rewriteModel = (body: Buffer): Buffer => {
  const text = body.toString('utf8');
  return text.startsWith('{') ? Buffer.from(text.replace(/"model":"[^"]*"/, '"model":"rewritten-model"')) : body;
};

describe('built-in gateway front', () => {
  let upstream: EchoUpstream;
  let fallback: EchoUpstream;
  let processor: RecordingProcessor;
  let other: EchoUpstream;
  const fronts: GatewayFront[] = [];

  async function front(options: Partial<GatewayFrontOptions> & { router: string }): Promise<{ port: number; registry: Registry }> {
    const registry = new Registry();
    const f = await startGatewayFront({ port: 0, host: '127.0.0.1', routerTls: false, log: silentLogger, registry, ...options });
    fronts.push(f);
    return { port: f.port, registry };
  }

  /** The processor stream a request made, found by its x-request-id. */
  function streamFor(requestId: string): RecordedStream {
    const found = processor.streams.find((s) => s.messages[0]?.headers?.['x-request-id'] === requestId);
    if (!found) throw new Error(`no ext_proc stream for request ${requestId}`);
    return found;
  }

  beforeAll(async () => {
    upstream = await startEchoUpstream('picked');
    fallback = await startEchoUpstream('fallback');
    other = await startEchoUpstream('other');
    processor = await startRecordingProcessor({
      destination: () => upstream.address,
      otherDestination: () => other.address,
      rewriteBody: rewriteModel,
    });
  });

  afterAll(async () => {
    await Promise.all(fronts.map((f) => f.close(1000)));
    await Promise.all([processor.close(), upstream.close(), fallback.close(), other.close()]);
  });

  it("sends the request and response to the router in Envoy's order and shapes", async () => {
    const { port } = await front({ router: `127.0.0.1:${processor.port}` });
    const body = JSON.stringify({ model: 'client-model', prompt: 'hello' });
    const reply = await send(port, 'POST', '/v1/completions?x=1', body, { 'content-type': 'application/json', 'x-request-id': 'order-1' });
    expect(reply.status).toBe(200);
    const stream = streamFor('order-1');
    await until(() => stream.end === 'cancelled', { message: 'the stream to be reset' });

    // Headers; every body chunk as it arrived without end_of_stream, then an empty one with it;
    // the response headers and body the same way; no trailers (HTTP/1.1 has none for Envoy either);
    // and the stream reset, not half-closed, at the end.
    const kinds = messageKinds(stream);
    expect(kinds[0]).toBe('request_headers');
    expect(kinds.slice(1, kinds.indexOf('response_headers'))).toEqual([
      ...Array(kinds.indexOf('response_headers') - 2).fill('request_body'),
      'request_body(eos)',
    ]);
    expect(kinds.slice(kinds.indexOf('response_headers'))).toEqual(['response_headers', 'response_body', 'response_body(eos)']);
    expect(stream.messages.filter((m) => m.endOfStream && m.kind === 'request_body').map((m) => m.body!.length)).toEqual([0]);
    expect(reassembled(stream, 'request_body').toString()).toBe(body);

    const head = stream.messages[0]!;
    expect(head.protocolConfig).toEqual({ request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' });
    expect(stream.messages.slice(1).every((m) => m.protocolConfig === undefined)).toBe(true);
    expect(head.headerOrder!.slice(0, 4)).toEqual([':authority', ':path', ':method', ':scheme']);
    expect(head.headers).toMatchObject({
      ':authority': `127.0.0.1:${port}`,
      ':path': '/v1/completions?x=1',
      ':method': 'POST',
      ':scheme': 'http',
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'x-forwarded-proto': 'http',
      'x-request-id': 'order-1',
    });
    expect(head.headers).not.toHaveProperty('host');
    expect(head.headers).not.toHaveProperty('connection');
    expect(head.rawValuesOnly).toBe(true);
    // metadata_context is always there; empty on the way in, then the router's envoy.lb plus the endpoint that served.
    expect(head.metadata).toEqual({});
    const responseHead = stream.messages.find((m) => m.kind === 'response_headers')!;
    expect(responseHead.headers).toMatchObject({ ':status': '200', 'content-type': 'application/json' });
    expect(responseHead.metadata).toEqual({
      'envoy.lb': { 'x-gateway-destination-endpoint': upstream.address, 'x-gateway-destination-endpoint-served': upstream.address },
    });
  });

  it("sends the router's rewritten body and header mutations to the picked endpoint, and its response mutations to the client", async () => {
    const { port } = await front({ router: `127.0.0.1:${processor.port}` });
    const before = upstream.requests.length;
    const reply = await send(port, 'POST', '/v1/chat/completions', JSON.stringify({ model: 'client-model', messages: [] }), {
      'content-type': 'application/json',
    });
    expect(reply.status).toBe(200);
    expect(reply.headers[SESSION_HEADER]).toBe('session-1');
    expect(JSON.parse(reply.body.toString()).server).toBe('picked');
    const got = upstream.requests[before]!;
    expect(JSON.parse(got.body.toString())).toEqual({ model: 'rewritten-model', messages: [] });
    expect(got.headers).toMatchObject({
      host: `127.0.0.1:${port}`,
      'x-gateway-destination-endpoint': upstream.address,
      'content-length': String(got.body.length),
      'x-forwarded-proto': 'http',
    });
  });

  it('ends the request headers with end_of_stream and sends no body messages for a request without a body', async () => {
    const { port } = await front({ router: `127.0.0.1:${processor.port}` });
    const reply = await send(port, 'GET', '/v1/models', undefined, { 'x-request-id': 'get-1' });
    expect(reply.status).toBe(200);
    const stream = streamFor('get-1');
    await until(() => stream.end === 'cancelled', { message: 'the stream to be reset' });
    expect(messageKinds(stream)).toEqual(['request_headers(eos)', 'response_headers', 'response_body', 'response_body(eos)']);
  });

  it('ends the response headers with end_of_stream for a response without a body', async () => {
    const { port } = await front({ router: `127.0.0.1:${processor.port}` });
    const reply = await send(port, 'GET', '/empty', undefined, { 'x-request-id': 'empty-1' });
    expect(reply.status).toBe(204);
    expect(reply.headers[SESSION_HEADER]).toBe('session-1');
    const stream = streamFor('empty-1');
    await until(() => stream.end === 'cancelled', { message: 'the stream to be reset' });
    expect(messageKinds(stream)).toEqual(['request_headers(eos)', 'response_headers(eos)']);
  });

  it('streams SSE events to the client one by one while the endpoint still holds the response open', async () => {
    const { port } = await front({ router: `127.0.0.1:${processor.port}` });
    const held = upstream.heldStreams.length;
    const events: string[] = [];
    let ended = false;
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/sse',
      headers: { 'content-type': 'application/json' },
      agent: false,
    });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });
    req.end(JSON.stringify({ model: 'm', stream: true }));
    const res = await response;
    res.on('data', (c: Buffer) => events.push(c.toString()));
    res.on('end', () => (ended = true));
    expect(res.headers['content-type']).toBe('text/event-stream');

    // The first event arrives while the endpoint is still holding the stream (it has not been released).
    await until(() => events.join('').includes('data: {"n":1}'), { message: 'the first event' });
    expect(upstream.heldStreams.length).toBe(held + 1);
    expect(ended).toBe(false);
    expect(events.join('')).not.toContain('"n":2');

    upstream.heldStreams[held]!();
    await until(() => ended, { message: 'the end of the stream' });
    expect(events.join('')).toBe('data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n":3}\n\ndata: [DONE]\n\n');
  });

  it('cancels the ext_proc stream and the upstream request when the client goes away mid-stream', async () => {
    const { port } = await front({ router: `127.0.0.1:${processor.port}` });
    const abandoned = upstream.abandoned;
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/sse',
      headers: { 'x-request-id': 'gone-1' },
      agent: false,
    });
    req.on('error', () => {});
    const res = await new Promise<http.IncomingMessage>((resolve) => {
      req.on('response', resolve);
      req.end('{"stream":true}');
    });
    await new Promise<void>((resolve) => res.once('data', () => resolve()));
    req.destroy();
    const stream = streamFor('gone-1');
    await until(() => stream.end === 'cancelled', { message: 'the ext_proc stream to be cancelled' });
    await until(() => upstream.abandoned > abandoned, { message: 'the upstream response to be abandoned' });
  });

  it("answers the router's ImmediateResponse (400) with its status, headers and body, and never calls the endpoint", async () => {
    const { port, registry } = await front({ router: `127.0.0.1:${processor.port}` });
    const before = upstream.requests.length;
    const reply = await send(port, 'POST', '/v1/completions', '{"prompt":"no model"}', { 'x-test-behaviour': 'immediate-400' });
    expect(reply.status).toBe(400);
    expect(reply.headers['x-llm-d-request-dropped-reason']).toBe('bad-request');
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.body.toString()).toBe('{"error":"bad request from the router"}');
    expect(upstream.requests.length).toBe(before);
    expect(await registry.metrics()).toMatch(/kvroute_gateway_immediate_responses_total\{code="400"\} 1/);
  });

  it('proxies a 2 MB body intact through the router', async () => {
    const { port } = await front({ router: `127.0.0.1:${processor.port}` });
    const big = crypto.randomBytes(2 * 1024 * 1024);
    const reply = await send(port, 'POST', '/upload', big, { 'content-type': 'application/octet-stream', 'x-request-id': 'big-1' });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body.toString())).toMatchObject({ bodyBytes: big.length, bodySha256: sha256(big), server: 'picked' });
    const stream = streamFor('big-1');
    expect(sha256(reassembled(stream, 'request_body'))).toBe(sha256(big));
    expect(stream.messages.filter((m) => m.kind === 'request_body' && m.endOfStream)).toHaveLength(1);
  });

  it('speaks TLS to a router with a self-signed certificate by default', async () => {
    const tlsProcessor = await startRecordingProcessor({ destination: () => upstream.address, tls: true });
    try {
      const { port } = await front({ router: `127.0.0.1:${tlsProcessor.port}`, routerTls: true });
      const reply = await send(port, 'POST', '/v1/completions', '{"model":"m"}');
      expect(reply.status).toBe(200);
      expect(tlsProcessor.streams).toHaveLength(1);
    } finally {
      await tlsProcessor.close();
    }
  });

  describe('when the router cannot be used', () => {
    it('fails open to the fallback endpoints, round robin, with the body intact, when the router is down', async () => {
      const second = await startEchoUpstream('fallback-2');
      try {
        const { port, registry } = await front({
          router: `127.0.0.1:${await deadPort()}`,
          failureMode: 'FailOpen',
          fallbackEndpoints: parseEndpointList(`${fallback.address},${second.address}`, '--endpoints'),
        });
        const body = crypto.randomBytes(300_000);
        const replies = await Promise.all([send(port, 'POST', '/v1/completions', body), send(port, 'GET', '/v1/models')]);
        expect(replies.map((r) => r.status)).toEqual([200, 200]);
        expect(new Set(replies.map((r) => JSON.parse(r.body.toString()).server))).toEqual(new Set(['fallback', 'fallback-2']));
        const post = replies.map((r) => JSON.parse(r.body.toString())).find((r) => r.method === 'POST');
        expect(post).toMatchObject({ bodyBytes: body.length, bodySha256: sha256(body) });
        expect(await registry.metrics()).toMatch(/kvroute_gateway_extproc_failures_total\{stage="connect",outcome="fail_open"\} 2/);
      } finally {
        await second.close();
      }
    });

    it('fails closed with 500 and an empty body, as Envoy does, when the router is down', async () => {
      const { port } = await front({
        router: `127.0.0.1:${await deadPort()}`,
        failureMode: 'FailClose',
        fallbackEndpoints: parseEndpointList(fallback.address, '--endpoints'),
      });
      const replies = await Promise.all([send(port, 'POST', '/v1/completions', '{"model":"m"}'), send(port, 'GET', '/v1/models')]);
      expect(replies.map((r) => [r.status, r.body.length])).toEqual([
        [500, 0],
        [500, 0],
      ]);
    });

    it('answers 504 when the pick times out under FailClose, and falls back under FailOpen', async () => {
      const closed = await front({ router: `127.0.0.1:${processor.port}`, failureMode: 'FailClose', pickTimeoutMs: 200 });
      expect((await send(closed.port, 'POST', '/v1/completions', '{"model":"m"}', { 'x-test-behaviour': 'hang' })).status).toBe(504);
      const open = await front({
        router: `127.0.0.1:${processor.port}`,
        failureMode: 'FailOpen',
        pickTimeoutMs: 200,
        fallbackEndpoints: parseEndpointList(fallback.address, '--endpoints'),
      });
      const reply = await send(open.port, 'POST', '/v1/completions', '{"model":"m"}', { 'x-test-behaviour': 'hang' });
      expect([reply.status, JSON.parse(reply.body.toString()).server]).toEqual([200, 'fallback']);
      expect(await open.registry.metrics()).toMatch(/kvroute_gateway_extproc_failures_total\{stage="timeout",outcome="fail_open"\} 1/);
    });

    it('treats a stream the router closes before picking as a failure', async () => {
      const { port } = await front({ router: `127.0.0.1:${processor.port}`, failureMode: 'FailClose' });
      expect((await send(port, 'POST', '/v1/completions', '{"model":"m"}', { 'x-test-behaviour': 'close-before-pick' })).status).toBe(500);
    });

    it('answers 500 to a non-streamed body mutation, which Envoy rejects in FULL_DUPLEX_STREAMED mode', async () => {
      const { port } = await front({
        router: `127.0.0.1:${processor.port}`,
        failureMode: 'FailOpen',
        fallbackEndpoints: parseEndpointList(fallback.address, '--endpoints'),
      });
      expect((await send(port, 'POST', '/v1/completions', '{"model":"m"}', { 'x-test-behaviour': 'plain-body' })).status).toBe(500);
    });

    it('answers 503 "no healthy upstream" to a pick without a destination, or uses the fallback pool when there is one', async () => {
      const bare = await front({ router: `127.0.0.1:${processor.port}` });
      const reply = await send(bare.port, 'GET', '/v1/models', undefined, { 'x-test-behaviour': 'no-destination' });
      expect([reply.status, reply.body.toString()]).toEqual([503, 'no healthy upstream']);
      const pooled = await front({
        router: `127.0.0.1:${processor.port}`,
        fallbackEndpoints: parseEndpointList(fallback.address, '--endpoints'),
      });
      const pooledReply = await send(pooled.port, 'GET', '/v1/models', undefined, { 'x-test-behaviour': 'no-destination' });
      expect([pooledReply.status, JSON.parse(pooledReply.body.toString()).server]).toEqual([200, 'fallback']);
    });

    it('follows the header when the header and envoy.lb metadata disagree, and counts it', async () => {
      const { port, registry } = await front({ router: `127.0.0.1:${processor.port}` });
      const reply = await send(port, 'GET', '/v1/models', undefined, { 'x-test-behaviour': 'mismatch' });
      expect(JSON.parse(reply.body.toString()).server).toBe('picked');
      expect(await registry.metrics()).toMatch(/kvroute_gateway_destination_mismatches_total 1/);
    });

    it("answers 503 with Envoy's wording when the picked endpoint refuses the connection", async () => {
      const dead = await deadPort();
      const refusing = await startRecordingProcessor({ destination: () => `127.0.0.1:${dead}` });
      try {
        const { port } = await front({ router: `127.0.0.1:${refusing.port}` });
        const reply = await send(port, 'GET', '/v1/models');
        expect(reply.status).toBe(503);
        expect(reply.body.toString()).toMatch(/^upstream connect error or disconnect\/reset before headers/);
      } finally {
        await refusing.close();
      }
    });
  });
});
