// One strategy's run on the pool: the router switched to the strategy's config, every cache emptied,
// the workload sent through the gateway on its arrival schedule, and per request the pod that served
// it, its usage, its TTFT, and the best resident prefix on any pod just before it was sent (for the
// funnel); the pods' prefix-cache counters before and after give the token hit rate.
//
// TTFT is the pod's own simulated TTFT (arrival at the engine's API to the first token, in simulated
// ms, from its log) plus the time the request spent outside the pod (gateway, router, transport),
// measured on the wall clock and not scaled: the data path is real, the engine is simulated.

import type { ArrivalProcess } from './workloads/arrivals.ts';
import { runSchedule, scheduleArrivals } from './workloads/arrivals.ts';
import type { Workload } from './workloads/types.ts';
import { indexerScores, sendThroughGateway } from './client.ts';
import { bestResidentTokens } from './funnel.ts';
import type { RoutingPool } from './pool.ts';
import { sumSamples } from './prometheus.ts';
import type { StrategyResult } from './report/schema.ts';
import { summarizeStrategy, type PodCounterDelta, type RequestRecord } from './report/summarize.ts';

export interface StrategyRunOptions {
  /** The strategy's name in the report. */
  name: string;
  /** Its EndpointPickerConfig YAML. */
  routerConfig: string;
  workload: Workload;
  /** Each request's prompt as token ids (what the pods see), in workload order; read once per send. */
  promptTokens: (index: number) => readonly number[];
  /** The bound's hit per request (computeOracle over the same sequence). */
  oracleHitTokens: readonly number[];
  oracleTokenHitRate: number;
  arrivals: ArrivalProcess;
  blockSize: number;
  timeScale: number;
  requestTimeoutMs: number;
  /** Called after each request with the number finished. */
  onProgress?: (done: number) => void;
}

export interface StrategyRun {
  result: StrategyResult;
  /** Every successful request's TTFT (simulated ms), for the CDF chart. */
  ttftMs: number[];
}

/** The router's count of requests its load bound moved off their best prefix pod. */
async function loadBoundDiversions(pool: RoutingPool): Promise<number> {
  const res = await fetch(pool.routerMetricsUrl, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`router /metrics: HTTP ${res.status}`);
  return sumSamples(await res.text(), 'kvroute_router_load_bound_diversions_total') ?? 0;
}

export async function runStrategy(pool: RoutingPool, o: StrategyRunOptions): Promise<StrategyRun> {
  await pool.setRouterConfig(o.routerConfig);
  await pool.resetCaches();
  pool.clearEngineTimings();
  const before = await pool.counters();
  const diversionsBefore = await loadBoundDiversions(pool);

  const requests = o.workload.requests;
  const outcomes = new Array<Awaited<ReturnType<typeof sendThroughGateway>> & { bestResident: number; promptLength: number }>(
    requests.length,
  );
  let done = 0;
  const schedule = scheduleArrivals(requests, o.arrivals);
  await runSchedule(schedule, async (i) => {
    const request = requests[i]!;
    const tokens = o.promptTokens(i);
    // The harness's own read of the index, not the router's: what any pod held before the send.
    const scores = await indexerScores(pool.indexerUrl, request, request.tokens ? tokens : undefined);
    const bestResident = bestResidentTokens(scores, o.blockSize, tokens.length);
    const outcome = await sendThroughGateway(pool.gatewayUrl, request, request.tokens ? tokens : undefined, o.requestTimeoutMs);
    outcomes[i] = { ...outcome, bestResident, promptLength: tokens.length };
    o.onProgress?.(++done);
  });

  const ids = outcomes.filter((r) => r.error === undefined && r.id !== null).map((r) => r.id!);
  await pool.waitForEngineTimings(ids);
  const after = await pool.counters();
  const diversions = (await loadBoundDiversions(pool)) - diversionsBefore;
  const deltas: Record<string, PodCounterDelta> = {};
  for (const pod of pool.pods) {
    const a = after[pod.name]!;
    const b = before[pod.name]!;
    deltas[pod.name] = {
      prefixCacheHits: a.prefixCacheHits - b.prefixCacheHits,
      prefixCacheQueries: a.prefixCacheQueries - b.prefixCacheQueries,
    };
  }

  const scale = o.timeScale;
  const records: RequestRecord[] = outcomes.map((r, i) => {
    const base = {
      pod: r.pod,
      promptTokens: r.error === undefined ? r.promptTokens : r.promptLength,
      cachedTokens: r.cachedTokens,
      outputTokens: r.outputTokens,
      // The run's timeline in simulated ms, so throughput is per simulated second.
      startMs: r.sentMs * scale,
      endMs: r.endMs * scale,
      oracleHitTokens: o.oracleHitTokens[i]!,
      bestResidentTokens: r.bestResident,
    };
    if (r.error !== undefined) return { ...base, ttftMs: 0, error: r.error };
    const engine = pool.engineTiming(r.id!)!;
    const outsidePodMs = Math.max(0, r.endMs - r.sentMs - engine.e2eMs / scale);
    // Cold: most of the prompt computed. A hit on a few shared blocks (a common preamble) is not warm.
    return { ...base, ttftMs: engine.ttftMs + outsidePodMs, cold: r.cachedTokens * 2 < r.promptTokens };
  });
  const result = {
    ...summarizeStrategy(o.name, records, deltas, { oracleTokenHitRate: o.oracleTokenHitRate, timeScale: 1 }),
    loadBoundDiversions: diversions,
  };
  const ttftMs = records.filter((r) => r.error === undefined).map((r) => r.ttftMs);
  return { result, ttftMs };
}
