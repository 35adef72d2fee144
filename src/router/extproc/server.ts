// The router's gRPC servers: Envoy's ExternalProcessor on the gRPC port (TLS with a given or a
// self-signed certificate by default, plaintext h2c when asked), and grpc.health.v1 on its own
// plaintext port for kubelet probes and Envoy's health checks. Tracks the open Process streams so a
// terminating router can stop being ready and let them finish.
//
// HTTP/2 rapid-reset protection vs. Envoy. Node's HTTP/2 server (nghttp2) answers a connection that
// sends more RST_STREAM frames than `streamResetBurst` plus `streamResetRate` per second (defaults
// 1000 and 33/s) with GOAWAY, failing every stream then open on it. Envoy resets each ext_proc stream
// as its request ends (ExternalProcessorStreamImpl::close: half-close, then reset at once), so at
// the defaults a gateway sending more than 33 requests a second over one connection lost it after
// about a thousand (a bench at 1000 req/s saw 450 5xx). Ending the router's side earlier does not
// help: nghttp2 counts a reset of a stream it has already closed too, and Envoy sends its reset
// anyway (measured with the router ending at the response's end: 2963 of 3000 streams reset). So the
// ext_proc server, TLS or h2c, runs with STREAM_RESET_LIMITS (the router's own HTTP/2 transport,
// src/common/grpc/bidi-stream-server.ts, takes session options; grpc-js took them for TLS only).

import fs from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { served, startBidiStreamServer, type RunningBidiStreamServer } from '../../common/grpc/bidi-stream-server.ts';
import { selfSignedCertificate, type KeyPair } from '../../common/tls/self-signed.ts';
import { HealthService, createHealthImplementation, type ServingStatus } from '../../common/grpc/health.ts';
import type { Logger } from '../../common/log.ts';
import { ExternalProcessorServerDefinition } from '../../envoy/ext-proc-codec.ts';
import type { ProcessStream, ProcessingRequest, ProcessingResponse } from '../../envoy/ext-proc.ts';
import { immediateErrorResponse } from './responses.ts';

/** The health service names GIE's endpoint picker answers (besides "liveness", always SERVING). */
const READINESS_SERVICES = ['readiness', '', 'envoy.service.ext_proc.v3.ExternalProcessor'];

export interface ExtProcServerOptions {
  /** Address both servers listen on (default 0.0.0.0). */
  host?: string;
  port: number;
  healthPort: number;
  /** TLS (default true); false serves plaintext h2c. */
  secureServing?: boolean;
  /** Directory holding tls.crt and tls.key; a self-signed certificate is made when absent. */
  certPath?: string;
  /** Serves one Process stream; resolves when the stream is over. */
  handler: (call: ProcessStream) => Promise<void>;
  /** Readiness: true once the endpoints are known. */
  synced: () => boolean;
  log: Logger;
  /** Largest message accepted from Envoy (a BUFFERED body arrives whole); default 65 MiB. */
  maxReceiveMessageBytes?: number;
  /** How often watched health statuses are re-evaluated (default 500 ms). */
  healthPollMs?: number;
  /** Process streams served at once; one more is answered 503 router-overloaded (default 10000). */
  maxConcurrentStreams?: number;
  /** Told of each stream refused for the bound above, for metrics. */
  onRefused?: (status: number, reason: string) => void;
}

/** Default of ExtProcServerOptions.maxConcurrentStreams. */
const DEFAULT_MAX_CONCURRENT_STREAMS = 10_000;

/**
 * Answers a stream over the concurrency bound: a 503 as soon as its first message arrives (ext_proc
 * allows an ImmediateResponse only in reply to one), then ends it; later messages are ignored.
 */
function refuseOverloaded(call: ProcessStream, limit: number): void {
  call.on('error', () => {});
  call.once('data', () => {
    call.write(immediateErrorResponse(503, 'router-overloaded', `the router is serving ${limit} streams, its --max-concurrent-streams`));
    call.end();
  });
}

export interface RunningExtProcServer {
  port: number;
  healthPort: number;
  /** Process streams open now. */
  activeStreams(): number;
  /** Readiness goes NOT_SERVING, then waits up to timeoutMs for the open streams to end. */
  drain(timeoutMs: number): Promise<void>;
  /** Stops both servers; streams still open are cut. */
  close(): Promise<void>;
}

/**
 * The rapid-reset limits of the ext_proc server (TLS or h2c), per connection. Envoy resets (almost) every
 * stream it opens, so resets per second track requests per second: these sit above what one router
 * process serves, and a client resetting faster than that is still cut off.
 */
const STREAM_RESET_LIMITS = { streamResetBurst: 10_000, streamResetRate: 10_000 } as const;

/** The certificate the router serves with when given none, as GIE's endpoint picker makes one at start. */
export const routerSelfSignedCertificate = (): Promise<KeyPair> => selfSignedCertificate({ commonName: 'kvroute-router', days: 3650 });

async function readKeyPair(dir: string): Promise<KeyPair> {
  const read = async (name: string) => {
    try {
      return await fs.readFile(path.join(dir, name), 'utf8');
    } catch (err) {
      throw new Error(`--cert-path ${dir}: cannot read ${name}: ${(err as Error).message}`);
    }
  };
  return { cert: await read('tls.crt'), key: await read('tls.key') };
}

/** The TLS key pair the ext_proc port serves with, or null for plaintext h2c. */
async function tlsKeyPair(options: ExtProcServerOptions): Promise<KeyPair | null> {
  if (options.secureServing === false) return null;
  const pair = options.certPath ? await readKeyPair(options.certPath) : await routerSelfSignedCertificate();
  try {
    tls.createSecureContext({ cert: pair.cert, key: pair.key });
  } catch (err) {
    throw new Error(`TLS certificate${options.certPath ? ` in ${options.certPath}` : ''} is unusable: ${(err as Error).message}`);
  }
  return pair;
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, creds, (err, port) =>
      err ? reject(new Error(`cannot listen on ${address}: ${err.message}`)) : resolve(port),
    ),
  );
}

function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function startExtProcServer(options: ExtProcServerOptions): Promise<RunningExtProcServer> {
  const { log } = options;
  const host = options.host ?? '0.0.0.0';
  const active = new Set<Promise<void>>();
  let draining = false;

  const status = (service: string): ServingStatus | undefined => {
    if (service === 'liveness') return 'SERVING';
    if (READINESS_SERVICES.includes(service)) return options.synced() && !draining ? 'SERVING' : 'NOT_SERVING';
    return undefined;
  };
  const health = createHealthImplementation(status, { pollMs: options.healthPollMs ?? 500 });
  const healthServer = new grpc.Server();
  healthServer.addService(HealthService.service, health.handlers);

  const maxReceive = options.maxReceiveMessageBytes ?? 65 * 1024 * 1024;
  const maxStreams = options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS;
  const process = ExternalProcessorServerDefinition.Process!;
  const serve = (call: ProcessStream) => {
    if (active.size >= maxStreams) {
      options.onRefused?.(503, 'router-overloaded');
      log.limited('extproc-overloaded', 'warn', 'ext_proc stream refused: too many open streams', {
        open: active.size,
        limit: maxStreams,
      });
      refuseOverloaded(call, maxStreams);
      return;
    }
    const done = options.handler(call).catch((err: unknown) => log.error('ext_proc stream handler failed', { err }));
    active.add(done);
    void done.finally(() => active.delete(done));
  };

  const pair = await tlsKeyPair(options);
  let server: RunningBidiStreamServer;
  let healthPort: number;
  try {
    // The hand-written codec (proto-loader's reflection was a tenth of the CPU per request) on the
    // router's own HTTP/2 transport (grpc-js's per-message cost was more than the router's work).
    server = await startBidiStreamServer(
      host,
      options.port,
      [
        served<ProcessingRequest, ProcessingResponse>({
          path: process.path,
          decode: (bytes) => process.requestDeserialize(bytes) as ProcessingRequest,
          encode: (message) => process.responseSerialize(message),
          handler: serve,
        }),
      ],
      {
        tls: pair,
        maxReceiveMessageBytes: maxReceive,
        sessionOptions: STREAM_RESET_LIMITS,
        onSessionError: (err) => log.limited('extproc-session-error', 'warn', 'ext_proc HTTP/2 session error', { err }),
      },
    );
  } catch (err) {
    healthServer.forceShutdown();
    throw err;
  }
  try {
    healthPort = await bind(healthServer, `${host}:${options.healthPort}`, grpc.ServerCredentials.createInsecure());
  } catch (err) {
    await server.close(0);
    healthServer.forceShutdown();
    throw err;
  }
  const port = server.port;
  log.info('ext_proc server listening', {
    host,
    port,
    tls: options.secureServing !== false,
    certPath: options.certPath ?? null,
    healthPort,
  });

  let closing: Promise<void> | undefined;
  return {
    port,
    healthPort,
    activeStreams: () => active.size,
    async drain(timeoutMs: number) {
      draining = true;
      health.refresh();
      log.info('draining ext_proc streams', { open: active.size, timeoutMs });
      const deadline = Date.now() + timeoutMs;
      // Streams that open while draining (the gateway has not seen readiness drop yet) are waited for too.
      while (active.size > 0 && Date.now() < deadline) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.race([...active]),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
        ]);
        clearTimeout(timer);
      }
      if (active.size > 0) log.warn('drain timeout passed with streams still open', { open: active.size });
    },
    close() {
      closing ??= (async () => {
        draining = true;
        health.close();
        await Promise.all([server.close(1_000), shutdown(healthServer, 1_000)]);
      })();
      return closing;
    },
  };
}
