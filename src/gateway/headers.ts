// HTTP headers as Envoy's ext_proc filter shows them to the router and changes them on its answer:
// an ordered list of lower-cased (name, value) pairs with pseudo-headers first, encoded as raw_value
// bytes, and header mutations applied with Envoy's default HeaderMutationRules.
//
// Envoy 1.40 behaviour this copies (checked against a real Envoy in e2e/gateway-envoy-parity.test.ts
// and in source/extensions/filters/http/ext_proc/mutation_utils.cc):
// - set_headers reads only `raw_value` (a `value`-only entry sets the header to ""), and only the
//   deprecated `append` flag (default false: replace); `append_action` is ignored.
// - host, :authority, :scheme, :method and x-envoy-* may not be set or removed; other pseudo-headers
//   (:path, :status) may be set but not removed. Such mutations are ignored, not errors.
// - an invalid header name or value fails the whole mutation (Envoy answers 500).

import type { HeaderMap, HeaderMutation, HeaderValueOption } from '../envoy/ext-proc.ts';

/** Lower-cased name and value, in order; repeated names appear repeatedly. */
export type HeaderList = Array<[string, string]>;

/** Hop-by-hop headers Envoy's HTTP/1 codec consumes and never shows to filters or forwards. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** Headers that steer routing; Envoy's default mutation rules leave them alone. */
const ROUTING = new Set(['host', ':authority', ':scheme', ':method']);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

export class HeaderMutationError extends Error {}

export function getHeader(list: HeaderList, name: string): string | undefined {
  for (const [k, v] of list) if (k === name) return v;
  return undefined;
}

export function removeHeader(list: HeaderList, name: string): HeaderList {
  return list.filter(([k]) => k !== name);
}

/** Drops every `name` and appends one with `value`: Envoy's setCopy (a replaced header moves to the end). */
function setHeaderValue(list: HeaderList, name: string, value: string): HeaderList {
  return [...removeHeader(list, name), [name, value]];
}

export interface RequestHeadOptions {
  method: string;
  path: string;
  /** The Host header of the request (HTTP/1.1 requires one; an empty one is passed on as such). */
  scheme: 'http' | 'https';
  /** Added when the client sent none, as Envoy's connection manager does (generate_request_id). */
  requestId: () => string;
}

/**
 * The request headers as Envoy's ext_proc filter sends them: :authority, :path, :method, :scheme,
 * then the client's headers in order (without Host and hop-by-hop ones), then x-forwarded-proto
 * (set, as Envoy's connection manager does) and x-request-id when the client sent none.
 */
export function requestHeaderList(rawHeaders: readonly string[], opts: RequestHeadOptions): HeaderList {
  let authority = '';
  const rest: HeaderList = [];
  let hasRequestId = false;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (name === 'host') {
      if (authority === '') authority = value;
      continue;
    }
    if (HOP_BY_HOP.has(name) || name === 'x-forwarded-proto') continue;
    if (name === 'x-request-id') hasRequestId = true;
    rest.push([name, value]);
  }
  const list: HeaderList = [
    [':authority', authority],
    [':path', opts.path],
    [':method', opts.method],
    [':scheme', opts.scheme],
    ...rest,
    ['x-forwarded-proto', opts.scheme],
  ];
  if (!hasRequestId) list.push(['x-request-id', opts.requestId()]);
  return list;
}

/**
 * An upstream response's headers as Envoy sends them to ext_proc: :status first, then the headers as
 * received. Envoy 1.40's HTTP/1 codec drops Keep-Alive here but, unlike on requests, leaves Connection
 * and Transfer-Encoding in (seen against a real Envoy, e2e/gateway-envoy-parity.test.ts).
 */
export function responseHeaderList(status: number, rawHeaders: readonly string[]): HeaderList {
  const list: HeaderList = [[':status', String(status)]];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name !== 'keep-alive') list.push([name, rawHeaders[i + 1]!]);
  }
  return list;
}

/** Headers in the ext_proc HeaderMap shape, values as raw_value bytes (what Envoy sends, `value` left empty). */
export function toHeaderMap(list: HeaderList): HeaderMap {
  return { headers: list.map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })) };
}

/** Headers for node's http APIs (a flat [name, value, ...] array keeps repeats such as set-cookie), without pseudo-headers and hop-by-hop ones. */
export function toNodeHeaders(list: HeaderList): string[] {
  const out: string[] = [];
  for (const [k, v] of list) {
    if (k.startsWith(':') || HOP_BY_HOP.has(k)) continue;
    out.push(k, v);
  }
  return out;
}

function mayChange(name: string): boolean {
  return !ROUTING.has(name) && !name.startsWith('x-envoy');
}

function validName(name: string): boolean {
  return name.startsWith(':') ? TOKEN.test(name.slice(1)) : TOKEN.test(name);
}

function validValue(value: string): boolean {
  return !/[\r\n\0]/.test(value);
}

/** The deprecated BoolValue `append` that Envoy still honours; proto.ts's type leaves it out. */
type SetHeader = HeaderValueOption & { append?: { value?: boolean } | null };

function rawText(raw: Uint8Array | string | undefined): string {
  if (raw === undefined) return '';
  return typeof raw === 'string' ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
}

export interface MutationResult {
  headers: HeaderList;
  /** Names the default rules did not let the router touch (ignored, as Envoy does). */
  ignored: string[];
}

/**
 * Applies a router's HeaderMutation: removals first, then sets, as Envoy does. Throws
 * HeaderMutationError for an invalid name or value (Envoy then answers 500).
 */
export function applyHeaderMutation(list: HeaderList, mutation: HeaderMutation | null | undefined): MutationResult {
  let headers = list;
  const ignored: string[] = [];
  for (const raw of mutation?.remove_headers ?? []) {
    const name = raw.toLowerCase();
    if (name.startsWith(':') || !mayChange(name)) {
      ignored.push(name);
      continue;
    }
    headers = removeHeader(headers, name);
  }
  for (const option of (mutation?.set_headers ?? []) as SetHeader[]) {
    if (!option.header) continue;
    const name = option.header.key.toLowerCase();
    const value = rawText(option.header.raw_value);
    if (!validName(name) || !validValue(value))
      throw new HeaderMutationError(`invalid header in set_headers: ${JSON.stringify(option.header.key)}`);
    if (!mayChange(name)) {
      ignored.push(name);
      continue;
    }
    if (name === ':status' && !/^[1-5]\d\d$/.test(value))
      throw new HeaderMutationError(`invalid :status in set_headers: ${JSON.stringify(value)}`);
    headers =
      option.append?.value === true && getHeader(headers, name) !== undefined
        ? [...headers, [name, value]]
        : setHeaderValue(headers, name, value);
  }
  return { headers, ignored };
}
