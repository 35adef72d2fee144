import { afterEach, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { rawGrpcCall } from '../../../test/support/raw-grpc.ts';
import { GrpcStatus, startBidiStreamServer } from './bidi-stream-server.ts';
import { HealthService, createHealthImplementation, type HealthCheckResponse, type HealthStatusFn } from './health.ts';

interface HealthClient extends grpc.Client {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: HealthCheckResponse) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<HealthCheckResponse>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Transport = 'grpc-js' | 'own';

/** Serves the health service on grpc-js (the router's health port) or the own transport (the indexer's). */
async function serveOn(transport: Transport, status: HealthStatusFn, pollMs: number) {
  const health = createHealthImplementation(status, { pollMs });
  let port: number;
  let stop: () => Promise<void> | void;
  if (transport === 'grpc-js') {
    const server = new grpc.Server();
    server.addService(HealthService.service, health.handlers);
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    stop = () => server.forceShutdown();
  } else {
    const server = await startBidiStreamServer('127.0.0.1', 0, health.methods, { tls: null, maxReceiveMessageBytes: 1024 });
    port = server.port;
    stop = () => server.close(0);
  }
  const client = new HealthService(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as HealthClient;
  cleanups.push(async () => {
    client.close();
    health.close();
    await stop();
  });
  return { health, client, port };
}

const check = (client: HealthClient, service: string) =>
  new Promise<{ status?: string; code?: number }>((resolve) =>
    client.Check({ service }, (err, res) => resolve(err ? { code: err.code } : { status: res?.status })),
  );

/** Collects Watch updates; next() resolves with the next one (or one already received). */
function watch(client: HealthClient, service: string) {
  const stream = client.Watch({ service });
  const seen: string[] = [];
  const waiting: Array<(s: string) => void> = [];
  let ended = false;
  stream.on('data', (r: HealthCheckResponse) => {
    const w = waiting.shift();
    if (w) w(r.status);
    else seen.push(r.status);
  });
  stream.on('error', () => {});
  stream.on('end', () => (ended = true));
  cleanups.push(() => stream.cancel());
  return {
    next: () => new Promise<string>((resolve) => (seen.length ? resolve(seen.shift()!) : waiting.push(resolve))),
    ended: () => ended,
  };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each<Transport>(['grpc-js', 'own'])('grpc.health.v1 on the %s transport', (transport) => {
  const serve = (status: HealthStatusFn, pollMs = 60_000) => serveOn(transport, status, pollMs);

  it('answers Check with the status of a known service and NOT_FOUND for an unknown one', async () => {
    let ready = false;
    const { client } = await serve((s) =>
      s === 'liveness' ? 'SERVING' : s === 'readiness' ? (ready ? 'SERVING' : 'NOT_SERVING') : undefined,
    );
    expect(await check(client, 'liveness')).toEqual({ status: 'SERVING' });
    expect(await check(client, 'readiness')).toEqual({ status: 'NOT_SERVING' });
    ready = true;
    expect(await check(client, 'readiness')).toEqual({ status: 'SERVING' });
    expect(await check(client, 'nope')).toEqual({ code: grpc.status.NOT_FOUND });
  });

  it('streams Watch updates when refresh finds a change, and SERVICE_UNKNOWN for unknown services', async () => {
    let ready = false;
    const { client, health } = await serve((s) => (s === '' ? (ready ? 'SERVING' : 'NOT_SERVING') : undefined));
    const w = watch(client, '');
    expect(await w.next()).toBe('NOT_SERVING');
    ready = true;
    health.refresh();
    expect(await w.next()).toBe('SERVING');
    const unknown = watch(client, 'other');
    expect(await unknown.next()).toBe('SERVICE_UNKNOWN');
  });

  it('re-evaluates watched services on its own every pollMs', async () => {
    let ready = false;
    const { client } = await serve((s) => (s === '' ? (ready ? 'SERVING' : 'NOT_SERVING') : undefined), 20);
    const w = watch(client, '');
    expect(await w.next()).toBe('NOT_SERVING');
    ready = true;
    expect(await w.next()).toBe('SERVING');
  });

  it('ends Watch streams on close', async () => {
    const { client, health } = await serve(() => 'SERVING');
    const w = watch(client, '');
    expect(await w.next()).toBe('SERVING');
    health.close();
    await until('the watch stream to end', w.ended);
  });
});

describe('grpc.health.v1 Watch on the own transport', () => {
  it('ends a Watch call that sends no request message with INTERNAL instead of leaving it open', async () => {
    const { port } = await serveOn('own', () => 'SERVING', 60_000);
    expect(await rawGrpcCall(port, '/grpc.health.v1.Health/Watch', null)).toEqual({
      status: GrpcStatus.INTERNAL,
      message: 'the call ended without a request message',
    });
  });
});
