// The director turns a parsed request into a pick: model resolution through the model table, the
// candidate endpoints (narrowed by the gateway's subset hint), admission (shed sheddable requests
// when every candidate is saturated), the current scheduler, and in-flight accounting for the pick:
// the scheduler re-reads the candidates and reserves its pick through the director's PickTime in the
// tick it decides, and the decision carries that reservation for the stream to release.
// Every refusal is a RouteError carrying the HTTP status and the x-llm-d-request-dropped-reason.

import type { Logger } from '../common/log.ts';
import type { RouterMetrics } from './metrics.ts';
import type { ModelTable } from './request/models.ts';
import type { ParsedBody } from './request/parse.ts';
import {
  SchedulingError,
  type Endpoint,
  type EndpointSource,
  type EndpointState,
  type InferenceRequest,
  type PickTime,
  type Scheduler,
  type SchedulingResult,
} from './types.ts';

export type RouteStatus = 400 | 404 | 413 | 429 | 431 | 500 | 503;

/** Why the router answers a request itself instead of routing it. */
export class RouteError extends Error {
  readonly status: RouteStatus;
  /** Value of x-llm-d-request-dropped-reason. */
  readonly reason: string;
  constructor(status: RouteStatus, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** The config's saturationDetector, in milliseconds (GIE's defaults: 5 waiting, 80% KV, 200 ms). */
export interface SaturationThresholds {
  queueDepthThreshold: number;
  kvCacheUtilThreshold: number;
  metricsStalenessMs: number;
}

export const DEFAULT_SATURATION: SaturationThresholds = { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessMs: 200 };

/** What a config reload swaps as one unit; the director reads it once per request. */
export interface RoutingState {
  scheduler: Scheduler;
  models: ModelTable;
  saturation: SaturationThresholds;
}

export interface DirectorOptions {
  endpoints: EndpointSource;
  state: () => RoutingState;
  log: Logger;
  metrics?: RouterMetrics;
  now?: () => number;
  /**
   * Honour GIE's conformance hook: the request header test-epp-endpoint-selection (`ip` or `ip:port`,
   * comma-separated) restricts the candidates. Off unless asked for, since any client could steer
   * its own requests with it.
   */
  testHooks?: boolean;
}

export interface RouteInput {
  requestId: string;
  parsed: ParsedBody;
  /** Request headers, names lower-cased. */
  headers: Readonly<Record<string, string>>;
  bodyBytes: number;
  /**
   * The entries of envoy.lb.subset_hint / x-gateway-destination-endpoint-subset; undefined when the
   * gateway sent no such key (all endpoints are candidates).
   */
  subset?: readonly unknown[];
}

export interface RouteDecision {
  request: InferenceRequest;
  result: SchedulingResult;
  /** The request counted in flight on its first target since the pick: the caller releases it. */
  inFlight: InFlight;
}

/** A request counted in flight on an endpoint until released (once, whatever happens to the stream). */
export interface InFlight {
  readonly address: string;
  /** Moves the count to another endpoint (the gateway served the request elsewhere). */
  moveTo(address: string): void;
  release(): void;
}

const TEST_SELECTION_HEADER = 'test-epp-endpoint-selection';

/** The host of `ip:port`, `[v6]:port`, a bare IPv4 or a bare IPv6 address. */
export function hostOf(entry: string): string {
  const text = entry.trim();
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    return close === -1 ? text.slice(1) : text.slice(1, close);
  }
  const first = text.indexOf(':');
  // More than one colon without brackets: a bare IPv6 address.
  if (first === -1 || first !== text.lastIndexOf(':')) return text;
  return text.slice(0, first);
}

function hasPort(entry: string): boolean {
  const text = entry.trim();
  if (text.startsWith('[')) return text.includes(']:');
  const first = text.indexOf(':');
  return first !== -1 && first === text.lastIndexOf(':');
}

/** Candidates whose IP is in the subset hint: GIE matches by IP, as the hint's ports are the gateway's, not the pool's. */
function narrowBySubset(candidates: EndpointState[], subset: readonly unknown[]): EndpointState[] {
  const ips = new Set<string>();
  for (const entry of subset) if (typeof entry === 'string' && entry.trim() !== '') ips.add(hostOf(entry));
  return candidates.filter((c) => ips.has(c.endpoint.ip));
}

/** Candidates the conformance header names: by address when an entry has a port, else by IP. */
function narrowByTestSelection(candidates: EndpointState[], header: string): EndpointState[] {
  const entries = header
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  const matches = (e: Endpoint, entry: string) =>
    hasPort(entry) ? hostOf(entry) === e.ip && Number(entry.slice(entry.lastIndexOf(':') + 1)) === e.port : hostOf(entry) === e.ip;
  return candidates.filter((c) => entries.some((entry) => matches(c.endpoint, entry)));
}

/** GIE's saturation rule: no fresh metrics, a long queue or a full KV cache. */
function isSaturated(state: EndpointState, t: SaturationThresholds, now: number): boolean {
  const m = state.metrics;
  if (!m || now - m.scrapedAtMs > t.metricsStalenessMs) return true;
  return m.waitingRequests > t.queueDepthThreshold || m.kvCacheUsage > t.kvCacheUtilThreshold;
}

export class Director {
  private readonly options: DirectorOptions;
  private readonly now: () => number;

  constructor(options: DirectorOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Resolves the request's model and picks its endpoints; throws RouteError when it must be refused. */
  async route(input: RouteInput): Promise<RouteDecision> {
    const started = performance.now();
    const { scheduler, models, saturation } = this.options.state();
    const { parsed } = input;

    const resolved = this.resolveModel(models, parsed);
    const request: InferenceRequest = {
      requestId: input.requestId,
      path: parsed.path,
      kind: parsed.kind,
      requestedModel: parsed.model,
      targetModel: resolved.targetModel,
      priority: resolved.priority,
      ...(resolved.loraName !== undefined ? { loraName: resolved.loraName } : {}),
      ...(parsed.prompt !== undefined ? { prompt: parsed.prompt } : {}),
      ...(parsed.tokens !== undefined ? { tokens: parsed.tokens } : {}),
      ...(parsed.messages !== undefined ? { messages: parsed.messages } : {}),
      ...(parsed.tools !== undefined ? { tools: parsed.tools } : {}),
      ...(parsed.chatTemplateKwargs !== undefined ? { chatTemplateKwargs: parsed.chatTemplateKwargs } : {}),
      ...(parsed.addGenerationPrompt !== undefined ? { addGenerationPrompt: parsed.addGenerationPrompt } : {}),
      ...(parsed.cacheSalt !== undefined ? { cacheSalt: parsed.cacheSalt } : {}),
      stream: parsed.stream,
      headers: input.headers,
      bodyBytes: input.bodyBytes,
    };

    const candidates = this.candidates(input);
    this.admit(request, candidates, saturation);

    let reservation: InFlight | undefined;
    const pickTime: PickTime = {
      refresh: () => this.current(candidates),
      reserve: (address) => {
        reservation?.release();
        reservation = this.begin(address);
      },
    };
    let result: SchedulingResult;
    try {
      result = await scheduler.schedule(request, candidates, pickTime);
    } catch (err) {
      reservation?.release();
      if (err instanceof SchedulingError) throw new RouteError(err.status, err.reason, err.message);
      this.options.log.error('scheduler failed', { requestId: request.requestId, err });
      throw new RouteError(500, 'internal-error', 'the router failed to schedule the request');
    }
    const first = result.targets[0];
    if (!first) {
      reservation?.release();
      throw new RouteError(503, 'rejected-no-endpoints', 'the scheduler picked no endpoint');
    }
    // A scheduler that does not use pickTime has its first target counted as it answers.
    if (!reservation) reservation = this.begin(first.address);
    else if (reservation.address !== first.address) reservation.moveTo(first.address);

    const m = this.options.metrics;
    if (m) {
      m.schedulingSeconds.observe((performance.now() - started) / 1000);
      m.requests.inc({ model: request.requestedModel, target_model: request.targetModel });
      m.picks.inc({ endpoint: first.address });
      m.requestBytes.observe({ model: request.requestedModel }, input.bodyBytes);
      const p = result.predictedPrefix;
      if (p && p.totalBlocks > 0) m.predictedPrefixHitRatio.observe(Math.min(1, p.matchedBlocks / p.totalBlocks));
    }
    return { request, result, inFlight: reservation };
  }

  /** Counts a request in flight on `address` until the returned handle is released. */
  begin(address: string): InFlight {
    const endpoints = this.options.endpoints;
    let current = address;
    let released = false;
    endpoints.requestStarted(current);
    return {
      get address() {
        return current;
      },
      moveTo(next: string) {
        if (released || next === current) return;
        endpoints.requestFinished(current);
        current = next;
        endpoints.requestStarted(current);
      },
      release() {
        if (released) return;
        released = true;
        endpoints.requestFinished(current);
      },
    };
  }

  private resolveModel(models: ModelTable, parsed: ParsedBody) {
    if (parsed.kind === 'other') {
      // Other paths (model listings, uploads, ...) go to any endpoint: map a known model, never refuse one.
      return (parsed.model !== '' ? models.resolve(parsed.model) : null) ?? { targetModel: parsed.model, priority: 0 };
    }
    const resolved = models.resolve(parsed.model);
    if (!resolved) throw new RouteError(404, 'model-not-found', `model "${parsed.model}" is not served by this pool`);
    return resolved;
  }

  /** `candidates` as they are now: the same endpoints (those that left are absent), fresh counts and load. */
  private current(candidates: readonly EndpointState[]): EndpointState[] {
    const addresses = new Set(candidates.map((c) => c.endpoint.address));
    return this.options.endpoints.snapshot().filter((s) => addresses.has(s.endpoint.address));
  }

  private candidates(input: RouteInput): EndpointState[] {
    let candidates = this.options.endpoints.snapshot();
    if (input.subset !== undefined) {
      if (input.subset.length === 0) throw new RouteError(503, 'rejected-no-endpoints', 'the gateway sent an empty endpoint subset');
      candidates = narrowBySubset(candidates, input.subset);
    }
    if (candidates.length === 0) throw new RouteError(503, 'rejected-no-endpoints', 'no endpoints available for the request');
    const selection = this.options.testHooks ? input.headers[TEST_SELECTION_HEADER] : undefined;
    if (selection !== undefined && selection.trim() !== '') {
      candidates = narrowByTestSelection(candidates, selection);
      // GIE's header filter leaves the scheduler nothing to pick, which it answers with 429.
      if (candidates.length === 0)
        throw new RouteError(429, 'rejected-no-matching-endpoint', `no endpoint matches ${TEST_SELECTION_HEADER}: ${selection}`);
    }
    return candidates;
  }

  /**
   * Sheds a sheddable request (priority < 0) when every candidate is saturated. When no candidate has
   * metrics at all (no scrape has succeeded, e.g. the servers expose none), saturation is unknown
   * rather than total, and the request is admitted.
   */
  private admit(request: InferenceRequest, candidates: EndpointState[], thresholds: SaturationThresholds): void {
    if (request.priority >= 0) return;
    if (candidates.every((c) => c.metrics === null)) return;
    const now = this.now();
    if (candidates.every((c) => isSaturated(c, thresholds, now))) {
      throw new RouteError(429, 'rejected-saturated', 'every endpoint is saturated and the request is sheddable');
    }
  }
}
