import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { GrpcStatus } from './bidi-stream-server.ts';
import { createUnaryClient, GrpcCallError, type UnaryMethod } from './unary-client.ts';

const PATH = '/test.Echo/Upper';

/** Strings both ways, as the grpc-js server below speaks them. */
const METHOD: UnaryMethod<string, string> = {
  path: PATH,
  encode: (s) => Buffer.from(s),
  decode: (b) => b.toString(),
};

/** A grpc-js server: the peer the client must interoperate with (the indexer serves Score with it). */
async function startServer(port = 0): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(
    {
      Upper: {
        path: PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: (s: string) => Buffer.from(s),
        requestDeserialize: (b: Buffer) => b.toString(),
        responseSerialize: (s: string) => Buffer.from(s),
        responseDeserialize: (b: Buffer) => b.toString(),
      },
    },
    {
      Upper: (call: grpc.ServerUnaryCall<string, string>, callback: grpc.sendUnaryData<string>) => {
        const text = call.request;
        if (text === 'bad') return callback({ code: grpc.status.INVALID_ARGUMENT, details: 'field "text": not bad: ünïcode' });
        if (text.startsWith('slow')) return void setTimeout(() => callback(null, text.toUpperCase()), 300);
        callback(null, text.toUpperCase());
      },
    },
  );
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port: bound, server };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

async function failure(p: Promise<unknown>): Promise<GrpcCallError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GrpcCallError);
    return err as GrpcCallError;
  }
  throw new Error('expected the call to fail');
}

describe('the unary gRPC client against a grpc-js server', () => {
  let server: grpc.Server;
  let port: number;

  beforeAll(async () => {
    ({ server, port } = await startServer());
  });
  afterAll(() => server.forceShutdown());

  it('calls the method and decodes the answer', async () => {
    const client = createUnaryClient(`127.0.0.1:${port}`, METHOD);
    expect(await client.call('hello', 1_000)).toBe('HELLO');
    expect(await Promise.all(['a', 'b', 'c'].map((s) => client.call(s, 1_000)))).toEqual(['A', 'B', 'C']);
    client.close();
  });

  it('reports the status and decoded details of a failed call', async () => {
    const client = createUnaryClient(`127.0.0.1:${port}`, METHOD);
    const err = await failure(client.call('bad', 1_000));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.message).toBe('INVALID_ARGUMENT: field "text": not bad: ünïcode');
    client.close();
  });

  it('gives up at the deadline, and the session still serves the next call', async () => {
    const client = createUnaryClient(`127.0.0.1:${port}`, METHOD);
    const err = await failure(client.call('slow', 50));
    expect(err.code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    expect(await client.call('after', 1_000)).toBe('AFTER');
    client.close();
  });

  it('makes thousands of calls on one session without tripping the server rapid-reset bound', async () => {
    const client = createUnaryClient(`127.0.0.1:${port}`, METHOD);
    for (let i = 0; i < 1_500; i += 50) {
      const batch = Array.from({ length: 50 }, (_, k) => client.call(`m${i + k}`, 5_000));
      expect((await Promise.all(batch)).at(-1)).toBe(`M${i + 49}`);
    }
    client.close();
  });
});

describe('the unary gRPC client with no server', () => {
  it('fails at once as UNAVAILABLE, backs off, and connects once a server listens', async () => {
    const port = await freePort();
    const client = createUnaryClient(`127.0.0.1:${port}`, METHOD);
    const first = await failure(client.call('x', 1_000));
    expect(first.code).toBe(GrpcStatus.UNAVAILABLE);
    const during = await failure(client.call('x', 1_000));
    expect(during.message).toContain('retrying after a back-off');

    const { server } = await startServer(port);
    try {
      let answer: string | undefined;
      for (let i = 0; i < 100 && answer === undefined; i++) {
        answer = await client.call('back', 1_000).catch(() => undefined);
        if (answer === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      expect(answer).toBe('BACK');
    } finally {
      client.close();
      server.forceShutdown();
    }
  });

  it('refuses calls after close', async () => {
    const client = createUnaryClient('127.0.0.1:1', METHOD);
    client.close();
    expect((await failure(client.call('x', 100))).message).toBe('UNAVAILABLE: the client is closed');
  });
});

/**
 * A raw HTTP/2 gRPC server; `refuse` decides per stream: refuse it unread (RST_STREAM
 * REFUSED_STREAM), never answer (`hang`), or (false) answer with the request upper-cased. With
 * `goawayFirstSession`, the first connection gets a GOAWAY with INTERNAL_ERROR and last stream id 0 as
 * soon as it opens, so the streams sent on it are never processed.
 */
async function startRefusingServer(
  refuse: (index: number) => 'stream' | 'hang' | false,
  options: { goawayFirstSession?: boolean } = {},
): Promise<{ port: number; streams: () => number; sessions: () => number; close: () => void }> {
  let index = 0;
  let sessions = 0;
  const server = http2.createServer();
  server.on('session', (session) => {
    session.on('error', () => {});
    if (sessions++ === 0 && options.goawayFirstSession) session.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR, 0);
  });
  server.on('stream', (stream) => {
    // Node reports the refusal as an error on this end too.
    stream.on('error', () => {});
    const refusal = refuse(index++);
    if (refusal === 'stream') return void stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    if (refusal === 'hang') return;
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const text = Buffer.concat(chunks).subarray(5).toString().toUpperCase();
      const header = Buffer.alloc(5);
      header.writeUInt32BE(text.length, 1);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.concat([header, Buffer.from(text)]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    streams: () => index,
    sessions: () => sessions,
    close: () => server.close(),
  };
}

describe('the unary gRPC client and refused streams', () => {
  it('sends a call the server refused unread once more, as gRPC retries it transparently', async () => {
    const server = await startRefusingServer((i) => i === 0 && 'stream');
    const client = createUnaryClient(`127.0.0.1:${server.port}`, METHOD);
    try {
      expect(await client.call('again', 1_000)).toBe('AGAIN');
      expect(server.streams()).toBe(2);
      expect(await client.call('next', 1_000)).toBe('NEXT');
      expect(server.streams()).toBe(3);
    } finally {
      client.close();
      server.close();
    }
  });

  it('sends a call above the last stream id of a GOAWAY with an error once more, on a new connection', async () => {
    const server = await startRefusingServer(() => false, { goawayFirstSession: true });
    const client = createUnaryClient(`127.0.0.1:${server.port}`, METHOD);
    try {
      expect(await client.call('moved', 1_000)).toBe('MOVED');
      expect([server.sessions(), server.streams()]).toEqual([2, 1]);
    } finally {
      client.close();
      server.close();
    }
  });

  it("names the caller's deadline when the call sent again runs out of time", async () => {
    const server = await startRefusingServer((i) => (i === 0 ? 'stream' : 'hang'));
    const client = createUnaryClient(`127.0.0.1:${server.port}`, METHOD);
    try {
      const err = await failure(client.call('late', 100));
      expect([err.code, err.message]).toEqual([GrpcStatus.DEADLINE_EXCEEDED, 'DEADLINE_EXCEEDED: no answer within 100 ms']);
      expect(server.streams()).toBe(2);
    } finally {
      client.close();
      server.close();
    }
  });

  it('retries only once: a second refusal fails the call as UNAVAILABLE', async () => {
    const server = await startRefusingServer(() => 'stream');
    const client = createUnaryClient(`127.0.0.1:${server.port}`, METHOD);
    try {
      const err = await failure(client.call('never', 1_000));
      expect(err.code).toBe(GrpcStatus.UNAVAILABLE);
      expect(server.streams()).toBe(2);
    } finally {
      client.close();
      server.close();
    }
  });
});
