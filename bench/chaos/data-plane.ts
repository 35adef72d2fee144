// The chaos suite's data-plane part: sustained traffic through a real Envoy, two router replicas
// (default profile), the indexer and simulated pods, with one fault injected at a time and then
// several together. Per scenario: failed requests, router picks of a dead or hung pod, time until the
// router stops picking it, time until the index matches the pods' caches again, and the hit rate
// before, at its lowest and after, with its recovery time. Targets from issue 10 are checked per
// scenario; the caller (bench/chaos.ts, e2e/chaos) decides what a miss means.

import { setTimeout as delay } from 'node:timers/promises';
import { createLogger } from '../../src/common/log.ts';
import { checkIndex, PickSampler, type IndexCheck } from './observe.ts';
import { until } from '../../test/support/until.ts';
import { ChaosPool, type ChaosGateway, type FailureMode } from './pool.ts';
import type { DataPlaneReport, DataPlaneScenarioResult, TargetCheck } from './report.ts';
import { hitRate, Traffic, type RequestRecord } from './traffic.ts';

export interface DataPlaneOptions {
  quick: boolean;
  progress: (line: string) => void;
  /** Run only these scenarios (by name), in suite order. */
  only?: readonly string[];
  /** Keep the children's logs here (default: a temporary directory). */
  logDir?: string;
}

/** The router's --metrics-staleness-threshold default: how long a hung pod's last metrics count. */
const STALENESS_MS = 2_000;
/** Slack on top of a bound for one scrape timeout and the 100 ms pick sampling. */
const SAMPLING_SLACK_MS = 700;
const WINDOW_MS = 2_000;

interface Timing {
  baseMs: number;
  faultMs: number;
  afterMs: number;
  ratePerS: number;
}

interface Ctx {
  pool: ChaosPool;
  traffic: Traffic;
  picks: PickSampler;
  timing: Timing;
  progress: (line: string) => void;
  /** The gateway traffic goes through now. */
  gateway: ChaosGateway;
  mainGateway: ChaosGateway;
}

/** What a scenario tells the measuring code. */
interface Injected {
  /** When the fault began (traffic clock). */
  faultAtMs: number;
  /** When it ended (the part is back, the stall or drops over); null when it never does. */
  recoveredAtMs: number | null;
  /** The pod that died or hung, and until when it was dead (its restart), for the pick figures. */
  deadPod?: { address: string; untilMs: number };
  /** The staleness-bounded hang case: picks are allowed up to this bound after the fault. */
  pickBoundMs?: number;
  /** Check the index after recovery (the scenarios that disturb events or the index). */
  checkIndex: boolean;
  /** The index must be exact within 2 s (false: figures only; every scenario that checks the index asserts it now). */
  indexTarget?: boolean;
  /** Zero failed requests is a target here. */
  expectNoFailures?: boolean;
  /** A router kill: when Envoy's health check marked the killed router unhealthy, ms after the kill. */
  routerEjectedAfterMs?: number | null;
  notes?: string[];
}

interface Scenario {
  name: string;
  description: string;
  run(ctx: Ctx): Promise<Injected>;
}

async function resetPrefixCache(url: string): Promise<boolean> {
  const res = await fetch(`${url}/reset_prefix_cache?reset_running_requests=true`, { method: 'POST', signal: AbortSignal.timeout(5_000) });
  const body = (await res.json()) as { success?: unknown };
  return body.success === true;
}

async function ingestion(ctx: Ctx): Promise<{ gaps: number; replays: number; resets: number } | null> {
  try {
    const res = await fetch(`${ctx.pool.indexerUrl}/v1/pods`, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json()) as { ingestion?: { gaps?: number; replays?: number; resets?: number } };
    const i = body.ingestion ?? {};
    return { gaps: i.gaps ?? 0, replays: i.replays ?? 0, resets: i.resets ?? 0 };
  } catch {
    return null;
  }
}

async function withGateway(
  ctx: Ctx,
  failureMode: FailureMode,
  routers: readonly number[],
  body: () => Promise<Injected>,
): Promise<Injected> {
  const g = await ctx.pool.startGateway(failureMode, routers);
  ctx.gateway = g;
  try {
    return await body();
  } finally {
    ctx.gateway = ctx.mainGateway;
    // New requests go to the main gateway from here; those already sent to this one finish first, so
    // stopping it fails none of them (its failures would be counted against the scenario).
    await ctx.traffic.drainTo(g.url);
    await ctx.pool.stopGateway(g);
  }
}

/**
 * SIGKILLs router `i` and watches, in the background, how long Envoy's health check takes to mark it
 * unhealthy (the window in which new ext_proc streams still go to the dead router).
 */
async function killRouterWatched(ctx: Ctx, i: number): Promise<{ at: number; ejected: Promise<number | null> }> {
  await ctx.pool.killRouter(i);
  const at = ctx.traffic.now();
  const gateway = ctx.gateway;
  const ejected = (async () => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        if ((await ctx.pool.routerHealthyInEnvoy(gateway, i)) === false) return ctx.traffic.now() - at;
      } catch {
        // admin API busy
      }
      await delay(50);
    }
    return null;
  })();
  return { at, ejected };
}

const ejectedNote = (ms: number | null): string =>
  ms === null
    ? "Envoy's health check did not mark the killed router unhealthy within 10 s"
    : `Envoy's health check marked the killed router unhealthy ${Math.round(ms)} ms after the kill`;

const SCENARIOS: Scenario[] = [
  {
    name: 'baseline',
    description: 'no fault: the reference hit rate, and the index compared with the pods while nothing runs',
    async run(ctx) {
      const at = ctx.traffic.now();
      await delay(ctx.timing.faultMs);
      return { faultAtMs: at, recoveredAtMs: ctx.traffic.now(), checkIndex: true, expectNoFailures: true };
    },
  },
  {
    name: 'pod-killed',
    description: 'sim-1 SIGKILLed, restarted on the same ports with an empty cache (its event sequence restarts at 0)',
    async run(ctx) {
      await ctx.pool.killPod(1);
      const at = ctx.traffic.now();
      await delay(ctx.timing.faultMs);
      const restartAt = ctx.traffic.now();
      await ctx.pool.restartPod(1);
      const back = ctx.traffic.now();
      return {
        faultAtMs: at,
        recoveredAtMs: back,
        // Dead until the restarted process listens again (its start takes a while on a busy machine).
        deadPod: { address: ctx.pool.pods[1]!.address, untilMs: back },
        checkIndex: true,
        notes: [
          `restarted ${Math.round(restartAt - at)} ms after the kill; the new process served after another ${Math.round(back - restartAt)} ms`,
        ],
      };
    },
  },
  {
    name: 'pod-hung',
    description: 'sim-1 accepts connections and never answers (API and /metrics), then answers again',
    async run(ctx) {
      await ctx.pool.setPodFaults(1, { hang: true });
      const at = ctx.traffic.now();
      await delay(Math.max(ctx.timing.faultMs, STALENESS_MS * 2));
      const until = ctx.traffic.now();
      await ctx.pool.setPodFaults(1, { hang: false });
      return {
        faultAtMs: at,
        recoveredAtMs: ctx.traffic.now(),
        deadPod: { address: ctx.pool.pods[1]!.address, untilMs: until },
        pickBoundMs: STALENESS_MS,
        checkIndex: false,
        notes: ['requests already sent to the hung pod fail at the client timeout; the router drops it once its metrics are stale'],
      };
    },
  },
  {
    name: 'metrics-stalled',
    description: "sim-1's /metrics never answers while its API serves",
    async run(ctx) {
      await ctx.pool.setPodFaults(1, { metricsStall: true });
      const at = ctx.traffic.now();
      await delay(Math.max(ctx.timing.faultMs, STALENESS_MS * 2));
      await ctx.pool.setPodFaults(1, { metricsStall: false });
      return {
        faultAtMs: at,
        recoveredAtMs: ctx.traffic.now(),
        checkIndex: false,
        expectNoFailures: true,
        notes: [
          'the router cannot tell a stalled /metrics from a hung engine: after the staleness bound it stops picking the pod until a scrape succeeds',
        ],
      };
    },
  },
  {
    name: 'event-batches-dropped',
    description: 'every pod drops half of its KV-event batches (never sent on PUB, still replayable)',
    async run(ctx) {
      await Promise.all(ctx.pool.pods.map((_, i) => ctx.pool.setPodFaults(i, { dropEventBatchRate: 0.5 })));
      const at = ctx.traffic.now();
      await delay(ctx.timing.faultMs);
      await Promise.all(ctx.pool.pods.map((_, i) => ctx.pool.setPodFaults(i, { dropEventBatchRate: 0 })));
      return { faultAtMs: at, recoveredAtMs: ctx.traffic.now(), checkIndex: true, expectNoFailures: true };
    },
  },
  {
    name: 'publisher-stalled',
    description: "sim-0's and sim-1's event publishers send nothing for the fault's length (batches queue, then flush)",
    async run(ctx) {
      await Promise.all([0, 1].map((i) => ctx.pool.setPodFaults(i, { publisherStallMs: ctx.timing.faultMs })));
      const at = ctx.traffic.now();
      await delay(ctx.timing.faultMs);
      return { faultAtMs: at, recoveredAtMs: ctx.traffic.now(), checkIndex: true, expectNoFailures: true };
    },
  },
  {
    name: 'all-blocks-cleared',
    description: "sim-0's prefix cache reset under traffic (running requests reset too): AllBlocksCleared with its next step",
    async run(ctx) {
      const at = ctx.traffic.now();
      await until(() => resetPrefixCache(ctx.pool.pods[0]!.url), {
        message: 'sim-0 to reset its prefix cache',
        timeoutMs: 10_000,
        intervalMs: 25,
      });
      return { faultAtMs: at, recoveredAtMs: ctx.traffic.now(), checkIndex: true, expectNoFailures: true };
    },
  },
  {
    name: 'indexer-killed',
    description: 'the indexer SIGKILLed, restarted on the same ports: routers keep routing on the other scorers meanwhile',
    async run(ctx) {
      const before = await ingestion(ctx);
      await ctx.pool.killIndexer();
      const at = ctx.traffic.now();
      await delay(ctx.timing.faultMs);
      await ctx.pool.startIndexer();
      return {
        faultAtMs: at,
        recoveredAtMs: ctx.traffic.now(),
        checkIndex: true,
        expectNoFailures: true,
        notes: [
          "the restarted indexer starts empty; on the first batch it sees from a pod it asks the pod's replay endpoint for every batch from 0 " +
            'and learns what the publisher still buffers (the simulator keeps --kv-events-buffer-steps batches, default 10000: ' +
            'blocks stored longer ago than that stay unknown until evicted or stored again)',
          `before the kill the indexer had seen ${before?.gaps ?? '?'} gaps and run ${before?.replays ?? '?'} replays`,
        ],
      };
    },
  },
  {
    name: 'router-killed-failopen',
    description: 'router-1 SIGKILLed while both replicas serve behind one Envoy (FailOpen, router health-checked), then restarted',
    async run(ctx) {
      const { at, ejected } = await killRouterWatched(ctx, 1);
      await delay(ctx.timing.faultMs);
      await ctx.pool.startRouter(1);
      return {
        faultAtMs: at,
        recoveredAtMs: ctx.traffic.now(),
        checkIndex: false,
        expectNoFailures: true,
        routerEjectedAfterMs: await ejected,
        notes: [ejectedNote(await ejected)],
      };
    },
  },
  {
    name: 'router-killed-failclose',
    description: 'router-1 SIGKILLed while both serve, behind an Envoy with FailClose (failure_mode_allow false)',
    run: (ctx) =>
      withGateway(ctx, 'FailClose', [0, 1], async () => {
        await delay(1_000);
        const { at, ejected } = await killRouterWatched(ctx, 1);
        await delay(ctx.timing.faultMs);
        await ctx.pool.startRouter(1);
        const ejectedMs = await ejected;
        return {
          faultAtMs: at,
          recoveredAtMs: ctx.traffic.now(),
          checkIndex: false,
          routerEjectedAfterMs: ejectedMs,
          notes: [
            'FailClose: a request whose ext_proc stream was on the dead router fails; the health check moves new streams to the live one',
            ejectedNote(ejectedMs),
          ],
        };
      }),
  },
  {
    name: 'only-router-killed-failopen',
    description: 'the only router behind an Envoy with FailOpen SIGKILLed: requests go to the fallback pool round robin until it is back',
    run: (ctx) =>
      withGateway(ctx, 'FailOpen', [0], async () => {
        await delay(1_000);
        const { at, ejected } = await killRouterWatched(ctx, 0);
        await delay(ctx.timing.faultMs);
        await ctx.pool.startRouter(0);
        await delay(1_000); // Envoy's health check sees it again
        return {
          faultAtMs: at,
          recoveredAtMs: ctx.traffic.now(),
          checkIndex: false,
          expectNoFailures: true,
          routerEjectedAfterMs: await ejected,
          notes: [ejectedNote(await ejected)],
        };
      }),
  },
  {
    name: 'only-router-killed-failclose',
    description: 'the only router behind an Envoy with FailClose SIGKILLed: every request fails until it is back',
    run: (ctx) =>
      withGateway(ctx, 'FailClose', [0], async () => {
        await delay(1_000);
        const { at, ejected } = await killRouterWatched(ctx, 0);
        await delay(ctx.timing.faultMs);
        const restartAt = ctx.traffic.now();
        await ctx.pool.startRouter(0);
        const back = ctx.traffic.now();
        await delay(1_000);
        return {
          faultAtMs: at,
          recoveredAtMs: ctx.traffic.now(),
          checkIndex: false,
          routerEjectedAfterMs: await ejected,
          notes: [
            `FailClose without a live router: failures are the expected outcome, for the ${Math.round(back - at)} ms until it was back (its restart took ${Math.round(back - restartAt)} ms)`,
            ejectedNote(await ejected),
          ],
        };
      }),
  },
  {
    name: 'combined',
    description:
      'together: sim-2 SIGKILLed, sim-0 and sim-1 drop half their event batches, the indexer and router-1 SIGKILLed; all restored after the fault',
    async run(ctx) {
      await Promise.all([
        ctx.pool.killPod(2),
        ctx.pool.setPodFaults(0, { dropEventBatchRate: 0.5 }),
        ctx.pool.setPodFaults(1, { dropEventBatchRate: 0.5 }),
        ctx.pool.killIndexer(),
        ctx.pool.killRouter(1),
      ]);
      const at = ctx.traffic.now();
      await delay(ctx.timing.faultMs);
      let podBack = 0;
      await Promise.all([
        ctx.pool.setPodFaults(0, { dropEventBatchRate: 0 }),
        ctx.pool.setPodFaults(1, { dropEventBatchRate: 0 }),
        ctx.pool.startIndexer().then(() => ctx.pool.startRouter(1)),
        ctx.pool.restartPod(2).then(() => (podBack = ctx.traffic.now())),
      ]);
      return {
        faultAtMs: at,
        recoveredAtMs: ctx.traffic.now(),
        deadPod: { address: ctx.pool.pods[2]!.address, untilMs: podBack },
        checkIndex: true,
        notes: ['the indexer restarts here too: it relearns what the pods stored before from their replay buffers (see indexer-killed)'],
      };
    },
  },
];

const DATA_PLANE_SCENARIOS: readonly string[] = SCENARIOS.map((s) => s.name);

interface IndexMeasure {
  /** From the end of the fault until the index matched the pods (null: not within the timeout). */
  exactAfterMs: number | null;
  /** Of which the pods spent this long finishing the requests in flight (the index is compared only when they are idle). */
  drainMs: number;
  last: IndexCheck | null;
}

/**
 * Pauses traffic at the end of the fault, waits for the requests in flight, sends each live pod one
 * request of its own (a new event batch, which reveals a gap at the end of the fault to the indexer),
 * then compares the index with the pods every 100 ms until it is exact or `timeoutMs` passed.
 */
async function measureIndex(ctx: Ctx, fromMs: number, timeoutMs: number): Promise<IndexMeasure> {
  await ctx.traffic.pause();
  const drainMs = ctx.traffic.now() - fromMs;
  const deadline = Date.now() + timeoutMs;
  let last: IndexCheck | null = null;
  try {
    await Promise.all(ctx.pool.pods.filter((p) => p.child !== null).map((p, i) => nudge(p.url, ctx.pool.model, i).catch(() => undefined)));
    for (;;) {
      try {
        last = await checkIndex(ctx.pool, [...ctx.traffic.prefixes.slice(0, 8), ...ctx.traffic.recentPrompts.slice(-8)]);
        if (last.exact) return { exactAfterMs: ctx.traffic.now() - fromMs, drainMs, last };
      } catch {
        // The indexer may still be starting its HTTP side.
      }
      if (Date.now() > deadline) return { exactAfterMs: null, drainMs, last };
      await delay(100);
    }
  } finally {
    ctx.traffic.resume();
  }
}

let nudges = 0;
/** One small request straight to a pod: a fresh two-block prompt, so the pod publishes a batch. */
async function nudge(url: string, model: string, pod: number): Promise<void> {
  const n = nudges++;
  const prompt = Array.from({ length: 33 }, (_, k) => 150_000 + ((n * 97 + pod * 13 + k) % 40_000));
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt, max_tokens: 1 }),
    signal: AbortSignal.timeout(5_000),
  });
  await res.text();
}

function failureReasons(records: readonly RequestRecord[]): Array<{ reason: string; count: number }> {
  const counts = new Map<string, number>();
  for (const r of records) {
    if (r.ok) continue;
    const reason = (r.error ?? 'unknown').replace(/\d{2,}/g, 'N').slice(0, 100);
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([reason, count]) => ({ reason, count }));
}

/** Hit rate over sliding 2 s windows (250 ms steps) of at least 8 requests. */
function windows(records: readonly RequestRecord[], fromMs: number, toMs: number): Array<{ atMs: number; rate: number }> {
  const out: Array<{ atMs: number; rate: number }> = [];
  for (let t = fromMs; t + WINDOW_MS <= toMs; t += 250) {
    const n = records.filter((r) => r.ok && r.endMs >= t && r.endMs < t + WINDOW_MS).length;
    if (n < 8) continue;
    out.push({ atMs: t, rate: hitRate(records, t, t + WINDOW_MS)! });
  }
  return out;
}

function summarize(
  s: Scenario,
  ctx: Ctx,
  inj: Injected,
  endMs: number,
  index: IndexMeasure | null,
  ingest: { gaps: number; replays: number; resets: number } | null,
): DataPlaneScenarioResult {
  const records = ctx.traffic.records.filter((r) => r.sentMs >= inj.faultAtMs && r.sentMs < endMs);
  const failed = records.filter((r) => !r.ok).length;
  // Seen from the client: Envoy could not connect to the pod it was sent to (the router's pick, or the fallback pool's).
  const connectFailures = records.filter((r) => !r.ok && /upstream connect error|connection failure/.test(r.error ?? ''));
  const before = hitRate(ctx.traffic.records, inj.faultAtMs - ctx.timing.baseMs, inj.faultAtMs);
  const ws = windows(ctx.traffic.records, inj.faultAtMs, endMs);
  const lowest = ws.length === 0 ? null : Math.min(...ws.map((w) => w.rate));
  const after = hitRate(ctx.traffic.records, endMs - WINDOW_MS, endMs);
  let recoveryMs: number | null = null;
  if (before !== null && lowest !== null) {
    if (lowest >= 0.9 * before) recoveryMs = 0;
    else {
      const low = ws.findIndex((w) => w.rate === lowest);
      const back = ws.slice(low).find((w) => w.rate >= 0.9 * before);
      recoveryMs = back ? back.atMs - inj.faultAtMs : null;
    }
  }

  const targets: TargetCheck[] = [];
  let deadPodPicks: number | null = null;
  let deadPodPicksAfter1s: number | null = null;
  let stopPickingMs: number | null = null;
  if (inj.deadPod) {
    const { address, untilMs } = inj.deadPod;
    deadPodPicks = ctx.picks.picksBetween(address, inj.faultAtMs, untilMs);
    const bound = inj.pickBoundMs ?? 1_000;
    const last = ctx.picks.lastPickBetween(address, inj.faultAtMs, untilMs);
    stopPickingMs = last === null ? 0 : last - inj.faultAtMs;
    const picksPastBound = ctx.picks.picksBetween(address, inj.faultAtMs + bound + SAMPLING_SLACK_MS, untilMs);
    deadPodPicksAfter1s = ctx.picks.picksBetween(address, inj.faultAtMs + 1_000 + SAMPLING_SLACK_MS, untilMs);
    targets.push({
      target: inj.pickBoundMs
        ? `no pick of the hung pod later than the ${bound} ms staleness bound`
        : 'no pick of a killed pod later than 1 s after its death',
      value: picksPastBound,
      bound: `0 picks after ${bound} ms (+${SAMPLING_SLACK_MS} ms scrape timeout and sampling)`,
      met: picksPastBound === 0,
    });
  }
  if (inj.checkIndex && index && inj.indexTarget !== false) {
    const lag = index.exactAfterMs === null ? null : index.exactAfterMs - index.drainMs;
    targets.push({
      target: 'index entries exact again within 2 s of the gap (requests in flight excluded)',
      value: lag,
      bound: '<= 2000 ms after the pods finished the requests in flight',
      met: lag !== null && lag <= 2_000,
    });
  }
  if (inj.expectNoFailures) targets.push({ target: 'zero failed requests', value: failed, bound: '0', met: failed === 0 });

  const ejected = inj.routerEjectedAfterMs;
  const failedAfterGatewayNoticed =
    ejected === undefined || ejected === null
      ? null
      : // While the router is down (its restart begins faultMs after the kill), more than 1 s after Envoy noticed.
        records.filter((r) => !r.ok && r.sentMs > inj.faultAtMs + ejected + 1_000 && r.sentMs < inj.faultAtMs + ctx.timing.faultMs).length;
  return {
    name: s.name,
    description: s.description,
    routerEjectedAfterMs: ejected === undefined || ejected === null ? null : Math.round(ejected),
    failedAfterGatewayNoticed,
    requests: records.length,
    failedRequests: failed,
    failureReasons: failureReasons(records),
    failuresSentBetweenMs:
      failed === 0
        ? null
        : [
            Math.round(Math.min(...records.filter((r) => !r.ok).map((r) => r.sentMs)) - inj.faultAtMs),
            Math.round(Math.max(...records.filter((r) => !r.ok).map((r) => r.sentMs)) - inj.faultAtMs),
          ],
    recoveredAfterMs: inj.recoveredAtMs === null ? null : Math.round(inj.recoveredAtMs - inj.faultAtMs),
    deadPodPicks,
    deadPodPicksAfter1s,
    podConnectFailures: connectFailures.length,
    podConnectFailuresAfter1s: connectFailures.filter((r) => r.sentMs > inj.faultAtMs + 1_000).length,
    stopPickingMs,
    indexExactAfterMs: index?.exactAfterMs ?? null,
    indexDrainMs: index ? index.drainMs : null,
    indexEntriesWrong: index?.last?.entriesWrong ?? null,
    indexCountDiff: index?.last?.countDiff ?? null,
    indexProbeMismatches: index?.last ? index.last.probeMismatches : null,
    hitRateBefore: before,
    hitRateLowest: lowest,
    hitRateAfter: after,
    hitRateRecoveryMs: recoveryMs,
    indexer: ingest,
    targets,
    notes: inj.notes ?? [],
  };
}

/** Runs the data-plane scenarios (the short form with `quick`) and returns their figures. */
export async function runDataPlaneChaos(opts: DataPlaneOptions): Promise<DataPlaneReport> {
  const timing: Timing = opts.quick
    ? { baseMs: 3_000, faultMs: 3_000, afterMs: 3_000, ratePerS: 16 }
    : { baseMs: 6_000, faultMs: 6_000, afterMs: 8_000, ratePerS: 30 };
  const settings = { pods: 4, groups: 12, prefixTokens: 512, suffixTokens: 64, timeScale: 4 };
  const log = createLogger({ level: 'warn', component: 'chaos', write: (line) => opts.progress(line) });
  const selected = SCENARIOS.filter((s) => !opts.only || opts.only.includes(s.name));
  if (opts.only)
    for (const name of opts.only)
      if (!DATA_PLANE_SCENARIOS.includes(name))
        throw new Error(`unknown data-plane scenario "${name}"; expected some of ${DATA_PLANE_SCENARIOS.join(', ')}`);

  opts.progress('data plane: starting 4 pods, the indexer and two routers');
  const pool = await ChaosPool.start({
    pods: settings.pods,
    model: 'chaos-model',
    blockSize: 16,
    // Room for every block a run stores: nothing is evicted, so the index check measures gaps, not the
    // eviction of a hash two blocks held (see the README's Reliability section).
    kvBlocks: 32_768,
    timeScale: settings.timeScale,
    log,
    ...(opts.logDir !== undefined ? { logDir: opts.logDir } : {}),
  });
  let traffic: Traffic | null = null;
  let picks: PickSampler | null = null;
  try {
    const mainGateway = await pool.startGateway('FailOpen', [0, 1]);
    const ctx: Ctx = {
      pool,
      traffic: null as unknown as Traffic,
      picks: null as unknown as PickSampler,
      timing,
      progress: opts.progress,
      gateway: mainGateway,
      mainGateway,
    };
    traffic = new Traffic({
      url: () => ctx.gateway.url,
      model: pool.model,
      ratePerS: timing.ratePerS,
      groups: settings.groups,
      prefixTokens: settings.prefixTokens,
      suffixTokens: settings.suffixTokens,
      maxTokens: 4,
      timeoutMs: 5_000,
      seed: 7,
    });
    picks = new PickSampler(pool, () => traffic!.now());
    ctx.traffic = traffic;
    ctx.picks = picks;
    traffic.start();
    picks.start();
    opts.progress(`data plane: pool up (logs in ${pool.logDir}); warming caches`);
    await delay(timing.baseMs * 2);

    const results: DataPlaneScenarioResult[] = [];
    for (const s of selected) {
      opts.progress(`data plane: ${s.name}: ${s.description}`);
      await delay(timing.baseMs);
      const ingestBefore = await ingestion(ctx);
      const inj = await s.run(ctx);
      const index = inj.checkIndex && inj.recoveredAtMs !== null ? await measureIndex(ctx, inj.recoveredAtMs, 10_000) : null;
      await delay(timing.afterMs);
      const endMs = traffic.now();
      const ingestAfter = await ingestion(ctx);
      const ingest =
        ingestBefore && ingestAfter
          ? s.name === 'indexer-killed' || s.name === 'combined'
            ? ingestAfter
            : {
                gaps: ingestAfter.gaps - ingestBefore.gaps,
                replays: ingestAfter.replays - ingestBefore.replays,
                resets: ingestAfter.resets - ingestBefore.resets,
              }
          : null;
      const result = summarize(s, ctx, inj, endMs, index, ingest);
      results.push(result);
      const missed = result.targets.filter((t) => !t.met);
      opts.progress(
        `data plane: ${s.name}: ${result.failedRequests}/${result.requests} failed, index exact after ${result.indexExactAfterMs ?? '-'} ms, ` +
          `stop picking ${result.stopPickingMs ?? '-'} ms${missed.length > 0 ? `; MISSED ${missed.map((t) => t.target).join('; ')}` : ''}`,
      );
    }
    return {
      settings: {
        pods: settings.pods,
        routers: 2,
        gateway: 'envoy',
        ratePerS: timing.ratePerS,
        groups: settings.groups,
        promptTokens: settings.prefixTokens + settings.suffixTokens,
        timeScale: settings.timeScale,
        faultMs: timing.faultMs,
        quick: opts.quick,
      },
      scenarios: results,
    };
  } finally {
    await traffic?.stop();
    await picks?.stop();
    await pool.stop();
  }
}
