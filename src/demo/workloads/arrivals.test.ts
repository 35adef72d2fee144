import { describe, expect, it } from '@jest/globals';
import { poissonArrivalsMs, runSchedule, scheduleArrivals, type ScheduleClock } from './arrivals.ts';

/** A clock whose sleep advances time at once, so schedules run instantly and exactly. */
function fakeClock(): ScheduleClock & { t: number } {
  const clock = {
    t: 0,
    now: () => clock.t,
    sleep: async (ms: number) => {
      clock.t += ms;
    },
  };
  return clock;
}

const requests = (n: number): Array<{ tMs: number }> => Array.from({ length: n }, (_, i) => ({ tMs: i * 10 }));

describe('arrival schedules', () => {
  it('draws Poisson arrivals deterministically for a seed, with the requested mean rate', () => {
    const a = poissonArrivalsMs(4000, 20, 1);
    expect(a).toEqual(poissonArrivalsMs(4000, 20, 1));
    expect(a).not.toEqual(poissonArrivalsMs(4000, 20, 2));
    expect(a[0]).toBe(0);
    for (let i = 1; i < a.length; i++) expect(a[i]!).toBeGreaterThanOrEqual(a[i - 1]!);
    const meanGap = a[a.length - 1]! / (a.length - 1);
    expect(meanGap).toBeGreaterThan(45);
    expect(meanGap).toBeLessThan(55);
  });

  it('maps each arrival process to a schedule', () => {
    expect(scheduleArrivals(requests(5), { kind: 'closed', concurrency: 2 })).toEqual({ kind: 'closed', concurrency: 2, count: 5 });
    expect(scheduleArrivals(requests(3), { kind: 'trace', speedup: 2 })).toEqual({ kind: 'open', atMs: [0, 5, 10] });
    expect(scheduleArrivals(requests(3), { kind: 'poisson', ratePerS: 5, seed: 3 })).toEqual({
      kind: 'open',
      atMs: poissonArrivalsMs(3, 5, 3),
    });
    expect(() => scheduleArrivals(requests(1), { kind: 'closed', concurrency: 0 })).toThrow('concurrency: expected an integer >= 1, got 0');
    expect(() => poissonArrivalsMs(3, 0, 1)).toThrow('rate: expected a positive number of requests per second, got 0');
  });

  it('keeps at most `concurrency` requests in flight in a closed loop, in index order', async () => {
    let inFlight = 0;
    let peak = 0;
    const started: number[] = [];
    await runSchedule({ kind: 'closed', concurrency: 3, count: 10 }, async (i) => {
      started.push(i);
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
    });
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(peak).toBe(3);
  });

  it('ramps a closed loop up: each client joins once the one before it had its first answer', async () => {
    const schedule = scheduleArrivals(requests(6), { kind: 'closed', concurrency: 3, rampUp: true });
    expect(schedule).toEqual({ kind: 'closed', concurrency: 3, count: 6, rampUp: true });
    const events: string[] = [];
    let inFlight = 0;
    let peak = 0;
    await runSchedule(schedule, async (i) => {
      events.push(`start ${i} (${inFlight} in flight)`);
      inFlight++;
      peak = Math.max(peak, inFlight);
      for (let k = 0; k < 3; k++) await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
    });
    // Request 0 runs alone; when it is answered client 0 sends 1 and client 1 joins with 2; and so on.
    expect(events.slice(0, 3)).toEqual(['start 0 (0 in flight)', 'start 1 (0 in flight)', 'start 2 (1 in flight)']);
    expect(events).toHaveLength(6);
    expect(peak).toBe(3);
  });

  it('starts open-loop requests at their offsets without waiting for earlier ones', async () => {
    const clock = fakeClock();
    const startedAt: number[] = [];
    const release: Array<() => void> = [];
    const done = runSchedule(
      { kind: 'open', atMs: [0, 100, 250] },
      (i) => {
        startedAt[i] = clock.t;
        return new Promise<void>((resolve) => release.push(resolve));
      },
      clock,
    );
    // All three started although none finished.
    while (release.length < 3) await new Promise((resolve) => setImmediate(resolve));
    expect(startedAt).toEqual([0, 100, 250]);
    release.forEach((r) => r());
    await done;
  });

  it('stops starting requests after one throws, and rethrows it', async () => {
    const sent: number[] = [];
    await expect(
      runSchedule({ kind: 'closed', concurrency: 1, count: 5 }, async (i) => {
        sent.push(i);
        if (i === 1) throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(sent).toEqual([0, 1]);
  });
});
