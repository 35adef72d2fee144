// Where a request goes: the endpoint the router picked (x-gateway-destination-endpoint, as a header
// and as envoy.lb dynamic metadata), checked the way a gateway must, and the round-robin fallback
// pool a fail-open gateway sends requests to when no pick is available.

import net from 'node:net';

export const DESTINATION_HEADER = 'x-gateway-destination-endpoint';
/** The key the gateway sets on the response path to say which endpoint served (Istio's selected_host_key). */
export const DESTINATION_SERVED_KEY = 'x-gateway-destination-endpoint-served';
/** The dynamic-metadata namespace ext_proc forwards to and accepts from the router. */
export const LB_NAMESPACE = 'envoy.lb';
export const SUBSET_NAMESPACE = 'envoy.lb.subset_hint';
export const SUBSET_KEY = 'x-gateway-destination-endpoint-subset';

export interface Endpoint {
  host: string;
  port: number;
  /** host:port, IPv6 hosts in brackets. */
  address: string;
}

function endpoint(host: string, port: number): Endpoint {
  return { host, port, address: net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}` };
}

function splitHostPort(text: string): { host: string; port: string } | undefined {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2]! };
  const colon = text.lastIndexOf(':');
  if (colon <= 0 || text.indexOf(':') !== colon) return undefined;
  return { host: text.slice(0, colon), port: text.slice(colon + 1) };
}

function validPort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/**
 * One `ip:port` as the router names a pod. Only IP literals count: like Envoy's ORIGINAL_DST
 * cluster, a gateway connects to the address it is given and never resolves names from a router.
 */
export function parseIpEndpoint(text: string): Endpoint | undefined {
  const parts = splitHostPort(text.trim());
  if (!parts || net.isIP(parts.host) === 0) return undefined;
  const port = validPort(parts.port);
  return port === undefined ? undefined : endpoint(parts.host, port);
}

/** The first valid ip:port of a comma-separated list (GIE: the proxy uses the first, later ones are for retries). */
export function firstValidEndpoint(list: string): Endpoint | undefined {
  for (const item of list.split(',')) {
    const found = parseIpEndpoint(item);
    if (found) return found;
  }
  return undefined;
}

export type DestinationOutcome =
  | { kind: 'picked'; endpoint: Endpoint; header: string | undefined; metadata: string | undefined; agree: boolean }
  | { kind: 'none'; reason: 'absent' | 'invalid'; header: string | undefined; metadata: string | undefined };

/**
 * The endpoint a request goes to, from the router's header mutation and its envoy.lb metadata. The
 * protocol says both carry the same string. When they differ (a router bug) the header wins, because
 * that is what Envoy's ORIGINAL_DST cluster in GIE's standalone gateway routes on; the caller logs
 * and counts the disagreement. A value with no valid ip:port counts as no pick.
 */
export function resolveDestination(header: string | undefined, metadata: unknown): DestinationOutcome {
  const meta = typeof metadata === 'string' ? metadata : undefined;
  const fromHeader = header !== undefined ? firstValidEndpoint(header) : undefined;
  const fromMeta = meta !== undefined ? firstValidEndpoint(meta) : undefined;
  const chosen = fromHeader ?? fromMeta;
  if (!chosen) {
    const reason = header === undefined && meta === undefined ? 'absent' : 'invalid';
    return { kind: 'none', reason, header, metadata: meta };
  }
  const agree = header === undefined || meta === undefined || fromHeader?.address === fromMeta?.address;
  return { kind: 'picked', endpoint: chosen, header, metadata: meta, agree };
}

/**
 * `host:port[,host:port...]` for a flag such as --endpoints: host names are allowed here (a fallback
 * pool may be a Service name), ports must be given. Throws naming the flag and the bad entry.
 */
export function parseEndpointList(text: string, flag: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const parts = splitHostPort(item);
    const port = parts ? validPort(parts.port) : undefined;
    if (!parts || parts.host === '' || port === undefined || /[\s/]/.test(parts.host)) {
      throw new Error(`${flag} expects host:port[,host:port...] with ports 1-65535, got "${item}"`);
    }
    out.push(endpoint(parts.host, port));
  }
  if (out.length === 0) throw new Error(`${flag} expects at least one host:port, got "${text}"`);
  return out;
}

/** The fail-open pool: endpoints in turn, as Envoy's ROUND_ROBIN fallback cluster spreads them. */
export class RoundRobin {
  private readonly endpoints: readonly Endpoint[];
  private next = 0;

  constructor(endpoints: readonly Endpoint[]) {
    this.endpoints = endpoints;
  }

  /** The next endpoint, or undefined when the pool is empty. */
  pick(): Endpoint | undefined {
    if (this.endpoints.length === 0) return undefined;
    const chosen = this.endpoints[this.next % this.endpoints.length]!;
    this.next = (this.next + 1) % this.endpoints.length;
    return chosen;
  }
}
