// Pool and load defaults per workload, chosen so the comparison measures routing: per-pod caches that
// hold a pod's share of the working set but not all of it (shared-prefix), or everything (traces,
// where routing and not eviction must decide); closed-loop clients well below the number of prefix
// groups, so the load bound rarely has to move a group; a time scale the pods keep up with.

export interface RunPreset {
  /** KV blocks per pod. */
  kvBlocks: number;
  /** Closed-loop clients. */
  concurrency: number;
  /** Simulated ms per wall ms. */
  timeScale: number;
}

/** The workload kind of a `--workload` spec: `shared-prefix`, `multi-turn`, `rag`, `mooncake` or `jsonl`. */
export function workloadKind(spec: string): string {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  if (kind === 'shared-prefix' || kind === 'multi-turn' || kind === 'rag' || kind === 'mooncake') return kind;
  return 'jsonl';
}

/**
 * Defaults for a workload kind. Shared-prefix quick: 12 groups of 4,000-token prompts, about 400
 * blocks per group (system prompt and the 5 users' questions), 4,800 in all. The full run's caches
 * (50,000 blocks per pod; 150 groups of about 1,060 blocks) hold 31% of its working set, 1.25 times a
 * prefix-aware router's share of the groups; 12 groups are too coarse for that (one pod given a fourth
 * or fifth group would evict), so quick caches hold 37.5% (1,800 blocks, 4.5 groups, 1.5 times the
 * share of 3). Round-robin, which brings every group to every pod, keeps evicting in both. Three
 * closed-loop clients, fewer than the pods: the comparison is about where prefixes land, not about
 * queueing. Quick pods run at 15x: at 10x the cold strategies and precise-prefix's hot spot (4,000-token
 * prefills queued on one pod) took the demo to 2.5 minutes on two cores, and the pods keep up at 15x
 * (a decode step of about 10 ms is under a wall millisecond; TTFT is reported in simulated time, so the
 * scale does not change it). Traces get caches that hold the whole first thousand requests' working set on any pod (the
 * issue's "large caches"), and half as many clients as pods.
 */
export function presetFor(kind: string, quick: boolean, pods: number): RunPreset {
  switch (kind) {
    case 'shared-prefix':
      return quick ? { kvBlocks: 1_800, concurrency: 3, timeScale: 15 } : { kvBlocks: 50_000, concurrency: 3, timeScale: 10 };
    case 'multi-turn':
      return quick ? { kvBlocks: 1_500, concurrency: 3, timeScale: 10 } : { kvBlocks: 12_000, concurrency: 3, timeScale: 10 };
    case 'rag':
      return quick ? { kvBlocks: 1_000, concurrency: 3, timeScale: 10 } : { kvBlocks: 8_000, concurrency: 3, timeScale: 10 };
    default:
      return { kvBlocks: 700_000, concurrency: Math.max(2, Math.floor(pods / 2)), timeScale: 10 };
  }
}
