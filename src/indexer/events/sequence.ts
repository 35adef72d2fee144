// Per-source sequence tracking: decides whether a batch is the next one, a duplicate, a sign that the
// publisher restarted, or the far side of a gap. Pure state, no I/O; the ingestor acts on the verdicts.
//
// vLLM numbers batches per publisher from 0 (one number per batch) and never reuses a number while it
// runs. ZMQ PUB never reorders or duplicates, so the live stream's numbers only go up, except when the
// publisher restarts. A replay reads the publisher's buffer, which can be ahead of what PUB has
// delivered yet: a live batch may then arrive after its replayed copy was applied. Such a batch is
// below the expected number but above the previous live one; a restart goes back to or below the
// previous live number. That is the distinction drawn here, on the live stream's own order.

export type SequenceVerdict =
  /** The first batch seen from the source, or the next in order: apply it. */
  | { kind: 'next' }
  /** Already applied (from a replay that ran ahead of the live stream): drop it. */
  | { kind: 'duplicate' }
  /** The live stream went backwards: the publisher restarted and numbers from 0 again. */
  | { kind: 'restart' }
  /** Batches `from`..`to` (inclusive) were never seen. */
  | { kind: 'gap'; from: number; to: number };

const NEXT: SequenceVerdict = { kind: 'next' };
const DUPLICATE: SequenceVerdict = { kind: 'duplicate' };
const RESTART: SequenceVerdict = { kind: 'restart' };

export class SequenceTracker {
  /** The sequence number expected next, or null before the first batch (and after a reset). */
  expected: number | null = null;
  /**
   * The number of the last batch that arrived on the live stream, or null before any. Kept by
   * forget(): a reset of our position does not restart the publisher's numbering.
   */
  private lastLive: number | null = null;

  /**
   * Records a batch's arrival on the live stream, in arrival order (before it is held during a
   * replay or classified), and returns true when the stream went back to or below the previous live
   * number: the publisher restarted.
   */
  arrivedLive(seq: number): boolean {
    const wentBack = this.lastLive !== null && seq <= this.lastLive;
    this.lastLive = seq;
    return wentBack;
  }

  /**
   * Classifies `seq` without changing state. `restarted` is what arrivedLive() said when the batch
   * arrived (false for a replayed batch). Any other number below the expected one is a duplicate: a
   * replayed copy, or a live batch whose replayed copy was applied first.
   */
  classify(seq: number, restarted = false): SequenceVerdict {
    const expected = this.expected;
    if (expected === null) return NEXT;
    if (restarted) return RESTART;
    if (seq === expected) return NEXT;
    if (seq < expected) return DUPLICATE;
    return { kind: 'gap', from: expected, to: seq - 1 };
  }

  /** Records that `seq` was applied. */
  accept(seq: number): void {
    this.expected = seq + 1;
  }

  /** Forgets the position: the next batch is taken as the first. */
  forget(): void {
    this.expected = null;
  }
}
