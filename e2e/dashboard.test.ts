// The Grafana dashboard shipped in the chart (charts/kvroute/dashboards/kvroute.json) against the code:
// every metric a query names is registered somewhere under src/ (the router, indexer and operator
// metrics, and the vLLM metrics the simulator reproduces with vLLM's names), histogram suffixes are used
// only on histograms, and rate() only on counters and histogram series.

import { describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../test/support/repo-root.ts';

type MetricType = 'counter' | 'gauge' | 'histogram';

interface Dashboard {
  uid: string;
  panels: { type: string; title: string; description?: string; targets?: { expr: string; refId: string }[] }[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

const dashboard = JSON.parse(fs.readFileSync(path.join(repoRoot, 'charts/kvroute/dashboards/kvroute.json'), 'utf8')) as Dashboard;

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'testdata' ? [] : sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/**
 * Metrics registered in src/: a quoted metric name and the prom-client constructor (or the indexer's
 * counter()/gauge() helpers) closest before it in the same file.
 */
function registeredMetrics(): Map<string, { type: MetricType; file: string }> {
  const found = new Map<string, { type: MetricType; file: string }>();
  const ctor = /new (Counter|Gauge|Histogram)\b|\b(counter|gauge|reasonCounter)\(/g;
  for (const file of sourceFiles(path.join(repoRoot, 'src'))) {
    const text = fs.readFileSync(file, 'utf8');
    const ctors = [...text.matchAll(ctor)].map((m) => ({ at: m.index, kind: (m[1] ?? m[2])!.toLowerCase() }));
    for (const m of text.matchAll(
      /\bname:\s*'((?:vllm:|kvroute_)[a-z0-9_:]+)'|\b(?:counter|gauge|reasonCounter)\(\s*registry,\s*'((?:vllm:|kvroute_)[a-z0-9_:]+)'/g,
    )) {
      const name = (m[1] ?? m[2])!;
      const before = ctors.filter((c) => c.at <= m.index && m.index - c.at < 400).at(-1);
      if (!before) continue;
      const type: MetricType = before.kind === 'histogram' ? 'histogram' : before.kind === 'gauge' ? 'gauge' : 'counter';
      found.set(name, { type, file: path.relative(repoRoot, file) });
    }
  }
  return found;
}

const registered = registeredMetrics();

/** Every PromQL expression in the dashboard: panel targets and variable queries. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of dashboard.panels) for (const t of p.targets ?? []) out.push({ where: `${p.title} (${t.refId})`, expr: t.expr });
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query!.query;
    out.push({ where: `variable ${v.name}`, expr: q });
  }
  return out;
}

/** Metric names an expression selects: identifiers followed by `{` or `[`, and label_values' first argument. */
function metricsIn(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]/g)) names.add(m[1]!);
  for (const m of expr.matchAll(/label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/g)) names.add(m[1]!);
  // A bare metric name with no selector, e.g. `sum(kvroute_operator_workqueue_depth)`.
  for (const m of expr.matchAll(/\(\s*((?:vllm:|kvroute_)[a-zA-Z0-9_:]*)\s*\)/g)) names.add(m[1]!);
  return [...names];
}

const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/;

function resolve(series: string): { base: string; type: MetricType | undefined; histogramSeries: boolean } {
  const direct = registered.get(series);
  if (direct) return { base: series, type: direct.type, histogramSeries: false };
  const base = series.replace(HISTOGRAM_SUFFIX, '');
  return { base, type: base !== series ? registered.get(base)?.type : undefined, histogramSeries: base !== series };
}

describe('Grafana dashboard', () => {
  it('finds the registered metrics it checks against (the scan itself works)', () => {
    expect(registered.get('kvroute_router_scheduling_duration_seconds')?.type).toBe('histogram');
    expect(registered.get('kvroute_indexer_sequence_gaps_total')?.type).toBe('counter');
    expect(registered.get('vllm:kv_cache_usage_perc')?.type).toBe('gauge');
    expect(registered.size).toBeGreaterThan(30);
  });

  it('has the panels people watch for a pool, each with a description and queries', () => {
    const titles = dashboard.panels.filter((p) => p.type !== 'row').map((p) => p.title);
    for (const wanted of [
      /prefix-cache hit rate/i,
      /requests per pod/i,
      /kv-cache usage per pod/i,
      /time to first token/i,
      /cold vs warm/i,
      /scheduling latency/i,
      /kv-event lag/i,
      /gaps/i,
      /reconcile errors/i,
    ]) {
      expect(titles.some((t) => wanted.test(t))).toBe(true);
    }
    for (const p of dashboard.panels.filter((p) => p.type !== 'row')) {
      expect([p.title, (p.description ?? '').length > 20, (p.targets ?? []).length > 0]).toEqual([p.title, true, true]);
    }
  });

  it('names only metrics the code registers, in the kvroute_ and vllm: namespaces', () => {
    const unknown: string[] = [];
    for (const { where, expr } of expressions()) {
      const names = metricsIn(expr);
      expect([where, names.length > 0]).toEqual([where, true]);
      for (const name of names) {
        if (!/^(vllm:|kvroute_)/.test(name) || resolve(name).type === undefined) unknown.push(`${where}: ${name}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('uses _bucket/_sum/_count only on histograms and rate() only on counters and histogram series', () => {
    const wrong: string[] = [];
    for (const { where, expr } of expressions()) {
      for (const name of metricsIn(expr)) {
        const r = resolve(name);
        if (r.histogramSeries && r.type !== 'histogram') wrong.push(`${where}: ${name} is not a histogram series`);
      }
      for (const m of expr.matchAll(/\b(?:rate|increase|irate)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/g)) {
        const r = resolve(m[1]!);
        if (r.type === 'gauge') wrong.push(`${where}: rate() of gauge ${m[1]}`);
      }
      for (const m of expr.matchAll(/histogram_quantile\([^,]+,[^()]*\(\s*rate\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/g)) {
        if (!m[1]!.endsWith('_bucket')) wrong.push(`${where}: histogram_quantile over ${m[1]}, not a _bucket series`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('names every metric it shows in the panel descriptions, so a reader knows what is plotted', () => {
    for (const p of dashboard.panels.filter((p) => p.type !== 'row')) {
      for (const t of p.targets ?? []) {
        for (const name of metricsIn(t.expr)) {
          const { base } = resolve(name);
          expect([p.title, base, (p.description ?? '').includes(base)]).toEqual([p.title, base, true]);
        }
      }
    }
  });
});
