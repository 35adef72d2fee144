// Writes a routing report to a directory (`--out DIR`): results.json and the SVG charts.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderCharts } from './charts.ts';
import type { RoutingReport } from './schema.ts';

/** Writes results.json and every chart into `dir` (created if missing); returns the paths written. */
export function writeReportFiles(
  dir: string,
  report: RoutingReport,
  ttftSamples?: ReadonlyArray<{ name: string; ttftMs: readonly number[] }>,
): string[] {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = { 'results.json': JSON.stringify(report, null, 2) + '\n', ...renderCharts(report, ttftSamples) };
  return Object.entries(files).map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
}
