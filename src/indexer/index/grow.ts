// Resizing for the index's typed-array columns: copy into a larger array of the same kind.

type Column = Uint8Array | Uint16Array | Uint32Array | Int32Array;

/** A copy of `column` with room for `capacity` elements, new elements filled with `fill`. */
export function growColumn<T extends Column>(column: T, capacity: number, fill = 0): T {
  const Ctor = column.constructor as new (n: number) => T;
  const next = new Ctor(capacity);
  next.set(column);
  if (fill !== 0) next.fill(fill, column.length);
  return next;
}

/** The next capacity for a column that must hold `needed` elements, doubling up to `max`. */
export function nextCapacity(current: number, needed: number, max: number): number {
  let cap = Math.max(current, 16);
  while (cap < needed) cap *= 2;
  return Math.min(cap, Math.max(max, needed));
}

/** Mixes a 64-bit key given as (lo, hi) into a 32-bit table hash (murmur3's finalizer). */
export function mixKey(lo: number, hi: number): number {
  let h = (lo ^ Math.imul(hi, 0x9e3779b1)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
