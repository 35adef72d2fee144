// Reads the few engine metrics the router schedules on out of a Prometheus text exposition (vLLM's
// /metrics, or SGLang's), scanning line by line and parsing only the lines it needs: a scrape runs
// every 50 ms per endpoint, so the rest of the page (histograms, info gauges) is skipped unparsed.

/** What one scrape of an engine's /metrics says, before it is stamped with the scrape time. */
interface EngineMetrics {
  waitingRequests: number;
  runningRequests: number;
  /** 0..1. */
  kvCacheUsage: number;
  runningLoras: string[];
  waitingLoras: string[];
  maxLoras: number;
}

export interface ParseResult {
  /** Null when the page lacks a queue or KV-usage metric of any known engine (see `missing`). */
  metrics: EngineMetrics | null;
  /** Lines of a needed metric that could not be parsed; they are skipped. */
  malformedLines: number;
  /** Names of the missing required metrics when `metrics` is null. */
  missing: string[];
}

// Slots, so one pass fills fixed fields instead of a map keyed by name.
const WAITING = 0;
const RUNNING = 1;
const KV_USAGE = 2;
const GPU_CACHE_USAGE = 3;
const SGLANG_QUEUE = 4;
const SGLANG_RUNNING = 5;
const SGLANG_TOKEN_USAGE = 6;
const LORA_INFO = 7;
const SLOTS = 8;

const WANTED = new Map<string, number>([
  ['vllm:num_requests_waiting', WAITING],
  ['vllm:num_requests_running', RUNNING],
  ['vllm:kv_cache_usage_perc', KV_USAGE],
  // vLLM before 0.10 named the KV usage gauge this way (GAIE 1.0 still scrapes it).
  ['vllm:gpu_cache_usage_perc', GPU_CACHE_USAGE],
  ['sglang:num_queue_reqs', SGLANG_QUEUE],
  ['sglang:num_running_reqs', SGLANG_RUNNING],
  ['sglang:token_usage', SGLANG_TOKEN_USAGE],
  ['vllm:lora_requests_info', LORA_INFO],
]);

// Several label sets of one metric (vLLM labels by model_name and engine, one set per data-parallel
// engine): counts are summed, usage is the fullest engine's.
const SUMMED = new Set([WAITING, RUNNING, SGLANG_QUEUE, SGLANG_RUNNING]);

interface LoraSample {
  value: number;
  running: string;
  waiting: string;
  maxLora: string;
}

/** Parses an exposition; never throws: malformed lines of needed metrics are counted and skipped. */
export function parseEngineMetrics(text: string): ParseResult {
  const seen = new Array<boolean>(SLOTS).fill(false);
  const values = new Array<number>(SLOTS).fill(0);
  let lora: LoraSample | null = null;
  let malformed = 0;

  let pos = 0;
  const end = text.length;
  while (pos < end) {
    let eol = text.indexOf('\n', pos);
    if (eol === -1) eol = end;
    const first = text.charCodeAt(pos);
    // 'v' or 's': a cheap pre-check before the name lookup; comments (#) and other metrics fall through.
    if (first === 118 /* v */ || first === 115 /* s */) {
      const nameEnd = scanName(text, pos, eol);
      const slot = WANTED.get(text.slice(pos, nameEnd));
      if (slot !== undefined) {
        const sample = parseSample(text, nameEnd, eol, slot === LORA_INFO);
        if (sample === null) malformed++;
        else if (slot === LORA_INFO) {
          if (sample.labels === null) malformed++;
          else if (lora === null || sample.value > lora.value) {
            lora = {
              value: sample.value,
              running: sample.labels.get('running_lora_adapters') ?? '',
              waiting: sample.labels.get('waiting_lora_adapters') ?? '',
              maxLora: sample.labels.get('max_lora') ?? '0',
            };
          }
        } else if (Number.isFinite(sample.value)) {
          if (!seen[slot]) values[slot] = sample.value;
          else values[slot] = SUMMED.has(slot) ? values[slot]! + sample.value : Math.max(values[slot]!, sample.value);
          seen[slot] = true;
        }
      }
    }
    pos = eol + 1;
  }

  const pick = (...slots: number[]): number | undefined => {
    for (const s of slots) if (seen[s]) return values[s];
    return undefined;
  };
  const waiting = pick(WAITING, SGLANG_QUEUE);
  const running = pick(RUNNING, SGLANG_RUNNING);
  const usage = pick(KV_USAGE, GPU_CACHE_USAGE, SGLANG_TOKEN_USAGE);
  const missing: string[] = [];
  if (waiting === undefined) missing.push('vllm:num_requests_waiting (or sglang:num_queue_reqs)');
  if (usage === undefined) missing.push('vllm:kv_cache_usage_perc (or vllm:gpu_cache_usage_perc, sglang:token_usage)');
  if (waiting === undefined || usage === undefined) return { metrics: null, malformedLines: malformed, missing };

  const maxLoras = lora === null ? 0 : Number(lora.maxLora);
  return {
    metrics: {
      waitingRequests: waiting,
      runningRequests: running ?? 0,
      kvCacheUsage: Math.min(1, Math.max(0, usage)),
      runningLoras: lora === null ? [] : splitList(lora.running),
      waitingLoras: lora === null ? [] : splitList(lora.waiting),
      maxLoras: Number.isInteger(maxLoras) && maxLoras >= 0 ? maxLoras : 0,
    },
    malformedLines: malformed,
    missing,
  };
}

function splitList(value: string): string[] {
  if (value === '') return [];
  const out: string[] = [];
  for (const part of value.split(',')) {
    const name = part.trim();
    if (name !== '') out.push(name);
  }
  return out;
}

/** Index just past a metric name: the first '{', space or tab (or the end of the line). */
function scanName(text: string, pos: number, eol: number): number {
  let i = pos;
  while (i < eol) {
    const c = text.charCodeAt(i);
    if (c === 123 /* { */ || c === 32 || c === 9) break;
    i++;
  }
  return i;
}

interface Sample {
  value: number;
  labels: Map<string, string> | null;
}

/**
 * The sample after the name: optional `{labels}`, whitespace, a value, an optional timestamp. Labels
 * are decoded only when `wantLabels`; otherwise they are skipped (quoted values may hold '}').
 */
function parseSample(text: string, pos: number, eol: number, wantLabels: boolean): Sample | null {
  let i = pos;
  let labels: Map<string, string> | null = null;
  if (text.charCodeAt(i) === 123 /* { */) {
    const parsed = parseLabels(text, i + 1, eol, wantLabels);
    if (parsed === null) return null;
    labels = parsed.labels;
    i = parsed.end;
  }
  const first = i;
  while (i < eol && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
  if (i === first) return null;
  const valueStart = i;
  while (i < eol && text.charCodeAt(i) !== 32 && text.charCodeAt(i) !== 9 && text.charCodeAt(i) !== 13) i++;
  const value = parseValue(text.slice(valueStart, i));
  if (value === null) return null;
  // Whatever follows is a timestamp (or a CR); the router stamps samples with its own scrape time.
  return { value, labels };
}

function parseValue(token: string): number | null {
  if (token === '') return null;
  switch (token) {
    case 'NaN':
      return NaN;
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
  }
  const n = Number(token);
  return Number.isNaN(n) ? null : n;
}

/** Parses `name="value",...}` from just after '{'; returns the index after '}'. */
function parseLabels(text: string, pos: number, eol: number, decode: boolean): { labels: Map<string, string> | null; end: number } | null {
  const labels = decode ? new Map<string, string>() : null;
  let i = pos;
  for (;;) {
    while (i < eol && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 44) /* , */) i++;
    if (i >= eol) return null;
    if (text.charCodeAt(i) === 125 /* } */) return { labels, end: i + 1 };
    const nameStart = i;
    while (i < eol && text.charCodeAt(i) !== 61 /* = */ && text.charCodeAt(i) !== 125) i++;
    if (i >= eol || text.charCodeAt(i) !== 61) return null;
    const name = text.slice(nameStart, i).trim();
    if (name === '') return null;
    i++;
    if (text.charCodeAt(i) !== 34 /* " */) return null;
    i++;
    let value = '';
    let chunkStart = i;
    for (;;) {
      if (i >= eol) return null;
      const c = text.charCodeAt(i);
      if (c === 34) break;
      if (c === 92 /* \ */) {
        if (decode) value += text.slice(chunkStart, i);
        const next = text.charCodeAt(i + 1);
        if (decode) value += next === 110 /* n */ ? '\n' : String.fromCharCode(next);
        i += 2;
        chunkStart = i;
        continue;
      }
      i++;
    }
    if (labels !== null) labels.set(name, value + text.slice(chunkStart, i));
    i++;
  }
}
