import { describe, it, expect } from '@jest/globals';
import { RateLimiter, WorkQueue, type Clock } from './workqueue.ts';

function fakeClock(): Clock & { advance(ms: number): void } {
  let t = 0;
  let timers: { at: number; fn: () => void }[] = [];
  return {
    now: () => t,
    setTimeout: (fn, ms) => {
      const timer = { at: t + ms, fn };
      timers.push(timer);
      return timer;
    },
    clearTimeout: (h) => {
      timers = timers.filter((x) => x !== h);
    },
    advance(ms) {
      t += ms;
      const due = timers.filter((x) => x.at <= t);
      timers = timers.filter((x) => x.at > t);
      for (const d of due) d.fn();
    },
  };
}

describe('WorkQueue', () => {
  it('queues a key once however often it is added', async () => {
    const q = new WorkQueue(fakeClock());
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key to two workers: re-adds during processing run once after done()', async () => {
    const q = new WorkQueue(fakeClock());
    q.add('a');
    const key = await q.get();
    q.add('a');
    q.add('a');
    expect(q.length).toBe(0);
    q.done(key!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    expect(q.length).toBe(0);
  });

  it('wakes a waiting worker when a key arrives and returns undefined after shutdown', async () => {
    const q = new WorkQueue(fakeClock());
    const waiting = q.get();
    q.add('x');
    expect(await waiting).toBe('x');
    const idle = q.get();
    q.shutDown();
    expect(await idle).toBeUndefined();
  });

  it('delays rate-limited re-adds until the backoff elapses', async () => {
    const clock = fakeClock();
    const q = new WorkQueue(clock);
    q.addRateLimited('a');
    expect(q.length).toBe(0);
    clock.advance(4);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
  });

  it('keeps the earliest ready time when a waiting key is added again with a shorter delay', () => {
    const clock = fakeClock();
    const q = new WorkQueue(clock);
    q.addAfter('a', 1000);
    clock.advance(100);
    q.addAfter('a', 50);
    clock.advance(49);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
    clock.advance(1000);
    expect(q.length).toBe(1);
  });

  it('keeps the earlier ready time when a waiting key is added again with a longer delay', () => {
    const clock = fakeClock();
    const q = new WorkQueue(clock);
    q.addAfter('a', 50);
    clock.advance(10);
    q.addAfter('a', 1000);
    clock.advance(40);
    expect(q.length).toBe(1);
  });
});

describe('RateLimiter', () => {
  it('doubles the per-key delay from 5 ms up to 1000 s and forgets it on success', () => {
    const limiter = new RateLimiter(fakeClock(), { qps: 1e9, burst: 1e9 });
    const delays = Array.from({ length: 20 }, () => limiter.when('k'));
    expect(delays.slice(0, 4)).toEqual([5, 10, 20, 40]);
    expect(delays.at(-1)).toBe(1_000_000);
    limiter.forget('k');
    expect(limiter.when('k')).toBe(5);
    expect(limiter.when('other')).toBe(5);
  });

  it('slows all keys once the global bucket is empty', () => {
    const limiter = new RateLimiter(fakeClock(), { qps: 10, burst: 2 });
    expect([limiter.when('a'), limiter.when('b')]).toEqual([5, 5]);
    expect(limiter.when('c')).toBe(100);
  });
});
