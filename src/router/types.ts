// The contracts between the router's parts: endpoints and their live state (endpoints/ produces them),
// the parsed inference request (request/ produces it), and the scheduler (scheduling/) that the
// director runs for every request the ext_proc stream (extproc/) hands it.

import type { ChatMessage, ChatTool } from '../common/chat.ts';

/** One model server the gateway can route to: a pod IP and one of the pool's target ports. */
export interface Endpoint {
  /** `ip:port` (`[ip]:port` for IPv6): the value of x-gateway-destination-endpoint. */
  address: string;
  ip: string;
  port: number;
  /** Pod name (or the address when there is no pod, in local mode); used in logs and metric labels. */
  name: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
}

/** What the last scrape of an endpoint's vLLM /metrics said. */
export interface EndpointMetrics {
  waitingRequests: number;
  runningRequests: number;
  /** vllm:kv_cache_usage_perc, 0..1. */
  kvCacheUsage: number;
  /** From vllm:lora_requests_info; empty when the server runs no adapters. */
  runningLoras: readonly string[];
  waitingLoras: readonly string[];
  maxLoras: number;
  /** Wall-clock time of the scrape, ms since the epoch. */
  scrapedAtMs: number;
  /**
   * Requests this router had in flight to the endpoint when the scrape started: its own share of
   * running + waiting, which EndpointState.load replaces with the live count (0 when not tracked).
   */
  inFlightAtScrape: number;
}

/** An endpoint as the scheduler sees it for one request. */
export interface EndpointState {
  endpoint: Endpoint;
  /** The last scrape, or null when there is none younger than the staleness threshold (scorers that need it abstain). */
  metrics: EndpointMetrics | null;
  /** Requests this router sent to the endpoint that have not finished (fresher than any scrape). */
  inFlight: number;
  /**
   * Requests the endpoint is running or queueing as best known now: the other routers' share of the
   * last fresh scrape, max(0, running + waiting - metrics.inFlightAtScrape), plus this router's live
   * inFlight; inFlight alone without fresh metrics (endpoints/load.ts). A request of ours that just
   * finished leaves it at once, not one scrape later. What the load bound compares.
   */
  load: number;
}

/** The live set of endpoints: static (--endpoints) or watched from the pool's pods. */
export interface EndpointSource {
  /** Current endpoints with their state; a removed endpoint is absent at once. */
  snapshot(): EndpointState[];
  /** True once the first list of endpoints is known (readiness waits for it). */
  synced(): boolean;
  /** Called when a request is sent to `address` and when it ends, so inFlight counts it. */
  requestStarted(address: string): void;
  requestFinished(address: string): void;
  close(): Promise<void>;
}

export type RequestKind = 'completions' | 'chat' | 'other';

/** An inference request, parsed from the gateway's headers and body at the edge. */
export interface InferenceRequest {
  /** x-request-id, or a generated UUID. */
  requestId: string;
  path: string;
  kind: RequestKind;
  /** The model the client asked for (body `model`). */
  requestedModel: string;
  /** The model the server must run: the InferenceModel's chosen target, or requestedModel. */
  targetModel: string;
  /** GIE priority: higher first, below 0 sheddable (InferenceModel criticality Sheddable is -1). */
  priority: number;
  prompt?: string;
  tokens?: number[];
  messages?: ChatMessage[];
  tools?: ChatTool[];
  chatTemplateKwargs?: Record<string, unknown>;
  addGenerationPrompt?: boolean;
  cacheSalt?: string;
  /** The LoRA adapter the request runs, when targetModel is an adapter rather than the base model. */
  loraName?: string;
  stream: boolean;
  /** Request headers, names lower-cased. */
  headers: Readonly<Record<string, string>>;
  /** Size of the request body in bytes. */
  bodyBytes: number;
}

/** A scheduling decision: endpoints in order of preference (the gateway tries them in turn). */
export interface SchedulingResult {
  targets: Endpoint[];
  /** The profile that decided. */
  profile: string;
  /** Weighted total per endpoint address, for logs and the optional scores header. */
  scores: Record<string, number>;
  /** Prefix blocks the precise scorer predicted cached on the first target, when it ran. */
  predictedPrefix?: { matchedBlocks: number; totalBlocks: number };
  /** Headers the router adds to the response (e.g. x-session-token for session affinity). */
  responseHeaders?: Record<string, string>;
}

/** Why no endpoint could be picked: mapped to an ImmediateResponse by the ext_proc stream. */
export class SchedulingError extends Error {
  readonly status: 429 | 503;
  /** Value of x-llm-d-request-dropped-reason, e.g. `rejected-saturated`, `rejected-no-endpoints`. */
  readonly reason: string;
  constructor(status: 429 | 503, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/**
 * The moment of the pick, which the director lends the scheduler: the candidates' state re-read when
 * the pick is made, and the claim on the endpoint picked. The scheduler reads, decides and reserves
 * in one synchronous step (no await in between), so requests scheduled at the same time each see the
 * requests picked before them, however long their prefix lookups took.
 */
export interface PickTime {
  /** The candidates' state now: the same endpoints (any that left since are absent), live in-flight counts and load. */
  refresh(): EndpointState[];
  /** Counts the request in flight on `address` (its first target) until the director's handle is released. */
  reserve(address: string): void;
}

/** Picks endpoints for a request among candidates (already narrowed by the subset hint). */
export interface Scheduler {
  /**
   * Rejects with SchedulingError when no candidate can take the request. `candidates` is what slow
   * lookups (the indexer) run over; with `pickTime`, load-dependent decisions use its refresh and the
   * first target is reserved through it before the promise settles.
   */
  schedule(request: InferenceRequest, candidates: EndpointState[], pickTime?: PickTime): Promise<SchedulingResult>;
}
