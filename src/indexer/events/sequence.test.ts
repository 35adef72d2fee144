import { describe, it, expect } from '@jest/globals';
import { SequenceTracker } from './sequence.ts';

/** Feeds live batches as the ingestor does: arrival first, then the verdict, then accept on next. */
function live(t: SequenceTracker, seq: number): string {
  const verdict = t.classify(seq, t.arrivedLive(seq));
  if (verdict.kind === 'next' || verdict.kind === 'restart') t.accept(seq);
  return verdict.kind;
}

function replayed(t: SequenceTracker, seq: number): string {
  const verdict = t.classify(seq);
  if (verdict.kind === 'next') t.accept(seq);
  return verdict.kind;
}

describe('SequenceTracker', () => {
  it('takes the first batch seen at any number, then expects the next one', () => {
    const t = new SequenceTracker();
    expect(live(t, 41)).toBe('next');
    expect(t.classify(42)).toEqual({ kind: 'next' });
  });

  it('reports the missing range of a gap', () => {
    const t = new SequenceTracker();
    live(t, 3);
    expect(t.classify(7, t.arrivedLive(7))).toEqual({ kind: 'gap', from: 4, to: 6 });
  });

  it('calls a live stream that goes back a restart, and a lower replayed number a duplicate', () => {
    const t = new SequenceTracker();
    for (let s = 0; s <= 10; s++) live(t, s);
    expect(t.classify(5)).toEqual({ kind: 'duplicate' });
    expect(live(t, 0)).toBe('restart');
    expect(t.expected).toBe(1);
  });

  it('calls a late live batch already applied by a replay a duplicate, not a restart (issue 10)', () => {
    // The chaos suite's interleaving: live up to 864, 865..866 lost, 867 reveals the gap, the replay
    // reads the publisher's buffer up to 868 before PUB delivered 868.
    const t = new SequenceTracker();
    for (let s = 860; s <= 864; s++) expect(live(t, s)).toBe('next');
    const restartedAt867 = t.arrivedLive(867);
    expect(t.classify(867, restartedAt867)).toEqual({ kind: 'gap', from: 865, to: 866 });
    for (const s of [865, 866, 867, 868]) expect(replayed(t, s)).toBe('next');
    // 867 was held during the replay and is released now: already applied.
    expect(t.classify(867, restartedAt867)).toEqual({ kind: 'duplicate' });
    expect(live(t, 868)).toBe('duplicate');
    expect(t.expected).toBe(869);
    expect(live(t, 869)).toBe('next');
    expect(live(t, 870)).toBe('next');
  });

  it('still sees a restart right after a replay ran ahead of the live stream', () => {
    const t = new SequenceTracker();
    live(t, 100);
    t.arrivedLive(103);
    for (const s of [101, 102, 103, 104]) replayed(t, s);
    expect(live(t, 0)).toBe('restart');
    expect(live(t, 1)).toBe('next');
  });

  it('starts afresh after forget, and a restart seen then is just the first batch', () => {
    const t = new SequenceTracker();
    live(t, 10);
    t.forget();
    expect(t.classify(3, t.arrivedLive(3))).toEqual({ kind: 'next' });
  });
});
