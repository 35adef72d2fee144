// The results of a routing benchmark as JSON (`--json` and results.json): the contract of issue 8
// (`pods`, `requests`, `workload`, `oracleTokenHitRate`, one entry per strategy with its hit rates,
// TTFT, throughput, traffic shares and losses), plus extra fields that explain the numbers.

import { z } from 'zod';

const rate = z.number().min(0).max(1);
const nonNegative = z.number().min(0);
const count = z.number().int().min(0);

/** The fields issue 8 promises for every strategy. */
const contractStrategy = {
  name: z.string().min(1),
  /** The pods' own prefix_cache_hits / prefix_cache_queries over the run. */
  tokenHitRate: rate,
  /** Warm requests (any cached token, unless the harness set its own cold rule) over successful requests. */
  requestHitRate: rate,
  ttftP50Ms: nonNegative,
  ttftP90Ms: nonNegative,
  /** Output tokens per second over the run. */
  throughputTokPerS: nonNegative,
  /** Pod -> fraction of the strategy's requests it received. */
  podShare: z.record(z.string(), rate),
  maxPodShare: rate,
  /** Fraction of prompt tokens computed before but held by no pod. */
  evictionLoss: rate,
  /** Fraction of prompt tokens some pod held beyond what the chosen pod hit. */
  routingLoss: rate,
};

const contractReport = {
  pods: z.number().int().min(1),
  requests: count,
  workload: z.string().min(1),
  /** The token hit rate one unlimited cache reaches on the same request sequence. */
  oracleTokenHitRate: rate,
};

/** Only the contract: what a consumer of `--json` may rely on (extra fields allowed). */
export const RoutingReportContractSchema = z.looseObject({
  ...contractReport,
  strategies: z.array(z.looseObject(contractStrategy)).min(1),
});

const msOrNull = nonNegative.nullable();

const StrategyResultSchema = z.strictObject({
  ...contractStrategy,
  /** tokenHitRate / oracleTokenHitRate; null when the bound is 0. */
  ratioToBound: nonNegative.nullable(),
  requests: count,
  errors: count,
  coldRequests: count,
  warmRequests: count,
  ttftColdP50Ms: msOrNull,
  ttftColdP90Ms: msOrNull,
  ttftWarmP50Ms: msOrNull,
  ttftWarmP90Ms: msOrNull,
  /** Cached tokens over prompt tokens from the responses' usage, to cross-check the counters. */
  usageTokenHitRate: rate,
  /** The funnel's hit (the chosen pods' hits up to the bound), as a fraction of prompt tokens. */
  funnelHit: rate,
  /** Hits the bound does not explain (requests finishing out of send order), as a fraction of prompt tokens. */
  beyondBound: rate,
  requestsPerS: nonNegative,
  durationS: nonNegative,
  /** Requests the router's load bound moved off their best prefix pod (kvroute_router_load_bound_diversions_total). */
  loadBoundDiversions: count.optional(),
});
export type StrategyResult = z.infer<typeof StrategyResultSchema>;

/** How the run was made, beyond the contract: enough to reproduce it. */
const RunSettingsSchema = z.strictObject({
  /** The gateway in front of the router. */
  gateway: z.enum(['envoy', 'builtin']),
  kvBlocksPerPod: z.number().int().min(2),
  blockSize: z.number().int().min(1),
  /** Simulated ms per wall ms of the pods. */
  timeScale: z.number().positive(),
  /** The arrival process, e.g. "closed loop, 4 clients". */
  arrivals: z.string().min(1),
  seed: z.number().int(),
  model: z.string().min(1),
  /** The command line that produced the report, when a benchmark records it (bench/routing.ts). */
  command: z.string().min(1).optional(),
});
export type RunSettings = z.infer<typeof RunSettingsSchema>;

const RoutingReportSchema = z.strictObject({
  ...contractReport,
  strategies: z.array(StrategyResultSchema).min(1),
  run: RunSettingsSchema.optional(),
});
export type RoutingReport = z.infer<typeof RoutingReportSchema>;

/** Validates a report, with an error naming each bad field. */
export function parseRoutingReport(value: unknown): RoutingReport {
  const result = RoutingReportSchema.safeParse(value);
  if (result.success) return result.data;
  throw new Error(
    `invalid routing report: ${result.error.issues.map((i) => `${i.path.join('.') || '(report)'}: ${i.message}`).join('; ')}`,
  );
}
