// Scrapes every endpoint's engine /metrics on one timer (every 50 ms by default), one scrape per
// endpoint at a time (a tick is skipped while the previous scrape of that endpoint is in flight), and
// keeps the last good result until it is older than the staleness threshold. Each result records the
// router's own in-flight count when its scrape started, so the load estimate can discount it. It also
// tells when an endpoint is gone or silent (see `availability`), which the endpoint set uses to stop offering it.

import type { Logger } from '../../common/log.ts';
import type { EndpointMetrics } from '../types.ts';
import { getText, getTextWithFetch, type GetText } from './http-get.ts';
import { parseEngineMetrics } from './prom-text.ts';

export interface ScrapeOptions {
  /** Time between scrapes of one endpoint (--refresh-metrics-interval). Default 50. */
  intervalMs: number;
  /** A scrape older than this is no scrape at all: EndpointState.metrics is null (--metrics-staleness-threshold). Default 2000. */
  stalenessMs: number;
  /** Per-request timeout; default min(intervalMs * 10, 1000). */
  timeoutMs?: number;
  /** The HTTP client; default a node:http keep-alive GET (http-get.ts), far cheaper per scrape than fetch. */
  fetch?: typeof fetch;
  /** Wall clock, ms since the epoch; default Date.now. */
  now?: () => number;
}

/** What the scraper reports to its owner (for the router's own metrics), and asks it. */
export interface ScrapeObserver {
  scraped(address: string, seconds: number, malformedLines: number): void;
  failed(address: string, seconds: number): void;
  /** This router's requests in flight to `address` now; read as each scrape starts (EndpointMetrics.inFlightAtScrape). */
  ownInFlight(address: string): number;
}

interface Target {
  address: string;
  url: string;
  metrics: EndpointMetrics | null;
  scraping: boolean;
  failing: boolean;
  /** How the last scrape failed to reach the server; null after a success or an HTTP-level failure. */
  unreachable: 'refused' | 'timeout' | null;
}

/** Connection-level failures: nothing listens (a killed pod) or the connection died under the scrape. */
const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_SOCKET']);

function unreachableKind(err: unknown): 'refused' | 'timeout' | null {
  if (err instanceof Error && err.name === 'TimeoutError') return 'timeout';
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = cause?.code ?? (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONNECTION_ERRORS.has(code) ? 'refused' : null;
}

export class MetricsScraper {
  readonly #targets = new Map<string, Target>();
  readonly #get: GetText;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #stalenessMs: number;
  readonly #log: Logger;
  readonly #observer: ScrapeObserver;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ScrapeOptions, log: Logger, observer: ScrapeObserver) {
    for (const key of ['intervalMs', 'stalenessMs'] as const) {
      const v = options[key];
      if (!Number.isFinite(v) || v <= 0) throw new Error(`scrape.${key}: expected a positive number of milliseconds, got ${v}`);
    }
    if (options.timeoutMs !== undefined && (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0)) {
      throw new Error(`scrape.timeoutMs: expected a positive number of milliseconds, got ${options.timeoutMs}`);
    }
    this.#intervalMs = options.intervalMs;
    this.#stalenessMs = options.stalenessMs;
    this.#timeoutMs = options.timeoutMs ?? Math.min(options.intervalMs * 10, 1000);
    this.#get = options.fetch ? getTextWithFetch(options.fetch) : getText;
    this.#now = options.now ?? Date.now;
    this.#log = log;
    this.#observer = observer;
  }

  /** Starts scraping `address` at once and on every tick until it is removed. */
  add(address: string): void {
    if (this.#closed || this.#targets.has(address)) return;
    const target: Target = {
      address,
      url: `http://${address}/metrics`,
      metrics: null,
      scraping: false,
      failing: false,
      unreachable: null,
    };
    this.#targets.set(address, target);
    this.#ensureTimer();
    void this.#scrape(target);
  }

  /** Stops scraping `address` and forgets its metrics; a scrape in flight is discarded when it ends. */
  remove(address: string): void {
    this.#targets.delete(address);
    if (this.#targets.size === 0) this.#stopTimer();
  }

  /** The last scrape of `address` if it is younger than the staleness threshold, else null. */
  fresh(address: string, now = this.#now()): EndpointMetrics | null {
    const m = this.#targets.get(address)?.metrics;
    if (!m || now - m.scrapedAtMs > this.#stalenessMs) return null;
    return m;
  }

  /**
   * Whether `address` can take requests: `gone` when its last scrape found nothing listening
   * (connection refused or reset: a killed pod, seen within one scrape interval), `silent` when it
   * answered scrapes before and has since timed out for longer than the staleness threshold (a hung
   * pod, or a router too starved to scrape in time), else `available`. A server that answers with an
   * error or without engine metrics is alive and stays available.
   */
  availability(address: string, now = this.#now()): 'available' | 'silent' | 'gone' {
    const t = this.#targets.get(address);
    if (!t || t.unreachable === 'refused') return 'gone';
    if (t.unreachable === 'timeout' && t.metrics !== null && now - t.metrics.scrapedAtMs > this.#stalenessMs) return 'silent';
    return 'available';
  }

  close(): void {
    this.#closed = true;
    this.#targets.clear();
    this.#stopTimer();
  }

  #ensureTimer(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    for (const target of this.#targets.values()) if (!target.scraping) void this.#scrape(target);
  }

  async #scrape(target: Target): Promise<void> {
    target.scraping = true;
    const started = performance.now();
    const inFlightAtScrape = this.#observer.ownInFlight(target.address);
    try {
      const { status, text } = await this.#get(target.url, this.#timeoutMs);
      if (status < 200 || status > 299) throw new Error(`GET ${target.url}: HTTP ${status}`);
      const parsed = parseEngineMetrics(text);
      if (parsed.metrics === null) throw new Error(`GET ${target.url}: no engine metrics; missing ${parsed.missing.join(', ')}`);
      if (this.#targets.get(target.address) !== target) return;
      target.metrics = { ...parsed.metrics, scrapedAtMs: this.#now(), inFlightAtScrape };
      target.unreachable = null;
      this.#observer.scraped(target.address, (performance.now() - started) / 1000, parsed.malformedLines);
      if (target.failing) {
        target.failing = false;
        this.#log.info('endpoint metrics scrape recovered', { endpoint: target.address });
      }
    } catch (err) {
      if (this.#targets.get(target.address) !== target) return;
      this.#observer.failed(target.address, (performance.now() - started) / 1000);
      target.failing = true;
      target.unreachable = unreachableKind(err);
      const reason = err instanceof Error && err.name === 'TimeoutError' ? `timed out after ${this.#timeoutMs} ms` : err;
      this.#log.limited(`scrape:${target.address}`, 'warn', 'endpoint metrics scrape failed; its last metrics stay until stale', {
        endpoint: target.address,
        err: reason,
      });
    } finally {
      target.scraping = false;
    }
  }
}
