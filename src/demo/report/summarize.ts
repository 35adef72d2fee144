// One strategy's results from what the harness recorded per request and the pods' prefix-cache
// counters: hit rates, TTFT (all, cold, warm), throughput, traffic per pod, and the funnel's losses.
// Also assembles the whole report and checks it against the schema.

import { summarizeFunnel } from '../funnel.ts';
import { percentile } from './stats.ts';
import { parseRoutingReport, type RoutingReport, type RunSettings, type StrategyResult } from './schema.ts';

/** What the harness records for one request it sent. Times are wall-clock milliseconds. */
export interface RequestRecord {
  /** The pod that served it (from the response or the router's header); null if none did. */
  pod: string | null;
  promptTokens: number;
  /** usage.prompt_tokens_details.cached_tokens of the response. */
  cachedTokens: number;
  ttftMs: number;
  /** Served (almost) entirely by prefill; defaults to cachedTokens === 0. Not cold counts as a request hit. */
  cold?: boolean;
  outputTokens: number;
  startMs: number;
  endMs: number;
  /** The bound's hit for this request (oracle.hitTokens[index]). */
  oracleHitTokens: number;
  /** The most tokens any pod held when it was sent (funnel.bestResidentTokens of the indexer's scores). */
  bestResidentTokens: number;
  /** Set when the request failed; it then counts in `errors` and the traffic share only. */
  error?: string;
}

/** Change of one pod's vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total over the run. */
export interface PodCounterDelta {
  prefixCacheHits: number;
  prefixCacheQueries: number;
}

export interface SummarizeOptions {
  /** The bound, for ratioToBound. */
  oracleTokenHitRate?: number;
  /** Simulated ms per wall ms of the pods: TTFTs and durations are reported in simulated time. */
  timeScale?: number;
}

/**
 * Summarizes one strategy's run. Token hit rate comes from the pods' counters (the number vLLM
 * itself reports), not from the responses; pods with no traffic still appear in podShare.
 */
export function summarizeStrategy(
  name: string,
  records: readonly RequestRecord[],
  podCounters: Readonly<Record<string, PodCounterDelta>>,
  options: SummarizeOptions = {},
): StrategyResult {
  const scale = options.timeScale ?? 1;
  if (!(scale > 0)) throw new Error(`timeScale: expected a positive number, got ${scale}`);
  const ok = records.filter((r) => r.error === undefined);
  if (ok.length === 0) throw new Error(`strategy ${name}: no successful requests to summarize (${records.length} failed)`);

  let hits = 0;
  let queries = 0;
  for (const [pod, c] of Object.entries(podCounters)) {
    if (!(c.prefixCacheHits >= 0 && c.prefixCacheQueries >= c.prefixCacheHits)) {
      throw new Error(
        `strategy ${name}: pod ${pod}: expected 0 <= prefix-cache hits <= queries, got ${c.prefixCacheHits} / ${c.prefixCacheQueries}`,
      );
    }
    hits += c.prefixCacheHits;
    queries += c.prefixCacheQueries;
  }
  if (queries === 0)
    throw new Error(`strategy ${name}: the pods' counters show no prefix-cache queries; were they scraped before and after the run?`);

  const perPod = new Map<string, number>(Object.keys(podCounters).map((p) => [p, 0]));
  let routed = 0;
  for (const r of records) {
    if (r.pod === null) continue;
    perPod.set(r.pod, (perPod.get(r.pod) ?? 0) + 1);
    routed++;
  }
  const podShare: Record<string, number> = {};
  for (const pod of [...perPod.keys()].sort()) podShare[pod] = routed === 0 ? 0 : perPod.get(pod)! / routed;

  const isCold = (r: RequestRecord): boolean => r.cold ?? r.cachedTokens === 0;
  const ttft = (rs: readonly RequestRecord[]): number[] => rs.map((r) => r.ttftMs * scale);
  const cold = ok.filter(isCold);
  const warm = ok.filter((r) => !isCold(r));
  const all = ttft(ok);

  const funnel = summarizeFunnel(
    ok.map((r) => ({
      promptTokens: r.promptTokens,
      oracleHitTokens: r.oracleHitTokens,
      bestResidentTokens: r.bestResidentTokens,
      chosenCachedTokens: r.cachedTokens,
    })),
  );
  const promptTokens = ok.reduce((a, r) => a + r.promptTokens, 0);
  const cachedTokens = ok.reduce((a, r) => a + r.cachedTokens, 0);
  const outputTokens = ok.reduce((a, r) => a + r.outputTokens, 0);
  const spanMs =
    (records.reduce((m, r) => Math.max(m, r.endMs), -Infinity) - records.reduce((m, r) => Math.min(m, r.startMs), Infinity)) * scale;
  const tokenHitRate = hits / queries;
  const bound = options.oracleTokenHitRate;

  return {
    name,
    tokenHitRate,
    requestHitRate: warm.length / ok.length,
    ttftP50Ms: percentile(all, 50)!,
    ttftP90Ms: percentile(all, 90)!,
    throughputTokPerS: spanMs > 0 ? (outputTokens * 1000) / spanMs : 0,
    podShare,
    maxPodShare: Math.max(0, ...Object.values(podShare)),
    evictionLoss: funnel.evictionLoss,
    routingLoss: funnel.routingLoss,
    ratioToBound: bound === undefined || bound <= 0 ? null : tokenHitRate / bound,
    requests: records.length,
    errors: records.length - ok.length,
    coldRequests: cold.length,
    warmRequests: warm.length,
    ttftColdP50Ms: percentile(ttft(cold), 50),
    ttftColdP90Ms: percentile(ttft(cold), 90),
    ttftWarmP50Ms: percentile(ttft(warm), 50),
    ttftWarmP90Ms: percentile(ttft(warm), 90),
    usageTokenHitRate: promptTokens === 0 ? 0 : Math.min(1, cachedTokens / promptTokens),
    funnelHit: funnel.hit,
    beyondBound: funnel.promptTokens === 0 ? 0 : funnel.beyondBoundTokens / funnel.promptTokens,
    requestsPerS: spanMs > 0 ? (records.length * 1000) / spanMs : 0,
    durationS: spanMs / 1000,
  };
}

export interface ReportInput {
  pods: number;
  /** The workload's name (Workload.name). */
  workload: string;
  /** Requests in the workload (each strategy sends all of them). */
  requests: number;
  oracleTokenHitRate: number;
  strategies: StrategyResult[];
  /** How the run was made (gateway, cache size, time scale, arrivals...). */
  run?: RunSettings;
}

/** The report as `--json` prints it, checked against the schema so a bad number fails here, not in a reader. */
export function buildReport(input: ReportInput): RoutingReport {
  return parseRoutingReport({
    pods: input.pods,
    requests: input.requests,
    workload: input.workload,
    oracleTokenHitRate: input.oracleTokenHitRate,
    strategies: input.strategies,
    ...(input.run !== undefined ? { run: input.run } : {}),
  });
}
