// Growth of the byte buffers the block serializers (CBOR, pickle) append to.

/**
 * `buf` itself when it holds `needed` bytes, else a copy of its first `used` bytes in a buffer
 * grown by doubling, so that appends stay amortised O(1).
 */
export function withRoom(buf: Uint8Array<ArrayBuffer>, used: number, needed: number): Uint8Array<ArrayBuffer> {
  if (needed <= buf.length) return buf;
  let capacity = Math.max(buf.length, 1) * 2;
  while (capacity < needed) capacity *= 2;
  const grown = new Uint8Array(capacity);
  grown.set(buf.subarray(0, used));
  return grown;
}
