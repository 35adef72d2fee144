import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groupedBarChart, hitRateChart, podShareChart, renderCharts, ttftCdfChart, ttftChart } from './charts.ts';
import { parseRoutingReport, type RoutingReport, type StrategyResult } from './schema.ts';
import { niceTicks } from './svg.ts';
import { writeReportFiles } from './write.ts';

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/**
 * A strict parser for the XML subset the charts emit: elements, double-quoted attributes, text and
 * the five predefined entities. Throws on anything not well-formed (unbalanced or unclosed tags,
 * a raw `<` or `&` in text or attributes, duplicate attributes).
 */
function parseXml(xml: string): XmlElement {
  const checkText = (text: string, where: string): void => {
    if (/<|&(?!(amp|lt|gt|quot|apos);)/.test(text)) throw new Error(`unescaped character in ${where}: ${text.slice(0, 40)}`);
  };
  const root: XmlElement = { name: '#document', attrs: {}, children: [], text: '' };
  const stack = [root];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    checkText(text, `text of <${stack[stack.length - 1]!.name}>`);
    stack[stack.length - 1]!.text += text;
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    if (!m) throw new Error(`malformed tag at ${lt}: ${xml.slice(lt, lt + 40)}`);
    const [, close, name, attrText, selfClose] = m;
    if (close) {
      const open = stack.pop()!;
      if (open.name !== name || stack.length === 0) throw new Error(`</${name}> closes <${open.name}>`);
    } else {
      const attrs: Record<string, string> = {};
      for (const a of attrText!.matchAll(/([\w:-]+)="([^"]*)"/g)) {
        if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]} on <${name}>`);
        checkText(a[2]!, `attribute ${a[1]}`);
        attrs[a[1]!] = a[2]!;
      }
      const el: XmlElement = { name: name!, attrs, children: [], text: '' };
      stack[stack.length - 1]!.children.push(el);
      if (!selfClose) stack.push(el);
    }
    i = tag.lastIndex;
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  if (root.children.length !== 1) throw new Error('expected one root element');
  return root.children[0]!;
}

function all(el: XmlElement, name: string): XmlElement[] {
  return [...(el.name === name ? [el] : []), ...el.children.flatMap((c) => all(c, name))];
}

function texts(el: XmlElement): string[] {
  return all(el, 'text').map((t) => t.text);
}

function strategy(name: string, over: Partial<StrategyResult> = {}): StrategyResult {
  return {
    name,
    tokenHitRate: 0.5,
    requestHitRate: 0.6,
    ttftP50Ms: 400,
    ttftP90Ms: 2500,
    throughputTokPerS: 100,
    podShare: { 'sim-0': 0.25, 'sim-1': 0.25, 'sim-2': 0.25, 'sim-3': 0.25 },
    maxPodShare: 0.25,
    evictionLoss: 0.1,
    routingLoss: 0.2,
    ratioToBound: 0.6,
    requests: 240,
    errors: 0,
    coldRequests: 100,
    warmRequests: 140,
    ttftColdP50Ms: 2000,
    ttftColdP90Ms: 2800,
    ttftWarmP50Ms: 350,
    ttftWarmP90Ms: 420,
    usageTokenHitRate: 0.5,
    funnelHit: 0.5,
    beyondBound: 0,
    requestsPerS: 4,
    durationS: 60,
    ...over,
  };
}

const report: RoutingReport = parseRoutingReport({
  pods: 4,
  requests: 240,
  workload: 'shared-prefix <quick> & co',
  oracleTokenHitRate: 0.923,
  strategies: [
    strategy('round-robin', { tokenHitRate: 0.3 }),
    strategy('precise-prefix', { podShare: { 'sim-0': 0.9992, 'sim-1': 0.0008, 'sim-2': 0, 'sim-3': 0 }, maxPodShare: 0.9992 }),
    strategy('kvroute', { tokenHitRate: 0.89, ttftP50Ms: 340 }),
  ],
});

describe('report charts', () => {
  it('are checked by a parser that rejects malformed XML', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow('</svg> closes <g>');
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow('unescaped character');
    expect(() => parseXml('<svg x="1" x="2"/>')).toThrow('duplicate attribute');
    expect(() => parseXml('<svg><g>')).toThrow('unclosed <g>');
    expect(parseXml('<svg a="&amp;"><g/>x &lt; y</svg>').children).toHaveLength(1);
  });

  it('are well-formed SVG documents with a title, for every chart', () => {
    const charts = renderCharts(report, [{ name: 'kvroute', ttftMs: [300, 350, 2000] }]);
    expect(Object.keys(charts).sort()).toEqual(['hit-rate.svg', 'pod-share.svg', 'ttft-cdf.svg', 'ttft.svg']);
    for (const [file, svg] of Object.entries(charts)) {
      const root = parseXml(svg);
      expect([file, root.name, root.attrs.xmlns]).toEqual([file, 'svg', 'http://www.w3.org/2000/svg']);
      expect(root.attrs.viewBox).toMatch(/^0 0 \d+ \d+$/);
      expect(all(root, 'title').length).toBeGreaterThan(0);
    }
  });

  it('draws one bar per strategy and series, the bound line, and the strategy names', () => {
    const root = parseXml(hitRateChart(report));
    const bars = all(root, 'rect').filter((r) => r.children.some((c) => c.name === 'title'));
    expect(bars).toHaveLength(3 * 2);
    expect(texts(root)).toEqual(
      expect.arrayContaining(['round-robin', 'precise-prefix', 'kvroute', 'bound: one unlimited cache (92.3%)', '89%']),
    );
    expect(all(root, 'line').some((l) => l.attrs['stroke-dasharray'] !== undefined)).toBe(true);
  });

  it('scales bar heights to their values', () => {
    const svg = groupedBarChart({
      title: 't',
      categories: ['a', 'b'],
      series: [{ name: 's', values: [1, 2] }],
      yTitle: 'y',
      format: String,
      yMax: 2,
    });
    const heights = all(parseXml(svg), 'rect')
      .filter((r) => r.children.length > 0)
      .map((r) => Number(r.attrs.height));
    expect(heights[1]! / heights[0]!).toBeCloseTo(2, 1);
  });

  it('escapes text and shows TTFT in readable units', () => {
    const svg = ttftChart(report);
    expect(svg).not.toContain('<quick>');
    expect(texts(parseXml(svg))).toEqual(expect.arrayContaining(['340 ms', '2.5 s']));
  });

  it('draws one CDF line per strategy reaching 100%', () => {
    const root = parseXml(
      ttftCdfChart([
        { name: 'a', ttftMs: [1, 2, 3] },
        { name: 'b', ttftMs: [2, 4] },
      ]),
    );
    expect(all(root, 'path')).toHaveLength(2);
    expect(texts(root)).toEqual(expect.arrayContaining(['a', 'b', '100%']));
  });

  it('shows each pod per strategy against the fair share and twice it', () => {
    const root = parseXml(podShareChart(report));
    const bars = all(root, 'rect').filter((r) => r.children.some((c) => c.name === 'title'));
    // A zero share is a zero-height bar (it keeps its tooltip): 3 strategies x 4 pods.
    expect(bars).toHaveLength(3 * 4);
    expect(bars.filter((b) => Number(b.attrs.height) === 0)).toHaveLength(2);
    expect(texts(root)).toEqual(expect.arrayContaining(['sim-0', 'sim-3', 'fair share (25.0%)', '2x fair share']));
  });

  it('picks round axis ticks covering the data', () => {
    expect(niceTicks(0.95)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(2700)).toEqual([0, 1000, 2000, 3000]);
    expect(niceTicks(2300)).toEqual([0, 500, 1000, 1500, 2000, 2500]);
    expect(niceTicks(0)).toEqual([0, 1]);
  });
});

describe('writeReportFiles', () => {
  it('writes results.json that parses back to the report, and the charts', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'report-')), 'out');
    const written = writeReportFiles(dir, report);
    expect(written.map((p) => p.slice(dir.length + 1)).sort()).toEqual(['hit-rate.svg', 'pod-share.svg', 'results.json', 'ttft.svg']);
    expect(parseRoutingReport(JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')))).toEqual(report);
    parseXml(readFileSync(join(dir, 'pod-share.svg'), 'utf8'));
  });
});
