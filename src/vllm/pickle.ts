// The bytes vLLM's default `--prefix-caching-hash-algo sha256` hashes: CPython's
// pickle.dumps(obj, protocol=5) of a block's (parent digest, token tuple, extra keys | None), written
// for exactly those shapes into one reused buffer. Covers what the C pickler does for them: one FRAME,
// the shortest int opcode, MEMOIZE after every bytes/str/tuple, and BINGET for vLLM's "mm" tag, which
// is one string object reused by every multimodal key of a block.

import { withRoom } from './byte-buffer.ts';

const PROTO = 0x80;
const FRAME = 0x95;
const SHORT_BINBYTES = 0x43;
const BINBYTES = 0x42;
const SHORT_BINUNICODE = 0x8c;
const BINUNICODE = 0x58;
const MEMOIZE = 0x94;
const BINGET = 0x68;
const LONG_BINGET = 0x6a;
const MARK = 0x28;
const TUPLE = 0x74;
const EMPTY_TUPLE = 0x29;
const TUPLE_OF = [EMPTY_TUPLE, 0x85, 0x86, 0x87] as const;
const BININT1 = 0x4b;
const BININT2 = 0x4d;
const BININT = 0x4a;
const LONG1 = 0x8a;
const NONE = 0x4e;
const STOP = 0x2e;
/** PROTO 5 + FRAME + 8-byte frame length: the frame's content starts here. */
export const PICKLE_FRAME_START = 11;
/** The C pickler closes a frame at the next opcode boundary once it reaches 64 KiB. */
const FRAME_SIZE_TARGET = 64 * 1024;
/** The C pickler drops the FRAME header when the frame would hold fewer bytes than this. */
const FRAME_SIZE_MIN = 4;

const utf8 = new TextEncoder();

export class PickleWriter {
  private buf = new Uint8Array(1024);
  private filled = 0;
  private memo = 0;

  get buffer(): Uint8Array {
    return this.buf;
  }

  get length(): number {
    return this.filled;
  }

  /** The memo index the next MEMOIZE will assign. */
  get nextMemo(): number {
    return this.memo;
  }

  /** Starts a pickle: PROTO 5 and room for the FRAME header. */
  begin(): void {
    this.filled = 0;
    this.memo = 0;
    this.ensure(PICKLE_FRAME_START);
    this.buf[0] = PROTO;
    this.buf[1] = 5;
    this.buf[2] = FRAME;
    this.filled = PICKLE_FRAME_START;
  }

  /** Rewinds to `length` bytes and `memo` memo entries of the current pickle (a fixed prefix). */
  rewind(length: number, memo: number): void {
    this.filled = length;
    this.memo = memo;
  }

  /** Writes STOP and the frame length; returns the whole pickle as a view of the buffer. */
  finish(): Uint8Array {
    this.op(STOP);
    const frame = this.filled - PICKLE_FRAME_START;
    if (frame >= FRAME_SIZE_TARGET) {
      // Past 64 KiB the C pickler starts a new frame at an opcode boundary; blocks this large
      // (over ~13k tokens) are not a vLLM configuration we hash.
      throw new RangeError(`pickled block of ${frame} bytes exceeds one 64 KiB pickle frame`);
    }
    if (frame < FRAME_SIZE_MIN) {
      this.buf.copyWithin(2, PICKLE_FRAME_START, this.filled);
      this.filled -= PICKLE_FRAME_START - 2;
      return this.buf.subarray(0, this.filled);
    }
    const view = new DataView(this.buf.buffer, this.buf.byteOffset);
    view.setUint32(3, frame, true);
    view.setUint32(7, 0, true);
    return this.buf.subarray(0, this.filled);
  }

  ensure(extra: number): void {
    this.buf = withRoom(this.buf, this.filled, this.filled + extra);
  }

  private op(code: number): void {
    this.ensure(1);
    this.buf[this.filled++] = code;
  }

  private u32(value: number): void {
    this.ensure(4);
    const buf = this.buf;
    let at = this.filled;
    buf[at++] = value & 0xff;
    buf[at++] = (value >>> 8) & 0xff;
    buf[at++] = (value >>> 16) & 0xff;
    buf[at++] = (value >>> 24) & 0xff;
    this.filled = at;
  }

  memoize(): number {
    this.op(MEMOIZE);
    return this.memo++;
  }

  /** A reference to an object already memoized in this pickle. */
  get(memoIndex: number): void {
    if (memoIndex < 256) {
      this.op(BINGET);
      this.op(memoIndex);
    } else {
      this.op(LONG_BINGET);
      this.u32(memoIndex);
    }
  }

  bytes(value: Uint8Array): number {
    if (value.length < 256) {
      this.op(SHORT_BINBYTES);
      this.op(value.length);
    } else {
      this.op(BINBYTES);
      this.u32(value.length);
    }
    this.raw(value);
    return this.memoize();
  }

  /** A str given as its UTF-8 bytes (encode once with `utf8Of`, write many times). */
  text(encoded: Uint8Array): number {
    if (encoded.length < 256) {
      this.op(SHORT_BINUNICODE);
      this.op(encoded.length);
    } else {
      this.op(BINUNICODE);
      this.u32(encoded.length);
    }
    this.raw(encoded);
    return this.memoize();
  }

  none(): void {
    this.op(NONE);
  }

  /** Opens a tuple of `length` items; close it with `endTuple(length)` after writing them. */
  beginTuple(length: number): void {
    if (length > 3) this.op(MARK);
  }

  /** Closes a tuple (TUPLE1..3 or MARK..TUPLE) and memoizes it, as the C pickler does for non-empty tuples. */
  endTuple(length: number): void {
    if (length === 0) {
      this.op(EMPTY_TUPLE);
      return;
    }
    this.op(length <= 3 ? TUPLE_OF[length]! : TUPLE);
    this.memoize();
  }

  /** A Python int with the opcode CPython picks: BININT1, BININT2, BININT or LONG1. */
  int(value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`pickled int must be a safe integer, got ${value}`);
    if (value >= 0 && value <= 0xff) {
      this.op(BININT1);
      this.op(value);
    } else if (value >= 0 && value <= 0xffff) {
      this.op(BININT2);
      this.op(value & 0xff);
      this.op(value >>> 8);
    } else if (value >= -0x8000_0000 && value <= 0x7fff_ffff) {
      this.op(BININT);
      this.u32(value >>> 0);
    } else {
      this.long1(value);
    }
  }

  /**
   * `count` ints from `values[start..]`. Returns -1, or the index (relative to `start`) of the first
   * value that is not a non-negative safe integer.
   */
  uintRun(values: ArrayLike<number>, start: number, count: number): number {
    this.ensure(count * 10);
    const buf = this.buf;
    let at = this.filled;
    for (let i = 0; i < count; i++) {
      const value = values[start + i]!;
      if (value >>> 0 !== value || value > 0x7fff_ffff) {
        if (!(Number.isSafeInteger(value) && value > 0)) return i;
        this.filled = at;
        this.long1(value);
        at = this.filled;
      } else if (value <= 0xff) {
        buf[at++] = BININT1;
        buf[at++] = value;
      } else if (value <= 0xffff) {
        buf[at++] = BININT2;
        buf[at++] = value & 0xff;
        buf[at++] = value >>> 8;
      } else {
        buf[at++] = BININT;
        buf[at++] = value & 0xff;
        buf[at++] = (value >>> 8) & 0xff;
        buf[at++] = (value >>> 16) & 0xff;
        buf[at++] = value >>> 24;
      }
    }
    this.filled = at;
    return -1;
  }

  /** LONG1: little-endian two's complement in (bit length / 8) + 1 bytes, as pickle's encode_long. */
  private long1(value: number): void {
    let big = BigInt(value);
    const negative = big < 0n;
    const magnitudeBits = (negative ? -big : big).toString(2).length;
    let n = (magnitudeBits >> 3) + 1;
    if (negative) big = (1n << BigInt(n * 8)) + big;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      out.push(Number(big & 0xffn));
      big >>= 8n;
    }
    // encode_long drops a redundant 0xff sign byte of negative numbers.
    if (negative && n > 1 && out[n - 1] === 0xff && (out[n - 2]! & 0x80) !== 0) n--;
    this.op(LONG1);
    this.op(n);
    for (let i = 0; i < n; i++) this.op(out[i]!);
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.filled);
    this.filled += bytes.length;
  }
}

export function utf8Of(text: string): Uint8Array {
  return utf8.encode(text);
}

/** pickle.dumps(text, protocol=5): what vLLM's `sha256` hashes for NONE_HASH. */
export function pickleString(text: string): Uint8Array {
  const writer = new PickleWriter();
  writer.begin();
  writer.text(utf8Of(text));
  return writer.finish().slice();
}
