// The indexer benchmark's workload, shared by bench/indexer.ts, its ZMQ publisher thread and (by
// construction) hack/llmd-bench.sh's Go wrapper: 32 pods, 16-token blocks, an 8k-token prompt of
// which pod p holds the first (p + 1) * 16 blocks, and 2k-token filler prompts per pod up to ~1M
// (block, pod) entries. Token ids come from the same LCG on both sides.

export const PODS = 32;
export const BLOCK_SIZE = 16;
export const SHARED_BLOCKS = 512;
export const FILLER_BLOCKS = 128;
const TARGET_ENTRIES = 1_000_000;
/** Filler prompts arrive as one prefill BlockStored of this many blocks, then one event per block. */
export const PREFILL_BLOCKS = 112;
/** The model every pod's topic names; scoring asks for it, as production scores one model's pods. */
export const MODEL = 'bench-model';

/** Numerical Recipes LCG; token = state >>> 15 (as the Go wrapper does). */
export function lcgTokens(seed: number, n: number): Uint32Array {
  const out = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 15;
  }
  return out;
}

export const sharedPrompt = (): Uint32Array => lcgTokens(7, SHARED_BLOCKS * BLOCK_SIZE);
export const sharedBlocksOf = (pod: number): number => (pod + 1) * (SHARED_BLOCKS / PODS);

export function fillerPromptsPerPod(): number {
  let shared = 0;
  for (let p = 0; p < PODS; p++) shared += sharedBlocksOf(p);
  return Math.floor((TARGET_ENTRIES - shared) / PODS / FILLER_BLOCKS);
}

export const fillerSeed = (pod: number, i: number): number => 1000 + pod * 100000 + i;

export const podName = (pod: number): string => `pod-${pod}`;
