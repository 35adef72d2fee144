// Issue 8's targets checked against a report: printed after the tables so a run says whether kvroute
// did what the project claims on it. Reported, never enforced (benchmarks do not fail on numbers).

import { fmt, formatTable } from '../../common/table.ts';
import type { RoutingReport, StrategyResult } from './schema.ts';
import { pct } from './tables.ts';

export interface TargetCheck {
  target: string;
  actual: string;
  met: boolean;
}

/** The reference deployment's token hit rate, the shared-prefix target's floor. */
const REFERENCE_HIT_RATE = 0.874;

function find(report: RoutingReport, name: string): StrategyResult | undefined {
  return report.strategies.find((s) => s.name === name);
}

/**
 * The targets that apply to this report: `shared-prefix` (the demo) or `trace` (Mooncake); each is
 * checked only when the strategies it compares ran.
 */
export function checkTargets(report: RoutingReport, kind: 'shared-prefix' | 'trace'): TargetCheck[] {
  const kv = find(report, 'kvroute');
  if (!kv) return [];
  const rr = find(report, 'round-robin');
  const precise = find(report, 'precise-prefix');
  const bound = report.oracleTokenHitRate;
  const ratio = bound > 0 ? kv.tokenHitRate / bound : null;
  const fair = 1 / report.pods;
  const out: TargetCheck[] = [];
  if (kind === 'shared-prefix') {
    out.push({
      target: `kvroute token hit rate >= ${pct(REFERENCE_HIT_RATE)}`,
      actual: pct(kv.tokenHitRate),
      met: kv.tokenHitRate >= REFERENCE_HIT_RATE,
    });
    out.push({ target: 'kvroute >= 95% of the bound', actual: pct(ratio), met: ratio !== null && ratio >= 0.95 });
    if (rr) {
      const speedup = kv.ttftP50Ms > 0 ? rr.ttftP50Ms / kv.ttftP50Ms : null;
      out.push({
        target: 'kvroute TTFT p50 >= 3x better than round-robin',
        actual: speedup === null ? '-' : `${fmt(speedup)}x (${fmt(rr.ttftP50Ms)} -> ${fmt(kv.ttftP50Ms)} ms)`,
        met: speedup !== null && speedup >= 3,
      });
    }
  } else {
    out.push({ target: 'kvroute >= 90% of the bound', actual: pct(ratio), met: ratio !== null && ratio >= 0.9 });
    if (rr) {
      const gain = rr.tokenHitRate > 0 ? kv.tokenHitRate / rr.tokenHitRate : null;
      out.push({
        target: 'kvroute token hit rate >= 2x round-robin',
        actual: gain === null ? '-' : `${fmt(gain)}x (${pct(rr.tokenHitRate)} -> ${pct(kv.tokenHitRate)})`,
        met: gain !== null && gain >= 2,
      });
    }
  }
  out.push({
    target: `kvroute: no pod above twice its fair share (${pct(2 * fair)})`,
    actual: `max ${pct(kv.maxPodShare)}`,
    met: kv.maxPodShare <= 2 * fair + 1e-9,
  });
  if (kind === 'shared-prefix' && precise) {
    out.push({
      target: 'precise-prefix shows the hot spot the load bound avoids',
      actual: `max pod ${pct(precise.maxPodShare)} vs kvroute ${pct(kv.maxPodShare)}`,
      met: precise.maxPodShare > 2 * fair && precise.maxPodShare > kv.maxPodShare,
    });
  }
  return out;
}

export function targetsTable(checks: readonly TargetCheck[]): string {
  return `targets (issue 8)\n${formatTable(
    ['target', 'actual', 'met'],
    checks.map((c) => [c.target, c.actual, c.met ? 'yes' : 'NO']),
  )}`;
}
