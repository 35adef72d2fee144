// The built-in gateway's Prometheus metrics (prefix kvroute_gateway_): requests by status, how long
// the router took to pick, how long the endpoint took to answer, and every time the router could not
// be used (what failed, and whether the request failed open or closed).

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Sub-millisecond to seconds: a pick is expected well under 1 ms, a cold endpoint can take seconds. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type FailureStage = 'connect' | 'stream' | 'timeout' | 'protocol';

export interface GatewayMetrics {
  /** Responses to clients, by HTTP status ("aborted" when the client or the endpoint went away mid-response). */
  requests: Counter<'code'>;
  inFlight: Gauge;
  /** From opening the ext_proc stream to the router's answer to the request headers (the pick). */
  pickSeconds: Histogram;
  /** From sending the request to the endpoint to its response headers. */
  upstreamSeconds: Histogram;
  /** The router answered with an ImmediateResponse (by HTTP status). */
  immediateResponses: Counter<'code'>;
  /** The ext_proc stream failed before a pick, by stage, and what the failure mode made of it. */
  extProcFailures: Counter<'stage' | 'outcome'>;
  /** Requests sent to the fallback pool: "fail_open" (router failed) or "no_destination" (router named none). */
  fallbacks: Counter<'reason'>;
  /** The destination header and envoy.lb metadata named different endpoints (a router bug). */
  destinationMismatches: Counter;
}

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'kvroute_gateway_requests_total',
      help: 'Requests answered, by HTTP status',
      labelNames: ['code'],
      registers,
    }),
    inFlight: new Gauge({ name: 'kvroute_gateway_requests_in_flight', help: 'Requests being proxied now', registers }),
    pickSeconds: new Histogram({
      name: 'kvroute_gateway_extproc_pick_seconds',
      help: 'Time from opening the ext_proc stream to the router answering the request headers',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    upstreamSeconds: new Histogram({
      name: 'kvroute_gateway_upstream_seconds',
      help: 'Time from sending a request to an endpoint to its response headers',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    immediateResponses: new Counter({
      name: 'kvroute_gateway_immediate_responses_total',
      help: 'Requests the router answered itself (ImmediateResponse), by HTTP status',
      labelNames: ['code'],
      registers,
    }),
    extProcFailures: new Counter({
      name: 'kvroute_gateway_extproc_failures_total',
      help: 'ext_proc streams that failed before the router picked, by stage and by what the failure mode did',
      labelNames: ['stage', 'outcome'],
      registers,
    }),
    fallbacks: new Counter({
      name: 'kvroute_gateway_fallback_requests_total',
      help: 'Requests sent to the fallback endpoints, by reason',
      labelNames: ['reason'],
      registers,
    }),
    destinationMismatches: new Counter({
      name: 'kvroute_gateway_destination_mismatches_total',
      help: 'Picks whose x-gateway-destination-endpoint header and envoy.lb metadata differed',
      registers,
    }),
  };
}
