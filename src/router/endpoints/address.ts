// Endpoint addresses as the gateway reads them from x-gateway-destination-endpoint: `ip:port`, with
// IPv6 in brackets, or `hostname:port` in local mode. One place parses and formats them.

import net from 'node:net';

export interface HostPort {
  /** The IP (IPv6 without brackets) or hostname. */
  host: string;
  port: number;
  /** `host:port`, `[v6]:port` for IPv6. */
  address: string;
}

/** `ip:port`, bracketing an IPv6 address. */
export function formatAddress(ip: string, port: number): string {
  return net.isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`;
}

// RFC 1123 hostname: dot-separated labels of letters, digits and '-', not starting or ending with '-'.
const HOSTNAME = /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/**
 * Parses `a.b.c.d:port`, `[v6]:port` or `hostname:port` (port 1-65535); throws an Error that names
 * the item and says what was expected.
 */
export function parseHostPort(item: string): HostPort {
  const bad = (why: string) => new Error(`endpoint "${item}": ${why}; expected ip:port, [ipv6]:port or hostname:port`);
  const text = item.trim();
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) throw bad('unclosed "["');
    host = text.slice(1, close);
    if (!net.isIPv6(host)) throw bad(`"${host}" is not an IPv6 address`);
    if (text[close + 1] !== ':') throw bad('missing ":port" after "]"');
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) throw bad('missing ":port"');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw bad('an IPv6 address must be written in brackets');
    if (host === '') throw bad('missing host');
    // Four dotted numbers must be a valid IPv4 address, not a hostname.
    if (/^[0-9.]+$/.test(host) ? !net.isIPv4(host) : !HOSTNAME.test(host)) throw bad(`"${host}" is not an IPv4 address or hostname`);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) throw bad(`port "${portText}" is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw bad(`port ${port} is outside 1-65535`);
  return { host, port, address: formatAddress(host, port) };
}
