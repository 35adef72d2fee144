// KV-event payload decoding: msgpack bytes as vLLM (array- or map-encoded events) and SGLang publish
// them, turned into typed `EventBatch` values. A hand-written reader specialised for these shapes:
// block hashes go straight into a BigUint64Array and token ids into a Uint32Array, with no heap
// object per block (ADR 0003 records why this beats a general msgpack library here).

import type { AllBlocksClearedEvent, BlockRemovedEvent, BlockStoredEvent, EventBatch, KvEvent } from './types.ts';

/** Why a payload was rejected; also the `reason` label of the malformed-messages metric. */
export type DecodeFailureReason =
  | 'truncated'
  | 'invalid_msgpack'
  | 'bad_batch'
  | 'bad_event'
  | 'bad_field'
  | 'trailing_bytes';

/** A payload that is not a well-formed KV-event batch; the message names the place and the problem. */
export class KvEventDecodeError extends Error {
  readonly reason: DecodeFailureReason;
  constructor(reason: DecodeFailureReason, message: string) {
    super(message);
    this.name = 'KvEventDecodeError';
    this.reason = reason;
  }
}

/** What a decode skipped without failing: names of unknown fields and event types, in order met. */
export interface SkippedItems {
  unknownFields: string[];
  unknownEventTypes: string[];
}

// Field identities, shared by the array and map encodings. Array positions follow the declaration
// order of vLLM's msgspec structs (tag first); older vLLM and SGLang send a prefix of it.
const F_UNKNOWN = 0;
const F_TYPE = 1;
const F_BLOCK_HASHES = 2;
const F_PARENT = 3;
const F_TOKEN_IDS = 4;
const F_BLOCK_SIZE = 5;
const F_LORA_ID = 6;
const F_MEDIUM = 7;
const F_LORA_NAME = 8;
const F_EXTRA_KEYS = 9;
const F_GROUP_IDX = 10;
const F_SPEC_KIND = 11;
// Fields vLLM 0.33 sends that the contract does not carry: recognised, skipped, not counted as unknown.
const F_SPEC_SLIDING_WINDOW = 12;
const F_LOCALITY = 13;
const F_OWNERSHIP = 14;
const F_SESSION_ID = 15;
const F_LOOKAHEAD_TOKEN_IDS = 16;

const FIELD_NAMES: Record<string, number> = {
  type: F_TYPE,
  block_hashes: F_BLOCK_HASHES,
  parent_block_hash: F_PARENT,
  token_ids: F_TOKEN_IDS,
  block_size: F_BLOCK_SIZE,
  lora_id: F_LORA_ID,
  medium: F_MEDIUM,
  lora_name: F_LORA_NAME,
  extra_keys: F_EXTRA_KEYS,
  group_idx: F_GROUP_IDX,
  kv_cache_spec_kind: F_SPEC_KIND,
  kv_cache_spec_sliding_window: F_SPEC_SLIDING_WINDOW,
  locality: F_LOCALITY,
  ownership: F_OWNERSHIP,
  session_id: F_SESSION_ID,
  lookahead_token_ids: F_LOOKAHEAD_TOKEN_IDS,
};
const FIELD_LABEL: string[] = [];
for (const [name, id] of Object.entries(FIELD_NAMES)) FIELD_LABEL[id] = name;

const BLOCK_STORED_POSITIONS = [
  F_BLOCK_HASHES, F_PARENT, F_TOKEN_IDS, F_BLOCK_SIZE, F_LORA_ID, F_MEDIUM, F_LORA_NAME, F_EXTRA_KEYS,
  F_GROUP_IDX, F_SPEC_KIND, F_SPEC_SLIDING_WINDOW, F_LOCALITY, F_OWNERSHIP, F_SESSION_ID, F_LOOKAHEAD_TOKEN_IDS,
];
const BLOCK_REMOVED_POSITIONS = [F_BLOCK_HASHES, F_MEDIUM, F_GROUP_IDX, F_LOCALITY, F_OWNERSHIP];
const ALL_CLEARED_POSITIONS: number[] = [];

const T_UNKNOWN = 0;
const T_BLOCK_STORED = 1;
const T_BLOCK_REMOVED = 2;
const T_ALL_CLEARED = 3;
const TAGS: Record<string, number> = { BlockStored: T_BLOCK_STORED, BlockRemoved: T_BLOCK_REMOVED, AllBlocksCleared: T_ALL_CLEARED };

const BATCH_FIELDS: Record<string, number> = { ts: 1, events: 2, data_parallel_rank: 3 };

/** Known short strings matched against raw bytes, so keys and tags allocate no string when known. */
class ByteLookup {
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

const FIELD_LOOKUP = new ByteLookup(FIELD_NAMES);
const TAG_LOOKUP = new ByteLookup(TAGS);
const BATCH_LOOKUP = new ByteLookup(BATCH_FIELDS);
const MEDIA = ['GPU', 'CPU', 'STORAGE', 'DISK'];
const MEDIUM_LOOKUP = new ByteLookup(Object.fromEntries(MEDIA.map((m, i) => [m, i])));

// Where the low and high 32-bit words of a uint64 sit in a Uint32Array view of a BigUint64Array.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = LITTLE_ENDIAN ? 1 : 0;

const MAX_ANY_DEPTH = 16;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function typeName(b: number): string {
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

/** Fields of the event being decoded; reset per event. */
class EventFields {
  tag = T_UNKNOWN;
  seen = 0;
  blockHashes: BigUint64Array | null = null;
  parent: bigint | null = null;
  tokenIds: Uint32Array | null = null;
  blockSize = 0;
  loraId: number | null = null;
  medium: string | null = null;
  loraName: string | null = null;
  extraKeys: unknown[] | null = null;
  groupIdx: number | null = null;
  specKind: string | null = null;
  reset(): void {
    this.tag = T_UNKNOWN;
    this.seen = 0;
    this.blockHashes = null;
    this.parent = null;
    this.tokenIds = null;
    this.blockSize = 0;
    this.loraId = null;
    this.medium = null;
    this.loraName = null;
    this.extraKeys = null;
    this.groupIdx = null;
    this.specKind = null;
  }
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

class PayloadReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  pos = 0;
  readonly end: number;
  readonly skipped: SkippedItems | undefined;
  private readonly words = new Uint32Array(2);
  private arena: BatchArena | null = null;

  constructor(bytes: Uint8Array, skipped: SkippedItems | undefined) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = bytes.byteLength;
    this.skipped = skipped;
  }

  fail(reason: DecodeFailureReason, message: string): never {
    throw new KvEventDecodeError(reason, message);
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.end) this.fail('truncated', `${what}: payload ends after ${this.end} bytes, needed ${this.pos + n - this.end} more`);
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
      for (let i = start; i < start + len; i++) if (this.bytes[i]! > 0x7f) { ascii = false; break; }
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

  /** A storage medium; the common names come back as shared constants. */
  optionalMedium(what: string): string | null {
    if (this.peek(what) === 0xc0) {
      this.pos++;
      return null;
    }
    const len = this.strHeader(what);
    if (len < 0) this.fail('bad_field', `${what}: expected a string or nil, got ${typeName(this.bytes[this.pos]!)}`);
    const id = MEDIUM_LOOKUP.find(this.bytes, this.pos, len);
    if (id >= 0) {
      this.pos += len;
      return MEDIA[id]!;
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
      case 0xcc: this.need(2, what); this.pos = p + 1; return this.bytes[p]!;
      case 0xcd: this.need(3, what); this.pos = p + 2; return v.getUint16(p);
      case 0xce: this.need(5, what); this.pos = p + 4; return v.getUint32(p);
      case 0xd0: this.need(2, what); this.pos = p + 1; return v.getInt8(p);
      case 0xd1: this.need(3, what); this.pos = p + 2; return v.getInt16(p);
      case 0xd2: this.need(5, what); this.pos = p + 4; return v.getInt32(p);
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
        case 0xce: this.need(5, what); lo = v.getUint32(p); this.pos = p + 4; break;
        case 0xcd: this.need(3, what); lo = v.getUint16(p); this.pos = p + 2; break;
        case 0xcc: this.need(2, what); lo = bytes[p]!; this.pos = p + 1; break;
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
        case 0xcc: case 0xd0: size = 1; break;
        case 0xcd: case 0xd1: size = 2; break;
        case 0xce: case 0xd2: case 0xca: size = 4; break;
        case 0xcf: case 0xd3: case 0xcb: size = 8; break;
        case 0xc4: this.need(2, what); size = 1 + this.bytes[p]!; break;
        case 0xc5: this.need(3, what); size = 2 + this.view.getUint16(p); break;
        case 0xc6: this.need(5, what); size = 4 + this.view.getUint32(p); break;
        case 0xd4: size = 2; break;
        case 0xd5: size = 3; break;
        case 0xd6: size = 5; break;
        case 0xd7: size = 9; break;
        case 0xd8: size = 17; break;
        case 0xc7: this.need(2, what); size = 2 + this.bytes[p]!; break;
        case 0xc8: this.need(3, what); size = 3 + this.view.getUint16(p); break;
        case 0xc9: this.need(5, what); size = 5 + this.view.getUint32(p); break;
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
    if (b === 0xc0) { this.pos++; return null; }
    if (b === 0xc2 || b === 0xc3) { this.pos++; return b === 0xc3; }
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
      if (an > this.end - this.pos) this.fail('truncated', `${what}: array claims ${an} elements but only ${this.end - this.pos} bytes remain`);
      const out: unknown[] = new Array(an);
      for (let i = 0; i < an; i++) out[i] = this.any(`${what}[${i}]`, depth + 1);
      return out;
    }
    const mn = this.mapHeader(what);
    if (mn >= 0) {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < mn; i++) {
        const key = this.any(`${what} key`, depth + 1);
        if (typeof key !== 'string' && typeof key !== 'number') this.fail('bad_field', `${what}: map key must be a string or integer`);
        out[String(key)] = this.any(`${what}.${String(key)}`, depth + 1);
      }
      return out;
    }
    return this.fail('bad_field', `${what}: unsupported msgpack ${typeName(b)}`);
  }

  extraKeys(what: string): unknown[] | null {
    if (this.peek(what) === 0xc0) {
      this.pos++;
      return null;
    }
    const n = this.expectArray(what);
    if (n > this.end - this.pos) this.fail('truncated', `${what}: array claims ${n} elements but only ${this.end - this.pos} bytes remain`);
    const out: unknown[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const b = this.peek(what);
      if (b === 0xc0) {
        this.pos++;
        out[i] = null;
      } else if (typeName(b) === 'array') {
        out[i] = this.any(`${what}[${i}]`, 1);
      } else {
        this.fail('bad_field', `${what}[${i}]: expected an array (tuple) or nil, got ${typeName(b)}`);
      }
    }
    return out;
  }

  noteUnknownField(name: string): void {
    this.skipped?.unknownFields.push(name);
  }

  /** Reads the value of field `id` into `f`. */
  field(id: number, f: EventFields, label: string): void {
    f.seen |= 1 << id;
    switch (id) {
      case F_BLOCK_HASHES: f.blockHashes = this.hashes('block_hashes'); return;
      case F_PARENT: f.parent = this.optionalHash('parent_block_hash'); return;
      case F_TOKEN_IDS: f.tokenIds = this.tokenIds('token_ids'); return;
      case F_BLOCK_SIZE: {
        const n = this.integer('block_size');
        if (n <= 0) this.fail('bad_field', `block_size: expected a positive integer, got ${n}`);
        f.blockSize = n;
        return;
      }
      case F_LORA_ID: f.loraId = this.optionalInteger('lora_id', Number.MIN_SAFE_INTEGER); return;
      case F_MEDIUM: f.medium = this.optionalMedium('medium'); return;
      case F_LORA_NAME: f.loraName = this.optionalString('lora_name'); return;
      case F_EXTRA_KEYS: f.extraKeys = this.extraKeys('extra_keys'); return;
      case F_GROUP_IDX: f.groupIdx = this.optionalInteger('group_idx', 0); return;
      case F_SPEC_KIND: f.specKind = this.optionalString('kv_cache_spec_kind'); return;
      case F_SPEC_SLIDING_WINDOW:
      case F_LOCALITY:
      case F_OWNERSHIP:
      case F_SESSION_ID:
      case F_LOOKAHEAD_TOKEN_IDS:
        this.skip(FIELD_LABEL[id]!);
        return;
      default:
        this.noteUnknownField(label);
        this.skip(label);
    }
  }

  tag(what: string): number {
    const len = this.strHeader(what);
    if (len < 0) this.fail('bad_event', `${what}: event tag must be a string, got ${typeName(this.bytes[this.pos]!)}`);
    const id = TAG_LOOKUP.find(this.bytes, this.pos, len);
    if (id >= 0) {
      this.pos += len;
      return id;
    }
    const name = this.stringBody(len, what);
    this.skipped?.unknownEventTypes.push(name);
    return T_UNKNOWN;
  }

  /** One event, or null for an unknown event type (skipped whole). */
  event(f: EventFields): KvEvent | null {
    f.reset();
    const an = this.arrayHeader('event');
    if (an >= 0) {
      if (an < 1) this.fail('bad_event', 'event is an empty array: expected a tag first');
      f.tag = this.tag('event tag');
      const positions =
        f.tag === T_BLOCK_STORED ? BLOCK_STORED_POSITIONS
        : f.tag === T_BLOCK_REMOVED ? BLOCK_REMOVED_POSITIONS
        : f.tag === T_ALL_CLEARED ? ALL_CLEARED_POSITIONS
        : null;
      if (!positions) {
        for (let i = 1; i < an; i++) this.skip('unknown event');
        return null;
      }
      for (let i = 1; i < an; i++) {
        const id = positions[i - 1];
        if (id === undefined) {
          this.noteUnknownField(`[${i}]`);
          this.skip(`[${i}]`);
        } else {
          this.field(id, f, FIELD_LABEL[id]!);
        }
      }
      return this.build(f, true);
    }
    const mn = this.mapHeader('event');
    if (mn < 0) this.fail('bad_event', `event: expected an array or a map, got ${typeName(this.bytes[this.pos]!)}`);
    let unknownTag = false;
    for (let i = 0; i < mn; i++) {
      const len = this.strHeader('event field name');
      if (len < 0) this.fail('bad_event', `event field name: expected a string, got ${typeName(this.bytes[this.pos]!)}`);
      let id = FIELD_LOOKUP.find(this.bytes, this.pos, len);
      let label = '';
      if (id < 0) {
        label = this.stringBody(len, 'event field name');
        id = F_UNKNOWN;
      } else {
        this.pos += len;
      }
      if (id === F_TYPE) {
        if (f.seen & (1 << F_TYPE)) this.fail('bad_event', 'event: "type" appears twice');
        f.seen |= 1 << F_TYPE;
        f.tag = this.tag('type');
        if (f.tag === T_UNKNOWN) unknownTag = true;
      } else if (unknownTag) {
        this.skip(label || FIELD_LABEL[id]!);
      } else {
        this.field(id, f, label || FIELD_LABEL[id]!);
      }
    }
    if (!(f.seen & (1 << F_TYPE))) this.fail('bad_event', 'event: map has no "type" tag');
    if (unknownTag) return null;
    return this.build(f, false);
  }

  private require(f: EventFields, id: number, type: string): void {
    if (!(f.seen & (1 << id))) this.fail('bad_event', `${type}: required field ${FIELD_LABEL[id]} is missing`);
  }

  /** Fields present but not part of this event type are skipped and counted as unknown. */
  private foreignFields(f: EventFields, allowed: number): void {
    const foreign = f.seen & ~allowed & ~(1 << F_TYPE);
    if (foreign === 0 || !this.skipped) return;
    for (let id = 1; id < FIELD_LABEL.length; id++) if (foreign & (1 << id)) this.noteUnknownField(FIELD_LABEL[id]!);
  }

  build(f: EventFields, positional: boolean): KvEvent {
    switch (f.tag) {
      case T_BLOCK_STORED: {
        this.require(f, F_BLOCK_HASHES, 'BlockStored');
        if (positional) this.require(f, F_PARENT, 'BlockStored');
        this.require(f, F_TOKEN_IDS, 'BlockStored');
        this.require(f, F_BLOCK_SIZE, 'BlockStored');
        if (f.extraKeys && f.extraKeys.length !== f.blockHashes!.length) {
          this.fail('bad_field', `extra_keys: has ${f.extraKeys.length} entries for ${f.blockHashes!.length} block hashes`);
        }
        const ev: BlockStoredEvent = {
          type: 'BlockStored',
          blockHashes: f.blockHashes!,
          parentBlockHash: f.parent,
          tokenIds: f.tokenIds!,
          blockSize: f.blockSize,
          loraId: f.loraId,
          loraName: f.loraName,
          medium: f.medium,
          extraKeys: f.extraKeys,
          groupIdx: f.groupIdx,
          kvCacheSpecKind: f.specKind,
        };
        return ev;
      }
      case T_BLOCK_REMOVED: {
        this.require(f, F_BLOCK_HASHES, 'BlockRemoved');
        this.foreignFields(f, (1 << F_BLOCK_HASHES) | (1 << F_MEDIUM) | (1 << F_GROUP_IDX) | (1 << F_LOCALITY) | (1 << F_OWNERSHIP));
        const ev: BlockRemovedEvent = { type: 'BlockRemoved', blockHashes: f.blockHashes!, medium: f.medium, groupIdx: f.groupIdx };
        return ev;
      }
      default: {
        this.foreignFields(f, 1 << F_MEDIUM);
        const ev: AllBlocksClearedEvent = { type: 'AllBlocksCleared', medium: f.medium };
        return ev;
      }
    }
  }

  events(): KvEvent[] {
    const n = this.expectArray('events');
    if (n > this.end - this.pos) this.fail('truncated', `events: array claims ${n} elements but only ${this.end - this.pos} bytes remain`);
    const out: KvEvent[] = [];
    const f = new EventFields();
    for (let i = 0; i < n; i++) {
      try {
        const ev = this.event(f);
        if (ev) out.push(ev);
      } catch (err) {
        if (err instanceof KvEventDecodeError) throw new KvEventDecodeError(err.reason, `events[${i}].${err.message}`);
        throw err;
      }
    }
    return out;
  }
}

/**
 * Decodes one KV-event payload: `[ts, events, dp_rank?]` (vLLM, SGLang) or a map with the same field
 * names. Events may be tagged arrays (older vLLM, SGLang) or maps tagged by "type" (current vLLM).
 * Unknown event types and fields are skipped and, when `skipped` is given, recorded there.
 * @throws KvEventDecodeError naming the place and the problem when the payload is malformed.
 */
export function decodeEventBatch(payload: Uint8Array, skipped?: SkippedItems): EventBatch {
  const r = new PayloadReader(payload, skipped);
  let ts: number | null = null;
  let events: KvEvent[] | null = null;
  let dpRank: number | null = null;
  const an = r.arrayHeader('batch');
  if (an >= 0) {
    if (an < 2) r.fail('bad_batch', `batch: expected an array [ts, events, data_parallel_rank?], got ${an} element(s)`);
    ts = r.number('ts');
    events = r.events();
    if (an >= 3) dpRank = r.optionalInteger('data_parallel_rank', 0);
    for (let i = 3; i < an; i++) {
      r.noteUnknownField(`batch[${i}]`);
      r.skip(`batch[${i}]`);
    }
  } else {
    const mn = r.mapHeader('batch');
    if (mn < 0) r.fail(payload[0] === 0xc1 ? 'invalid_msgpack' : 'bad_batch', `batch: expected an array or a map, got ${typeName(payload[0]!)}`);
    for (let i = 0; i < mn; i++) {
      const len = r.strHeader('batch field name');
      if (len < 0) r.fail('bad_batch', `batch field name: expected a string, got ${typeName(payload[r.pos]!)}`);
      const id = BATCH_LOOKUP.find(payload, r.pos, len);
      if (id < 0) {
        const name = r.stringBody(len, 'batch field name');
        r.noteUnknownField(`batch.${name}`);
        r.skip(name);
        continue;
      }
      r.pos += len;
      if (id === 1) ts = r.number('ts');
      else if (id === 2) events = r.events();
      else dpRank = r.optionalInteger('data_parallel_rank', 0);
    }
    if (ts === null) r.fail('bad_batch', 'batch: map has no "ts"');
    if (events === null) r.fail('bad_batch', 'batch: map has no "events"');
  }
  if (r.pos !== r.end) r.fail('trailing_bytes', `batch: ${r.end - r.pos} unexpected byte(s) after the batch`);
  return { ts: ts!, events: events!, dpRank };
}

