// A clock that moves only when a test says so, for the work queue's backoff and delayed adds: timers
// fire, in order, when advance() passes their time.

import type { Clock } from '../runtime/workqueue.ts';

export interface ManualClock extends Clock {
  advance(ms: number): void;
  /** Timers set and not yet fired or cleared. */
  readonly pending: number;
}

export function manualClock(start = 0): ManualClock {
  let t = start;
  let timers: { at: number; fn: () => void }[] = [];
  return {
    now: () => t,
    setTimeout: (fn, ms) => {
      const timer = { at: t + ms, fn };
      timers.push(timer);
      return timer;
    },
    clearTimeout: (handle) => {
      timers = timers.filter((x) => x !== handle);
    },
    advance(ms) {
      t += ms;
      const due = timers.filter((x) => x.at <= t).sort((a, b) => a.at - b.at);
      timers = timers.filter((x) => x.at > t);
      for (const d of due) d.fn();
    },
    get pending() {
      return timers.length;
    },
  };
}
