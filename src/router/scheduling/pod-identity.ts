// Which endpoint a pod id from the indexer means. The indexer names a pod by the id in its KV-event
// topic `kv@<id>@<model>`, and pods publish in different forms, so the rule is:
//   - `ip:port` or `[ipv6]:port` (llm-d's form, the only one that tells apart several servers on one
//     IP): the endpoint whose IP and port are exactly those;
//   - an IP without a port (`10.0.0.5`, `fd00::5`, the form the kvroute operator renders as
//     `kv@$(POD_IP)@...`): every endpoint on that IP (each of a pod's target ports);
//   - anything else (a pod name, `host:port` in local mode): the endpoint whose name, or else whose
//     address, equals the id.
// IPv6 addresses compare in canonical form. When several ids land on one endpoint, it keeps the
// highest score.

import net from 'node:net';
import type { EndpointState } from '../types.ts';

export type PodIdentity = { kind: 'address'; ip: string; port: number } | { kind: 'ip'; ip: string } | { kind: 'name'; name: string };

/** IPv6 addresses compared in their canonical spelling (fd00:0::7 is fd00::7); anything else as written. */
function normalizeIp(ip: string): string {
  if (!ip.includes(':') || !net.isIPv6(ip)) return ip;
  // The WHATWG URL parser serializes IPv6 hosts canonically (RFC 5952).
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

function validPort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Classifies a pod id from the indexer by the rule above. */
export function parsePodId(id: string): PodIdentity {
  const bracketed = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(id);
  if (bracketed && net.isIPv6(bracketed[1]!)) {
    if (bracketed[2] === undefined) return { kind: 'ip', ip: normalizeIp(bracketed[1]!) };
    const port = validPort(bracketed[2]);
    if (port !== undefined) return { kind: 'address', ip: normalizeIp(bracketed[1]!), port };
  }
  if (net.isIP(id) !== 0) return { kind: 'ip', ip: normalizeIp(id) };
  const colon = id.lastIndexOf(':');
  if (colon > 0 && net.isIPv4(id.slice(0, colon))) {
    const port = validPort(id.slice(colon + 1));
    if (port !== undefined) return { kind: 'address', ip: id.slice(0, colon), port };
  }
  return { kind: 'name', name: id };
}

/**
 * Pod id -> score from the indexer, as endpoint address -> score over `endpoints`. Ids that match no
 * endpoint are dropped (pods of another pool, or gone).
 */
export function scoresByEndpoint(scores: Readonly<Record<string, number>>, endpoints: readonly EndpointState[]): Map<string, number> {
  const out = new Map<string, number>();
  const ids = Object.keys(scores);
  if (ids.length === 0) return out;
  const byIp = new Map<string, EndpointState[]>();
  const byName = new Map<string, EndpointState[]>();
  const byAddress = new Map<string, EndpointState>();
  for (const state of endpoints) {
    const { ip, name, address } = state.endpoint;
    const key = normalizeIp(ip);
    const onIp = byIp.get(key);
    if (onIp) onIp.push(state);
    else byIp.set(key, [state]);
    const named = byName.get(name);
    if (named) named.push(state);
    else byName.set(name, [state]);
    byAddress.set(address, state);
  }
  const credit = (state: EndpointState, score: number): void => {
    const address = state.endpoint.address;
    const had = out.get(address);
    if (had === undefined || score > had) out.set(address, score);
  };
  for (const id of ids) {
    const score = scores[id]!;
    const identity = parsePodId(id);
    if (identity.kind === 'address') {
      for (const state of byIp.get(identity.ip) ?? []) if (state.endpoint.port === identity.port) credit(state, score);
    } else if (identity.kind === 'ip') {
      for (const state of byIp.get(identity.ip) ?? []) credit(state, score);
    } else {
      const named = byName.get(identity.name);
      if (named) for (const state of named) credit(state, score);
      else {
        const exact = byAddress.get(identity.name);
        if (exact) credit(exact, score);
      }
    }
  }
  return out;
}
