// Longest-prefix scoring, pure: for each source, the run of consecutive blocks from block 0 it holds,
// each block weighted by the best tier the source holds it in. A source without block 0 scores
// nothing; sources matching nothing are left out. Stops as soon as no candidate remains.

/**
 * Writes the holders of block key (hi:lo) into `sources` / `weights` (same index) and returns how
 * many; a source may appear more than once (one entry per tier). Must not write beyond `capacity`.
 */
export type BlockHolderLookup = (lo: number, hi: number, sources: Int32Array, weights: Float64Array) => number;

export interface PrefixScores {
  /** Source ids with a non-zero score, in first-seen order. */
  sources: number[];
  /** Score per source id (index by source id). */
  scores: Float64Array;
  /** Blocks matched per source id. */
  blocks: Int32Array;
}

/**
 * Buffers one scorer reuses across calls, so a score allocates nothing per block or per source.
 * Per-source marks are stamped with a running epoch instead of being cleared between calls.
 */
export class ScoreScratch {
  scores = new Float64Array(0);
  blocks = new Int32Array(0);
  stamp = new Int32Array(0);
  best = new Float64Array(0);
  holderSources = new Int32Array(0);
  holderWeights = new Float64Array(0);
  /** A pod filter by source id, for callers that restrict candidates. */
  allowed = new Uint8Array(0);
  active: number[] = [];
  /** Marks of the last call are below this. */
  epoch = 0;

  /** Sizes the buffers for `sourceLimit` sources and `maxHolders` holders per lookup. */
  prepare(sourceLimit: number, maxHolders: number, blockCount: number): void {
    if (this.scores.length < sourceLimit) {
      const size = Math.max(sourceLimit, this.scores.length * 2);
      this.scores = new Float64Array(size);
      this.blocks = new Int32Array(size);
      this.stamp = new Int32Array(size);
      this.best = new Float64Array(size);
      this.allowed = new Uint8Array(size);
      this.epoch = 0;
    }
    if (this.holderSources.length < maxHolders) {
      this.holderSources = new Int32Array(maxHolders);
      this.holderWeights = new Float64Array(maxHolders);
    }
    // Marks run from epoch + 1 to epoch + blockCount; restart before they could overflow int32.
    if (this.epoch + blockCount + 1 >= 0x7fffffff) {
      this.stamp.fill(0);
      this.epoch = 0;
    }
  }
}

/**
 * Scores `blockCount` block keys, given as (lo, hi) pairs in `keys`, against the holders `lookup`
 * reports. `sourceLimit` bounds source ids; `allowed` (by source id, optional) restricts candidates;
 * `maxHolders` bounds how many holders one lookup can report. With a `scratch`, the result's
 * arrays are the scratch's and valid until its next use.
 */
export function scoreLongestPrefix(
  keys: Uint32Array,
  blockCount: number,
  lookup: BlockHolderLookup,
  sourceLimit: number,
  maxHolders: number,
  allowed?: Uint8Array,
  scratch: ScoreScratch = new ScoreScratch(),
): PrefixScores {
  scratch.prepare(sourceLimit, maxHolders, blockCount);
  const { scores, blocks, stamp, best, holderSources, holderWeights } = scratch;
  const active = scratch.active;
  active.length = 0;
  const result: PrefixScores = { sources: [], scores, blocks };
  if (blockCount === 0) return result;
  // Per source: the best weight seen for block b, valid when stamp equals base + b + 1.
  const base = scratch.epoch;
  scratch.epoch = base + blockCount + 1;

  let mark = base + 1;
  let n = lookup(keys[0]!, keys[1]!, holderSources, holderWeights);
  for (let h = 0; h < n; h++) {
    const s = holderSources[h]!;
    if (allowed && allowed[s] !== 1) continue;
    const w = holderWeights[h]!;
    if (stamp[s] !== mark) {
      stamp[s] = mark;
      best[s] = w;
      active.push(s);
    } else if (w > best[s]!) {
      best[s] = w;
    }
  }
  for (const s of active) {
    scores[s] = best[s]!;
    blocks[s] = 1;
    result.sources.push(s);
  }

  let live = active.length;
  for (let b = 1; b < blockCount && live > 0; b++) {
    n = lookup(keys[2 * b]!, keys[2 * b + 1]!, holderSources, holderWeights);
    if (n === 0) break;
    mark = base + b + 1;
    for (let h = 0; h < n; h++) {
      const s = holderSources[h]!;
      const w = holderWeights[h]!;
      if (stamp[s] !== mark) {
        stamp[s] = mark;
        best[s] = w;
      } else if (w > best[s]!) {
        best[s] = w;
      }
    }
    let kept = 0;
    for (let i = 0; i < live; i++) {
      const s = active[i]!;
      if (stamp[s] === mark) {
        scores[s] = scores[s]! + best[s]!;
        blocks[s]!++;
        active[kept++] = s;
      }
    }
    live = kept;
  }
  return result;
}
