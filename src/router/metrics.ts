// The router's Prometheus metrics (prefix kvroute_router_): requests and errors, scheduling latency,
// picks, predicted prefix hits, sizes, token usage, in-flight requests and ready endpoints. Per-plugin
// latency is registered by the scheduling package on the same registry.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EndpointState } from './types.ts';

const SIZE_BUCKETS = [64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864];
const TOKEN_BUCKETS = [1, 8, 32, 128, 512, 1024, 2048, 4096, 8192, 16_384, 32_768, 65_536, 131_072];

export interface RouterMetrics {
  /** Requests that reached scheduling (parsed, model known). */
  requests: Counter<'model' | 'target_model'>;
  /** Requests answered with an ImmediateResponse, by HTTP status and dropped reason. */
  errors: Counter<'code' | 'reason'>;
  schedulingSeconds: Histogram;
  picks: Counter<'endpoint'>;
  predictedPrefixHitRatio: Histogram;
  requestBytes: Histogram<'model'>;
  responseBytes: Histogram<'model'>;
  promptTokens: Histogram<'model'>;
  completionTokens: Histogram<'model'>;
  cachedTokens: Histogram<'model'>;
  configReloads: Counter<'result'>;
}

export interface RouterMetricsOptions {
  /** Read at scrape time for the in-flight and ready-endpoint gauges. */
  endpoints?: () => EndpointState[];
}

export function createRouterMetrics(registry: Registry, options: RouterMetricsOptions = {}): RouterMetrics {
  const registers = [registry];
  const endpoints = options.endpoints;

  new Gauge({
    name: 'kvroute_router_requests_in_flight',
    help: 'Requests this router sent to an endpoint that have not finished, per endpoint',
    labelNames: ['endpoint'],
    registers,
    collect() {
      this.reset();
      for (const s of endpoints?.() ?? []) this.set({ endpoint: s.endpoint.address }, s.inFlight);
    },
  });
  new Gauge({
    name: 'kvroute_router_ready_endpoints',
    help: 'Endpoints the router can pick from',
    registers,
    collect() {
      this.set(endpoints?.().length ?? 0);
    },
  });

  return {
    requests: new Counter({
      name: 'kvroute_router_requests_total',
      help: 'Requests scheduled, by the model asked for and the model run',
      labelNames: ['model', 'target_model'],
      registers,
    }),
    errors: new Counter({
      name: 'kvroute_router_request_errors_total',
      help: 'Requests the router answered itself, by HTTP status code and x-llm-d-request-dropped-reason',
      labelNames: ['code', 'reason'],
      registers,
    }),
    schedulingSeconds: new Histogram({
      name: 'kvroute_router_scheduling_duration_seconds',
      help: 'Time from a complete request body to the pick (candidates, admission, scheduler)',
      buckets: [0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers,
    }),
    picks: new Counter({
      name: 'kvroute_router_endpoint_picks_total',
      help: 'Requests sent to each endpoint (the first target of each pick)',
      labelNames: ['endpoint'],
      registers,
    }),
    predictedPrefixHitRatio: new Histogram({
      name: 'kvroute_router_predicted_prefix_hit_ratio',
      help: "Share of the prompt's blocks the precise prefix scorer predicted cached on the picked endpoint",
      buckets: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1],
      registers,
    }),
    requestBytes: new Histogram({
      name: 'kvroute_router_request_size_bytes',
      help: 'Request body size',
      labelNames: ['model'],
      buckets: SIZE_BUCKETS,
      registers,
    }),
    responseBytes: new Histogram({
      name: 'kvroute_router_response_size_bytes',
      help: 'Response body size',
      labelNames: ['model'],
      buckets: SIZE_BUCKETS,
      registers,
    }),
    promptTokens: new Histogram({
      name: 'kvroute_router_prompt_tokens',
      help: 'usage.prompt_tokens of responses',
      labelNames: ['model'],
      buckets: TOKEN_BUCKETS,
      registers,
    }),
    completionTokens: new Histogram({
      name: 'kvroute_router_completion_tokens',
      help: 'usage.completion_tokens of responses',
      labelNames: ['model'],
      buckets: TOKEN_BUCKETS,
      registers,
    }),
    cachedTokens: new Histogram({
      name: 'kvroute_router_cached_tokens',
      help: 'usage.prompt_tokens_details.cached_tokens of responses (when the server reports it)',
      labelNames: ['model'],
      buckets: TOKEN_BUCKETS,
      registers,
    }),
    configReloads: new Counter({
      name: 'kvroute_router_config_reloads_total',
      help: 'Config file reloads applied (success) or refused because the scheduler could not be built (error)',
      labelNames: ['result'],
      registers,
    }),
  };
}
