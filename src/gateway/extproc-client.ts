// The gateway's side of the ext_proc protocol: one gRPC channel to the router (TLS without
// verification by default, as GIE's Envoy config talks to the router's self-signed certificate, or
// plaintext h2c), one bidi Process stream per HTTP request, and the ProcessingRequest messages in the
// shapes Envoy 1.40 sends them.
//
// The protos and their types come from src/envoy/ext-proc.ts, Envoy's protocol shared by both sides
// (the router serves it, the gateway drives it), so the two cannot disagree on the wire format.

import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import {
  ExternalProcessorClient,
  ExternalProcessorService,
  toStruct,
  type JsonValue,
  type Metadata,
  type ProcessingRequest,
  type ProcessingResponse,
} from '../envoy/ext-proc.ts';
import { toHeaderMap, type HeaderList } from './headers.ts';

export type ProcessCall = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

export interface ExtProcClientOptions {
  /** host:port of the router's ext_proc gRPC server. */
  address: string;
  /** TLS without certificate verification (the default, like GIE's Envoy config); false: plaintext h2c. */
  tls: boolean;
}

export interface ExtProcClient {
  /** Opens one Process stream: one per HTTP request, as Envoy does. */
  open(): ProcessCall;
  close(): void;
}

type ProcessMethod = grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>;

function processMethod(): ProcessMethod {
  const method = ExternalProcessorService['Process'];
  if (!method) throw new Error('the ext_proc service definition has no Process method');
  return method as ProcessMethod;
}

export function createExtProcClient(options: ExtProcClientOptions): ExtProcClient {
  const credentials = options.tls
    ? // No roots and rejectUnauthorized false: encrypted, not authenticated, as Envoy with an empty
      // common_tls_context talks to a router serving a self-signed certificate.
      grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined })
    : grpc.credentials.createInsecure();
  const host = options.address.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const client = new ExternalProcessorClient(options.address, credentials, {
    // TLS forbids an IP address as the server name (SNI); the certificate is not verified anyway.
    ...(options.tls && net.isIP(host) !== 0 ? { 'grpc.ssl_target_name_override': 'kvroute-router' } : {}),
    // A dead router should fail requests fast (so the failure mode decides), not queue them.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const method = processMethod();
  return {
    open: () => client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize),
    close: () => client.close(),
  };
}

/** Envoy's ProtocolConfiguration, sent on the first message of each stream only. */
const PROTOCOL_CONFIG = { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' } as const;

/** Dynamic metadata by namespace, as plain objects; forwarded to the router on every message. */
export type MetadataNamespaces = Record<string, { [key: string]: JsonValue }>;

/** metadata_context as Envoy sends it: always present, empty when no forwarded namespace has data. */
function metadataContext(namespaces: MetadataNamespaces): Metadata {
  const filter_metadata: NonNullable<Metadata['filter_metadata']> = {};
  for (const [ns, value] of Object.entries(namespaces)) filter_metadata[ns] = toStruct(value);
  return { filter_metadata };
}

export function headersMessage(
  kind: 'request_headers' | 'response_headers',
  headers: HeaderList,
  endOfStream: boolean,
  metadata: MetadataNamespaces,
  first: boolean,
): ProcessingRequest {
  return {
    [kind]: { headers: toHeaderMap(headers), ...(endOfStream ? { end_of_stream: true } : {}) },
    metadata_context: metadataContext(metadata),
    ...(first ? { protocol_config: { ...PROTOCOL_CONFIG } } : {}),
  };
}

export function bodyMessage(
  kind: 'request_body' | 'response_body',
  chunk: Uint8Array,
  endOfStream: boolean,
  metadata: MetadataNamespaces,
): ProcessingRequest {
  return {
    [kind]: { body: chunk, ...(endOfStream ? { end_of_stream: true } : {}) },
    metadata_context: metadataContext(metadata),
  };
}
