// What the chaos suite watches while it breaks things: every router's picks per endpoint (sampled
// from kvroute_router_endpoint_picks_total every 100 ms, so the time a dead pod was last picked is
// known to one sample), and the indexer's view checked against the pods' real caches (block counts
// per pod from /v1/pods against each pod's /debug/kv-cache, and the prefix each holds of a set of
// probe prompts from /v1/score against each pod's /debug/kv-cache/prefix).

import { setTimeout as delay } from 'node:timers/promises';
import type { ChaosPool } from './pool.ts';

export interface PickSample {
  /** ms on the traffic clock. */
  atMs: number;
  /** Cumulative picks per endpoint address, summed over the routers that answered. */
  picks: Record<string, number>;
}

const PICKS = 'kvroute_router_endpoint_picks_total';

/** Picks per endpoint in one router's /metrics page. */
function parsePicks(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${PICKS}{`)) continue;
    const m = /endpoint="([^"]+)"\}\s+(\S+)/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/**
 * Samples every live router's picks. A router's counters restart with it; per router the sampler
 * keeps the last value seen and adds only increases, so the sums stay cumulative across restarts.
 */
export class PickSampler {
  readonly samples: PickSample[] = [];
  readonly #pool: ChaosPool;
  readonly #clock: () => number;
  readonly #last = new Map<string, Record<string, number>>();
  readonly #total: Record<string, number> = {};
  #running = false;
  #loop: Promise<void> | null = null;

  constructor(pool: ChaosPool, clock: () => number) {
    this.#pool = pool;
    this.#clock = clock;
  }

  start(): void {
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      await Promise.all(
        this.#pool.routers.map(async (r) => {
          if (!r.child) {
            this.#last.delete(r.name);
            return;
          }
          try {
            const res = await fetch(r.metricsUrl, { signal: AbortSignal.timeout(1_000) });
            const now = parsePicks(await res.text());
            const before = this.#last.get(r.name) ?? {};
            for (const [address, n] of Object.entries(now)) {
              const prev = before[address] ?? 0;
              this.#total[address] = (this.#total[address] ?? 0) + (n >= prev ? n - prev : n);
            }
            this.#last.set(r.name, now);
          } catch {
            // A router being killed: its last counts stay.
          }
        }),
      );
      this.samples.push({ atMs: this.#clock(), picks: { ...this.#total } });
      await delay(100);
    }
  }

  /** Picks of `address` between two times on the traffic clock (by the samples around them). */
  picksBetween(address: string, fromMs: number, toMs: number): number {
    const at = (t: number) => {
      let v = 0;
      for (const s of this.samples) {
        if (s.atMs > t) break;
        v = s.picks[address] ?? 0;
      }
      return v;
    };
    return at(toMs) - at(fromMs);
  }

  /** The sample time of the last increase of `address`'s picks in (fromMs, toMs], or null if none. */
  lastPickBetween(address: string, fromMs: number, toMs: number): number | null {
    let last: number | null = null;
    let prev: number | null = null;
    for (const s of this.samples) {
      const v = s.picks[address] ?? 0;
      if (s.atMs > fromMs && s.atMs <= toMs + 100 && prev !== null && v > prev) last = s.atMs;
      prev = v;
    }
    return last;
  }
}

export interface IndexCheck {
  /** Per pod: blocks the indexer lists minus blocks the pod holds (negative: the index misses some). */
  countDiff: Record<string, number>;
  /** Sum of |countDiff|: a lower bound on the index entries that are wrong. */
  entriesWrong: number;
  /** (probe prompt, pod) pairs where the indexer's matched prefix differs from the pod's resident prefix. */
  probeMismatches: number;
  probes: number;
  exact: boolean;
}

async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

const post = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/**
 * The indexer against the pods' caches, for running pods only (a dead pod's cache is unknown). Block
 * counts first; probes only when every count agrees (they cost one call per probe and pod).
 */
export async function checkIndex(pool: ChaosPool, probes: readonly (readonly number[])[]): Promise<IndexCheck> {
  const live = pool.pods.filter((p) => p.child !== null);
  const indexed = await getJson<{ pods: Record<string, number> }>(`${pool.indexerUrl}/v1/pods`);
  const countDiff: Record<string, number> = {};
  let entriesWrong = 0;
  await Promise.all(
    live.map(async (p) => {
      const held = await getJson<{ blocks: number }>(`${p.url}/debug/kv-cache`);
      const diff = (indexed.pods[p.address] ?? 0) - held.blocks;
      countDiff[p.name] = diff;
      entriesWrong += Math.abs(diff);
    }),
  );
  let probeMismatches = 0;
  if (entriesWrong === 0) {
    for (const tokens of probes) {
      const scored = await getJson<{ scores: Record<string, number> }>(`${pool.indexerUrl}/v1/score`, post({ model: pool.model, tokens }));
      const held = await Promise.all(live.map((p) => getJson<{ blocks: number }>(`${p.url}/debug/kv-cache/prefix`, post({ tokens }))));
      live.forEach((p, k) => {
        if (Math.round(scored.scores[p.address] ?? 0) !== held[k]!.blocks) probeMismatches++;
      });
    }
  }
  return { countDiff, entriesWrong, probeMismatches, probes: probes.length, exact: entriesWrong === 0 && probeMismatches === 0 };
}
