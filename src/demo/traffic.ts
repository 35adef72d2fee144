// Sends the demo workload through a routing policy and measures what the pods report: prefix-cache
// hits from each response's usage, time to first token from the pods' own
// vllm:time_to_first_token_seconds histograms, and how requests spread over the pods.

import type { ChatTurn } from './workload.ts';

export type Policy = 'round-robin' | 'cache-aware';
export const POLICIES: Policy[] = ['round-robin', 'cache-aware'];

export interface TrafficOptions {
  model: string;
  indexerUrl: string;
  podUrls: Map<string, string>;
  blockSize: number;
  concurrency: number;
  /** cache-aware: a pod more than this many in-flight requests above the least-loaded one is skipped. */
  loadBound: number;
}

export interface PhaseResult {
  policy: Policy;
  requests: number;
  errors: number;
  promptTokens: number;
  cachedTokens: number;
  hitRate: number;
  ttftMeanMs: number;
  ttftP90Ms: number;
  requestsPerPod: Record<string, number>;
  /** cache-aware only: how often the indexer's predicted cached blocks matched what the pod then reported. */
  prediction?: { exact: number; withinOneBlock: number; total: number };
}

interface Histogram {
  sum: number;
  count: number;
  /** Cumulative counts by upper bound, ascending. */
  buckets: Array<[number, number]>;
}

/** Sums one histogram over all its label sets in a Prometheus text exposition. */
export function parseHistogram(text: string, name: string): Histogram {
  let sum = 0;
  let count = 0;
  const byLe = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const rest = line.slice(name.length);
    if (rest.startsWith('_sum')) sum += value;
    else if (rest.startsWith('_count')) count += value;
    else if (rest.startsWith('_bucket')) {
      const le = /le="([^"]+)"/.exec(rest)?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Infinity : Number(le);
      byLe.set(bound, (byLe.get(bound) ?? 0) + value);
    }
  }
  return { sum, count, buckets: [...byLe.entries()].sort((a, b) => a[0] - b[0]) };
}

function difference(after: Histogram, before: Histogram): Histogram {
  const prior = new Map(before.buckets);
  return {
    sum: after.sum - before.sum,
    count: after.count - before.count,
    buckets: after.buckets.map(([le, c]) => [le, c - (prior.get(le) ?? 0)]),
  };
}

/** The q-quantile, interpolated linearly inside the bucket that holds it. */
export function histogramQuantile(h: Histogram, q: number): number {
  if (h.count === 0) return 0;
  const rank = q * h.count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, c] of h.buckets) {
    if (c >= rank) {
      if (le === Infinity) return lowerBound;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / Math.max(c - lowerCount, 1);
    }
    lowerBound = le;
    lowerCount = c;
  }
  return lowerBound;
}

async function ttftHistogram(podUrls: Map<string, string>): Promise<Histogram> {
  const texts = await Promise.all([...podUrls.values()].map(async (u) => (await fetch(`${u}/metrics`)).text()));
  return parseHistogram(texts.join('\n'), 'vllm:time_to_first_token_seconds');
}

async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, json, headers: res.headers };
}

/** Orders pods by predicted cached blocks, then by fewest in flight; skips pods over the load bound. */
export function pickCacheAware(scores: Record<string, number>, inFlight: Map<string, number>, loadBound: number): string {
  const pods = [...inFlight.keys()];
  const least = Math.min(...pods.map((p) => inFlight.get(p)!));
  const ranked = pods
    .filter((p) => inFlight.get(p)! - least <= loadBound)
    .sort((a, b) => (scores[b] ?? 0) - (scores[a] ?? 0) || inFlight.get(a)! - inFlight.get(b)! || a.localeCompare(b));
  return ranked[0]!;
}

export async function runPhase(policy: Policy, turns: ChatTurn[], o: TrafficOptions): Promise<PhaseResult> {
  const pods = [...o.podUrls.keys()];
  const inFlight = new Map(pods.map((p) => [p, 0]));
  const requestsPerPod: Record<string, number> = Object.fromEntries(pods.map((p) => [p, 0]));
  const prediction = { exact: 0, withinOneBlock: 0, total: 0 };
  const before = await ttftHistogram(o.podUrls);
  let next = 0;
  let roundRobin = 0;
  let errors = 0;
  let promptTokens = 0;
  let cachedTokens = 0;
  // A conversation's next turn waits for its previous one, as a chat client does.
  const lastTurnDone = new Map<number, Promise<void>>();

  const worker = async () => {
    while (next < turns.length) {
      const turn = turns[next++]!;
      await lastTurnDone.get(turn.conversation);
      let release!: () => void;
      lastTurnDone.set(turn.conversation, new Promise<void>((r) => (release = r)));
      try {
        let pod: string;
        let predictedBlocks: number | undefined;
        if (policy === 'round-robin') {
          pod = pods[roundRobin++ % pods.length]!;
        } else {
          const scored = await postJson(`${o.indexerUrl}/v1/score`, { model: o.model, messages: turn.messages });
          if (scored.status !== 200) throw new Error(`indexer /v1/score answered ${scored.status}: ${JSON.stringify(scored.json)}`);
          const scores = scored.json.scores as Record<string, number>;
          pod = pickCacheAware(scores, inFlight, o.loadBound);
          predictedBlocks = Math.round(scores[pod] ?? 0);
        }
        inFlight.set(pod, inFlight.get(pod)! + 1);
        try {
          const res = await postJson(`${o.podUrls.get(pod)}/v1/chat/completions`, { model: o.model, messages: turn.messages, max_tokens: turn.maxTokens });
          if (res.status !== 200) throw new Error(`pod ${pod} answered ${res.status}: ${JSON.stringify(res.json)}`);
          const usage = res.json.usage as { prompt_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
          const cached = usage.prompt_tokens_details?.cached_tokens ?? 0;
          promptTokens += usage.prompt_tokens;
          cachedTokens += cached;
          requestsPerPod[pod] = (requestsPerPod[pod] ?? 0) + 1;
          if (predictedBlocks !== undefined) {
            const actualBlocks = Math.floor(cached / o.blockSize);
            prediction.total++;
            if (actualBlocks === predictedBlocks) prediction.exact++;
            if (Math.abs(actualBlocks - predictedBlocks) <= 1) prediction.withinOneBlock++;
          }
        } finally {
          inFlight.set(pod, inFlight.get(pod)! - 1);
        }
      } catch (err) {
        errors++;
        process.stderr.write(`demo: request failed: ${(err as Error).message}\n`);
      } finally {
        release();
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const ttft = difference(await ttftHistogram(o.podUrls), before);
  return {
    policy,
    requests: turns.length,
    errors,
    promptTokens,
    cachedTokens,
    hitRate: promptTokens === 0 ? 0 : cachedTokens / promptTokens,
    ttftMeanMs: ttft.count === 0 ? 0 : (1000 * ttft.sum) / ttft.count,
    ttftP90Ms: 1000 * histogramQuantile(ttft, 0.9),
    requestsPerPod,
    ...(policy === 'cache-aware' ? { prediction } : {}),
  };
}

/** Empties every pod's prefix cache (vLLM's /reset_prefix_cache) and waits until the index agrees. */
export async function resetCaches(o: Pick<TrafficOptions, 'indexerUrl' | 'podUrls'>, deadlineMs = 10_000): Promise<void> {
  for (const url of o.podUrls.values()) {
    const res = await fetch(`${url}/reset_prefix_cache`, { method: 'POST' });
    if (!res.ok) throw new Error(`${url}/reset_prefix_cache answered ${res.status}`);
  }
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    const pods = ((await (await fetch(`${o.indexerUrl}/v1/pods`)).json()) as { pods: Record<string, number> }).pods;
    if (Object.values(pods).every((n) => n === 0)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the indexer still holds blocks ${deadlineMs} ms after every pod reset its prefix cache`);
}
