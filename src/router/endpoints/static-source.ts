// The endpoint source of local mode (`--endpoints host:port,...`): a fixed list, validated up front,
// synced at once, scraped and counted like pods.

import type { Registry } from 'prom-client';
import type { Logger } from '../../common/log.ts';
import type { Endpoint, EndpointSource } from '../types.ts';
import { parseHostPort } from './address.ts';
import { EndpointSet } from './endpoint-set.ts';
import type { ScrapeOptions } from './metrics-scraper.ts';

export interface StaticEndpointSourceOptions {
  addresses: string[];
  scrape: ScrapeOptions;
  log: Logger;
  registry: Registry;
}

/**
 * Endpoints from `host:port` items (a comma list may be passed as one item). Throws an Error naming
 * the first bad or repeated item; an empty list is an error too (the router would have nothing to pick).
 */
export function parseStaticEndpoints(addresses: readonly string[]): Endpoint[] {
  const items = addresses
    .flatMap((a) => a.split(','))
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (items.length === 0) throw new Error('--endpoints: expected at least one host:port');
  const seen = new Set<string>();
  return items.map((item) => {
    const { host, port, address } = parseHostPort(item);
    if (seen.has(address)) throw new Error(`endpoint "${item}": listed twice`);
    seen.add(address);
    return { address, ip: host, port, name: address, namespace: '', labels: {} };
  });
}

export function createStaticEndpointSource(options: StaticEndpointSourceOptions): EndpointSource {
  const endpoints = parseStaticEndpoints(options.addresses);
  const set = new EndpointSet({ scrape: options.scrape, log: options.log, registry: options.registry });
  set.replace(endpoints);
  return {
    snapshot: () => set.snapshot(),
    synced: () => true,
    requestStarted: (address) => set.requestStarted(address),
    requestFinished: (address) => set.requestFinished(address),
    close: async () => set.close(),
  };
}
