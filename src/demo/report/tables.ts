// The report as plain-text tables: one per strategy (every number it has) and one comparison table
// with a row per strategy, for the terminal and the README.

import { fmt, formatTable } from '../../common/table.ts';
import type { RoutingReport, StrategyResult } from './schema.ts';

/** A fraction as a percentage with one decimal: 0.8744 -> "87.4%". */
export function pct(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : `${(x * 100).toFixed(1)}%`;
}

function ms(x: number | null): string {
  return x === null ? '-' : `${fmt(x)} ms`;
}

/** Every number of one strategy, with the bound it is compared to. */
export function strategyTable(s: StrategyResult, oracleTokenHitRate: number): string {
  const pods = Object.entries(s.podShare)
    .map(([pod, share]) => `${pod} ${pct(share)}`)
    .join(', ');
  const rows: string[][] = [
    ['requests', `${s.requests}${s.errors ? ` (${s.errors} failed)` : ''}`],
    [
      'token hit rate',
      `${pct(s.tokenHitRate)} (bound ${pct(oracleTokenHitRate)}, ratio ${s.ratioToBound === null ? '-' : fmt(s.ratioToBound, 3)})`,
    ],
    ['request hit rate', pct(s.requestHitRate)],
    ['TTFT p50 / p90', `${ms(s.ttftP50Ms)} / ${ms(s.ttftP90Ms)}`],
    [`TTFT cold p50 / p90 (${s.coldRequests})`, `${ms(s.ttftColdP50Ms)} / ${ms(s.ttftColdP90Ms)}`],
    [`TTFT warm p50 / p90 (${s.warmRequests})`, `${ms(s.ttftWarmP50Ms)} / ${ms(s.ttftWarmP90Ms)}`],
    ['throughput', `${fmt(s.throughputTokPerS)} output tok/s, ${fmt(s.requestsPerS)} req/s`],
    ['lost to routing / eviction', `${pct(s.routingLoss)} / ${pct(s.evictionLoss)}`],
    ['traffic per pod', pods],
    ['max pod share', `${pct(s.maxPodShare)} (fair ${pct(1 / Math.max(1, Object.keys(s.podShare).length))})`],
  ];
  if (s.loadBoundDiversions !== undefined && s.loadBoundDiversions > 0)
    rows.push(['load-bound diversions', `${s.loadBoundDiversions} requests moved off their best prefix pod`]);
  return `${s.name}\n${formatTable(['metric', 'value'], rows)}`;
}

/** One row per strategy, the columns the issue's targets are judged on. */
export function comparisonTable(report: RoutingReport): string {
  const header = [
    'strategy',
    'hit rate',
    'of bound',
    'req hit',
    'TTFT p50',
    'TTFT p90',
    'cold p50',
    'warm p50',
    'tok/s',
    'max pod',
    'routing loss',
    'eviction loss',
  ];
  const rows = report.strategies.map((s) => [
    s.name,
    pct(s.tokenHitRate),
    pct(s.ratioToBound),
    pct(s.requestHitRate),
    ms(s.ttftP50Ms),
    ms(s.ttftP90Ms),
    ms(s.ttftColdP50Ms),
    ms(s.ttftWarmP50Ms),
    fmt(s.throughputTokPerS),
    pct(s.maxPodShare),
    pct(s.routingLoss),
    pct(s.evictionLoss),
  ]);
  const title = `${report.workload}: ${report.requests} requests, ${report.pods} pods, bound (one unlimited cache) ${pct(report.oracleTokenHitRate)}`;
  return `${title}\n${formatTable(header, rows)}`;
}
