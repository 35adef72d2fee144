// The built-in gateway drives the router exactly as Envoy does: the same in-test ext_proc server
// (src/gateway/testing.ts) sits behind a real Envoy, configured as GIE's standalone gateway
// (src/gateway/envoy-config.ts), and behind the built-in front; the same requests go through both,
// and the processor must see the same sequence of message kinds, headers, metadata and bodies, and
// the clients the same answers.
//
// Where Envoy and the built-in front legitimately differ, the comparison normalises and says why:
// - Body chunk boundaries: Envoy reads the client socket up to 1 MiB at a time (a 2 MiB body arrives
//   as 1048337 + 1048576 + 239 bytes), node in 64 KiB pieces. Runs of body chunks are compared as one
//   token and the reassembled bodies byte for byte. Both end a body with an empty end_of_stream chunk.
// - x-envoy-upstream-service-time: Envoy's router filter adds it to the response headers; the
//   built-in front has no such filter.
// - x-gateway-destination-endpoint-served: the built-in front adds it to envoy.lb on the response
//   path (Istio's override_host does the same); GIE's standalone Envoy config (ORIGINAL_DST) has
//   nothing that sets it.
// - FailOpen with a request body and the router down: Envoy answers 500 (it fails open only before a
//   body chunk was sent on the stream, Filter::failureModeAllow); the built-in front keeps the body
//   until the pick and falls back. Envoy with the router health-checked (envoy-config's fallback with
//   eppHealthPort) falls back too, because it no longer opens streams to a dead router. Pinned below,
//   so a change in any of the three shows up here.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { silentLogger } from '../src/common/log.ts';
import { parseEndpointList } from '../src/gateway/destination.ts';
import { envoyGatewayConfig } from '../src/gateway/envoy-config.ts';
import { findEnvoy, startEnvoy, type RunningEnvoy } from '../src/gateway/envoy-process.ts';
import { startGatewayFront, type GatewayFront } from '../src/gateway/front.ts';
import {
  SESSION_HEADER,
  messageKinds,
  reassembled,
  startEchoUpstream,
  startRecordingProcessor,
  type EchoUpstream,
  type RecordedMessage,
  type RecordedStream,
  type RecordingProcessor,
} from '../src/gateway/testing.ts';
import { until } from '../test/support/until.ts';

// KVROUTE_ENVOY_BIN as the other Envoy tests honour it; else envoy on PATH or bash hack/envoy/install.sh's copy.
const envoyBin = findEnvoy(process.env.KVROUTE_ENVOY_BIN);
const required = Boolean(process.env.KVROUTE_REQUIRE_ENVOY);
const enabled = envoyBin !== null || required;
const SKIP_REASON = 'skipped: no Envoy; run bash hack/envoy/install.sh, or set KVROUTE_REQUIRE_ENVOY=1 to fail instead';
if (!enabled) console.warn(`e2e/gateway-envoy-parity.test.ts ${SKIP_REASON}`);
const describeEnvoy = enabled ? describe : describe.skip;
const run = promisify(execFile);
const title = (what: string) => (enabled ? what : `${what} (${SKIP_REASON})`);

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request; `onFirstChunk` runs when the first body bytes arrive (for SSE). */
function send(
  port: number,
  method: string,
  path: string,
  body: Buffer | string | undefined,
  headers: Record<string, string>,
  onFirstChunk?: () => void,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        if (chunks.length === 0) onFirstChunk?.();
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Message kinds with each run of non-final body chunks folded into one token (chunk boundaries differ). */
function kindSequence(stream: RecordedStream): string[] {
  const out: string[] = [];
  for (const kind of messageKinds(stream)) {
    const token = kind === 'request_body' || kind === 'response_body' ? `${kind}+` : kind;
    if (token.endsWith('+') && out[out.length - 1] === token) continue;
    out.push(token);
  }
  return out;
}

/** What must match between the two gateways for one message, besides its kind. */
function comparable(m: RecordedMessage): unknown {
  const headers = m.headers
    ? Object.fromEntries(
        Object.entries(m.headers)
          .filter(([k]) => !k.startsWith('x-envoy-') && k !== 'date')
          // The gateways listen on different ports; request ids are generated, test-case ids differ by gateway.
          .map(([k, v]) => [k, k === ':authority' ? '<gateway>' : k === 'x-request-id' || k === 'x-test-case' ? '<id>' : v]),
      )
    : undefined;
  const metadata = m.metadata
    ? JSON.parse(JSON.stringify(m.metadata, (k, v) => (k === 'x-gateway-destination-endpoint-served' ? undefined : v)))
    : undefined;
  return {
    kind: m.kind,
    endOfStream: m.endOfStream,
    headers,
    headerOrder: m.headerOrder?.filter((k) => !k.startsWith('x-envoy-') && k !== 'date'),
    rawValuesOnly: m.rawValuesOnly,
    metadata,
    protocolConfig: m.protocolConfig,
  };
}

/** The messages worth comparing one to one: headers, and body chunks that end a body. */
function landmarks(stream: RecordedStream): unknown[] {
  return stream.messages.filter((m) => !m.kind.endsWith('body') || m.endOfStream).map(comparable);
}

describeEnvoy(title('the built-in gateway drives ext_proc as Envoy does'), () => {
  let upstream: EchoUpstream;
  let fallback: EchoUpstream;
  let processor: RecordingProcessor;
  let envoy: RunningEnvoy;
  let front: GatewayFront;
  const others: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    upstream = await startEchoUpstream('picked');
    fallback = await startEchoUpstream('fallback');
    processor = await startRecordingProcessor({
      destination: () => upstream.address,
      tls: true,
      rewriteBody: (b) => Buffer.from(b.toString('latin1').replace('"model":"client"', '"model":"target"'), 'latin1'),
    });
    if (!envoyBin)
      throw new Error('Envoy not found (KVROUTE_REQUIRE_ENVOY is set): run bash hack/envoy/install.sh, or set KVROUTE_ENVOY_BIN');
    envoy = await startEnvoy({
      binary: envoyBin,
      concurrency: 1,
      log: silentLogger,
      config: envoyGatewayConfig({ listenPort: 0, adminPort: 0, eppPort: processor.port, eppTls: true, failureModeAllow: false }),
    });
    front = await startGatewayFront({
      host: '127.0.0.1',
      port: 0,
      router: `127.0.0.1:${processor.port}`,
      routerTls: true,
      failureMode: 'FailClose',
      log: silentLogger,
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([envoy?.close(), front?.close(1000), ...others.map((o) => o.close())]);
    await Promise.all([processor?.close(), upstream?.close(), fallback?.close()]);
  });

  /** Sends the same request through Envoy and the built-in front; returns both replies and processor streams. */
  async function through(method: string, path: string, body: Buffer | string | undefined, headers: Record<string, string> = {}) {
    const results = [];
    for (const [name, port] of [
      ['envoy', envoy.listenPort],
      ['builtin', front.port],
    ] as const) {
      const testCase = `${name}-${crypto.randomUUID()}`;
      const beforeRequests = upstream.requests.length;
      let reply: Reply;
      if (path === '/sse') {
        // Release the held SSE stream only once the first event reached the client: proves streaming on both.
        const held = upstream.heldStreams.length;
        let firstSeen = false;
        const pending = send(port, method, path, body, { ...headers, 'x-test-case': testCase }, () => (firstSeen = true));
        await until(() => firstSeen && upstream.heldStreams.length === held + 1, { message: `the first SSE event through ${name}` });
        upstream.heldStreams[held]!();
        reply = await pending;
      } else {
        reply = await send(port, method, path, body, { ...headers, 'x-test-case': testCase });
      }
      const stream = await until(
        () => processor.streams.find((s) => s.messages[0]?.headers?.['x-test-case'] === testCase && s.end !== 'open'),
        {
          message: `the ext_proc stream of ${name} to end`,
        },
      );
      results.push({ name, reply, stream, upstreamRequest: upstream.requests.slice(beforeRequests)[0] });
    }
    const [viaEnvoy, viaBuiltin] = results as [(typeof results)[0], (typeof results)[0]];
    return { viaEnvoy, viaBuiltin };
  }

  function expectSameDriving(viaEnvoy: { stream: RecordedStream }, viaBuiltin: { stream: RecordedStream }): void {
    expect(kindSequence(viaBuiltin.stream)).toEqual(kindSequence(viaEnvoy.stream));
    expect(landmarks(viaBuiltin.stream)).toEqual(landmarks(viaEnvoy.stream));
    for (const kind of ['request_body', 'response_body'] as const) {
      expect(reassembled(viaBuiltin.stream, kind).equals(reassembled(viaEnvoy.stream, kind))).toBe(true);
    }
    // Both reset the stream when the exchange is over rather than half-closing it.
    expect([viaEnvoy.stream.end, viaBuiltin.stream.end]).toEqual(['cancelled', 'cancelled']);
  }

  function clientView(r: Reply) {
    return {
      status: r.status,
      session: r.headers[SESSION_HEADER],
      contentType: r.headers['content-type'],
      body: r.body.toString('latin1'),
    };
  }

  it('a JSON POST: headers, body, pick, rewritten body upstream, response through the router', async () => {
    const body = JSON.stringify({ model: 'client', prompt: 'hello' });
    const { viaEnvoy, viaBuiltin } = await through('POST', '/v1/completions', body, { 'content-type': 'application/json' });
    expect(kindSequence(viaEnvoy.stream)).toEqual([
      'request_headers',
      'request_body+',
      'request_body(eos)',
      'response_headers',
      'response_body+',
      'response_body(eos)',
    ]);
    expectSameDriving(viaEnvoy, viaBuiltin);
    expect(clientView(viaBuiltin.reply)).toEqual(clientView(viaEnvoy.reply));
    for (const { upstreamRequest } of [viaEnvoy, viaBuiltin]) {
      expect(JSON.parse(upstreamRequest!.body.toString())).toEqual({ model: 'target', prompt: 'hello' });
      expect(upstreamRequest!.headers['x-gateway-destination-endpoint']).toBe(upstream.address);
    }
  });

  it('a GET without a body: request headers with end_of_stream, no request body messages', async () => {
    const { viaEnvoy, viaBuiltin } = await through('GET', '/v1/models?limit=2', undefined, { accept: 'application/json' });
    expect(kindSequence(viaEnvoy.stream)).toEqual(['request_headers(eos)', 'response_headers', 'response_body+', 'response_body(eos)']);
    expectSameDriving(viaEnvoy, viaBuiltin);
    expect(clientView(viaBuiltin.reply)).toEqual(clientView(viaEnvoy.reply));
  });

  it('a POST with an empty body (Content-Length: 0) ends at the request headers', async () => {
    const { viaEnvoy, viaBuiltin } = await through('POST', '/v1/completions', '', { 'content-length': '0' });
    expect(kindSequence(viaEnvoy.stream)[0]).toBe('request_headers(eos)');
    expectSameDriving(viaEnvoy, viaBuiltin);
  });

  it('a 2 MB body: same bytes to the router and to the endpoint, one end of stream', async () => {
    const big = crypto.randomBytes(2 * 1024 * 1024);
    const { viaEnvoy, viaBuiltin } = await through('POST', '/upload', big, { 'content-type': 'application/octet-stream' });
    expectSameDriving(viaEnvoy, viaBuiltin);
    for (const { stream, upstreamRequest, reply } of [viaEnvoy, viaBuiltin]) {
      expect(reassembled(stream, 'request_body').equals(big)).toBe(true);
      expect(stream.messages.filter((m) => m.kind === 'request_body' && m.endOfStream)).toHaveLength(1);
      expect(upstreamRequest!.body.equals(big)).toBe(true);
      expect(reply.status).toBe(200);
    }
  });

  it('SSE: each gateway streams the first event before the endpoint finishes, and drives the router the same way', async () => {
    const { viaEnvoy, viaBuiltin } = await through('POST', '/sse', JSON.stringify({ model: 'client', stream: true }), {
      'content-type': 'application/json',
    });
    expectSameDriving(viaEnvoy, viaBuiltin);
    expect(clientView(viaBuiltin.reply)).toEqual(clientView(viaEnvoy.reply));
    expect(viaBuiltin.reply.body.toString()).toContain('data: [DONE]');
  });

  it('a response without a body (204): response headers with end_of_stream, no response body messages', async () => {
    const { viaEnvoy, viaBuiltin } = await through('GET', '/empty', undefined);
    expect(kindSequence(viaEnvoy.stream)).toEqual(['request_headers(eos)', 'response_headers(eos)']);
    expectSameDriving(viaEnvoy, viaBuiltin);
    expect([viaBuiltin.reply.status, viaBuiltin.reply.headers[SESSION_HEADER]]).toEqual([204, 'session-1']);
  });

  it("an ImmediateResponse 400: the router's status, headers and body reach the client, nothing reaches the endpoint", async () => {
    const { viaEnvoy, viaBuiltin } = await through('POST', '/v1/completions', '{"prompt":"x"}', { 'x-test-behaviour': 'immediate-400' });
    expect(kindSequence(viaEnvoy.stream)).toEqual(['request_headers', 'request_body+', 'request_body(eos)']);
    expectSameDriving(viaEnvoy, viaBuiltin);
    const view = (r: Reply) => ({
      status: r.status,
      reason: r.headers['x-llm-d-request-dropped-reason'],
      contentType: r.headers['content-type'],
      body: r.body.toString(),
    });
    expect(view(viaBuiltin.reply)).toEqual(view(viaEnvoy.reply));
    expect(view(viaEnvoy.reply)).toMatchObject({ status: 400, reason: 'bad-request' });
    expect([viaEnvoy.upstreamRequest, viaBuiltin.upstreamRequest]).toEqual([undefined, undefined]);
  });

  it('router down, fail closed: both answer 500 with an empty body', async () => {
    const deadRouter = await deadPort();
    const closedEnvoy = await startEnvoy({
      binary: envoyBin!,
      concurrency: 1,
      log: silentLogger,
      config: envoyGatewayConfig({ listenPort: 0, adminPort: 0, eppPort: deadRouter, eppTls: true, failureModeAllow: false }),
    });
    others.push(closedEnvoy);
    const closedFront = await startGatewayFront({
      host: '127.0.0.1',
      port: 0,
      router: `127.0.0.1:${deadRouter}`,
      failureMode: 'FailClose',
      log: silentLogger,
    });
    others.push({ close: () => closedFront.close(1000) });
    for (const port of [closedEnvoy.listenPort, closedFront.port]) {
      for (const [method, body] of [
        ['GET', undefined],
        ['POST', '{"model":"m"}'],
      ] as const) {
        const reply = await send(port, method, '/v1/completions', body, {});
        expect({ port, method, status: reply.status, bytes: reply.body.length }).toEqual({ port, method, status: 500, bytes: 0 });
      }
    }
  });

  it('router down, fail open with a fallback pool: GETs and POSTs fall back everywhere, on Envoy with and without the router health check', async () => {
    const deadRouter = await deadPort();
    const fallbackPool = parseEndpointList(fallback.address, '--endpoints');
    const openEnvoy = await startEnvoy({
      binary: envoyBin!,
      concurrency: 1,
      log: silentLogger,
      config: envoyGatewayConfig({
        listenPort: 0,
        adminPort: 0,
        eppPort: deadRouter,
        eppTls: true,
        failureModeAllow: true,
        fallback: { endpoints: fallbackPool },
      }),
    });
    others.push(openEnvoy);
    const openFront = await startGatewayFront({
      host: '127.0.0.1',
      port: 0,
      router: `127.0.0.1:${deadRouter}`,
      failureMode: 'FailOpen',
      fallbackEndpoints: fallbackPool,
      log: silentLogger,
    });
    others.push({ close: () => openFront.close(1000) });

    // With the router's health port checked, Envoy knows the router is down before it opens a stream
    // (what `kvroute gateway --router-health-port` sets up); without it, the BUFFERED request body that
    // FailOpen configures stays in Envoy when the stream fails, so that POST falls back too.
    const checkedEnvoy = await startEnvoy({
      binary: envoyBin!,
      concurrency: 1,
      log: silentLogger,
      config: envoyGatewayConfig({
        listenPort: 0,
        adminPort: 0,
        eppPort: deadRouter,
        eppTls: true,
        failureModeAllow: true,
        fallback: { endpoints: fallbackPool, eppHealthPort: await deadPort(), healthCheckIntervalMs: 200 },
      }),
    });
    others.push(checkedEnvoy);

    const server = (r: Reply) => (r.status === 200 ? JSON.parse(r.body.toString()).server : r.status);
    const ports = [openEnvoy.listenPort, openFront.port, checkedEnvoy.listenPort];
    const get = await Promise.all(ports.map((p) => send(p, 'GET', '/v1/models', undefined, {})));
    expect(get.map(server)).toEqual(['fallback', 'fallback', 'fallback']);
    const post = await Promise.all(ports.map((p) => send(p, 'POST', '/v1/completions', '{"model":"m"}', {})));
    expect(post.map(server)).toEqual(['fallback', 'fallback', 'fallback']);
  });

  it('Envoy accepts the generated config with a DNS-named router, a named fallback pool and the router health check', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-envoy-validate-'));
    try {
      const file = path.join(dir, 'gateway.yaml');
      fs.writeFileSync(
        file,
        envoyGatewayConfig({
          listenPort: 0,
          adminPort: 0,
          listenHost: '0.0.0.0',
          eppHost: 'router.kvroute.svc',
          eppPort: 9002,
          eppTls: true,
          failureModeAllow: true,
          fallback: { endpoints: parseEndpointList('pod-a.pool:8000,10.0.0.2:8000', '--endpoints'), eppHealthPort: 9003 },
        }),
      );
      const result = await run(envoyBin!, ['--mode', 'validate', '--disable-hot-restart', '--log-level', 'warn', '-c', file], {
        timeout: 60_000,
      }).then(
        (r) => ({ code: 0, output: r.stdout + r.stderr }),
        (err: { code?: number; stdout?: string; stderr?: string }) => ({
          code: err.code ?? -1,
          output: `${err.stdout ?? ''}${err.stderr ?? ''}`,
        }),
      );
      expect(result).toEqual({ code: 0, output: expect.stringContaining('OK') });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeEnvoy(title('startEnvoy'), () => {
  it("rejects with Envoy's own complaint when Envoy cannot start on the config", async () => {
    const broken = envoyGatewayConfig({ listenPort: 0, adminPort: 0, eppPort: 9002, eppTls: false, failureModeAllow: false }).replace(
      'request_trailer_mode: SEND',
      'request_trailer_mode: SKIP',
    );
    await expect(startEnvoy({ binary: envoyBin!, config: broken, log: silentLogger, concurrency: 1 })).rejects.toThrow(
      /exited while starting; its last output:\n[\s\S]*trailer/i,
    );
  });
});
