// Copies of strings cut from longer ones, for keeping in caches. V8 represents a slice of 13 or more
// characters as a view on the string it was cut from, so a 500-character piece of a 100k-token prompt
// kept as a cache key would keep the whole prompt (about 0.6 MiB) alive, unseen by the cache's bound.

/**
 * A copy of `text` that shares no memory with the string it was cut from. Prepending a character makes
 * a concatenation, which V8 flattens into a fresh buffer when it is sliced; the slice views that buffer.
 */
export function detachedString(text: string): string {
  return (' ' + text).slice(1);
}
