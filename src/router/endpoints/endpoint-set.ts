// The live endpoint table both endpoint sources feed: which endpoints exist, their scraped metrics
// (through MetricsScraper), the requests this router has in flight to each, the load estimate built
// from both (load.ts), and the per-endpoint and pool-wide engine gauges (in-flight and ready-endpoint
// gauges are src/router/metrics.ts's, read from the same snapshot). A removed endpoint leaves the
// snapshot, the scrape loop and every series at once; an endpoint the scraper finds gone or silent (killed
// or hung, MetricsScraper.availability) leaves the snapshot until it answers again.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../common/log.ts';
import type { Endpoint, EndpointState } from '../types.ts';
import { endpointLoad } from './load.ts';
import { MetricsScraper, type ScrapeOptions } from './metrics-scraper.ts';

interface Tracked {
  endpoint: Endpoint;
  inFlight: number;
}

export interface EndpointSetOptions {
  scrape: ScrapeOptions;
  log: Logger;
  registry: Registry;
}

export class EndpointSet {
  readonly #tracked = new Map<string, Tracked>();
  readonly #scraper: MetricsScraper;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #scrapeErrors: Counter<'endpoint'>;
  readonly #unknownInFlight: Counter<'event'>;

  constructor(options: EndpointSetOptions) {
    const { registry } = options;
    const registers = [registry];
    this.#log = options.log;
    this.#now = options.scrape.now ?? Date.now;
    this.#scrapeErrors = new Counter({
      name: 'kvroute_router_endpoint_scrape_errors_total',
      help: "Failed scrapes of an endpoint's engine /metrics (connection error, timeout, non-2xx, no engine metrics in the page).",
      labelNames: ['endpoint'],
      registers,
    });
    const duration = new Histogram({
      name: 'kvroute_router_endpoint_scrape_duration_seconds',
      help: "Time to fetch and parse one endpoint's /metrics, failed scrapes included.",
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    const malformed = new Counter({
      name: 'kvroute_router_endpoint_metrics_malformed_lines_total',
      help: 'Lines of a needed engine metric that could not be parsed and were skipped.',
      registers,
    });
    this.#unknownInFlight = new Counter({
      name: 'kvroute_router_endpoint_in_flight_unknown_total',
      help: 'requestStarted/requestFinished calls for an address that is not a current endpoint (ignored).',
      labelNames: ['event'],
      registers,
    });
    this.#scraper = new MetricsScraper(options.scrape, options.log, {
      scraped: (_address, seconds, malformedLines) => {
        duration.observe(seconds);
        if (malformedLines > 0) malformed.inc(malformedLines);
      },
      failed: (address, seconds) => {
        duration.observe(seconds);
        this.#scrapeErrors.inc({ endpoint: address });
      },
      ownInFlight: (address) => this.#tracked.get(address)?.inFlight ?? 0,
    });

    // Gauges are computed when /metrics is read, from the same fresh-or-null view the scheduler gets,
    // so a removed or stale endpoint has no series.
    const snapshot = () => this.snapshot();
    new Gauge({
      name: 'kvroute_router_endpoint_queue_size',
      help: "Requests waiting in each endpoint's engine queue, from its last fresh scrape.",
      labelNames: ['endpoint'],
      registers,
      collect() {
        this.reset();
        for (const s of snapshot()) if (s.metrics) this.set({ endpoint: s.endpoint.address }, s.metrics.waitingRequests);
      },
    });
    new Gauge({
      name: 'kvroute_router_endpoint_kv_cache_utilization',
      help: 'KV-cache utilization (0..1) of each endpoint, from its last fresh scrape.',
      labelNames: ['endpoint'],
      registers,
      collect() {
        this.reset();
        for (const s of snapshot()) if (s.metrics) this.set({ endpoint: s.endpoint.address }, s.metrics.kvCacheUsage);
      },
    });
    new Gauge({
      name: 'kvroute_router_pool_average_kv_cache_utilization',
      help: 'Mean KV-cache utilization over the endpoints with fresh metrics (0 when none has).',
      registers,
      collect() {
        this.set(mean(snapshot(), (m) => m.kvCacheUsage));
      },
    });
    new Gauge({
      name: 'kvroute_router_pool_average_queue_size',
      help: 'Mean engine queue size over the endpoints with fresh metrics (0 when none has).',
      registers,
      collect() {
        this.set(mean(snapshot(), (m) => m.waitingRequests));
      },
    });
  }

  /** Makes `endpoints` the current set: new ones start scraping, missing ones are dropped at once. */
  replace(endpoints: readonly Endpoint[]): void {
    const next = new Map<string, Endpoint>();
    for (const e of endpoints) if (!next.has(e.address)) next.set(e.address, e);
    for (const address of [...this.#tracked.keys()]) {
      if (next.has(address)) continue;
      this.#tracked.delete(address);
      this.#scraper.remove(address);
      this.#scrapeErrors.remove({ endpoint: address });
      this.#log.info('endpoint removed', { endpoint: address });
    }
    for (const [address, endpoint] of next) {
      const t = this.#tracked.get(address);
      if (t) {
        // Same address, maybe new labels or pod name: keep its in-flight count and metrics.
        t.endpoint = endpoint;
        continue;
      }
      this.#tracked.set(address, { endpoint, inFlight: 0 });
      this.#scraper.add(address);
      this.#log.info('endpoint added', { endpoint: address, pod: endpoint.name });
    }
  }

  get size(): number {
    return this.#tracked.size;
  }

  /**
   * The endpoints to schedule on, with fresh-or-null metrics. Endpoints the scraper finds gone (nothing
   * listening: a killed pod, within one scrape interval) or silent (scrapes timing out past the
   * staleness threshold: a hung pod) are left out. When none is left, the silent ones are offered (a
   * router starved of CPU times every scrape out at once; they may well be alive), and when every
   * endpoint is gone, all are, as there is nothing better to pick.
   */
  snapshot(): EndpointState[] {
    const now = this.#now();
    const available: EndpointState[] = [];
    const silent: EndpointState[] = [];
    const gone: EndpointState[] = [];
    for (const t of this.#tracked.values()) {
      const metrics = this.#scraper.fresh(t.endpoint.address, now);
      const state = { endpoint: t.endpoint, metrics, inFlight: t.inFlight, load: endpointLoad(t.inFlight, metrics) };
      const kind = this.#scraper.availability(t.endpoint.address, now);
      (kind === 'available' ? available : kind === 'silent' ? silent : gone).push(state);
    }
    if (available.length > 0) return available;
    return silent.length > 0 ? silent : gone;
  }

  requestStarted(address: string): void {
    const t = this.#tracked.get(address);
    if (t) t.inFlight++;
    else this.#unknownInFlight.inc({ event: 'started' });
  }

  requestFinished(address: string): void {
    const t = this.#tracked.get(address);
    // An endpoint that left and came back starts from 0, so a late finish must not push it below.
    if (t) t.inFlight = Math.max(0, t.inFlight - 1);
    else this.#unknownInFlight.inc({ event: 'finished' });
  }

  close(): void {
    this.#scraper.close();
    this.#tracked.clear();
  }
}

function mean(states: EndpointState[], value: (m: NonNullable<EndpointState['metrics']>) => number): number {
  let sum = 0;
  let n = 0;
  for (const s of states) {
    if (!s.metrics) continue;
    sum += value(s.metrics);
    n++;
  }
  return n === 0 ? 0 : sum / n;
}
