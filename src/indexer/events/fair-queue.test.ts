import { describe, it, expect } from '@jest/globals';
import { FairQueue } from './fair-queue.ts';

describe('FairQueue', () => {
  it('runs each source in FIFO order', async () => {
    const q = new FairQueue({ onError: () => {} });
    const seen: number[] = [];
    for (let i = 0; i < 50; i++) q.push('a', () => seen.push(i));
    await q.idle();
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('serves a quiet source long before a noisy one has drained', async () => {
    const q = new FairQueue({ burst: 4, onError: () => {} });
    const order: string[] = [];
    for (let i = 0; i < 1000; i++) q.push('noisy', () => order.push('noisy'));
    q.push('quiet', () => order.push('quiet'));
    await q.idle();
    expect(order.indexOf('quiet')).toBeLessThanOrEqual(4);
    expect(order.length).toBe(1001);
  });

  it('yields to the event loop once a slice has run for sliceMs', async () => {
    let clock = 0;
    let slices = 0;
    const q = new FairQueue({
      sliceMs: 4,
      burst: 100,
      now: () => clock,
      defer: (fn) => {
        slices++;
        setImmediate(fn);
      },
      onError: () => {},
    });
    for (let i = 0; i < 20; i++)
      q.push('slow', () => {
        clock += 1;
      });
    await q.idle();
    expect(slices).toBe(5);
  });

  it('runs work a task queues for its own source after the work already queued', async () => {
    const q = new FairQueue({
      burst: 2,
      onError: (_k, err) => {
        throw err;
      },
    });
    const seen: string[] = [];
    q.push('a', () => {
      seen.push('a1');
      q.push('a', () => seen.push('a3'));
    });
    q.push('a', () => seen.push('a2'));
    q.push('b', () => seen.push('b1'));
    await q.idle();
    expect(seen).toEqual(['a1', 'a2', 'b1', 'a3']);
  });

  it('keeps going after a task throws and reports the error with its source', async () => {
    const errors: string[] = [];
    const q = new FairQueue({ onError: (key) => errors.push(key) });
    const ran: number[] = [];
    q.push('a', () => {
      throw new Error('boom');
    });
    q.push('a', () => ran.push(2));
    await q.idle();
    expect(errors).toEqual(['a']);
    expect(ran).toEqual([2]);
  });
});
