// grpc.health.v1 for every gRPC server in kvroute (the indexer's, the router's): the service loaded
// from health.proto, and Check/Watch handlers over a function that says how each named service is, for
// grpc-js (handlers) and for the project's own transport (methods).
// Per the gRPC health spec, Check on an unknown service fails with NOT_FOUND and Watch reports
// SERVICE_UNKNOWN and keeps the stream open, since the service may appear later.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { GrpcStatus, GrpcStatusError, served, unaryMethod, type ServedMethod } from './bidi-stream-server.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

interface ServiceConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions): grpc.Client;
  service: grpc.ServiceDefinition;
}

function loadHealthService(): ServiceConstructor {
  const definition = protoLoader.loadSync(path.join(here, 'health.proto'), { keepCase: true, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: ServiceConstructor } } } };
  return pkg.grpc.health.v1.Health;
}

/** The Health service: `.service` for Server#addService, and a client constructor (for tests and tools). */
export const HealthService: ServiceConstructor = loadHealthService();

export type ServingStatus = 'SERVING' | 'NOT_SERVING';
type WatchStatus = ServingStatus | 'SERVICE_UNKNOWN';

/** How a named service is now, or undefined when this server does not know the name. */
export type HealthStatusFn = (service: string) => ServingStatus | undefined;

interface HealthCheckRequest {
  service: string;
}
export interface HealthCheckResponse {
  status: 'UNKNOWN' | WatchStatus;
}

export interface HealthImplementation {
  /** For `server.addService(HealthService.service, handlers)`. */
  handlers: grpc.UntypedServiceImplementation;
  /** The same Check and Watch for the project's own transport (bidi-stream-server.ts). */
  methods: ServedMethod[];
  /** Re-evaluates every watched service now and tells its watchers when its status changed. */
  refresh(): void;
  /** Ends every Watch stream, so a server's graceful shutdown does not wait on them. */
  close(): void;
}

export interface HealthOptions {
  /**
   * How often watched statuses are re-evaluated when nobody calls refresh() (readiness is usually a
   * function of other state, e.g. "endpoints synced", that does not announce its changes). Default 500.
   */
  pollMs?: number;
}

interface Watcher {
  call: { write(message: HealthCheckResponse): unknown; end(): void };
  service: string;
  last: WatchStatus;
}

export function createHealthImplementation(status: HealthStatusFn, options: HealthOptions = {}): HealthImplementation {
  const pollMs = options.pollMs ?? 500;
  const watchers = new Set<Watcher>();
  let timer: NodeJS.Timeout | undefined;

  const watchStatus = (service: string): WatchStatus => status(service) ?? 'SERVICE_UNKNOWN';

  const refresh = (): void => {
    for (const w of watchers) {
      const now = watchStatus(w.service);
      if (now === w.last) continue;
      w.last = now;
      w.call.write({ status: now });
    }
  };

  const forget = (w: Watcher): void => {
    watchers.delete(w);
    if (watchers.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  /** Check's answer, or undefined for a service this server does not know. */
  const check = (request: HealthCheckRequest): HealthCheckResponse | undefined => {
    const now = status(request.service ?? '');
    return now === undefined ? undefined : { status: now };
  };
  const unknown = (request: HealthCheckRequest) => `unknown service "${request.service ?? ''}"`;
  /** Starts a Watch: the current status now, then each change, until the call goes. */
  const watch = (
    request: HealthCheckRequest,
    call: Watcher['call'] & { on(event: 'cancelled' | 'close', listener: () => void): unknown },
  ): void => {
    const service = request.service ?? '';
    const w: Watcher = { call, service, last: watchStatus(service) };
    watchers.add(w);
    call.on('cancelled', () => forget(w));
    call.on('close', () => forget(w));
    call.write({ status: w.last });
    timer ??= setInterval(refresh, pollMs).unref();
  };

  const handlers: grpc.UntypedServiceImplementation = {
    Check: (call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) => {
      const answer = check(call.request);
      if (answer) callback(null, answer);
      else callback({ code: grpc.status.NOT_FOUND, details: unknown(call.request) });
    },
    Watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => watch(call.request, call),
  };

  const def = HealthService.service;
  const decode = (b: Buffer) => def['Check']!.requestDeserialize(b) as HealthCheckRequest;
  const encode = (m: HealthCheckResponse) => def['Check']!.responseSerialize(m);
  const methods: ServedMethod[] = [
    served(
      unaryMethod(def['Check']!.path, decode, encode, (request) => {
        const answer = check(request);
        return answer ? Promise.resolve(answer) : Promise.reject(new GrpcStatusError(GrpcStatus.NOT_FOUND, unknown(request)));
      }),
    ),
    served<HealthCheckRequest, HealthCheckResponse>({
      path: def['Watch']!.path,
      decode,
      encode,
      handler: (stream) => stream.onRequest((request) => watch(request, stream)),
    }),
  ];

  return {
    handlers,
    methods,
    refresh,
    close() {
      for (const w of [...watchers]) {
        forget(w);
        w.call.end();
      }
    },
  };
}
