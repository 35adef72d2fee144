// A gRPC server straight on node:http2 for the router's ext_proc port and the indexer's gRPC port:
// bidirectional-streaming methods, and unary ones over the same stream (unaryMethod). Why not
// grpc-js: Envoy's ext_proc stream is ~10 small messages per request, and grpc-js's per-message
// machinery (interceptor chain, call state, its own decoder) cost more CPU and latency than the
// router's own work (ADR 0015, bench/grpc-transport.ts). What gRPC over HTTP/2 needs here is small: a
// POST to /package.Service/Method, messages framed as a flag byte plus a 4-byte big-endian length, and
// the status in trailers. The router's health port stays on grpc-js.
//
// A stream reaches the handler as a GrpcBidiStream: 'data' per decoded message, 'end' when the
// client half-closes, 'cancelled' when it resets the stream, 'close' once it is gone, 'error' for a
// message that cannot be decoded or exceeds the size bound (the stream is then ended with that status),
// write() with backpressure ('drain'), and end() to close with OK.

import { EventEmitter } from 'node:events';
import http2 from 'node:http2';

/** gRPC status codes used here. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** gRPC status names by code, for error messages and metric labels. */
const STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** A status code's name (OK, INVALID_ARGUMENT, ...), or the number for one outside the spec. */
export function grpcStatusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

export interface BidiMethod<Req, Res> {
  /** The HTTP/2 :path, "/package.Service/Method". */
  path: string;
  decode(bytes: Buffer): Req;
  encode(message: Res): Uint8Array;
  /** Called once per new stream. */
  handler(stream: GrpcBidiStream<Req, Res>): void;
}

export interface BidiStreamServerOptions {
  /** PEM certificate and key for TLS; null serves plaintext h2c. */
  tls: { cert: string; key: string } | null;
  /** Largest message accepted; a bigger one ends its stream with RESOURCE_EXHAUSTED. */
  maxReceiveMessageBytes: number;
  /** HTTP/2 session options layered over the defaults here (for example rapid-reset limits). */
  sessionOptions?: http2.ServerOptions;
  /** Told of a session or protocol error (logged by the caller; never thrown). */
  onSessionError?: (err: Error) => void;
}

const HEADER_BYTES = 5;
/** HTTP/2 flow-control windows and the largest frame the peer may send (2^24-1 is the protocol's limit). */
const STREAM_WINDOW_BYTES = 1024 * 1024;
const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
const MAX_FRAME_BYTES = 1024 * 1024;
/** A message spanning chunks starts in a buffer this big and doubles as it arrives. */
const INITIAL_MESSAGE_BUFFER = 256 * 1024;

/**
 * Splits a stream's DATA into gRPC messages. A message wholly inside one chunk is a view into it; one
 * spanning chunks is copied into a buffer that doubles as it arrives (up to its announced length), so
 * a large (BUFFERED) body costs no repeated concatenation and a header alone reserves little memory.
 */
export class MessageFramer {
  readonly #header = Buffer.alloc(HEADER_BYTES);
  #headerFilled = 0;
  #message: Buffer | null = null;
  /** The announced length of the message being received (its buffer may be smaller until it arrives). */
  #messageLength = 0;
  #messageFilled = 0;
  readonly #maxBytes: number;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Feeds one chunk; returns the messages completed by it. Throws FramingError on a bad frame. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.#message === null) {
        if (this.#headerFilled === 0 && chunk.length - at >= HEADER_BYTES) {
          const length = this.#checkHeader(chunk, at);
          at += HEADER_BYTES;
          if (chunk.length - at >= length) {
            out.push(chunk.subarray(at, at + length));
            at += length;
            continue;
          }
          this.#startMessage(length);
          continue;
        }
        const take = Math.min(HEADER_BYTES - this.#headerFilled, chunk.length - at);
        chunk.copy(this.#header, this.#headerFilled, at, at + take);
        this.#headerFilled += take;
        at += take;
        if (this.#headerFilled < HEADER_BYTES) break;
        this.#headerFilled = 0;
        const length = this.#checkHeader(this.#header, 0);
        if (length === 0) out.push(Buffer.alloc(0));
        else this.#startMessage(length);
        continue;
      }
      const take = Math.min(this.#messageLength - this.#messageFilled, chunk.length - at);
      if (this.#messageFilled + take > this.#message.length) this.#grow(this.#messageFilled + take);
      chunk.copy(this.#message!, this.#messageFilled, at, at + take);
      this.#messageFilled += take;
      at += take;
      if (this.#messageFilled === this.#messageLength) {
        out.push(this.#message!);
        this.#message = null;
      }
    }
    return out;
  }

  /** Bytes held for the message being received (for tests of the memory bound). */
  get bufferedBytes(): number {
    return this.#message?.length ?? 0;
  }

  /** Whether a message is partly received (a stream ending now would cut it). */
  get partial(): boolean {
    return this.#message !== null || this.#headerFilled > 0;
  }

  #checkHeader(bytes: Buffer, at: number): number {
    const flag = bytes[at]!;
    const length = bytes.readUInt32BE(at + 1);
    if (flag !== 0)
      throw new FramingError(GrpcStatus.UNIMPLEMENTED, 'compressed messages are not supported (no grpc-encoding was offered)');
    if (length > this.#maxBytes)
      throw new FramingError(GrpcStatus.RESOURCE_EXHAUSTED, `message of ${length} bytes exceeds the limit of ${this.#maxBytes}`);
    return length;
  }

  #startMessage(length: number): void {
    // Memory follows the bytes that arrive, not the length a header announces (up to the bound).
    this.#message = Buffer.allocUnsafe(Math.min(length, INITIAL_MESSAGE_BUFFER));
    this.#messageLength = length;
    this.#messageFilled = 0;
  }

  #grow(needed: number): void {
    const bigger = Buffer.allocUnsafe(Math.min(this.#messageLength, Math.max(needed, this.#message!.length * 2)));
    this.#message!.copy(bigger, 0, 0, this.#messageFilled);
    this.#message = bigger;
  }
}

export class FramingError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** Percent-encodes a grpc-message value as the gRPC spec asks: printable ASCII but '%' as is, else %XX of UTF-8. */
function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8'))
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** A grpc-timeout header ("200m", "5S": up to 8 digits and a unit) as an epoch-ms deadline. */
export function parseGrpcTimeout(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const match = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  return match ? now + Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]! : undefined;
}

/** One server-side gRPC stream: messages in as events, messages out through write(). */
export class GrpcBidiStream<Req, Res> extends EventEmitter {
  readonly #stream: http2.ServerHttp2Stream;
  readonly #encode: (message: Res) => Uint8Array;
  #status: { code: number; message?: string } = { code: GrpcStatus.OK };
  #ended = false;
  #cancelled = false;
  /** The caller's deadline (epoch ms) from its grpc-timeout header; undefined when it set none. */
  readonly deadline: number | undefined;

  constructor(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    method: BidiMethod<Req, Res>,
    maxReceiveMessageBytes: number,
  ) {
    super();
    this.#stream = stream;
    this.deadline = parseGrpcTimeout(headers['grpc-timeout']);
    this.#encode = method.encode;
    const framer = new MessageFramer(maxReceiveMessageBytes);

    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
      const trailers: http2.OutgoingHttpHeaders = { 'grpc-status': String(this.#status.code) };
      if (this.#status.message) trailers['grpc-message'] = grpcMessage(this.#status.message);
      stream.sendTrailers(trailers);
    });
    stream.on('data', (chunk: Buffer) => {
      if (this.#ended) return;
      let messages: Buffer[];
      try {
        messages = framer.push(chunk);
      } catch (err) {
        const framing = err as FramingError;
        this.#fail(framing.code, framing.message);
        return;
      }
      for (const bytes of messages) {
        let message: Req;
        try {
          message = method.decode(bytes);
        } catch (err) {
          this.#fail(GrpcStatus.INTERNAL, `cannot decode the request message: ${(err as Error).message}`);
          return;
        }
        this.emit('data', message);
        if (this.#ended) return;
      }
    });
    stream.on('end', () => {
      if (framer.partial && !this.#ended) this.#fail(GrpcStatus.INTERNAL, 'the stream ended inside a message');
      else this.emit('end');
    });
    stream.on('drain', () => this.emit('drain'));
    // Node emits 'aborted' only on some paths of a peer's RST_STREAM; a stream that closes with an
    // error code was reset either way.
    const cancel = () => {
      if (this.#cancelled) return;
      this.#cancelled = true;
      this.emit('cancelled');
    };
    stream.on('aborted', cancel);
    // A reset or session failure: the handler learns of it through 'close' (and 'error' if it listens).
    stream.on('error', (err: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    stream.on('close', () => {
      if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) cancel();
      this.#ended = true;
      this.emit('close');
    });
    // Now, not later: the stream flows once a 'data' listener is on, and its first messages must not be missed.
    method.handler(this);
  }

  /** Sends one message; false when the caller should wait for 'drain'. A gone stream takes nothing. */
  write(message: Res): boolean {
    const stream = this.#stream;
    if (this.#ended || stream.destroyed || !stream.writable) return true;
    const payload = this.#encode(message);
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header[0] = 0;
    header.writeUInt32BE(payload.length, 1);
    // Corked, the header and payload go out as one write (one DATA frame when they fit) without a copy.
    stream.cork();
    stream.write(header);
    const more = stream.write(payload);
    stream.uncork();
    return more;
  }

  /** Ends the stream with status OK (or the status an earlier failure set). */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (!this.#stream.destroyed && this.#stream.writable) this.#stream.end();
  }

  /** Whether the peer reset the stream. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /**
   * For a method that takes one request message (unary, server-streaming): `listener` gets it, and a
   * call that half-closes without sending one ends with INTERNAL.
   */
  onRequest(listener: (request: Req) => void): void {
    let received = false;
    this.once('data', (request: Req) => {
      received = true;
      listener(request);
    });
    this.on('end', () => {
      if (!received) this.endWithStatus(GrpcStatus.INTERNAL, 'the call ended without a request message');
    });
  }

  /** Ends the stream with a status other than OK (for a unary handler's failure). */
  endWithStatus(code: number, message: string): void {
    if (this.#ended) return;
    this.#status = { code, message };
    this.end();
  }

  /** Ends the stream with an error status, telling the handler first. */
  #fail(code: number, message: string): void {
    this.#status = { code, message };
    if (this.listenerCount('error') > 0) this.emit('error', Object.assign(new Error(message), { code }));
    this.end();
  }
}

export interface RunningBidiStreamServer {
  port: number;
  /** Stops accepting connections; open sessions close gracefully, and are cut after graceMs. */
  close(graceMs: number): Promise<void>;
}

/** A method ready to serve: its path and how a new stream starts (types erased per method). */
export interface ServedMethod {
  path: string;
  start(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, maxReceiveMessageBytes: number): void;
}

/** Wraps a typed method for startBidiStreamServer. */
export function served<Req, Res>(method: BidiMethod<Req, Res>): ServedMethod {
  return { path: method.path, start: (stream, headers, max) => void new GrpcBidiStream(stream, headers, method, max) };
}

/**
 * A unary method over the stream: the one request message goes to `handle` with the call's deadline
 * and an AbortSignal that fires when the caller resets the stream or the deadline passes; its answer,
 * or its GrpcStatusError's status, ends the call.
 */
export function unaryMethod<Req, Res>(
  path: string,
  decode: (bytes: Buffer) => Req,
  encode: (message: Res) => Uint8Array,
  handle: (request: Req, call: { deadline: number | undefined; signal: AbortSignal }) => Promise<Res>,
): BidiMethod<Req, Res> {
  return {
    path,
    decode,
    encode,
    handler: (stream) => {
      const aborted = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      const left = stream.deadline === undefined ? Infinity : stream.deadline - Date.now();
      // setTimeout cannot wait past 2^31-1 ms (it would fire at once): a later deadline is no deadline here.
      if (left <= MAX_TIMER_MS)
        timer = setTimeout(
          () => {
            aborted.abort();
            stream.endWithStatus(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded');
          },
          Math.max(0, left),
        );
      let answered = false;
      stream.on('cancelled', () => aborted.abort());
      // A stream gone before the answer (reset, or destroyed at shutdown) leaves nobody to work for.
      stream.on('close', () => {
        clearTimeout(timer);
        if (!answered) aborted.abort();
      });
      stream.on('error', () => aborted.abort());
      stream.onRequest((request) => {
        // Through a promise, so a handler that throws at once fails the call instead of the process.
        void Promise.resolve()
          .then(() => handle(request, { deadline: stream.deadline, signal: aborted.signal }))
          .finally(() => (answered = true))
          .then(
            (answer) => {
              clearTimeout(timer);
              stream.write(answer);
              stream.end();
            },
            (err: unknown) => {
              clearTimeout(timer);
              const code = err instanceof GrpcStatusError ? err.code : GrpcStatus.INTERNAL;
              stream.endWithStatus(code, err instanceof GrpcStatusError ? err.message : 'internal error');
            },
          );
      });
    },
  };
}

/** A failure a unary handler reports as a gRPC status (anything else is INTERNAL, "internal error"). */
export class GrpcStatusError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** Serves `methods` on host:port; any other path is answered UNIMPLEMENTED. */
export function startBidiStreamServer(
  host: string,
  port: number,
  methods: readonly ServedMethod[],
  options: BidiStreamServerOptions,
): Promise<RunningBidiStreamServer> {
  const byPath = new Map(methods.map((m) => [m.path, m]));
  const sessionOptions: http2.ServerOptions = {
    // As grpc-js does: a session's buffered data is bounded by flow control and the message limit, not
    // by nghttp2's 10 MB default (which refuses streams under a burst of large bodies).
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
    // Large request bodies (a 100k-token prompt is ~650 KB) arrive in far fewer frames and window
    // updates than with HTTP/2's 64 KiB stream window and 16 KiB frames.
    settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxFrameSize: MAX_FRAME_BYTES },
    ...options.sessionOptions,
  };
  const server = options.tls
    ? http2.createSecureServer({ ...sessionOptions, cert: options.tls.cert, key: options.tls.key, allowHTTP1: false })
    : http2.createServer(sessionOptions);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
    session.on('close', () => sessions.delete(session));
    session.on('error', (err) => options.onSessionError?.(err));
  });
  server.on('sessionError', (err) => options.onSessionError?.(err));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    // Node emits 'stream' on the next tick: a peer's reset read in the same packet may have closed it
    // already, and respond() on a closed stream throws.
    if (stream.destroyed || stream.closed) return;
    try {
      route(stream, headers);
    } catch (err) {
      options.onSessionError?.(err as Error);
      if (!stream.destroyed) stream.destroy();
    }
  });
  const route = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    const contentType = String(headers['content-type'] ?? '');
    // gRPC is application/grpc or application/grpc+<codec>; grpc-web frames differently.
    if (contentType !== 'application/grpc' && !contentType.startsWith('application/grpc+')) {
      stream.respond({ ':status': 415, 'content-type': 'text/plain' }, { endStream: true });
      return;
    }
    const method = byPath.get(String(headers[':path']));
    if (!method) {
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': String(GrpcStatus.UNIMPLEMENTED),
          'grpc-message': grpcMessage(`unknown method ${String(headers[':path'])}`),
        },
        { endStream: true },
      );
      return;
    }
    method.start(stream, headers, options.maxReceiveMessageBytes);
  };

  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`cannot listen on ${host}:${port}: ${err.message}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      server.on('error', (err) => options.onSessionError?.(err));
      const address = server.address();
      let closing: Promise<void> | undefined;
      resolve({
        port: typeof address === 'object' && address ? address.port : port,
        close(graceMs: number) {
          closing ??= new Promise<void>((done) => {
            const timer = setTimeout(() => {
              for (const s of sessions) s.destroy();
            }, graceMs);
            server.close(() => {
              clearTimeout(timer);
              done();
            });
            for (const s of sessions) s.close();
          });
          return closing;
        },
      });
    });
  });
}
