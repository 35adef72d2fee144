// Envoy's ext_proc v3 protocol, shared by the router (which serves it) and the gateway (which drives it):
// loads envoy.service.ext_proc.v3.ExternalProcessor from the protos that hack/protos/sync.sh vendors into
// ./proto, and declares the messages both sides read and write.
//
// Loader options: keepCase keeps the .proto field names (request_headers, end_of_stream, ...) so the
// types below match Envoy's docs; enums as strings ('SEND', 'FULL_DUPLEX_STREAMED') for readable logs
// (numbers are accepted on the way out too); int64 as strings (only Duration.seconds here); defaults
// off so an unset field is absent rather than a zero value, which matters for oneofs and for telling
// "no headers" from "empty headers"; oneofs on, so a decoded message names its set member in `request`
// / `response` / `mutation`.
//
// google.protobuf.Struct comes from protobufjs's bundled definition, whose field names are camelCase
// (stringValue, structValue, ...) whatever keepCase says; toStruct / fromStruct convert it to and from
// plain objects.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROTO_DIR = path.join(here, 'proto');
const SERVICE_FILE = 'envoy/service/ext_proc/v3/external_processor.proto';

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

/** The whole package definition (every message and enum the service file reaches), for tests and tooling. */
export const extProcPackageDefinition: protoLoader.PackageDefinition = protoLoader.loadSync(SERVICE_FILE, LOADER_OPTIONS);

interface ServiceConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions): grpc.Client;
  service: grpc.ServiceDefinition;
}

function lookupService(dotted: string): ServiceConstructor {
  let node: unknown = grpc.loadPackageDefinition(extProcPackageDefinition);
  for (const part of dotted.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function') throw new Error(`${dotted} not found in ${path.join(PROTO_DIR, SERVICE_FILE)}`);
  return node as ServiceConstructor;
}

const ExternalProcessor = lookupService('envoy.service.ext_proc.v3.ExternalProcessor');

/** For grpc.Server#addService: one bidi-streaming method, `Process`. */
export const ExternalProcessorService: grpc.ServiceDefinition = ExternalProcessor.service;
/** A client, as Envoy would be; for tests that drive the router without Envoy. */
export const ExternalProcessorClient: ServiceConstructor = ExternalProcessor;

interface EnumDescriptor {
  name?: string;
  value?: Array<{ name: string }>;
}

/**
 * Names of the values of an enum in the package, top-level or nested in a message
 * (e.g. 'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode').
 */
export function enumValueNames(fullName: string): string[] {
  const top = extProcPackageDefinition[fullName];
  let descriptor: EnumDescriptor | undefined;
  if (top && 'format' in top && top.format === 'Protocol Buffer 3 EnumDescriptorProto') {
    descriptor = top.type as EnumDescriptor;
  } else {
    // proto-loader lists nested enums only inside their message's DescriptorProto.
    const dot = fullName.lastIndexOf('.');
    const parent = extProcPackageDefinition[fullName.slice(0, dot)];
    if (parent && 'format' in parent && parent.format === 'Protocol Buffer 3 DescriptorProto') {
      const nested = (parent.type as { enumType?: EnumDescriptor[] }).enumType ?? [];
      descriptor = nested.find((e) => e.name === fullName.slice(dot + 1));
    }
  }
  if (!descriptor) throw new Error(`${fullName} is not an enum in the ext_proc package`);
  return (descriptor.value ?? []).map((v) => v.name);
}

// ---- google.protobuf.Struct ------------------------------------------------------------------------

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** google.protobuf.Value as protobufjs represents it (camelCase; `kind` names the member when decoded). */
export interface ProtoValue {
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
  nullValue?: 'NULL_VALUE' | 0;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}

export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}

function toValue(value: JsonValue): ProtoValue {
  if (value === null) return { nullValue: 0 };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  return { structValue: toStruct(value) };
}

/** A plain object as a Struct, e.g. for ProcessingResponse.dynamic_metadata. */
export function toStruct(obj: { [key: string]: JsonValue }): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v);
  return { fields };
}

function fromValue(value: ProtoValue): JsonValue {
  // Decoded values carry `kind`; hand-built ones may not, so fall back to whichever member is present.
  const kind = value.kind ?? (Object.keys(value).find((k) => k !== 'kind') as ProtoValue['kind']);
  switch (kind) {
    case 'numberValue':
      return value.numberValue ?? 0;
    case 'stringValue':
      return value.stringValue ?? '';
    case 'boolValue':
      return value.boolValue ?? false;
    case 'structValue':
      return fromStruct(value.structValue);
    case 'listValue':
      return (value.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

/** A Struct (e.g. from ProcessingRequest.metadata_context.filter_metadata) as a plain object. */
export function fromStruct(struct: ProtoStruct | null | undefined): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  for (const [k, v] of Object.entries(struct?.fields ?? {})) out[k] = fromValue(v);
  return out;
}

// ---- envoy.config.core.v3 --------------------------------------------------------------------------

/** Envoy fills `raw_value` (bytes) in recent versions and leaves `value` empty; read with headerValueText. */
export interface HeaderValue {
  key: string;
  value?: string;
  raw_value?: Uint8Array | string;
}

export interface HeaderMap {
  headers?: HeaderValue[];
}

export type HeaderAppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

export interface HeaderValueOption {
  header: HeaderValue;
  append_action?: HeaderAppendAction;
  keep_empty_value?: boolean;
}

export interface Metadata {
  filter_metadata?: Record<string, ProtoStruct>;
}

/** The text of a header, from `raw_value` when set (Envoy's current form), else from `value`. */
export function headerValueText(header: HeaderValue): string {
  const raw = header.raw_value;
  if (raw !== undefined && raw.length > 0) return typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8');
  return header.value ?? '';
}

/** Headers by lower-cased name; repeated headers are joined with ', ' as HTTP allows (not for set-cookie). */
export function headersToRecord(map: HeaderMap | null | undefined): Record<string, string> {
  // No prototype: a header named __proto__ or constructor is a header, not an inherited member.
  const out = Object.create(null) as Record<string, string>;
  for (const h of map?.headers ?? []) {
    const key = h.key.toLowerCase();
    const text = headerValueText(h);
    out[key] = key in out ? `${out[key]}, ${text}` : text;
  }
  return out;
}

/** A header to set, overwriting any existing one, written as raw_value as current Envoy expects. */
export function setHeader(key: string, value: string): HeaderValueOption {
  return { header: { key, raw_value: Buffer.from(value, 'utf8') }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

// ---- envoy.extensions.filters.http.ext_proc.v3 -----------------------------------------------------

export type HeaderSendMode = 'DEFAULT' | 'SEND' | 'SKIP';
export type BodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL' | 'FULL_DUPLEX_STREAMED';

export interface ProcessingMode {
  request_header_mode?: HeaderSendMode;
  response_header_mode?: HeaderSendMode;
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
  request_trailer_mode?: HeaderSendMode;
  response_trailer_mode?: HeaderSendMode;
}

// ---- envoy.service.ext_proc.v3: requests (Envoy -> router) -----------------------------------------

export interface HttpHeaders {
  headers?: HeaderMap;
  end_of_stream?: boolean;
}

export interface HttpBody {
  body?: Uint8Array;
  end_of_stream?: boolean;
}

export interface HttpTrailers {
  trailers?: HeaderMap;
}

export interface ProtocolConfiguration {
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
  send_body_without_waiting_for_header_response?: boolean;
}

/** One message on the Process stream from Envoy; `request` names the oneof member that is set. */
export interface ProcessingRequest {
  request?: 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: HttpBody;
  response_body?: HttpBody;
  request_trailers?: HttpTrailers;
  response_trailers?: HttpTrailers;
  metadata_context?: Metadata;
  attributes?: Record<string, ProtoStruct>;
  observability_mode?: boolean;
  protocol_config?: ProtocolConfiguration;
}

// ---- envoy.service.ext_proc.v3: responses (router -> Envoy) ----------------------------------------

export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}

/** The body chunk to send on in FULL_DUPLEX_STREAMED mode. */
export interface StreamedBodyResponse {
  body?: Uint8Array;
  end_of_stream?: boolean;
}

/** A oneof: set exactly one of body, clear_body, streamed_response. */
export interface BodyMutation {
  mutation?: 'body' | 'clear_body' | 'streamed_response';
  body?: Uint8Array;
  clear_body?: boolean;
  streamed_response?: StreamedBodyResponse;
}

export type ResponseStatus = 'CONTINUE' | 'CONTINUE_AND_REPLACE';

export interface CommonResponse {
  status?: ResponseStatus;
  header_mutation?: HeaderMutation;
  body_mutation?: BodyMutation;
  trailers?: HeaderMap;
  /** Needed after changing headers the route was chosen on. */
  clear_route_cache?: boolean;
}

export interface HeadersResponse {
  response?: CommonResponse;
}

export interface BodyResponse {
  response?: CommonResponse;
}

export interface TrailersResponse {
  header_mutation?: HeaderMutation;
}

export interface ImmediateResponse {
  /** envoy.type.v3.StatusCode: a number (429) when sent; decoded as its enum name ('TooManyRequests'). */
  status: { code: number | string };
  headers?: HeaderMutation;
  body?: Uint8Array | string;
  grpc_status?: { status: number };
  details?: string;
}

/** One message on the Process stream to Envoy; set exactly one oneof member (`response` names it when decoded). */
export interface ProcessingResponse {
  response?:
    | 'request_headers'
    | 'response_headers'
    | 'request_body'
    | 'response_body'
    | 'request_trailers'
    | 'response_trailers'
    | 'immediate_response';
  request_headers?: HeadersResponse;
  response_headers?: HeadersResponse;
  request_body?: BodyResponse;
  response_body?: BodyResponse;
  request_trailers?: TrailersResponse;
  response_trailers?: TrailersResponse;
  immediate_response?: ImmediateResponse;
  /** Written under the filter's namespace(s) in Envoy's dynamic metadata; build with toStruct. */
  dynamic_metadata?: ProtoStruct;
  mode_override?: ProcessingMode;
  /** google.protobuf.Duration; seconds is int64, hence a string when decoded. */
  override_message_timeout?: { seconds?: number | string; nanos?: number };
}

/**
 * The server-side Process stream as a handler sees it: what both grpc-js's ServerDuplexStream and the
 * router's own transport (src/common/grpc/bidi-stream-server.ts) provide.
 */
export interface ProcessStream {
  on(event: 'data', listener: (message: ProcessingRequest) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'end' | 'cancelled' | 'close' | 'drain', listener: () => void): this;
  once(event: 'data', listener: (message: ProcessingRequest) => void): this;
  once(event: 'end' | 'cancelled' | 'close' | 'drain', listener: () => void): this;
  /** False when the caller should wait for 'drain'. */
  write(message: ProcessingResponse): boolean;
  end(): void;
}
