// A plaintext gRPC client for one unary method straight on node:http2: one HTTP/2 session per
// address, a POST per call with the request framed as gRPC does, the status read from the trailers.
// Why not grpc-js: the router asks the indexer once per request, on the request's critical path, and
// grpc-js's channel stack (resolver, load balancer, call layers) was about half of that call's
// round trip on two cores (ADR 0015). Failure is fast and plain: a refused connection fails its calls
// at once as UNAVAILABLE and further calls for a back-off that doubles from 100 ms to 2 s, so a dead
// peer costs a caller nothing, and a new session is made once the back-off has passed.

import http2 from 'node:http2';
import { GrpcStatus, MessageFramer, grpcStatusName } from './bidi-stream-server.ts';

export class GrpcCallError extends Error {
  readonly code: number;
  constructor(code: number, details: string) {
    super(`${grpcStatusName(code)}: ${details}`);
    this.code = code;
  }
}

const { DEADLINE_EXCEEDED, UNAVAILABLE, INTERNAL } = GrpcStatus;

export interface UnaryMethod<Req, Res> {
  /** The HTTP/2 :path, "/package.Service/Method". */
  path: string;
  encode(request: Req): Uint8Array;
  decode(bytes: Buffer): Res;
}

export interface UnaryClientOptions {
  /** Largest response accepted (default 4 MiB, as grpc-js). */
  maxReceiveMessageBytes?: number;
}

export interface UnaryClient<Req, Res> {
  call(request: Req, deadlineMs: number): Promise<Res>;
  close(): void;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;

function decodeGrpcMessage(value: unknown): string {
  if (typeof value !== 'string') return '';
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** A client of `method` at host:port (plaintext h2c). */
export function createUnaryClient<Req, Res>(
  address: string,
  method: UnaryMethod<Req, Res>,
  options: UnaryClientOptions = {},
): UnaryClient<Req, Res> {
  const maxReceive = options.maxReceiveMessageBytes ?? 4 * 1024 * 1024;
  let session: http2.ClientHttp2Session | null = null;
  let closed = false;
  let backoffMs = 0;
  let retryAt = 0;
  let lastFailure = '';
  /** Sessions that got a GOAWAY -> the last stream id the server said it would process. */
  const goawayLastStream = new WeakMap<http2.ClientHttp2Session, number>();

  const connect = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(`http://${address}`, { maxSessionMemory: Number.MAX_SAFE_INTEGER });
    session = s;
    let connected = false;
    // Connected means the peer spoke HTTP/2 (its SETTINGS), not just that TCP was accepted: a proxy that
    // accepts and closes must back off too.
    s.once('remoteSettings', () => {
      connected = true;
      backoffMs = 0;
      // The session is shared by every call; it must not keep a finishing process alive on its own.
      s.unref();
    });
    let failed = false;
    const failBeforeConnected = (reason: string) => {
      if (connected || failed) return;
      failed = true;
      backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, backoffMs * 2));
      retryAt = Date.now() + backoffMs;
      lastFailure = reason;
    };
    s.on('error', (err: Error) => failBeforeConnected(err.message));
    const forget = () => {
      if (session === s) session = null;
    };
    s.once('close', () => {
      failBeforeConnected('the connection closed before HTTP/2 settings');
      forget();
    });
    s.once('goaway', (_code: number, lastStreamID: number) => {
      goawayLastStream.set(s, lastStreamID);
      forget();
    });
    return s;
  };

  const call = (request: Req, deadlineMs: number): Promise<Res> => {
    if (closed) return Promise.reject(new GrpcCallError(UNAVAILABLE, 'the client is closed'));
    let payload: Uint8Array;
    try {
      payload = method.encode(request);
    } catch (err) {
      return Promise.reject(new GrpcCallError(INTERNAL, `cannot encode the request: ${(err as Error).message}`));
    }
    return send(payload, deadlineMs, deadlineMs, true);
  };

  /**
   * One attempt. A stream the server refused before reading it (RST_STREAM REFUSED_STREAM, which is
   * also how HTTP/2 ends the streams a GOAWAY did not take) was never processed, so, as gRPC does
   * transparently, it is sent once more within what is left of the deadline (on a new connection
   * when a GOAWAY ended the old one). A stream above a GOAWAY's last stream id is one too, whatever
   * the GOAWAY's error code (one with an error destroys the session, and the stream sees that error).
   * `callMs` is the caller's deadline, for the message.
   */
  const send = (payload: Uint8Array, deadlineMs: number, callMs: number, mayRetry: boolean): Promise<Res> =>
    new Promise<Res>((resolve, reject) => {
      if (closed) return reject(new GrpcCallError(UNAVAILABLE, 'the client is closed'));
      if (Date.now() < retryAt)
        return reject(new GrpcCallError(UNAVAILABLE, `cannot connect to ${address} (${lastFailure}); retrying after a back-off`));
      const deadlineAt = Date.now() + deadlineMs;
      const header = Buffer.allocUnsafe(5);
      header[0] = 0;
      header.writeUInt32BE(payload.length, 1);

      let session: http2.ClientHttp2Session;
      let stream: http2.ClientHttp2Stream;
      try {
        session = connect();
        stream = session.request({
          ':method': 'POST',
          ':path': method.path,
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': `${Math.max(1, Math.ceil(deadlineMs))}m`,
        });
      } catch (err) {
        return reject(new GrpcCallError(UNAVAILABLE, (err as Error).message));
      }

      let settled = false;
      let ended = false;
      let responded = false;
      const settle = (outcome: { value: Res } | { error: GrpcCallError }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // Only a call given up early resets its stream: a Node server counts resets against a
        // rapid-reset budget (1000, then 33/s) and ends the whole session past it.
        if (!ended && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        if ('value' in outcome) resolve(outcome.value);
        else reject(outcome.error);
      };
      const timer = setTimeout(() => settle({ error: new GrpcCallError(DEADLINE_EXCEEDED, `no answer within ${callMs} ms`) }), deadlineMs);
      const refusedUnread = () => {
        if (!mayRetry || responded) return false;
        if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) return true;
        const last = goawayLastStream.get(session);
        return last !== undefined && (stream.id === undefined || stream.id > last);
      };

      const framer = new MessageFramer(maxReceive);
      let message: Buffer | undefined;
      let status: number | undefined;
      let details = '';
      const readStatus = (headers: http2.IncomingHttpHeaders) => {
        if (headers['grpc-status'] === undefined) return;
        status = Number(headers['grpc-status']);
        details = decodeGrpcMessage(headers['grpc-message']);
      };
      stream.on('response', (headers) => {
        responded = true;
        const httpStatus = Number(headers[':status']);
        if (httpStatus !== 200) settle({ error: new GrpcCallError(UNAVAILABLE, `HTTP status ${httpStatus} from ${address}`) });
        readStatus(headers); // a trailers-only answer carries its status here
      });
      stream.on('trailers', readStatus);
      stream.on('data', (chunk: Buffer) => {
        try {
          for (const m of framer.push(chunk)) message ??= m;
        } catch (err) {
          settle({ error: new GrpcCallError(INTERNAL, (err as Error).message) });
        }
      });
      stream.on('end', () => {
        ended = true;
        if (status === undefined) return settle({ error: new GrpcCallError(INTERNAL, 'the response ended without a status') });
        if (status !== 0) return settle({ error: new GrpcCallError(status, details) });
        if (!message) return settle({ error: new GrpcCallError(INTERNAL, 'the response had no message') });
        try {
          settle({ value: method.decode(message) });
        } catch (err) {
          settle({ error: new GrpcCallError(INTERNAL, `cannot decode the response: ${(err as Error).message}`) });
        }
      });
      stream.on('error', (err: Error) => {
        // A refused stream is retried when it closes.
        if (!refusedUnread()) settle({ error: new GrpcCallError(UNAVAILABLE, err.message) });
      });
      stream.on('close', () => {
        if (settled) return;
        if (refusedUnread() && Date.now() < deadlineAt) {
          settled = true;
          clearTimeout(timer);
          send(payload, deadlineAt - Date.now(), callMs, false).then(resolve, reject);
          return;
        }
        settle({ error: new GrpcCallError(UNAVAILABLE, `the stream closed (code ${stream.rstCode})`) });
      });
      stream.cork();
      stream.write(header);
      stream.end(payload);
      stream.uncork();
    });

  return {
    call,
    close() {
      closed = true;
      session?.close();
      session = null;
    },
  };
}
