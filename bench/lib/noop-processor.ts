// An ext_proc processor that does no routing work, for bench/router.ts's `noop` listener: it answers
// every message of a GIE-shaped exchange (FULL_DUPLEX_STREAMED bodies, trailers) the way the router
// does, picking upstreams round robin, over the router's transport and codec with TLS. What Envoy adds
// with it in the path is the floor any Node processor pays on the machine: Envoy's ext_proc filter,
// the TLS HTTP/2 hops and the message codec, with no parsing, scheduling or indexer call.

import { served, startBidiStreamServer, type RunningBidiStreamServer } from '../../src/common/grpc/bidi-stream-server.ts';
import { selfSignedCertificate } from '../../src/common/tls/self-signed.ts';
import { ExternalProcessorServerDefinition } from '../../src/envoy/ext-proc-codec.ts';
import type { ProcessingRequest, ProcessingResponse, ProcessStream } from '../../src/envoy/ext-proc.ts';
import {
  pickHeadersResponse,
  requestTrailersResponse,
  responseHeadersResponse,
  responseTrailersResponse,
  streamedRequestBody,
  streamedResponseChunk,
} from '../../src/router/extproc/responses.ts';

/** Serves the no-op processor on 127.0.0.1 (any port), picking `upstreams` (host:port) in turn. */
export async function startNoopProcessor(upstreams: string[]): Promise<RunningBidiStreamServer> {
  let next = 0;
  const serve = (call: ProcessStream) => {
    const body: Buffer[] = [];
    const send = (m: ProcessingResponse) => void call.write(m);
    call.on('data', (m: ProcessingRequest) => {
      switch (m.request) {
        case 'request_headers':
          if (m.request_headers?.end_of_stream) send(pickHeadersResponse(upstreams[next++ % upstreams.length]!, undefined));
          return;
        case 'request_body': {
          body.push(Buffer.from(m.request_body?.body ?? []));
          if (!m.request_body?.end_of_stream) return;
          const whole = Buffer.concat(body);
          send(pickHeadersResponse(upstreams[next++ % upstreams.length]!, whole.length));
          for (const r of streamedRequestBody(whole)) send(r);
          return;
        }
        case 'request_trailers':
          return send(requestTrailersResponse());
        case 'response_headers':
          return send(responseHeadersResponse({}));
        case 'response_body':
          return send(streamedResponseChunk(m.response_body?.body ?? new Uint8Array(), m.response_body?.end_of_stream === true));
        case 'response_trailers':
          return send(responseTrailersResponse());
      }
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  };
  const def = ExternalProcessorServerDefinition.Process!;
  return startBidiStreamServer(
    '127.0.0.1',
    0,
    [
      served<ProcessingRequest, ProcessingResponse>({
        path: def.path,
        decode: (b) => def.requestDeserialize(b) as ProcessingRequest,
        encode: (m) => def.responseSerialize(m),
        handler: serve,
      }),
    ],
    {
      tls: await selfSignedCertificate({ commonName: 'kvroute-bench-noop', days: 1 }),
      maxReceiveMessageBytes: 65 * 1024 * 1024,
      sessionOptions: { streamResetBurst: 10_000, streamResetRate: 10_000 },
    },
  );
}
