// Duration flags and config values written the way Go and Kubernetes write them ("50ms", "2s", "1m30s"),
// turned into milliseconds at the edge so the rest of the code deals in plain numbers.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

/**
 * Milliseconds in a Go-style duration: one or more `<number><unit>` parts (units ns, us, ms, s, m, h),
 * e.g. "50ms", "2s", "1.5m", "1m30s"; "0" alone is zero. Throws an Error naming `field` and the
 * expected form for anything else (a bare number other than 0, a sign, an unknown unit).
 */
export function parseDuration(text: string, field = 'duration'): number {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  let total = 0;
  let at = 0;
  PART.lastIndex = 0;
  while (at < trimmed.length) {
    PART.lastIndex = at;
    const match = PART.exec(trimmed);
    if (!match) break;
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
    at = PART.lastIndex;
  }
  if (trimmed.length === 0 || at !== trimmed.length) {
    throw new Error(`${field}: expected a duration such as "50ms", "2s" or "1m30s" (units ns, us, ms, s, m, h), got "${text}"`);
  }
  return total;
}
