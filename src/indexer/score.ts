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
 * Scores `blockCount` block keys, given as (lo, hi) pairs in `keys`, against the holders `lookup`
 * reports. `sourceLimit` bounds source ids; `allowed` (by source id, optional) restricts candidates;
 * `maxHolders` bounds how many holders one lookup can report.
 */
export function scoreLongestPrefix(
  keys: Uint32Array,
  blockCount: number,
  lookup: BlockHolderLookup,
  sourceLimit: number,
  maxHolders: number,
  allowed?: Uint8Array,
): PrefixScores {
  const scores = new Float64Array(sourceLimit);
  const blocks = new Int32Array(sourceLimit);
  const result: PrefixScores = { sources: [], scores, blocks };
  if (blockCount === 0) return result;
  const holderSources = new Int32Array(maxHolders);
  const holderWeights = new Float64Array(maxHolders);
  // Per source: the best weight seen for the current block, valid when stamp equals the block number + 1.
  const stamp = new Int32Array(sourceLimit);
  const best = new Float64Array(sourceLimit);

  let n = lookup(keys[0]!, keys[1]!, holderSources, holderWeights);
  const active: number[] = [];
  for (let h = 0; h < n; h++) {
    const s = holderSources[h]!;
    if (allowed && allowed[s] !== 1) continue;
    const w = holderWeights[h]!;
    if (stamp[s] !== 1) {
      stamp[s] = 1;
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
    const mark = b + 1;
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
