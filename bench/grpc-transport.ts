// Benchmark (`npm run bench:grpc-transport`): what the gRPC layer under the router's ext_proc port
// costs, grpc-js's server against the router's own HTTP/2 transport (src/common/grpc/bidi-stream-
// server.ts), with the same hand-written ext_proc codec and a handler that does no routing work (it
// answers each message with a fixed response), so only the transport differs. A grpc-js client plays
// Envoy's part: per request one Process stream carrying request headers, a 13 KB request body, response
// headers and a response body, each answered before the next is sent, as FULL_DUPLEX_STREAMED does on
// the request's critical path. The server runs in a child process; its CPU time per stream comes from
// process.cpuUsage() there (robust to a busy machine, unlike latency), and the client measures each
// stream's latency at a fixed rate. Then the router's side of the indexer call: grpc-js's client against
// the router's unary HTTP/2 client (src/common/grpc/unary-client.ts), both calling one grpc-js server
// as the indexer's, with client CPU per call and latency. Writes bench/results/grpc-transport.json and
// prints two tables. ADR 0015.

import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { fmt, formatTable } from '../src/common/table.ts';
import { Progress } from '../src/common/progress.ts';
import { served, startBidiStreamServer } from '../src/common/grpc/bidi-stream-server.ts';
import { createUnaryClient } from '../src/common/grpc/unary-client.ts';
import { ExternalProcessorServerDefinition } from '../src/envoy/ext-proc-codec.ts';
import { ExternalProcessorService, type ProcessingRequest, type ProcessingResponse, type ProcessStream } from '../src/envoy/ext-proc.ts';
import { environment, percentile, writeResults } from './lib/results.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const RESULTS = path.join(ROOT, 'bench/results/grpc-transport.json');
const TRANSPORTS = ['grpc-js', 'kvroute-h2'] as const;
type Transport = (typeof TRANSPORTS)[number];
const RATE = 400;
const SECONDS = 10;
const ROUNDS = 3;
const BODY = Buffer.alloc(13_000, 'a');

/** The fixed answer to each message: what a router sends, minus the routing. */
function answer(message: ProcessingRequest): ProcessingResponse | null {
  switch (message.request) {
    case 'request_headers':
      return null; // answered with the body, as the router does once it has decided
    case 'request_body':
      return { request_headers: { response: { clear_route_cache: true, header_mutation: { set_headers: [] } } } };
    case 'response_headers':
      return { response_headers: { response: {} } };
    case 'response_body':
      return { response_body: { response: {} } };
    default:
      return null;
  }
}

function handle(call: ProcessStream): void {
  call.on('data', (m: ProcessingRequest) => {
    const a = answer(m);
    if (a) call.write(a);
  });
  call.on('end', () => call.end());
  call.on('error', () => {});
}

/** The child: serves Process with `transport` and reports its CPU time on request. */
async function serve(transport: Transport): Promise<void> {
  let port: number;
  if (transport === 'grpc-js') {
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 65 * 1024 * 1024 });
    server.addService(ExternalProcessorServerDefinition, { Process: handle });
    port = await new Promise((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
  } else {
    const def = ExternalProcessorServerDefinition.Process!;
    const server = await startBidiStreamServer(
      '127.0.0.1',
      0,
      [
        served<ProcessingRequest, ProcessingResponse>({
          path: def.path,
          decode: (b) => def.requestDeserialize(b) as ProcessingRequest,
          encode: (m) => def.responseSerialize(m),
          handler: handle,
        }),
      ],
      { tls: null, maxReceiveMessageBytes: 65 * 1024 * 1024, sessionOptions: { streamResetBurst: 10_000, streamResetRate: 10_000 } },
    );
    port = server.port;
  }
  process.on('message', (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ cpuMs: (u.user + u.system) / 1000 });
    }
  });
  process.send!({ port });
}

type Call = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

/** One request's stream as Envoy drives it; resolves when its status arrives. */
function oneStream(client: grpc.Client & { Process(): Call }): Promise<void> {
  const call = client.Process();
  const steps: ProcessingRequest[][] = [
    [
      {
        request: 'request_headers',
        request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/completions') }] } },
      },
      { request: 'request_body', request_body: { body: BODY, end_of_stream: true } },
    ],
    [{ request: 'response_headers', response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] } } }],
    [{ request: 'response_body', response_body: { body: Buffer.from('{"usage":{}}'), end_of_stream: true } }],
  ] as ProcessingRequest[][];
  return new Promise((resolve, reject) => {
    let step = 0;
    const next = () => {
      if (step === steps.length) {
        call.end();
        return;
      }
      for (const m of steps[step++]!) call.write(m);
    };
    call.on('data', () => next());
    call.on('error', reject);
    call.on('status', () => resolve());
    next();
  });
}

/** Calls `call` at RATE per second for SECONDS (open loop); each call's latency in ms, sorted. */
async function pacedLatencies(call: () => Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < RATE * SECONDS; i++) {
    const wait = t0 + (i * 1000) / RATE - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const started = performance.now();
    pending.push(call().then(() => void latencies.push(performance.now() - started)));
  }
  await Promise.all(pending);
  return latencies.sort((a, b) => a - b);
}

/** The median over rounds of one numeric field. */
function medianOf<R>(rounds: R[]): (field: { [K in keyof R]: R[K] extends number ? K : never }[keyof R]) => number {
  return (field) => {
    const xs = rounds.map((r) => r[field] as number).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
}

interface RoundResult {
  transport: Transport;
  streams: number;
  serverCpuUsPerStream: number;
  p50Ms: number;
  p99Ms: number;
}

async function round(transport: Transport): Promise<RoundResult> {
  const child: ChildProcess = fork(import.meta.filename, ['--serve', transport], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve((m as { port: number }).port)));
  const cpu = () =>
    new Promise<number>((resolve) => {
      child.once('message', (m) => resolve((m as { cpuMs: number }).cpuMs));
      child.send('cpu');
    });
  const Client = grpc.makeGenericClientConstructor(ExternalProcessorService, 'ExternalProcessor');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Process(): Call };
  try {
    for (let i = 0; i < 200; i++) await oneStream(client); // warm both sides
    const cpuBefore = await cpu();
    const latencies = await pacedLatencies(() => oneStream(client));
    const cpuMs = (await cpu()) - cpuBefore;
    return {
      transport,
      streams: latencies.length,
      serverCpuUsPerStream: +((cpuMs * 1000) / latencies.length).toFixed(1),
      p50Ms: +percentile(latencies, 50).toFixed(3),
      p99Ms: +percentile(latencies, 99).toFixed(3),
    };
  } finally {
    client.close();
    child.kill();
  }
}

const CLIENTS = ['grpc-js', 'kvroute-h2'] as const;
type ClientKind = (typeof CLIENTS)[number];
const SCORE_PATH = '/bench.Indexer/Score';
const bytes = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};

/** The child for the client part: a grpc-js unary server (as the indexer's) answering 200 bytes at once. */
async function serveUnary(): Promise<void> {
  const server = new grpc.Server();
  const reply = Buffer.alloc(200, 1);
  server.addService(
    { Score: { path: SCORE_PATH, requestStream: false, responseStream: false, ...bytes } },
    { Score: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, reply) },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  process.send!({ port });
}

interface ClientRoundResult {
  client: ClientKind;
  calls: number;
  clientCpuUsPerCall: number;
  p50Ms: number;
  p99Ms: number;
}

/** One round of Score-shaped calls (13 KB request, as a 2k-token prompt) from this process with `kind`. */
async function clientRound(kind: ClientKind, port: number): Promise<ClientRoundResult> {
  const address = `127.0.0.1:${port}`;
  const request = Buffer.alloc(13_000, 'p');
  let call: () => Promise<unknown>;
  let close: () => void;
  if (kind === 'grpc-js') {
    const Client = grpc.makeGenericClientConstructor(
      { Score: { path: SCORE_PATH, requestStream: false, responseStream: false, ...bytes } },
      'Indexer',
    );
    const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Score(r: Buffer, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
    };
    call = () =>
      new Promise((resolve, reject) =>
        client.Score(request, { deadline: Date.now() + 1_000 }, (err, res) => (err ? reject(err) : resolve(res))),
      );
    close = () => client.close();
  } else {
    const client = createUnaryClient(address, { path: SCORE_PATH, encode: (b: Buffer) => b, decode: (b: Buffer) => b });
    call = () => client.call(request, 1_000);
    close = () => client.close();
  }
  try {
    for (let i = 0; i < 200; i++) await call();
    const before = process.cpuUsage();
    const latencies = await pacedLatencies(call);
    const used = process.cpuUsage(before);
    return {
      client: kind,
      calls: latencies.length,
      // This process also paces the calls; that share is the same for both clients.
      clientCpuUsPerCall: +((used.user + used.system) / latencies.length).toFixed(1),
      p50Ms: +percentile(latencies, 50).toFixed(3),
      p99Ms: +percentile(latencies, 99).toFixed(3),
    };
  } finally {
    close();
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--serve-unary')) return serveUnary();
  const serveAt = process.argv.indexOf('--serve');
  if (serveAt >= 0) return serve(process.argv[serveAt + 1] as Transport);
  const progress = new Progress({ total: ROUNDS * (TRANSPORTS.length + CLIENTS.length), label: 'bench:grpc-transport', unit: 'round' });
  const rounds: RoundResult[] = [];
  // Alternating rounds, so drift in the machine's load falls on both transports alike.
  for (let r = 0; r < ROUNDS; r++)
    for (const transport of TRANSPORTS) {
      progress.setLabel(`round ${r + 1}/${ROUNDS}: ${transport}`);
      rounds.push(await round(transport));
      progress.tick();
    }
  const unaryServer = fork(import.meta.filename, ['--serve-unary'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const unaryPort = await new Promise<number>((resolve) => unaryServer.once('message', (m) => resolve((m as { port: number }).port)));
  const clientRounds: ClientRoundResult[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++)
      for (const kind of CLIENTS) {
        progress.setLabel(`round ${r + 1}/${ROUNDS}: Score client ${kind}`);
        clientRounds.push(await clientRound(kind, unaryPort));
        progress.tick();
      }
  } finally {
    unaryServer.kill();
  }
  progress.finish();
  const clientSummary = CLIENTS.map((c) => {
    const median = medianOf(clientRounds.filter((r) => r.client === c));
    return { client: c, clientCpuUsPerCall: median('clientCpuUsPerCall'), p50Ms: median('p50Ms'), p99Ms: median('p99Ms') };
  });
  const summary = TRANSPORTS.map((t) => {
    const median = medianOf(rounds.filter((r) => r.transport === t));
    return { transport: t, serverCpuUsPerStream: median('serverCpuUsPerStream'), p50Ms: median('p50Ms'), p99Ms: median('p99Ms') };
  });
  writeResults(RESULTS, {
    benchmark: 'grpc-transport',
    description:
      'the ext_proc server transport alone: grpc-js vs the router own HTTP/2 transport, same codec, a handler doing no routing; a grpc-js client drives one Process stream per request (headers + 13 KB body, response headers, response body) at a fixed rate; server CPU from process.cpuUsage(); medians of alternating rounds',
    environment: environment(),
    config: { ratePerSecond: RATE, seconds: SECONDS, rounds: ROUNDS, bodyBytes: BODY.length },
    rounds,
    summary,
    scoreClient: {
      description:
        'the router side of the indexer call: grpc-js client vs the router own unary HTTP/2 client, against one grpc-js server (as the indexer) answering a 13 KB request with 200 bytes at once; client CPU includes the pacing loop, the same for both',
      rounds: clientRounds,
      summary: clientSummary,
    },
  });
  process.stdout.write(
    `${formatTable(
      ['transport', 'server CPU us/stream', 'stream p50 ms', 'stream p99 ms'],
      summary.map((s) => [s.transport, fmt(s.serverCpuUsPerStream), fmt(s.p50Ms), fmt(s.p99Ms)]),
    )}\n\n${formatTable(
      ['Score client', 'client CPU us/call', 'call p50 ms', 'call p99 ms'],
      clientSummary.map((s) => [s.client, fmt(s.clientCpuUsPerCall), fmt(s.p50Ms), fmt(s.p99Ms)]),
    )}\n(median of ${ROUNDS} alternating rounds at ${RATE} streams/s for ${SECONDS} s; results in ${path.relative(ROOT, RESULTS)})\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:grpc-transport failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
