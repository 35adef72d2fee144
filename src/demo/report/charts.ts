// The report's charts as SVG: token hit rate by strategy against the bound, TTFT p50/p90 by
// strategy, the TTFT CDF of every strategy, and each pod's share of traffic per strategy.

import { pct } from './tables.ts';
import type { RoutingReport } from './schema.ts';
import { empiricalCdf } from './stats.ts';
import {
  color,
  escapeXml,
  type Frame,
  legend,
  type LegendEntry,
  legendRows,
  n,
  niceTicks,
  plotHeight,
  plotWidth,
  svgDocument,
  textWidth,
  yAxis,
} from './svg.ts';

interface BarSeries {
  name: string;
  /** One value per category; null draws no bar. */
  values: Array<number | null>;
}

interface ReferenceLine {
  value: number;
  label: string;
  /** Stroke colour and dash pattern; dark grey dashes by default. */
  color?: string;
  dash?: string;
}

export interface GroupedBarChart {
  title: string;
  categories: string[];
  series: BarSeries[];
  yTitle: string;
  /** Tick and bar labels. */
  format: (v: number) => string;
  /** Fixed top of the y axis (e.g. 1 for rates); otherwise from the data. */
  yMax?: number;
  references?: ReferenceLine[];
  /** Print each bar's value above it (skipped automatically when bars are too narrow). */
  valueLabels?: boolean;
}

function frameFor(width: number, height: number, legendLabels: string[], bottom: number): Frame {
  const rows = legendRows(width, legendLabels);
  return { width, height: height + (rows - 1) * 18, left: 72, right: 24, top: 56 + rows * 18, bottom };
}

/** Bars grouped by category, one colour per series, with optional dashed reference lines. */
export function groupedBarChart(c: GroupedBarChart): string {
  const legendEntries: LegendEntry[] = [
    ...c.series.map((s, i) => ({ label: s.name, color: color(i), mark: 'box' as const })),
    ...(c.references ?? []).map((r) => ({ label: r.label, color: r.color ?? '#444444', mark: 'dashed' as const, dash: r.dash })),
  ];
  const width = Math.max(760, 72 + 24 + c.categories.length * Math.max(90, c.series.length * 18 + 30));
  const groupWidth = (width - 96) / Math.max(1, c.categories.length);
  const rotate = c.categories.some((cat) => textWidth(cat, 12) > groupWidth - 8);
  const longest = Math.max(0, ...c.categories.map((cat) => textWidth(cat, 12)));
  const f = frameFor(
    width,
    420,
    legendEntries.map((e) => e.label),
    rotate ? 30 + longest * 0.6 : 48,
  );
  const values = c.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const dataMax = Math.max(0, ...values, ...(c.references ?? []).map((r) => r.value));
  const ticks = niceTicks(c.yMax ?? (dataMax > 0 ? dataMax * 1.08 : 1));
  const top = ticks[ticks.length - 1]!;
  const y = (v: number): number => f.top + plotHeight(f) * (1 - Math.min(v, top) / top);

  const body = [...legend(f, legendEntries), ...yAxis(f, ticks, c.format, c.yTitle)];
  const inner = groupWidth * 0.8;
  const barWidth = inner / Math.max(1, c.series.length);
  const labels = (c.valueLabels ?? true) && barWidth >= textWidth('00.0%', 10);
  // Reference lines go under the bars, so bars and their labels stay readable where they cross.
  for (const r of c.references ?? []) {
    const ry = y(r.value);
    body.push(
      `<line x1="${f.left}" y1="${n(ry)}" x2="${f.width - f.right}" y2="${n(ry)}" stroke="${r.color ?? '#444444'}" stroke-width="1.5" stroke-dasharray="${r.dash ?? '5 3'}"/>`,
    );
  }
  c.categories.forEach((cat, gi) => {
    const x0 = f.left + gi * groupWidth + (groupWidth - inner) / 2;
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const x = x0 + si * barWidth;
      const yTop = y(v);
      body.push(
        `<rect x="${n(x + 1)}" y="${n(yTop)}" width="${n(Math.max(1, barWidth - 2))}" height="${n(f.height - f.bottom - yTop)}" fill="${color(si)}"><title>${escapeXml(`${cat} ${s.name}: ${c.format(v)}`)}</title></rect>`,
      );
      if (labels)
        body.push(
          `<text x="${n(x + barWidth / 2)}" y="${n(yTop - 4)}" text-anchor="middle" font-size="10" fill="#333333" stroke="#ffffff" stroke-width="3" paint-order="stroke">${escapeXml(c.format(v))}</text>`,
        );
    });
    const cx = f.left + gi * groupWidth + groupWidth / 2;
    const ly = f.height - f.bottom + 18;
    body.push(
      rotate
        ? `<text x="${n(cx)}" y="${n(ly)}" text-anchor="end" transform="rotate(-35 ${n(cx)} ${n(ly)})">${escapeXml(cat)}</text>`
        : `<text x="${n(cx)}" y="${n(ly)}" text-anchor="middle">${escapeXml(cat)}</text>`,
    );
  });
  return svgDocument(f, c.title, body);
}

interface LineSeries {
  name: string;
  points: Array<[number, number]>;
}

interface LineChart {
  title: string;
  series: LineSeries[];
  xTitle: string;
  yTitle: string;
  formatX: (v: number) => string;
  formatY: (v: number) => string;
  yMax?: number;
  /** Draw each series as steps (for CDFs) rather than straight segments. */
  steps?: boolean;
}

/** Lines on linear axes from 0, one colour per series. */
function lineChart(c: LineChart): string {
  const entries: LegendEntry[] = c.series.map((s, i) => ({ label: s.name, color: color(i), mark: 'line' }));
  const f = frameFor(
    760,
    440,
    entries.map((e) => e.label),
    56,
  );
  const xs = c.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = c.series.flatMap((s) => s.points.map((p) => p[1]));
  const xTicks = niceTicks(Math.max(0, ...xs) || 1, 6);
  const yTicks = niceTicks(c.yMax ?? (Math.max(0, ...ys) || 1));
  const xMax = xTicks[xTicks.length - 1]!;
  const yMax = yTicks[yTicks.length - 1]!;
  const px = (v: number): number => f.left + (plotWidth(f) * v) / xMax;
  const py = (v: number): number => f.top + plotHeight(f) * (1 - v / yMax);

  const body = [...legend(f, entries), ...yAxis(f, yTicks, c.formatY, c.yTitle)];
  for (const t of xTicks) {
    body.push(`<line x1="${n(px(t))}" y1="${f.height - f.bottom}" x2="${n(px(t))}" y2="${f.height - f.bottom + 5}" stroke="#333333"/>`);
    body.push(
      `<text x="${n(px(t))}" y="${f.height - f.bottom + 19}" text-anchor="middle" fill="#333333">${escapeXml(c.formatX(t))}</text>`,
    );
  }
  body.push(
    `<text x="${n(f.left + plotWidth(f) / 2)}" y="${f.height - 12}" text-anchor="middle" fill="#333333">${escapeXml(c.xTitle)}</text>`,
  );
  c.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const parts: string[] = [];
    let prevY = c.steps ? 0 : s.points[0]![1];
    s.points.forEach(([x, yv], k) => {
      if (k === 0 && !c.steps) parts.push(`M${n(px(x))} ${n(py(yv))}`);
      else if (c.steps) {
        parts.push(`${k === 0 ? 'M' : 'L'}${n(px(x))} ${n(py(prevY))}`, `L${n(px(x))} ${n(py(yv))}`);
      } else parts.push(`L${n(px(x))} ${n(py(yv))}`);
      prevY = yv;
    });
    body.push(`<path d="${parts.join(' ')}" fill="none" stroke="${color(i)}" stroke-width="2"><title>${escapeXml(s.name)}</title></path>`);
  });
  return svgDocument(f, c.title, body);
}

const msLabel = (v: number): string =>
  v >= 10_000 ? `${Math.round(v / 1000)} s` : v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
const pctLabel = (v: number): string => `${Math.round(v * 1000) / 10}%`;

/** Token and request hit rate per strategy, with the bound as a dashed line. */
export function hitRateChart(report: RoutingReport): string {
  return groupedBarChart({
    title: `Prefix-cache hit rate by strategy (${report.pods} pods)`,
    categories: report.strategies.map((s) => s.name),
    series: [
      { name: 'token hit rate (pods\u2019 counters)', values: report.strategies.map((s) => s.tokenHitRate) },
      { name: 'request hit rate', values: report.strategies.map((s) => s.requestHitRate) },
    ],
    yTitle: 'hit rate',
    format: pctLabel,
    yMax: 1,
    references: [{ value: report.oracleTokenHitRate, label: `bound: one unlimited cache (${pct(report.oracleTokenHitRate)})` }],
  });
}

/** TTFT p50 and p90 per strategy. */
export function ttftChart(report: RoutingReport): string {
  return groupedBarChart({
    title: 'Time to first token by strategy',
    categories: report.strategies.map((s) => s.name),
    series: [
      { name: 'p50', values: report.strategies.map((s) => s.ttftP50Ms) },
      { name: 'p90', values: report.strategies.map((s) => s.ttftP90Ms) },
    ],
    yTitle: 'TTFT',
    format: msLabel,
  });
}

/** The CDF of every strategy's TTFT samples (ms). */
export function ttftCdfChart(samples: ReadonlyArray<{ name: string; ttftMs: readonly number[] }>): string {
  return lineChart({
    title: 'TTFT distribution by strategy',
    series: samples.map((s) => ({ name: s.name, points: empiricalCdf(s.ttftMs) })),
    xTitle: 'time to first token',
    yTitle: 'fraction of requests',
    formatX: msLabel,
    formatY: pctLabel,
    yMax: 1,
    steps: true,
  });
}

/** Each pod's share of requests per strategy, against the fair share and twice it. */
export function podShareChart(report: RoutingReport): string {
  const pods = [...new Set(report.strategies.flatMap((s) => Object.keys(s.podShare)))].sort();
  const fair = 1 / Math.max(1, pods.length);
  return groupedBarChart({
    title: 'Traffic share per pod by strategy',
    categories: report.strategies.map((s) => s.name),
    series: pods.map((pod) => ({ name: pod, values: report.strategies.map((s) => s.podShare[pod] ?? 0) })),
    yTitle: 'share of requests',
    format: pctLabel,
    yMax: Math.min(1, Math.max(2 * fair, ...report.strategies.map((s) => s.maxPodShare)) * 1.1),
    references: [
      { value: fair, label: `fair share (${pct(fair)})`, color: '#666666' },
      { value: Math.min(1, 2 * fair), label: `2x fair share`, color: '#000000', dash: '2 3' },
    ],
    valueLabels: pods.length <= 4,
  });
}

/** Every chart of a report, by file name; the CDF only when TTFT samples are given. */
export function renderCharts(
  report: RoutingReport,
  ttftSamples?: ReadonlyArray<{ name: string; ttftMs: readonly number[] }>,
): Record<string, string> {
  const out: Record<string, string> = {
    'hit-rate.svg': hitRateChart(report),
    'ttft.svg': ttftChart(report),
    'pod-share.svg': podShareChart(report),
  };
  if (ttftSamples && ttftSamples.length > 0) out['ttft-cdf.svg'] = ttftCdfChart(ttftSamples);
  return out;
}
