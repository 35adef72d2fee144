// When each request of a workload is sent: a closed loop (N clients, each sends its next request when
// the previous one finished), Poisson arrivals at a rate (seeded exponential gaps), or the workload's
// own timestamps (traces). The schedule is a pure value; `runSchedule` drives it with an injected clock.

import { setTimeout as delay } from 'node:timers/promises';
import { mulberry32 } from '../../common/random.ts';
import { checkInt } from './tokens.ts';
import type { WorkloadRequest } from './types.ts';

export type ArrivalProcess =
  /**
   * N clients, each sending its next request when its last one finished. With `rampUp`, clients join
   * one at a time, each once the one before it has had its first answer, as traffic builds up on a
   * fresh deployment rather than arriving as one burst at an idle pool.
   */
  | { kind: 'closed'; concurrency: number; rampUp?: boolean }
  | { kind: 'poisson'; ratePerS: number; seed: number }
  /** The requests' own tMs, divided by `speedup` (default 1). */
  | { kind: 'trace'; speedup?: number };

export type Schedule =
  /** Request i is sent by whichever client frees up, in index order. */
  | { kind: 'closed'; concurrency: number; count: number; rampUp?: boolean }
  /** Request i is sent at atMs[i] from the start, whatever is still in flight. */
  | { kind: 'open'; atMs: number[] };

/** Arrival offsets of a Poisson process: exponential gaps with mean 1000 / ratePerS ms, the first at 0. */
export function poissonArrivalsMs(count: number, ratePerS: number, seed: number): number[] {
  checkInt('count', count, 0);
  if (!(ratePerS > 0) || !Number.isFinite(ratePerS))
    throw new Error(`rate: expected a positive number of requests per second, got ${ratePerS}`);
  const rand = mulberry32(seed);
  const out = new Array<number>(count);
  let t = 0;
  for (let i = 0; i < count; i++) {
    out[i] = t;
    // 1 - rand() is in (0, 1], so the log is finite.
    t += (-Math.log(1 - rand()) * 1000) / ratePerS;
  }
  return out;
}

export function scheduleArrivals(requests: readonly Pick<WorkloadRequest, 'tMs'>[], process: ArrivalProcess): Schedule {
  switch (process.kind) {
    case 'closed':
      checkInt('concurrency', process.concurrency, 1);
      return {
        kind: 'closed',
        concurrency: process.concurrency,
        count: requests.length,
        ...(process.rampUp ? { rampUp: true } : {}),
      };
    case 'poisson':
      return { kind: 'open', atMs: poissonArrivalsMs(requests.length, process.ratePerS, process.seed) };
    case 'trace': {
      const speedup = process.speedup ?? 1;
      if (!(speedup > 0) || !Number.isFinite(speedup)) throw new Error(`speedup: expected a positive number, got ${speedup}`);
      return { kind: 'open', atMs: requests.map((r) => r.tMs / speedup) };
    }
  }
}

export interface ScheduleClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: ScheduleClock = { now: () => performance.now(), sleep: (ms) => delay(ms) };

/**
 * Sends every request of the schedule through `send(index)` and resolves when all have finished.
 * `send` should record its own failures; if it throws, no further request starts and the first
 * error is rethrown once the requests in flight have settled.
 */
export async function runSchedule(
  schedule: Schedule,
  send: (index: number) => Promise<void>,
  clock: ScheduleClock = realClock,
): Promise<void> {
  let failure: { error: unknown } | null = null;
  const guarded = async (i: number): Promise<void> => {
    try {
      await send(i);
    } catch (error) {
      failure ??= { error };
    }
  };
  if (schedule.kind === 'closed') {
    let next = 0;
    const clients = Math.min(schedule.concurrency, schedule.count);
    const running: Promise<void>[] = [];
    const client = async (k: number): Promise<void> => {
      let first = true;
      while (failure === null && next < schedule.count) {
        await guarded(next++);
        // Ramp-up: the next client joins once this one has had its first answer.
        if (first && schedule.rampUp && k + 1 < clients) running.push(client(k + 1));
        first = false;
      }
    };
    if (schedule.rampUp) running.push(client(0));
    else for (let k = 0; k < clients; k++) running.push(client(k));
    // Clients added while waiting are awaited too.
    for (let i = 0; i < running.length; i++) await running[i];
  } else {
    const start = clock.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < schedule.atMs.length && failure === null; i++) {
      const wait = schedule.atMs[i]! - (clock.now() - start);
      if (wait > 0) await clock.sleep(wait);
      inFlight.push(guarded(i));
    }
    await Promise.all(inFlight);
  }
  if (failure !== null) throw (failure as { error: unknown }).error;
}
