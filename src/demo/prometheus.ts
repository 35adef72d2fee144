// Reads counters from a Prometheus text page (the pods' /metrics): the sum of one metric's samples
// over its label sets. Only what the routing harness needs; malformed lines are skipped.

/** Sum of the samples of `name` (exact metric name, any labels) in a Prometheus text exposition. */
export function sumSamples(text: string, name: string): number | null {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    let valuePart: string;
    if (rest.startsWith('{')) {
      const close = rest.lastIndexOf('}');
      if (close < 0) continue;
      valuePart = rest.slice(close + 1);
    } else if (rest.startsWith(' ')) {
      valuePart = rest;
    } else {
      continue; // another metric sharing the prefix, e.g. name_created
    }
    const value = Number(valuePart.trim().split(/\s+/)[0]);
    if (!Number.isFinite(value)) continue;
    sum += value;
    found = true;
  }
  return found ? sum : null;
}
