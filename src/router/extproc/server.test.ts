import { afterEach, describe, expect, it } from '@jest/globals';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HealthService, type HealthCheckResponse } from '../../common/grpc/health.ts';
import { silentLogger } from '../../common/log.ts';
import { DEFAULT_SATURATION, Director } from '../director.ts';
import { ModelTable } from '../request/models.ts';
import type { Endpoint, EndpointSource } from '../types.ts';
import { ExternalProcessorClient, headersToRecord, type ProcessingRequest, type ProcessingResponse } from '../../envoy/ext-proc.ts';
import { routerSelfSignedCertificate, startExtProcServer, type ExtProcServerOptions, type RunningExtProcServer } from './server.ts';
import { handleProcessStream } from './stream.ts';

interface ProcessClient extends grpc.Client {
  Process(): grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
}
interface HealthClient extends grpc.Client {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: HealthCheckResponse) => void): void;
}

const ENDPOINT: Endpoint = { address: '10.1.0.1:8000', ip: '10.1.0.1', port: 8000, name: 'pod', namespace: 'default', labels: {} };

/** One endpoint, always; counts in-flight requests. */
function oneEndpoint(): EndpointSource & { inFlight: number } {
  const s = {
    inFlight: 0,
    snapshot: () => [{ endpoint: ENDPOINT, metrics: null, inFlight: s.inFlight, load: s.inFlight }],
    synced: () => true,
    requestStarted: () => void s.inFlight++,
    requestFinished: () => void s.inFlight--,
    close: async () => {},
  };
  return s;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(options: Partial<ExtProcServerOptions> = {}): Promise<RunningExtProcServer> {
  const endpoints = oneEndpoint();
  const director = new Director({
    endpoints,
    state: () => ({
      scheduler: { schedule: async (_r, c) => ({ targets: [c[0]!.endpoint], profile: 'default', scores: {} }) },
      models: new ModelTable([]),
      saturation: DEFAULT_SATURATION,
    }),
    log: silentLogger,
  });
  const server = await startExtProcServer({
    host: '127.0.0.1',
    port: 0,
    healthPort: 0,
    synced: () => true,
    log: silentLogger,
    handler: (call) => handleProcessStream(call, { director, log: silentLogger }),
    ...options,
  });
  cleanups.push(() => server.close());
  return server;
}

function processClient(port: number, creds: grpc.ChannelCredentials): ProcessClient {
  // TLS to an IP address: name the server 'localhost' (as in the certificate) rather than the IP.
  const client = new ExternalProcessorClient(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': 'localhost' }) as ProcessClient;
  cleanups.push(() => client.close());
  return client;
}

/** A body-less GET through the router: the answer names the destination endpoint. */
function pickFor(client: ProcessClient): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const call = client.Process();
    call.on('data', (m: ProcessingResponse) => {
      const set = m.request_headers?.response?.header_mutation?.set_headers ?? [];
      resolve(headersToRecord({ headers: set.map((o) => o.header) })['x-gateway-destination-endpoint']);
      call.end();
    });
    call.on('error', reject);
    call.write({
      request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/models') }] }, end_of_stream: true },
    });
  });
}

function healthClient(port: number): HealthClient {
  const client = new HealthService(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as HealthClient;
  cleanups.push(() => client.close());
  return client;
}

const check = (client: HealthClient, service: string) =>
  new Promise<string>((resolve) => client.Check({ service }, (err, res) => resolve(err ? `error ${grpc.status[err.code]}` : res!.status)));

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ext_proc server transport', () => {
  it('serves plaintext h2c with secureServing false', async () => {
    const server = await start({ secureServing: false });
    expect(await pickFor(processClient(server.port, grpc.credentials.createInsecure()))).toBe('10.1.0.1:8000');
  });

  it('serves TLS with a self-signed certificate by default, refusing plaintext clients', async () => {
    const server = await start();
    // Envoy and Istio talk to the picker without verifying it (insecureSkipVerify), as this client does.
    const tls = grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false });
    expect(await pickFor(processClient(server.port, tls))).toBe('10.1.0.1:8000');
    await expect(pickFor(processClient(server.port, grpc.credentials.createInsecure()))).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
  });

  it('serves TLS with the tls.crt and tls.key found in --cert-path, which a client can verify', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kvroute-cert-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    const pair = await routerSelfSignedCertificate();
    await fs.writeFile(path.join(dir, 'tls.crt'), pair.cert);
    await fs.writeFile(path.join(dir, 'tls.key'), pair.key);
    const server = await start({ certPath: dir });
    const verified = grpc.credentials.createSsl(Buffer.from(pair.cert));
    const client = new ExternalProcessorClient(`localhost:${server.port}`, verified) as ProcessClient;
    cleanups.push(() => client.close());
    expect(await pickFor(client)).toBe('10.1.0.1:8000');
  });

  it("keeps a TLS connection through 2,000 complete exchanges each ended with a reset, as Envoy ends them (Node's rapid-reset limit)", async () => {
    // Node's HTTP/2 server sends GOAWAY after 1000 RST_STREAMs on a connection (refilled at 33/s) at
    // its defaults, failing the streams then open: the router serves TLS with higher limits.
    const server = await start();
    const client = processClient(server.port, grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false }));
    const failures: string[] = [];
    let completed = 0;
    const exchange = () =>
      new Promise<void>((resolve) => {
        const call = client.Process();
        let answers = 0;
        call.on('data', () => {
          answers++;
          if (answers === 1) {
            call.write({
              response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('204') }] }, end_of_stream: true },
            });
            return;
          }
          // Envoy's ExternalProcessorStreamImpl::close(): half-close, then reset at once.
          completed++;
          call.end();
          call.cancel();
          resolve();
        });
        call.on('error', (err: grpc.ServiceError) => {
          if (err.code !== grpc.status.CANCELLED) failures.push(`${grpc.status[err.code]}: ${err.details}`);
          resolve();
        });
        call.write({
          request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/models') }] }, end_of_stream: true },
        });
      });
    let started = 0;
    // 16 streams open at a time, like a busy gateway connection.
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (started < 2_000) {
          started++;
          await exchange();
        }
      }),
    );
    expect({ completed, failures: failures.slice(0, 3) }).toEqual({ completed: 2_000, failures: [] });
  }, 60_000);

  it('fails to start with a message naming the missing file when --cert-path lacks the key pair', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kvroute-cert-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    await expect(start({ certPath: dir })).rejects.toThrow(/--cert-path .*cannot read tls\.crt/);
  });
});

describe('ext_proc server health', () => {
  it('is live at once, ready only once endpoints are synced, and NOT_FOUND for unknown services', async () => {
    let synced = false;
    const server = await start({ secureServing: false, synced: () => synced });
    const health = healthClient(server.healthPort);
    expect(await check(health, 'liveness')).toBe('SERVING');
    for (const service of ['readiness', '', 'envoy.service.ext_proc.v3.ExternalProcessor'])
      expect(await check(health, service)).toBe('NOT_SERVING');
    synced = true;
    for (const service of ['readiness', '', 'envoy.service.ext_proc.v3.ExternalProcessor'])
      expect(await check(health, service)).toBe('SERVING');
    expect(await check(health, 'kvroute.indexer.v1.Indexer')).toBe('error NOT_FOUND');
  });

  it('stops being ready while draining and waits for open streams before drain resolves', async () => {
    const server = await start({ secureServing: false });
    const health = healthClient(server.healthPort);
    const client = processClient(server.port, grpc.credentials.createInsecure());
    const call = client.Process();
    call.on('error', () => {});
    call.write({ request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/completions') }] } } });
    await until('the stream to be open', () => server.activeStreams() === 1);

    let drained = false;
    const draining = server.drain(10_000).then(() => (drained = true));
    await until('readiness to drop', async () => (await check(health, 'readiness')) === 'NOT_SERVING');
    expect(await check(health, 'liveness')).toBe('SERVING');
    expect(drained).toBe(false);
    call.end();
    await draining;
    expect(server.activeStreams()).toBe(0);
  });

  it('gives up draining after the timeout', async () => {
    const server = await start({ secureServing: false });
    const call = processClient(server.port, grpc.credentials.createInsecure()).Process();
    call.on('error', () => {});
    call.write({ request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/completions') }] } } });
    await until('the stream to be open', () => server.activeStreams() === 1);
    const started = Date.now();
    await server.drain(100);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(server.activeStreams()).toBe(1);
  });
});
