// Reading a Prometheus text exposition page in tests and benchmarks: one metric's value (summed over
// the series whose labels match) and a histogram's cumulative buckets.

/** The value of `name` summed over the series whose labels include `labels`; NaN when no series matches. */
export function metricValue(page: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of page.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([^\s{]+)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = parseLabels(m[3] ?? '');
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      sum += Number(m[4]);
      found = true;
    }
  }
  return found ? sum : NaN;
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!.replace(/\\(.)/g, '$1');
  return out;
}

/** Cumulative bucket counts of histogram `name` (upper bound -> count, +Inf included), summed over label sets. */
export function histogramBuckets(page: string, name: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of page.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    const m = /le="([^"]+)"[^}]*\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
}
