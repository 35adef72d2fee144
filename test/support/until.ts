// Polling with a deadline, for tests and benchmarks that wait on state another process or an
// asynchronous component owns. The one polling helper: tests never sleep to wait for state.

import { inspect } from 'node:util';

export interface UntilOptions {
  /** What is awaited, for the timeout error ("the indexer to score pod-a at 3"). */
  message: string;
  /** Give up after this long; default 10 s. */
  timeoutMs?: number;
  /** Pause between calls; default 20 ms. */
  intervalMs?: number;
}

/** The values `until` accepts as "done". */
export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Calls `condition` until it returns a truthy value, and returns that value. A call that throws (or
 * rejects) counts as "not yet". On timeout it throws an error naming `message`, the last value the
 * condition returned and the last error it threw, so a failed wait says what it saw.
 */
export async function until<T>(condition: () => T | Promise<T>, options: UntilOptions): Promise<Truthy<Awaited<T>>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  let lastValue: unknown = undefined;
  let lastError: unknown = undefined;
  let calls = 0;
  for (;;) {
    calls++;
    try {
      const value = await condition();
      if (value) return value as Truthy<Awaited<T>>;
      lastValue = value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const seen = [`last value: ${describe(lastValue)}`];
  if (lastError !== undefined) seen.push(`last error: ${lastError instanceof Error ? lastError.message : describe(lastError)}`);
  throw new Error(`timed out after ${timeoutMs} ms (${calls} tries) waiting for ${options.message}; ${seen.join('; ')}`);
}

function describe(value: unknown): string {
  const text = inspect(value, { depth: 3, breakLength: Infinity });
  return text.length > 500 ? `${text.slice(0, 500)}...` : text;
}
