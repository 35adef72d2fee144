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
 * Defaults for a workload kind. Shared-prefix quick: 12 groups of 1,700-token prompts, about 163
 * blocks per group; 800 blocks per pod hold a prefix-aware router's 3 groups per pod with room for
 * an uneven split, while round-robin, which brings every group to every pod, keeps evicting. The
 * full run's 150 groups of 7,200-token prompts (1,000 output tokens) take about 1,060 blocks each;
 * 50,000 per pod hold a quarter of them with the same room. Three closed-loop clients: with the load
 * bound's floor of 2 requests a warm pod rarely has to shed one (at 4+ clients on 4 pods the bound
 * moves 10-25% of requests off their warm pod, and each move costs a cold prefill). Traces get
 * caches that hold the whole first thousand requests' working set on any pod (the issue's "large
 * caches"), and half as many clients as pods.
 */
export function presetFor(kind: string, quick: boolean, pods: number): RunPreset {
  switch (kind) {
    case 'shared-prefix':
      return quick ? { kvBlocks: 800, concurrency: 3, timeScale: 10 } : { kvBlocks: 50_000, concurrency: 3, timeScale: 10 };
    case 'multi-turn':
      return quick ? { kvBlocks: 1_500, concurrency: 3, timeScale: 10 } : { kvBlocks: 12_000, concurrency: 3, timeScale: 10 };
    case 'rag':
      return quick ? { kvBlocks: 1_000, concurrency: 3, timeScale: 10 } : { kvBlocks: 8_000, concurrency: 3, timeScale: 10 };
    default:
      return { kvBlocks: 700_000, concurrency: Math.max(2, Math.floor(pods / 2)), timeScale: 10 };
  }
}
