// Hand-built SVG chart pieces (no dependency): a document with a title, a y axis with round ticks
// and grid lines, a legend, and escaping, shared by the report's bar and line charts.

/** Okabe-Ito colours (readable with colour-blindness), yellow left out for contrast on white. */
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#999999'];

export function color(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** A coordinate with at most one decimal, to keep files small. */
export function n(x: number): string {
  return String(Math.round(x * 10) / 10);
}

/** Round tick values from 0 covering `max`: steps of 1, 2, 2.5 or 5 times a power of ten. */
export function niceTicks(max: number, target = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / target;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let i = 0; ; i++) {
    const v = Math.round(i * step * 1e9) / 1e9;
    ticks.push(v);
    if (v >= max) break;
  }
  return ticks;
}

/** Rough width of a label in the charts' font, for layout decisions. */
export function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.58;
}

export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export function plotWidth(f: Frame): number {
  return f.width - f.left - f.right;
}

export function plotHeight(f: Frame): number {
  return f.height - f.top - f.bottom;
}

export function svgDocument(f: Frame, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${f.width}" height="${f.height}" fill="#ffffff"/>`,
    `<text x="${n(f.width / 2)}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Horizontal grid lines with tick labels, the axis line, and the axis title turned sideways. */
export function yAxis(f: Frame, ticks: number[], label: (v: number) => string, title: string): string[] {
  const max = ticks[ticks.length - 1]!;
  const out: string[] = [];
  for (const t of ticks) {
    const y = f.top + plotHeight(f) * (1 - t / max);
    out.push(`<line x1="${f.left}" y1="${n(y)}" x2="${f.width - f.right}" y2="${n(y)}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${f.left - 6}" y="${n(y + 4)}" text-anchor="end" fill="#333333">${escapeXml(label(t))}</text>`);
  }
  out.push(`<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.height - f.bottom}" stroke="#333333"/>`);
  out.push(`<line x1="${f.left}" y1="${f.height - f.bottom}" x2="${f.width - f.right}" y2="${f.height - f.bottom}" stroke="#333333"/>`);
  const cy = f.top + plotHeight(f) / 2;
  out.push(`<text x="16" y="${n(cy)}" text-anchor="middle" transform="rotate(-90 16 ${n(cy)})" fill="#333333">${escapeXml(title)}</text>`);
  return out;
}

export interface LegendEntry {
  label: string;
  color: string;
  /** 'box' for bars, 'line' (optionally dashed) for lines. */
  mark: 'box' | 'line' | 'dashed';
  /** Dash pattern of a 'dashed' mark. */
  dash?: string;
}

/** One row of legend entries centred under the title, wrapping when it would overflow. */
export function legend(f: Frame, entries: LegendEntry[], y = 42): string[] {
  const widths = entries.map((e) => 22 + textWidth(e.label, 12) + 16);
  const rows: number[][] = [[]];
  let rowWidth = 0;
  const maxRow = f.width - 40;
  widths.forEach((w, i) => {
    if (rowWidth + w > maxRow && rows[rows.length - 1]!.length > 0) {
      rows.push([]);
      rowWidth = 0;
    }
    rows[rows.length - 1]!.push(i);
    rowWidth += w;
  });
  const out: string[] = [];
  rows.forEach((row, r) => {
    const total = row.reduce((a, i) => a + widths[i]!, 0);
    let x = (f.width - total) / 2;
    const ry = y + r * 18;
    for (const i of row) {
      const e = entries[i]!;
      if (e.mark === 'box') out.push(`<rect x="${n(x)}" y="${n(ry - 9)}" width="14" height="10" fill="${e.color}"/>`);
      else
        out.push(
          `<line x1="${n(x)}" y1="${n(ry - 4)}" x2="${n(x + 16)}" y2="${n(ry - 4)}" stroke="${e.color}" stroke-width="2.5"${e.mark === 'dashed' ? ` stroke-dasharray="${e.dash ?? '5 3'}"` : ''}/>`,
        );
      out.push(`<text x="${n(x + 22)}" y="${n(ry)}" fill="#333333">${escapeXml(e.label)}</text>`);
      x += widths[i]!;
    }
  });
  return out;
}

/** Rows the legend takes, so a chart can leave room for it. */
export function legendRows(width: number, labels: string[]): number {
  let rows = 1;
  let rowWidth = 0;
  for (const label of labels) {
    const w = 22 + textWidth(label, 12) + 16;
    if (rowWidth + w > width - 40 && rowWidth > 0) {
      rows++;
      rowWidth = 0;
    }
    rowWidth += w;
  }
  return rows;
}
