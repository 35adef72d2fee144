// The chaos report's shapes (bench/results/chaos.json) and its table. The operator and load sections
// come from their own modules (bench/chaos/operator.ts, bench/chaos/load.ts) and are kept as they return them.

/** One target of issue 10, checked against a measured figure. */
export interface TargetCheck {
  target: string;
  /** The measured value the target is about (null: not measurable in this run). */
  value: number | null;
  bound: string;
  met: boolean;
}

export interface DataPlaneScenarioResult {
  name: string;
  description: string;
  /** Requests sent from the fault on to the end of the scenario, and how many failed (any reason). */
  requests: number;
  failedRequests: number;
  /** A sample of the failures' reasons, most frequent first. */
  failureReasons: Array<{ reason: string; count: number }>;
  /** Router kills: when Envoy's health check marked the killed router unhealthy (ms after the kill). */
  routerEjectedAfterMs: number | null;
  /** Router kills: failed requests sent while the router was down, more than 1 s after Envoy marked it unhealthy. */
  failedAfterGatewayNoticed: number | null;
  /** When the failed requests were sent, first and last, in ms after the fault. */
  failuresSentBetweenMs: [number, number] | null;
  /** When the fault ended (the part back up, the stall or drops over), in ms after it began. */
  recoveredAfterMs: number | null;
  /** Router picks of the dead or hung pod after the fault, and more than 1 s after it. */
  deadPodPicks: number | null;
  deadPodPicksAfter1s: number | null;
  /** Requests Envoy could not connect to their pod (the router's pick or, failing open, the fallback pool's), and those sent more than 1 s after the fault. */
  podConnectFailures: number;
  podConnectFailuresAfter1s: number;
  /** From the fault to the last router pick of the dead or hung pod (100 ms sampling); 0: none after. */
  stopPickingMs: number | null;
  /** From the end of the fault (pod, indexer back; stall or drops over) until the index matched the pods' caches. */
  indexExactAfterMs: number | null;
  /** Of indexExactAfterMs, the time the pods took to finish the requests in flight (the index is compared on idle pods). */
  indexDrainMs: number | null;
  /** Index entries still wrong at the last check (sum over pods of |indexed - held| blocks). */
  indexEntriesWrong: number | null;
  /** Per pod at the last check: blocks indexed minus blocks held (negative: the index misses some). */
  indexCountDiff: Record<string, number> | null;
  /** Probe prompts whose indexed prefix on some pod differed from the pod's resident prefix, at the last check. */
  indexProbeMismatches: number | null;
  hitRateBefore: number | null;
  /** Lowest 2 s window after the fault. */
  hitRateLowest: number | null;
  hitRateAfter: number | null;
  /** From the fault until a 2 s window's hit rate is back to 90% of before (0: it never dropped below). */
  hitRateRecoveryMs: number | null;
  /** Indexer ingestion counters over the scenario (gaps seen, replays, sequence resets). */
  indexer: { gaps: number; replays: number; resets: number } | null;
  targets: TargetCheck[];
  notes: string[];
}

export interface DataPlaneReport {
  settings: {
    pods: number;
    routers: number;
    gateway: string;
    ratePerS: number;
    groups: number;
    promptTokens: number;
    timeScale: number;
    faultMs: number;
    quick: boolean;
  };
  scenarios: DataPlaneScenarioResult[];
}

export interface ChaosReport {
  environment: Record<string, unknown>;
  dataPlane?: DataPlaneReport;
  operator?: unknown;
  load?: unknown;
}

const pct = (v: number | null): string => (v === null ? '-' : `${(v * 100).toFixed(0)}%`);
const ms = (v: number | null): string => (v === null ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(0)} s` : `${Math.round(v)} ms`);
const num = (v: number | null): string => (v === null ? '-' : String(v));

/** The data-plane table: one row per scenario. */
export function dataPlaneTable(report: DataPlaneReport): string {
  const header = [
    'scenario',
    'requests',
    'failed',
    'dead-pod picks >1s',
    'pod connect fails >1s',
    'stop picking',
    'index exact after (drain)',
    'entries wrong',
    'hit rate before/low/after',
    'hit-rate recovery',
    'targets',
  ];
  const rows = report.scenarios.map((s) => [
    s.name,
    String(s.requests),
    String(s.failedRequests),
    num(s.deadPodPicksAfter1s),
    String(s.podConnectFailuresAfter1s),
    ms(s.stopPickingMs),
    s.indexExactAfterMs === null ? '-' : `${ms(s.indexExactAfterMs)} (${ms(s.indexDrainMs)})`,
    num(s.indexEntriesWrong),
    `${pct(s.hitRateBefore)}/${pct(s.hitRateLowest)}/${pct(s.hitRateAfter)}`,
    ms(s.hitRateRecoveryMs),
    s.targets.length === 0
      ? '-'
      : s.targets.every((t) => t.met)
        ? 'met'
        : `MISSED: ${s.targets
            .filter((t) => !t.met)
            .map((t) => t.target)
            .join('; ')}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
