// Polling with a deadline for tests that wait on another process's state (no sleeps to wait).

/**
 * Calls `probe` every 50 ms until it returns a value other than undefined, and returns it. Errors
 * thrown by the probe count as "not yet"; the last one is named when the deadline passes.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
