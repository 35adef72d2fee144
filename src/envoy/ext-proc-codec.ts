// A hand-written protobuf codec for the router's side of ext_proc: decodes ProcessingRequest and
// encodes ProcessingResponse straight between wire bytes and the plain objects ext-proc.ts declares,
// in exactly the shapes @grpc/proto-loader gives (keepCase, enums as names, oneof member names,
// absent unset fields, Struct in protobufjs's camelCase form). Why: proto-loader goes through
// protobufjs's reflection types plus fromObject/toObject conversions on every message, and each
// request is ~10 such messages; that was about a tenth of the router's CPU per request
// (bench/router.ts profile). Bodies are not copied on decode (views into the gRPC message) and are
// copied once on encode. Field numbers are those of the vendored protos (./proto); the codec's tests
// check it against proto-loader's codec message by message.

import type * as grpc from '@grpc/grpc-js';
import {
  ExternalProcessorService,
  extProcPackageDefinition,
  type ProcessingRequest,
  type ProcessingResponse,
  type ProtoStruct,
  type ProtoValue,
} from './ext-proc.ts';

// ---- enums (numbers <-> names, from the vendored protos) ---------------------------------------------

interface EnumValue {
  name: string;
  number: number;
}

function enumValues(fullName: string): EnumValue[] {
  const top = extProcPackageDefinition[fullName];
  if (top && 'format' in top && top.format === 'Protocol Buffer 3 EnumDescriptorProto') return (top.type as { value: EnumValue[] }).value;
  const dot = fullName.lastIndexOf('.');
  const parent = extProcPackageDefinition[fullName.slice(0, dot)];
  const nested =
    parent && 'type' in parent ? ((parent.type as { enumType?: Array<{ name: string; value: EnumValue[] }> }).enumType ?? []) : [];
  const found = nested.find((e) => e.name === fullName.slice(dot + 1));
  if (!found) throw new Error(`bug: enum ${fullName} is not in the ext_proc protos`);
  return found.value;
}

class EnumTable {
  readonly #byName = new Map<string, number>();
  readonly #byNumber = new Map<number, string>();
  readonly #fullName: string;
  constructor(fullName: string) {
    this.#fullName = fullName;
    for (const v of enumValues(fullName)) {
      this.#byName.set(v.name, v.number);
      if (!this.#byNumber.has(v.number)) this.#byNumber.set(v.number, v.name);
    }
  }
  /** A name or a number, as a number; an unknown name is a caller bug. */
  number(value: string | number, field: string): number {
    if (typeof value === 'number') return value;
    const n = this.#byName.get(value);
    if (n === undefined) throw new Error(`${field}: ${JSON.stringify(value)} is not a ${this.#fullName} value`);
    return n;
  }
  /** The name of a number; an unknown number stays a number (as protobufjs does). */
  name(n: number): string | number {
    return this.#byNumber.get(n) ?? n;
  }
}

const STATUS_CODE = new EnumTable('envoy.type.v3.StatusCode');
const APPEND_ACTION = new EnumTable('envoy.config.core.v3.HeaderValueOption.HeaderAppendAction');
const RESPONSE_STATUS = new EnumTable('envoy.service.ext_proc.v3.CommonResponse.ResponseStatus');
const HEADER_SEND_MODE = new EnumTable('envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.HeaderSendMode');
const BODY_SEND_MODE = new EnumTable('envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode');
const NULL_VALUE = new EnumTable('google.protobuf.NullValue');

// ---- encoding ---------------------------------------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;
/** Byte strings at least this long are referenced, not copied, until the final buffer is assembled. */
const REFERENCE_BYTES = 256;

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/**
 * Collects a message as a list of byte runs: small fields go into a number array, long byte strings
 * are kept by reference, nested messages are spliced in after their length. finish() copies each
 * byte once into one buffer.
 */
class Writer {
  private readonly parts: Array<number[] | Uint8Array> = [];
  private current: number[] = [];
  length = 0;

  private varint(n: number): void {
    // Non-negative integers up to 2^53 (lengths, enums, uint32, int64 seconds).
    while (n > 0x7f) {
      this.current.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
      this.length++;
    }
    this.current.push(n);
    this.length++;
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  uint(field: number, n: number, what: string): void {
    if (!Number.isInteger(n) || n < 0) throw new Error(`${what}: expected a non-negative integer, got ${n}`);
    this.tag(field, WIRE_VARINT);
    this.varint(n);
  }

  bool(field: number, value: boolean): void {
    this.tag(field, WIRE_VARINT);
    this.varint(value ? 1 : 0);
  }

  double(field: number, value: number): void {
    this.tag(field, WIRE_FIXED64);
    f64[0] = value;
    for (let i = 0; i < 8; i++) this.current.push(f64Bytes[i]!);
    this.length += 8;
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    if (data.length < REFERENCE_BYTES) {
      for (let i = 0; i < data.length; i++) this.current.push(data[i]!);
    } else {
      this.flush();
      this.parts.push(data);
    }
    this.length += data.length;
  }

  string(field: number, text: string): void {
    this.bytes(field, Buffer.from(text, 'utf8'));
  }

  message(field: number, sub: Writer): void {
    this.tag(field, WIRE_LEN);
    this.varint(sub.length);
    sub.flush();
    this.flush();
    for (const p of sub.parts) this.parts.push(p);
    this.length += sub.length;
  }

  private flush(): void {
    if (this.current.length > 0) {
      this.parts.push(this.current);
      this.current = [];
    }
  }

  finish(): Buffer {
    this.flush();
    const out = Buffer.allocUnsafe(this.length);
    let at = 0;
    for (const p of this.parts) {
      if (Array.isArray(p)) for (let i = 0; i < p.length; i++) out[at++] = p[i]!;
      else {
        out.set(p, at);
        at += p.length;
      }
    }
    return out;
  }
}

type Loose = Record<string, unknown>;
const set = (v: unknown): boolean => v !== undefined && v !== null;

function bytesOf(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  // A string is base64, as protobufjs's fromObject takes it.
  if (typeof value === 'string') return Buffer.from(value, 'base64');
  throw new Error(`${what}: expected bytes`);
}

function encodeValue(v: ProtoValue): Writer {
  const w = new Writer();
  if (set(v.nullValue)) w.uint(1, NULL_VALUE.number(v.nullValue!, 'Value.nullValue'), 'Value.nullValue');
  if (set(v.numberValue)) w.double(2, v.numberValue!);
  if (set(v.stringValue)) w.string(3, v.stringValue!);
  if (set(v.boolValue)) w.bool(4, v.boolValue!);
  if (set(v.structValue)) w.message(5, encodeStruct(v.structValue!));
  if (set(v.listValue)) {
    const list = new Writer();
    for (const item of v.listValue!.values ?? []) list.message(1, encodeValue(item));
    w.message(6, list);
  }
  return w;
}

function encodeStruct(s: ProtoStruct): Writer {
  const w = new Writer();
  for (const [key, value] of Object.entries(s.fields ?? {})) {
    const entry = new Writer();
    entry.string(1, key);
    entry.message(2, encodeValue(value));
    w.message(1, entry);
  }
  return w;
}

function encodeHeaderValue(h: Loose): Writer {
  const w = new Writer();
  if (set(h.key)) w.string(1, h.key as string);
  if (set(h.value)) w.string(2, h.value as string);
  if (set(h.raw_value)) w.bytes(3, bytesOf(h.raw_value, 'HeaderValue.raw_value'));
  return w;
}

function encodeHeaderMap(m: Loose): Writer {
  const w = new Writer();
  for (const h of (m.headers as Loose[] | undefined) ?? []) w.message(1, encodeHeaderValue(h));
  return w;
}

function encodeHeaderMutation(m: Loose): Writer {
  const w = new Writer();
  for (const o of (m.set_headers as Loose[] | undefined) ?? []) {
    const option = new Writer();
    if (set(o.header)) option.message(1, encodeHeaderValue(o.header as Loose));
    if (set(o.append)) {
      const wrapper = new Writer();
      const value = (o.append as Loose).value;
      if (set(value)) wrapper.bool(1, value as boolean);
      option.message(2, wrapper);
    }
    if (set(o.append_action))
      option.uint(3, APPEND_ACTION.number(o.append_action as string | number, 'append_action'), 'HeaderValueOption.append_action');
    if (set(o.keep_empty_value)) option.bool(4, o.keep_empty_value as boolean);
    w.message(1, option);
  }
  for (const name of (m.remove_headers as string[] | undefined) ?? []) w.string(2, name);
  return w;
}

function encodeCommonResponse(c: Loose): Writer {
  const w = new Writer();
  if (set(c.status)) w.uint(1, RESPONSE_STATUS.number(c.status as string | number, 'CommonResponse.status'), 'CommonResponse.status');
  if (set(c.header_mutation)) w.message(2, encodeHeaderMutation(c.header_mutation as Loose));
  if (set(c.body_mutation)) {
    const b = c.body_mutation as Loose;
    const m = new Writer();
    if (set(b.body)) m.bytes(1, bytesOf(b.body, 'BodyMutation.body'));
    if (set(b.clear_body)) m.bool(2, b.clear_body as boolean);
    if (set(b.streamed_response)) {
      const s = b.streamed_response as Loose;
      const sw = new Writer();
      if (set(s.body)) sw.bytes(1, bytesOf(s.body, 'StreamedBodyResponse.body'));
      if (set(s.end_of_stream)) sw.bool(2, s.end_of_stream as boolean);
      m.message(3, sw);
    }
    w.message(3, m);
  }
  if (set(c.trailers)) w.message(4, encodeHeaderMap(c.trailers as Loose));
  if (set(c.clear_route_cache)) w.bool(5, c.clear_route_cache as boolean);
  return w;
}

/** HeadersResponse and BodyResponse: one CommonResponse, field 1. */
function encodeWithCommon(r: Loose): Writer {
  const w = new Writer();
  if (set(r.response)) w.message(1, encodeCommonResponse(r.response as Loose));
  return w;
}

function encodeTrailersResponse(r: Loose): Writer {
  const w = new Writer();
  if (set(r.header_mutation)) w.message(1, encodeHeaderMutation(r.header_mutation as Loose));
  return w;
}

function encodeImmediateResponse(r: Loose): Writer {
  const w = new Writer();
  if (set(r.status)) {
    const s = new Writer();
    const code = (r.status as Loose).code;
    if (set(code)) s.uint(1, STATUS_CODE.number(code as string | number, 'ImmediateResponse.status.code'), 'ImmediateResponse.status.code');
    w.message(1, s);
  }
  if (set(r.headers)) w.message(2, encodeHeaderMutation(r.headers as Loose));
  if (set(r.body)) w.bytes(3, bytesOf(r.body, 'ImmediateResponse.body'));
  if (set(r.grpc_status)) {
    const g = new Writer();
    const status = (r.grpc_status as Loose).status;
    if (set(status)) g.uint(1, status as number, 'ImmediateResponse.grpc_status.status');
    w.message(4, g);
  }
  if (set(r.details)) w.string(5, r.details as string);
  return w;
}

const MODE_FIELDS: Array<[string, number, EnumTable]> = [
  ['request_header_mode', 1, HEADER_SEND_MODE],
  ['response_header_mode', 2, HEADER_SEND_MODE],
  ['request_body_mode', 3, BODY_SEND_MODE],
  ['response_body_mode', 4, BODY_SEND_MODE],
  ['request_trailer_mode', 5, HEADER_SEND_MODE],
  ['response_trailer_mode', 6, HEADER_SEND_MODE],
];

/** A ProcessingResponse as protobuf bytes, as proto-loader's serializer would write it. */
export function encodeProcessingResponse(message: ProcessingResponse): Buffer {
  const m = message as unknown as Loose;
  const w = new Writer();
  if (set(m.request_headers)) w.message(1, encodeWithCommon(m.request_headers as Loose));
  if (set(m.response_headers)) w.message(2, encodeWithCommon(m.response_headers as Loose));
  if (set(m.request_body)) w.message(3, encodeWithCommon(m.request_body as Loose));
  if (set(m.response_body)) w.message(4, encodeWithCommon(m.response_body as Loose));
  if (set(m.request_trailers)) w.message(5, encodeTrailersResponse(m.request_trailers as Loose));
  if (set(m.response_trailers)) w.message(6, encodeTrailersResponse(m.response_trailers as Loose));
  if (set(m.immediate_response)) w.message(7, encodeImmediateResponse(m.immediate_response as Loose));
  if (set(m.dynamic_metadata)) w.message(8, encodeStruct(m.dynamic_metadata as ProtoStruct));
  if (set(m.mode_override)) {
    const mode = m.mode_override as Loose;
    const mw = new Writer();
    for (const [key, field, table] of MODE_FIELDS)
      if (set(mode[key])) mw.uint(field, table.number(mode[key] as string | number, `mode_override.${key}`), `mode_override.${key}`);
    w.message(9, mw);
  }
  if (set(m.override_message_timeout)) {
    const d = m.override_message_timeout as Loose;
    const dw = new Writer();
    if (set(d.seconds)) dw.uint(1, Number(d.seconds), 'override_message_timeout.seconds');
    if (set(d.nanos)) dw.uint(2, d.nanos as number, 'override_message_timeout.nanos');
    w.message(10, dw);
  }
  return w.finish();
}

// ---- decoding ---------------------------------------------------------------------------------------

class DecodeError extends Error {}

/** Reads one message (or sub-message) of a buffer; every read is bounds-checked against `end`. */
class Reader {
  pos: number;
  readonly buf: Buffer;
  readonly end: number;
  constructor(buf: Buffer, start: number, end: number) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  more(): boolean {
    return this.pos < this.end;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError('truncated varint');
      const b = this.buf[this.pos++]!;
      // Past 2^53 precision is lost, as it would be for any JS number; such values do not occur here.
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 0x80;
    }
    throw new DecodeError('varint longer than 10 bytes');
  }

  /** A varint as protobuf's int32/enum: the low 32 bits, signed. */
  int32(): number {
    const v = this.varint();
    return v <= 0x7fffffff ? v : (v % 0x100000000) | 0;
  }

  bool(): boolean {
    return this.varint() !== 0;
  }

  /** The bounds of a length-delimited field's payload; advances past it. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw new DecodeError(`length ${len} runs past the end of the message`);
    this.pos = start + len;
    return [start, start + len];
  }

  sub(): Reader {
    const [start, end] = this.span();
    return new Reader(this.buf, start, end);
  }

  bytes(): Buffer {
    const [start, end] = this.span();
    return this.buf.subarray(start, end);
  }

  string(): string {
    const [start, end] = this.span();
    return this.buf.toString('utf8', start, end);
  }

  double(): number {
    if (this.end - this.pos < 8) throw new DecodeError('truncated double');
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.span();
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      default:
        throw new DecodeError(`unsupported wire type ${wire}`);
    }
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) throw new DecodeError('truncated field');
    this.pos += n;
  }
}

/** Iterates the fields of a message: calls `field` with each field number and wire type. */
function readFields(r: Reader, field: (no: number, wire: number) => boolean): void {
  while (r.more()) {
    const tag = r.varint();
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    if (no === 0) throw new DecodeError('field number 0');
    if (!field(no, wire)) r.skip(wire);
  }
}

function expectWire(wire: number, want: number, what: string): void {
  if (wire !== want) throw new DecodeError(`${what}: wire type ${wire}, expected ${want}`);
}

/** Struct and ListValue nesting a request may carry; each level is a few stack frames of recursion. */
const MAX_VALUE_DEPTH = 100;
let valueDepth = 0;

/** A google.protobuf.Value, refused (not a stack overflow) past MAX_VALUE_DEPTH levels of nesting. */
function decodeValue(r: Reader): ProtoValue {
  if (valueDepth >= MAX_VALUE_DEPTH) throw new DecodeError(`Struct values nest deeper than ${MAX_VALUE_DEPTH} levels`);
  valueDepth++;
  try {
    return decodeValueFields(r);
  } finally {
    valueDepth--;
  }
}

function decodeValueFields(r: Reader): ProtoValue {
  const v: ProtoValue = {};
  readFields(r, (no, wire) => {
    switch (no) {
      case 1:
        expectWire(wire, WIRE_VARINT, 'Value.null_value');
        v.nullValue = NULL_VALUE.name(r.int32()) as ProtoValue['nullValue'];
        v.kind = 'nullValue';
        return true;
      case 2:
        expectWire(wire, WIRE_FIXED64, 'Value.number_value');
        v.numberValue = r.double();
        v.kind = 'numberValue';
        return true;
      case 3:
        expectWire(wire, WIRE_LEN, 'Value.string_value');
        v.stringValue = r.string();
        v.kind = 'stringValue';
        return true;
      case 4:
        expectWire(wire, WIRE_VARINT, 'Value.bool_value');
        v.boolValue = r.bool();
        v.kind = 'boolValue';
        return true;
      case 5:
        expectWire(wire, WIRE_LEN, 'Value.struct_value');
        v.structValue = decodeStruct(r.sub());
        v.kind = 'structValue';
        return true;
      case 6: {
        expectWire(wire, WIRE_LEN, 'Value.list_value');
        const list = r.sub();
        const values: ProtoValue[] = [];
        readFields(list, (n, w) => {
          if (n !== 1) return false;
          expectWire(w, WIRE_LEN, 'ListValue.values');
          values.push(decodeValue(list.sub()));
          return true;
        });
        // As protobufjs's toObject: an empty list has no `values`.
        v.listValue = values.length > 0 ? { values } : {};
        v.kind = 'listValue';
        return true;
      }
      default:
        return false;
    }
  });
  return v;
}

function decodeStruct(r: Reader): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  let any = false;
  readFields(r, (no, wire) => {
    if (no !== 1) return false;
    expectWire(wire, WIRE_LEN, 'Struct.fields');
    const entry = r.sub();
    let key = '';
    let value: ProtoValue = {};
    readFields(entry, (n, w) => {
      if (n === 1) {
        expectWire(w, WIRE_LEN, 'Struct.fields key');
        key = entry.string();
        return true;
      }
      if (n === 2) {
        expectWire(w, WIRE_LEN, 'Struct.fields value');
        value = decodeValue(entry.sub());
        return true;
      }
      return false;
    });
    fields[key] = value;
    any = true;
    return true;
  });
  return any ? { fields } : {};
}

/** map<string, M> field entries into `into` (key 1, value 2). */
function readMapEntry<M>(r: Reader, into: Record<string, M>, value: (r: Reader) => M, empty: () => M, what: string): void {
  const entry = r.sub();
  let key = '';
  let v: M | undefined;
  readFields(entry, (n, w) => {
    if (n === 1) {
      expectWire(w, WIRE_LEN, `${what} key`);
      key = entry.string();
      return true;
    }
    if (n === 2) {
      expectWire(w, WIRE_LEN, `${what} value`);
      v = value(entry.sub());
      return true;
    }
    return false;
  });
  into[key] = v ?? empty();
}

function decodeHeaderMap(r: Reader): { headers?: Array<Record<string, unknown>> } {
  const out: { headers?: Array<Record<string, unknown>> } = {};
  readFields(r, (no, wire) => {
    if (no !== 1) return false;
    expectWire(wire, WIRE_LEN, 'HeaderMap.headers');
    const h = r.sub();
    const header: Record<string, unknown> = {};
    readFields(h, (n, w) => {
      if (n < 1 || n > 3) return false;
      expectWire(w, WIRE_LEN, 'HeaderValue');
      if (n === 1) header.key = h.string();
      else if (n === 2) header.value = h.string();
      else header.raw_value = h.bytes();
      return true;
    });
    (out.headers ??= []).push(header);
    return true;
  });
  return out;
}

function decodeHttpHeaders(r: Reader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  readFields(r, (no, wire) => {
    switch (no) {
      case 1:
        expectWire(wire, WIRE_LEN, 'HttpHeaders.headers');
        out.headers = decodeHeaderMap(r.sub());
        return true;
      case 2:
        expectWire(wire, WIRE_LEN, 'HttpHeaders.attributes');
        readMapEntry(r, (out.attributes ??= {}) as Record<string, ProtoStruct>, decodeStruct, () => ({}), 'HttpHeaders.attributes');
        return true;
      case 3:
        expectWire(wire, WIRE_VARINT, 'HttpHeaders.end_of_stream');
        out.end_of_stream = r.bool();
        return true;
      default:
        return false;
    }
  });
  return out;
}

function decodeHttpBody(r: Reader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  readFields(r, (no, wire) => {
    if (no === 1) {
      expectWire(wire, WIRE_LEN, 'HttpBody.body');
      out.body = r.bytes();
      return true;
    }
    if (no === 2) {
      expectWire(wire, WIRE_VARINT, 'HttpBody.end_of_stream');
      out.end_of_stream = r.bool();
      return true;
    }
    return false;
  });
  return out;
}

function decodeHttpTrailers(r: Reader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  readFields(r, (no, wire) => {
    if (no !== 1) return false;
    expectWire(wire, WIRE_LEN, 'HttpTrailers.trailers');
    out.trailers = decodeHeaderMap(r.sub());
    return true;
  });
  return out;
}

function decodeAny(r: Reader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  readFields(r, (no, wire) => {
    if (no === 1 || no === 2) expectWire(wire, WIRE_LEN, 'Any');
    if (no === 1) out.type_url = r.string();
    else if (no === 2) out.value = r.bytes();
    else return false;
    return true;
  });
  return out;
}

function decodeMetadata(r: Reader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  readFields(r, (no, wire) => {
    if (no === 1) {
      expectWire(wire, WIRE_LEN, 'Metadata.filter_metadata');
      readMapEntry(r, (out.filter_metadata ??= {}) as Record<string, ProtoStruct>, decodeStruct, () => ({}), 'Metadata.filter_metadata');
      return true;
    }
    if (no === 2) {
      expectWire(wire, WIRE_LEN, 'Metadata.typed_filter_metadata');
      readMapEntry(
        r,
        (out.typed_filter_metadata ??= {}) as Record<string, unknown>,
        decodeAny,
        () => ({}),
        'Metadata.typed_filter_metadata',
      );
      return true;
    }
    return false;
  });
  return out;
}

function decodeProtocolConfig(r: Reader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  readFields(r, (no, wire) => {
    if (no < 1 || no > 3) return false;
    expectWire(wire, WIRE_VARINT, 'ProtocolConfiguration');
    if (no === 1) out.request_body_mode = BODY_SEND_MODE.name(r.int32());
    else if (no === 2) out.response_body_mode = BODY_SEND_MODE.name(r.int32());
    else out.send_body_without_waiting_for_header_response = r.bool();
    return true;
  });
  return out;
}

const REQUEST_MEMBERS = [
  undefined,
  undefined,
  'request_headers',
  'response_headers',
  'request_body',
  'response_body',
  'request_trailers',
  'response_trailers',
] as const;

/** A ProcessingRequest from protobuf bytes, shaped as proto-loader's deserializer returns it. */
export function decodeProcessingRequest(buf: Buffer): ProcessingRequest {
  const out: Record<string, unknown> = {};
  const r = new Reader(buf, 0, buf.length);
  try {
    readFields(r, (no, wire) => {
      const member = REQUEST_MEMBERS[no];
      if (member) {
        expectWire(wire, WIRE_LEN, member);
        const sub = r.sub();
        out[member] = no <= 3 ? decodeHttpHeaders(sub) : no <= 5 ? decodeHttpBody(sub) : decodeHttpTrailers(sub);
        out.request = member;
        return true;
      }
      switch (no) {
        case 8:
          expectWire(wire, WIRE_LEN, 'metadata_context');
          out.metadata_context = decodeMetadata(r.sub());
          return true;
        case 9:
          expectWire(wire, WIRE_LEN, 'attributes');
          readMapEntry(r, (out.attributes ??= {}) as Record<string, ProtoStruct>, decodeStruct, () => ({}), 'attributes');
          return true;
        case 10:
          expectWire(wire, WIRE_VARINT, 'observability_mode');
          out.observability_mode = r.bool();
          return true;
        case 11:
          expectWire(wire, WIRE_LEN, 'protocol_config');
          out.protocol_config = decodeProtocolConfig(r.sub());
          return true;
        default:
          return false;
      }
    });
  } catch (err) {
    if (err instanceof DecodeError) throw new Error(`invalid ProcessingRequest: ${err.message}`);
    throw err;
  }
  return out as ProcessingRequest;
}

// ---- the service definition the router serves ------------------------------------------------------

const processMethod = ExternalProcessorService['Process']!;

/**
 * ExternalProcessor for grpc.Server#addService with this codec on the server's side (decoding
 * requests, encoding responses); the client's side stays proto-loader's.
 */
export const ExternalProcessorServerDefinition: grpc.ServiceDefinition = {
  Process: {
    ...processMethod,
    requestDeserialize: decodeProcessingRequest,
    responseSerialize: (value: ProcessingResponse) => encodeProcessingResponse(value),
  } as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>,
};
