// grpc.health.v1 for every gRPC server in kvroute (the indexer's, the router's): the service loaded
// from health.proto, and Check/Watch handlers over a function that says how each named service is.
// Per the gRPC health spec, Check on an unknown service fails with NOT_FOUND and Watch reports
// SERVICE_UNKNOWN and keeps the stream open, since the service may appear later.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

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
  call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;
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

  const handlers: grpc.UntypedServiceImplementation = {
    Check: (call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) => {
      const service = call.request.service ?? '';
      const now = status(service);
      if (now === undefined) {
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service "${service}"` });
        return;
      }
      callback(null, { status: now });
    },
    Watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
      const service = call.request.service ?? '';
      const w: Watcher = { call, service, last: watchStatus(service) };
      watchers.add(w);
      call.on('cancelled', () => forget(w));
      call.on('close', () => forget(w));
      call.write({ status: w.last });
      timer ??= setInterval(refresh, pollMs).unref();
    },
  };

  return {
    handlers,
    refresh,
    close() {
      for (const w of [...watchers]) {
        forget(w);
        w.call.end();
      }
    },
  };
}
