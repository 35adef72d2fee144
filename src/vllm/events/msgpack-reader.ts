// A msgpack reader specialised for KV-event payloads: headers, integers, strings and skips with errors
// that name the field, block hashes straight into a BigUint64Array and token ids into a Uint32Array
// (views into a per-batch arena), so no heap object is made per block. It knows msgpack, not vLLM's
// event schema, which lives in decode.ts.

/** Why a payload was rejected; also the `reason` label of the malformed-messages metric. */
export type DecodeFailureReason =
  'truncated' | 'invalid_msgpack' | 'bad_batch' | 'bad_event' | 'bad_field' | 'trailing_bytes' | 'too_many_events';

/** A payload that is not a well-formed KV-event batch; the message names the place and the problem. */
export class KvEventDecodeError extends Error {
  readonly reason: DecodeFailureReason;
  constructor(reason: DecodeFailureReason, message: string) {
    super(message);
    this.name = 'KvEventDecodeError';
    this.reason = reason;
  }
}

/** Known short strings matched against raw bytes, so keys and tags allocate no string when known. */
export class ByteLookup {
  /** Entries bucketed by byte length (all known strings are short). */
  private readonly byLength: Array<Array<{ bytes: Uint8Array; id: number }>> = [];
  constructor(entries: Record<string, number>) {
    const enc = new TextEncoder();
    for (const [text, id] of Object.entries(entries)) {
      const bytes = enc.encode(text);
      (this.byLength[bytes.length] ??= []).push({ bytes, id });
    }
  }
  /** The id of the string at bytes[start, start+len), or -1 when it is not a known one. */
  find(bytes: Uint8Array, start: number, len: number): number {
    const bucket = this.byLength[len];
    if (bucket === undefined) return -1;
    outer: for (const entry of bucket) {
      const b = entry.bytes;
      for (let i = 0; i < len; i++) if (bytes[start + i] !== b[i]) continue outer;
      return entry.id;
    }
    return -1;
  }
}

// Where the low and high 32-bit words of a uint64 sit in a Uint32Array view of a BigUint64Array.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = LITTLE_ENDIAN ? 1 : 0;

const MAX_ANY_DEPTH = 16;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The msgpack type a first byte announces, for error messages. */
export function typeName(b: number): string {
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return 'integer';
  if (b <= 0x8f || b === 0xde || b === 0xdf) return 'map';
  if (b <= 0x9f || b === 0xdc || b === 0xdd) return 'array';
  if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return 'string';
  if (b === 0xc0) return 'nil';
  if (b === 0xc2 || b === 0xc3) return 'boolean';
  if (b >= 0xc4 && b <= 0xc6) return 'bytes';
  if (b === 0xca || b === 0xcb) return 'float';
  if (b === 0xc1) return 'reserved byte 0xc1';
  return 'extension';
}

/**
 * Backing memory for the typed arrays of one batch: views into a few shared chunks instead of one
 * ArrayBuffer per event, which costs more than decoding the event. A batch's arrays keep its chunks
 * alive, so consumers copy what they retain (the index does).
 */
class BatchArena {
  private readonly chunkBytes: number;
  buffer: ArrayBuffer;
  /** The current chunk as 32-bit words. */
  words: Uint32Array;
  private used = 0;
  constructor(payloadBytes: number) {
    this.chunkBytes = Math.min(1 << 16, Math.max(1 << 10, (payloadBytes * 2 + 7) & ~7));
    this.buffer = new ArrayBuffer(this.chunkBytes);
    this.words = new Uint32Array(this.buffer);
  }
  /** Reserves `bytes` (8-byte aligned) and returns their byte offset in `buffer`. */
  reserve(bytes: number): number {
    const size = (bytes + 7) & ~7;
    if (this.used + size > this.buffer.byteLength) {
      this.buffer = new ArrayBuffer(Math.max(this.chunkBytes, size));
      this.words = new Uint32Array(this.buffer);
      this.used = 0;
    }
    const at = this.used;
    this.used += size;
    return at;
  }
}

export class MsgpackReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  pos = 0;
  readonly end: number;
  private readonly words = new Uint32Array(2);
  private arena: BatchArena | null = null;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = bytes.byteLength;
  }

  fail(reason: DecodeFailureReason, message: string): never {
    throw new KvEventDecodeError(reason, message);
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.end)
      this.fail('truncated', `${what}: payload ends after ${this.end} bytes, needed ${this.pos + n - this.end} more`);
  }

  peek(what: string): number {
    if (this.pos >= this.end) this.fail('truncated', `${what}: payload ends after ${this.end} bytes`);
    return this.bytes[this.pos]!;
  }

  /** Element count of an array header, or -1 (nothing consumed) when the next value is not an array. */
  arrayHeader(what: string): number {
    const b = this.peek(what);
    if (b >= 0x90 && b <= 0x9f) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === 0xdc) {
      this.need(3, what);
      const n = this.view.getUint16(this.pos + 1);
      this.pos += 3;
      return n;
    }
    if (b === 0xdd) {
      this.need(5, what);
      const n = this.view.getUint32(this.pos + 1);
      this.pos += 5;
      return n;
    }
    return -1;
  }

  /** Pair count of a map header, or -1 (nothing consumed) when the next value is not a map. */
  mapHeader(what: string): number {
    const b = this.peek(what);
    if (b >= 0x80 && b <= 0x8f) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === 0xde) {
      this.need(3, what);
      const n = this.view.getUint16(this.pos + 1);
      this.pos += 3;
      return n;
    }
    if (b === 0xdf) {
      this.need(5, what);
      const n = this.view.getUint32(this.pos + 1);
      this.pos += 5;
      return n;
    }
    return -1;
  }

  expectArray(what: string): number {
    const n = this.arrayHeader(what);
    if (n < 0) this.fail('bad_field', `${what}: expected an array, got ${typeName(this.bytes[this.pos]!)}`);
    return n;
  }

  /** Byte length of a string header (position moves to its first byte), or -1 when not a string. */
  strHeader(what: string): number {
    const b = this.peek(what);
    let len: number;
    if (b >= 0xa0 && b <= 0xbf) {
      len = b & 0x1f;
      this.pos++;
    } else if (b === 0xd9) {
      this.need(2, what);
      len = this.bytes[this.pos + 1]!;
      this.pos += 2;
    } else if (b === 0xda) {
      this.need(3, what);
      len = this.view.getUint16(this.pos + 1);
      this.pos += 3;
    } else if (b === 0xdb) {
      this.need(5, what);
      len = this.view.getUint32(this.pos + 1);
      this.pos += 5;
    } else {
      return -1;
    }
    this.need(len, what);
    return len;
  }

  stringBody(len: number, what: string): string {
    const start = this.pos;
    this.pos += len;
    if (len <= 32) {
      let ascii = true;
      for (let i = start; i < start + len; i++)
        if (this.bytes[i]! > 0x7f) {
          ascii = false;
          break;
        }
      if (ascii) return String.fromCharCode.apply(null, this.bytes.subarray(start, start + len) as unknown as number[]);
    }
    try {
      return utf8.decode(this.bytes.subarray(start, start + len));
    } catch {
      this.fail('bad_field', `${what}: string is not valid UTF-8`);
    }
  }

  string(what: string): string {
    const len = this.strHeader(what);
    if (len < 0) this.fail('bad_field', `${what}: expected a string, got ${typeName(this.bytes[this.pos]!)}`);
    return this.stringBody(len, what);
  }

  optionalString(what: string): string | null {
    if (this.peek(what) === 0xc0) {
      this.pos++;
      return null;
    }
    return this.string(what);
  }

  /** A string or nil; a string `lookup` knows comes back as the shared constant `known[id]`, allocating nothing. */
  optionalKnownString(what: string, lookup: ByteLookup, known: readonly string[]): string | null {
    if (this.peek(what) === 0xc0) {
      this.pos++;
      return null;
    }
    const len = this.strHeader(what);
    if (len < 0) this.fail('bad_field', `${what}: expected a string or nil, got ${typeName(this.bytes[this.pos]!)}`);
    const id = lookup.find(this.bytes, this.pos, len);
    if (id >= 0) {
      this.pos += len;
      return known[id]!;
    }
    return this.stringBody(len, what);
  }

  /** An integer that must be exactly representable as a JS number. */
  integer(what: string): number {
    const b = this.peek(what);
    const p = this.pos + 1;
    if (b <= 0x7f) {
      this.pos = p;
      return b;
    }
    if (b >= 0xe0) {
      this.pos = p;
      return b - 256;
    }
    const v = this.view;
    switch (b) {
      case 0xcc:
        this.need(2, what);
        this.pos = p + 1;
        return this.bytes[p]!;
      case 0xcd:
        this.need(3, what);
        this.pos = p + 2;
        return v.getUint16(p);
      case 0xce:
        this.need(5, what);
        this.pos = p + 4;
        return v.getUint32(p);
      case 0xd0:
        this.need(2, what);
        this.pos = p + 1;
        return v.getInt8(p);
      case 0xd1:
        this.need(3, what);
        this.pos = p + 2;
        return v.getInt16(p);
      case 0xd2:
        this.need(5, what);
        this.pos = p + 4;
        return v.getInt32(p);
      case 0xcf:
      case 0xd3: {
        this.need(9, what);
        const big = b === 0xcf ? v.getBigUint64(p) : v.getBigInt64(p);
        if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) {
          this.fail('bad_field', `${what}: integer ${big} is out of range`);
        }
        this.pos = p + 8;
        return Number(big);
      }
      default:
        return this.fail('bad_field', `${what}: expected an integer, got ${typeName(b)}`);
    }
  }

  optionalInteger(what: string, min: number): number | null {
    if (this.peek(what) === 0xc0) {
      this.pos++;
      return null;
    }
    const n = this.integer(what);
    if (n < min) this.fail('bad_field', `${what}: expected an integer >= ${min}, got ${n}`);
    return n;
  }

  number(what: string): number {
    const b = this.peek(what);
    if (b === 0xcb) {
      this.need(9, what);
      const x = this.view.getFloat64(this.pos + 1);
      this.pos += 9;
      return x;
    }
    if (b === 0xca) {
      this.need(5, what);
      const x = this.view.getFloat32(this.pos + 1);
      this.pos += 5;
      return x;
    }
    return this.integer(what);
  }

  /**
   * Reads one block hash into words[2i] (low) and words[2i+1] (high): an integer as its 64-bit two's
   * complement, or a byte string as its low 8 bytes read big-endian, as vLLM converts them.
   */
  hashInto(words: Uint32Array, i: number, what: string): void {
    const bytes = this.bytes;
    const b = this.peek(what);
    const p = this.pos + 1;
    let lo: number;
    let hi = 0;
    if (b <= 0x7f) {
      lo = b;
      this.pos = p;
    } else if (b >= 0xe0) {
      lo = (b - 256) >>> 0;
      hi = 0xffffffff;
      this.pos = p;
    } else {
      const v = this.view;
      switch (b) {
        case 0xcf:
        case 0xd3:
          this.need(9, what);
          hi = v.getUint32(p);
          lo = v.getUint32(p + 4);
          this.pos = p + 8;
          break;
        case 0xce:
          this.need(5, what);
          lo = v.getUint32(p);
          this.pos = p + 4;
          break;
        case 0xcd:
          this.need(3, what);
          lo = v.getUint16(p);
          this.pos = p + 2;
          break;
        case 0xcc:
          this.need(2, what);
          lo = bytes[p]!;
          this.pos = p + 1;
          break;
        case 0xd0:
        case 0xd1:
        case 0xd2: {
          const size = b === 0xd0 ? 1 : b === 0xd1 ? 2 : 4;
          this.need(1 + size, what);
          const s = size === 1 ? v.getInt8(p) : size === 2 ? v.getInt16(p) : v.getInt32(p);
          lo = s >>> 0;
          hi = s < 0 ? 0xffffffff : 0;
          this.pos = p + size;
          break;
        }
        case 0xc4:
        case 0xc5:
        case 0xc6: {
          const lenSize = b === 0xc4 ? 1 : b === 0xc5 ? 2 : 4;
          this.need(1 + lenSize, what);
          const len = lenSize === 1 ? bytes[p]! : lenSize === 2 ? v.getUint16(p) : v.getUint32(p);
          const start = p + lenSize;
          this.pos = start;
          this.need(len, what);
          if (len === 0) this.fail('bad_field', `${what}: hash is an empty byte string`);
          lo = 0;
          const from = start + Math.max(0, len - 8);
          const end = start + len;
          // Accumulate big-endian: the last four bytes are the low word, the four before them the high.
          for (let k = from; k < end; k++) {
            hi = ((hi << 8) | (lo >>> 24)) >>> 0;
            lo = ((lo << 8) | bytes[k]!) >>> 0;
          }
          this.pos = end;
          break;
        }
        default:
          this.fail('bad_field', `${what}: expected an integer or byte string hash, got ${typeName(b)}`);
      }
    }
    words[2 * i + LO] = lo;
    words[2 * i + HI] = hi;
  }

  hashes(what: string): BigUint64Array {
    const n = this.expectArray(what);
    // Each element takes at least one byte: a count beyond the remaining bytes is a lie, not a reason to allocate.
    if (n > this.end - this.pos) this.fail('truncated', `${what}: array claims ${n} elements but only ${this.end - this.pos} bytes remain`);
    const arena = (this.arena ??= new BatchArena(this.end));
    const at = arena.reserve(n * 8);
    const buffer = arena.buffer;
    const words = arena.words;
    const first = at >>> 3;
    for (let i = 0; i < n; i++) this.hashInto(words, first + i, what);
    return new BigUint64Array(buffer, at, n);
  }

  optionalHash(what: string): bigint | null {
    if (this.peek(what) === 0xc0) {
      this.pos++;
      return null;
    }
    const w = this.words;
    this.hashInto(w, 0, what);
    return (BigInt(w[HI]!) << 32n) | BigInt(w[LO]!);
  }

  tokenIds(what: string): Uint32Array {
    const n = this.expectArray(what);
    if (n > this.end - this.pos) this.fail('truncated', `${what}: array claims ${n} elements but only ${this.end - this.pos} bytes remain`);
    const arena = (this.arena ??= new BatchArena(this.end));
    const at = arena.reserve(n * 4);
    const out = new Uint32Array(arena.buffer, at, n);
    const bytes = this.bytes;
    const end = this.end;
    let pos = this.pos;
    for (let i = 0; i < n; i++) {
      if (pos >= end) {
        this.pos = pos;
        this.fail('truncated', `${what}[${i}]: payload ends after ${end} bytes`);
      }
      const b = bytes[pos]!;
      if (b <= 0x7f) {
        out[i] = b;
        pos += 1;
      } else if (b === 0xcd && pos + 3 <= end) {
        out[i] = (bytes[pos + 1]! << 8) | bytes[pos + 2]!;
        pos += 3;
      } else if (b === 0xce && pos + 5 <= end) {
        out[i] = (bytes[pos + 1]! << 24) | (bytes[pos + 2]! << 16) | (bytes[pos + 3]! << 8) | bytes[pos + 4]!;
        pos += 5;
      } else if (b === 0xcc && pos + 2 <= end) {
        out[i] = bytes[pos + 1]!;
        pos += 2;
      } else {
        // Rare encodings (signed forms of non-negative values) and all errors.
        this.pos = pos;
        const t = this.integer(`${what}[${i}]`);
        if (t < 0 || t > 0xffffffff) this.fail('bad_field', `${what}[${i}]: token id ${t} is outside 0..2^32-1`);
        out[i] = t;
        pos = this.pos;
      }
    }
    this.pos = pos;
    return out;
  }

  /** Skips one value of any type without recursion (so a deeply nested payload cannot overflow the stack). */
  skip(what: string): void {
    let remaining = 1;
    while (remaining > 0) {
      remaining--;
      const b = this.peek(what);
      const p = this.pos + 1;
      if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
        this.pos = p;
        continue;
      }
      if ((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf) {
        remaining += 2 * this.mapHeader(what);
        continue;
      }
      if ((b >= 0x90 && b <= 0x9f) || b === 0xdc || b === 0xdd) {
        remaining += this.arrayHeader(what);
        continue;
      }
      const len = this.strHeader(what);
      if (len >= 0) {
        this.pos += len;
        continue;
      }
      let size: number;
      switch (b) {
        case 0xcc:
        case 0xd0:
          size = 1;
          break;
        case 0xcd:
        case 0xd1:
          size = 2;
          break;
        case 0xce:
        case 0xd2:
        case 0xca:
          size = 4;
          break;
        case 0xcf:
        case 0xd3:
        case 0xcb:
          size = 8;
          break;
        case 0xc4:
          this.need(2, what);
          size = 1 + this.bytes[p]!;
          break;
        case 0xc5:
          this.need(3, what);
          size = 2 + this.view.getUint16(p);
          break;
        case 0xc6:
          this.need(5, what);
          size = 4 + this.view.getUint32(p);
          break;
        case 0xd4:
          size = 2;
          break;
        case 0xd5:
          size = 3;
          break;
        case 0xd6:
          size = 5;
          break;
        case 0xd7:
          size = 9;
          break;
        case 0xd8:
          size = 17;
          break;
        case 0xc7:
          this.need(2, what);
          size = 2 + this.bytes[p]!;
          break;
        case 0xc8:
          this.need(3, what);
          size = 3 + this.view.getUint16(p);
          break;
        case 0xc9:
          this.need(5, what);
          size = 5 + this.view.getUint32(p);
          break;
        default:
          this.fail('invalid_msgpack', `${what}: byte 0x${b.toString(16)} is not valid msgpack`);
      }
      this.need(1 + size, what);
      this.pos = p + size;
    }
  }

  /** Any value as plain data: for extra keys, whose element types vLLM leaves open. */
  any(what: string, depth = 0): unknown {
    if (depth > MAX_ANY_DEPTH) this.fail('bad_field', `${what}: nested deeper than ${MAX_ANY_DEPTH} levels`);
    const b = this.peek(what);
    if (b === 0xc0) {
      this.pos++;
      return null;
    }
    if (b === 0xc2 || b === 0xc3) {
      this.pos++;
      return b === 0xc3;
    }
    if (b === 0xca || b === 0xcb) return this.number(what);
    if (b === 0xcf || b === 0xd3) {
      this.need(9, what);
      const big = b === 0xcf ? this.view.getBigUint64(this.pos + 1) : this.view.getBigInt64(this.pos + 1);
      this.pos += 9;
      return big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(big) : big;
    }
    if (typeName(b) === 'integer') return this.integer(what);
    const len = this.strHeader(what);
    if (len >= 0) return this.stringBody(len, what);
    if (b >= 0xc4 && b <= 0xc6) {
      const lenSize = b === 0xc4 ? 1 : b === 0xc5 ? 2 : 4;
      this.need(1 + lenSize, what);
      const p = this.pos + 1;
      const n = lenSize === 1 ? this.bytes[p]! : lenSize === 2 ? this.view.getUint16(p) : this.view.getUint32(p);
      this.pos = p + lenSize;
      this.need(n, what);
      const out = this.bytes.slice(this.pos, this.pos + n);
      this.pos += n;
      return out;
    }
    const an = this.arrayHeader(what);
    if (an >= 0) {
      if (an > this.end - this.pos)
        this.fail('truncated', `${what}: array claims ${an} elements but only ${this.end - this.pos} bytes remain`);
      const out: unknown[] = new Array(an);
      for (let i = 0; i < an; i++) out[i] = this.any(`${what}[${i}]`, depth + 1);
      return out;
    }
    const mn = this.mapHeader(what);
    if (mn >= 0) {
      // No prototype: a "__proto__" key from the wire is then an ordinary key, not a prototype swap.
      const out = Object.create(null) as Record<string, unknown>;
      for (let i = 0; i < mn; i++) {
        const key = this.any(`${what} key`, depth + 1);
        if (typeof key !== 'string' && typeof key !== 'number') this.fail('bad_field', `${what}: map key must be a string or integer`);
        out[String(key)] = this.any(`${what}.${String(key)}`, depth + 1);
      }
      return out;
    }
    return this.fail('bad_field', `${what}: unsupported msgpack ${typeName(b)}`);
  }
}
