// Per-source sequence tracking: decides whether a batch is the next one, a duplicate, a sign that the
// publisher restarted, or the far side of a gap. Pure state, no I/O; the ingestor acts on the verdicts.

export type SequenceVerdict =
  /** The first batch seen from the source, or the next in order: apply it. */
  | { kind: 'next' }
  /** Already applied (a replay overlapping the live stream): drop it. */
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
   * Classifies `seq` without changing state. `live` is true for the publisher's PUB stream, where
   * ZMQ never duplicates or reorders, so a lower number can only mean a restart; batches replayed
   * or held back during a replay are not live, and a lower number there is a duplicate.
   */
  classify(seq: number, live: boolean): SequenceVerdict {
    const expected = this.expected;
    if (expected === null || seq === expected) return NEXT;
    if (seq < expected) return live ? RESTART : DUPLICATE;
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
