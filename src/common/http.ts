// A small HTTP server shared by every long-running part: JSON routes, /healthz, /readyz, /metrics,
// bounded request bodies, a JSON error for every failure, and a close() that drains in-flight requests.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './log.ts';

export class HttpError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, message: string, body?: unknown) {
    super(message);
    this.status = status;
    this.body = body ?? { error: message };
  }
}

export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void> | void;

export interface HttpServerOptions {
  host?: string;
  port: number;
  log: Logger;
  registry?: Registry;
  /** Answers /readyz; /healthz only says the process serves HTTP. */
  ready?: () => boolean;
  routes: Record<string, RouteHandler>;
  maxBodyBytes?: number;
  /**
   * Shapes the body of errors the server itself answers (no such route, method not allowed, a
   * handler's unexpected failure) for servers that mimic another API. Default: {"error": message}.
   */
  errorBody?: (status: number, message: string) => unknown;
}

export interface RunningHttpServer {
  server: http.Server;
  port: number;
  close(): Promise<void>;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, `request body exceeds ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Reads and parses a JSON body; the caller validates its shape (zod) and turns issues into a 400. */
export async function readJson(req: http.IncomingMessage, maxBytes = 16 * 1024 * 1024): Promise<unknown> {
  const body = await readBody(req, maxBytes);
  if (body.length === 0) throw new HttpError(400, 'request body is empty: expected a JSON object');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body is not valid JSON: ${(err as Error).message}`);
  }
}

export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { log, registry } = options;
  const errorBody = options.errorBody ?? ((_status: number, message: string) => ({ error: message }));
  const routes: Record<string, RouteHandler> = {
    'GET /healthz': (_req, res) => sendJson(res, 200, { status: 'ok' }),
    'GET /readyz': (_req, res) => {
      const ready = options.ready ? options.ready() : true;
      sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' });
    },
    ...(registry
      ? {
          'GET /metrics': async (_req: http.IncomingMessage, res: http.ServerResponse) => {
            const text = await registry.metrics();
            res.writeHead(200, { 'content-type': registry.contentType });
            res.end(text);
          },
        }
      : {}),
    ...options.routes,
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const handler = routes[`${req.method} ${url.pathname}`];
    if (!handler) {
      const allowed = Object.keys(routes).some((k) => k.endsWith(` ${url.pathname}`));
      const status = allowed ? 405 : 404;
      sendJson(
        res,
        status,
        errorBody(status, allowed ? `method ${req.method} not allowed on ${url.pathname}` : `no route for ${url.pathname}`),
      );
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res, url))
      .catch((err: unknown) => {
        if (err instanceof HttpError) {
          if (!res.headersSent) sendJson(res, err.status, err.body);
          else res.end();
          return;
        }
        log.error('request failed', { path: url.pathname, err });
        if (!res.headersSent) sendJson(res, 500, errorBody(500, 'internal error'));
        else res.end();
      });
  });
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info('http server listening', { host: options.host ?? '0.0.0.0', port });

  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
