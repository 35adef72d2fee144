// A canonical CBOR (RFC 8949 §4.2.1 "core deterministic") writer for the few shapes vLLM's
// sha256_cbor hashes: integers, byte strings, text strings, definite arrays and null. It writes into
// one growable buffer that is reused from value to value, so encoding a block costs no allocation.
// Canonical here means what Python's `cbor2.dumps(x, canonical=True)` does for these shapes:
// shortest integer heads and definite lengths (no maps, floats or tags are ever produced).

import { withRoom } from './byte-buffer.ts';

const MAJOR_UNSIGNED = 0 << 5;
const MAJOR_NEGATIVE = 1 << 5;
const MAJOR_BYTES = 2 << 5;
const MAJOR_TEXT = 3 << 5;
const MAJOR_ARRAY = 4 << 5;
const SIMPLE_NULL = 0xf6;
const TWO_POW_32 = 0x1_0000_0000;

const utf8 = new TextEncoder();

export class CborWriter {
  private buf: Uint8Array<ArrayBuffer>;
  private filled = 0;

  constructor(initialCapacity = 1024) {
    this.buf = new Uint8Array(initialCapacity);
  }

  /** Bytes written since the last reset, as a view of the internal buffer (valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.filled);
  }

  /** The internal buffer; the encoded value occupies [0, length). Lets hot paths patch bytes in place. */
  get buffer(): Uint8Array {
    return this.buf;
  }

  get length(): number {
    return this.filled;
  }

  /** Starts a new value. Bytes before `keep` are retained (a fixed prefix written once). */
  reset(keep = 0): void {
    this.filled = keep;
  }

  /** Makes room for `extra` more bytes, growing geometrically so appends stay amortised O(1). */
  ensure(extra: number): void {
    this.buf = withRoom(this.buf, this.filled, this.filled + extra);
  }

  private head(major: number, value: number): void {
    this.ensure(9);
    const buf = this.buf;
    let at = this.filled;
    if (value < 24) {
      buf[at++] = major | value;
    } else if (value < 0x100) {
      buf[at++] = major | 24;
      buf[at++] = value;
    } else if (value < 0x1_0000) {
      buf[at++] = major | 25;
      buf[at++] = value >>> 8;
      buf[at++] = value & 0xff;
    } else if (value < TWO_POW_32) {
      buf[at++] = major | 26;
      buf[at++] = value >>> 24;
      buf[at++] = (value >>> 16) & 0xff;
      buf[at++] = (value >>> 8) & 0xff;
      buf[at++] = value & 0xff;
    } else {
      // Above 2^32 a JS number is exact only up to 2^53; callers check that before we get here.
      const hi = Math.floor(value / TWO_POW_32);
      const lo = value >>> 0;
      buf[at++] = major | 27;
      buf[at++] = hi >>> 24;
      buf[at++] = (hi >>> 16) & 0xff;
      buf[at++] = (hi >>> 8) & 0xff;
      buf[at++] = hi & 0xff;
      buf[at++] = lo >>> 24;
      buf[at++] = (lo >>> 16) & 0xff;
      buf[at++] = (lo >>> 8) & 0xff;
      buf[at++] = lo & 0xff;
    }
    this.filled = at;
  }

  /** An integer, unsigned or negative, exactly representable as a JS number. */
  int(value: number): void {
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`CBOR integer must be a safe integer (|n| <= 2^53-1), got ${value}`);
    }
    if (value >= 0) this.head(MAJOR_UNSIGNED, value);
    else this.head(MAJOR_NEGATIVE, -1 - value);
  }

  /**
   * An unsigned integer without the safe-integer check when it fits in 32 bits: the token-id loop
   * calls this once per token, so the common case is a single comparison.
   */
  uint(value: number): void {
    if (value >>> 0 === value) this.head(MAJOR_UNSIGNED, value);
    else if (Number.isSafeInteger(value) && value > 0) this.head(MAJOR_UNSIGNED, value);
    else throw new RangeError(`CBOR unsigned integer must be a non-negative safe integer, got ${value}`);
  }

  /**
   * `count` unsigned integers from `values[start..]`, each with the shortest head: the token ids
   * of one block. Returns -1, or the index (relative to `start`) of the first value that is not a
   * non-negative safe integer, in which case nothing is guaranteed about what was written.
   */
  uintRun(values: ArrayLike<number>, start: number, count: number): number {
    this.ensure(count * 9);
    const buf = this.buf;
    let at = this.filled;
    for (let i = 0; i < count; i++) {
      const value = values[start + i]!;
      if (value >>> 0 !== value) {
        if (!(Number.isSafeInteger(value) && value > 0)) return i;
        this.filled = at;
        this.head(MAJOR_UNSIGNED, value);
        at = this.filled;
      } else if (value < 24) {
        buf[at++] = value;
      } else if (value < 0x100) {
        buf[at++] = 24;
        buf[at++] = value;
      } else if (value < 0x1_0000) {
        buf[at++] = 25;
        buf[at++] = value >>> 8;
        buf[at++] = value & 0xff;
      } else {
        buf[at++] = 26;
        buf[at++] = value >>> 24;
        buf[at++] = (value >>> 16) & 0xff;
        buf[at++] = (value >>> 8) & 0xff;
        buf[at++] = value & 0xff;
      }
    }
    this.filled = at;
    return -1;
  }

  bytes(value: Uint8Array): void {
    this.head(MAJOR_BYTES, value.length);
    this.raw(value);
  }

  text(value: string): void {
    const encoded = utf8.encode(value);
    this.head(MAJOR_TEXT, encoded.length);
    this.raw(encoded);
  }

  arrayHeader(length: number): void {
    this.head(MAJOR_ARRAY, length);
  }

  null(): void {
    this.ensure(1);
    this.buf[this.filled++] = SIMPLE_NULL;
  }

  /** Bytes that are already CBOR (a pre-encoded item), copied verbatim. */
  raw(encoded: Uint8Array): void {
    this.ensure(encoded.length);
    this.buf.set(encoded, this.filled);
    this.filled += encoded.length;
  }
}

/** Encodes a value built from the supported shapes; for pre-encoding constants and for tests. */
export type CborValue = number | string | Uint8Array | null | readonly CborValue[];

export function encodeCbor(value: CborValue, writer = new CborWriter(64)): Uint8Array {
  writer.reset();
  writeValue(writer, value);
  return writer.view().slice();
}

function writeValue(writer: CborWriter, value: CborValue): void {
  if (value === null) writer.null();
  else if (typeof value === 'number') writer.int(value);
  else if (typeof value === 'string') writer.text(value);
  else if (value instanceof Uint8Array) writer.bytes(value);
  else {
    writer.arrayHeader(value.length);
    for (const item of value) writeValue(writer, item);
  }
}
