import { describe, it, expect } from '@jest/globals';
import { SequenceTracker } from './sequence.ts';

describe('SequenceTracker', () => {
  it('takes the first batch seen at any number, then expects the next one', () => {
    const t = new SequenceTracker();
    expect(t.classify(41, true)).toEqual({ kind: 'next' });
    t.accept(41);
    expect(t.classify(42, true)).toEqual({ kind: 'next' });
  });

  it('reports the missing range of a gap', () => {
    const t = new SequenceTracker();
    t.accept(3);
    expect(t.classify(7, true)).toEqual({ kind: 'gap', from: 4, to: 6 });
  });

  it('calls a lower number on the live stream a restart, and during replay a duplicate', () => {
    const t = new SequenceTracker();
    t.accept(10);
    expect(t.classify(0, true)).toEqual({ kind: 'restart' });
    expect(t.classify(5, false)).toEqual({ kind: 'duplicate' });
  });

  it('starts afresh after forget', () => {
    const t = new SequenceTracker();
    t.accept(10);
    t.forget();
    expect(t.classify(3, true)).toEqual({ kind: 'next' });
  });
});
