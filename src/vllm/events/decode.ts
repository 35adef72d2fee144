// KV-event payload decoding: msgpack bytes as vLLM (array- or map-encoded events) and SGLang publish
// them, turned into typed `EventBatch` values: the event schema (field names and positions, tags, which
// fields each event type requires) over the msgpack reader in msgpack-reader.ts, which puts hashes and
// token ids into typed arrays with no heap object per block (ADR 0003 records why this beats a general
// msgpack library here).

import { ByteLookup, KvEventDecodeError, MsgpackReader, typeName } from './msgpack-reader.ts';
import type { AllBlocksClearedEvent, BlockRemovedEvent, BlockStoredEvent, EventBatch, KvEvent } from './types.ts';

export { KvEventDecodeError } from './msgpack-reader.ts';

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
  F_BLOCK_HASHES,
  F_PARENT,
  F_TOKEN_IDS,
  F_BLOCK_SIZE,
  F_LORA_ID,
  F_MEDIUM,
  F_LORA_NAME,
  F_EXTRA_KEYS,
  F_GROUP_IDX,
  F_SPEC_KIND,
  F_SPEC_SLIDING_WINDOW,
  F_LOCALITY,
  F_OWNERSHIP,
  F_SESSION_ID,
  F_LOOKAHEAD_TOKEN_IDS,
];
const BLOCK_REMOVED_POSITIONS = [F_BLOCK_HASHES, F_MEDIUM, F_GROUP_IDX, F_LOCALITY, F_OWNERSHIP];
const ALL_CLEARED_POSITIONS: number[] = [];

const T_UNKNOWN = 0;
const T_BLOCK_STORED = 1;
const T_BLOCK_REMOVED = 2;
const T_ALL_CLEARED = 3;
const TAGS: Record<string, number> = { BlockStored: T_BLOCK_STORED, BlockRemoved: T_BLOCK_REMOVED, AllBlocksCleared: T_ALL_CLEARED };

const BATCH_FIELDS: Record<string, number> = { ts: 1, events: 2, data_parallel_rank: 3 };

const FIELD_LOOKUP = new ByteLookup(FIELD_NAMES);
const TAG_LOOKUP = new ByteLookup(TAGS);
const BATCH_LOOKUP = new ByteLookup(BATCH_FIELDS);
const MEDIA = ['GPU', 'CPU', 'STORAGE', 'DISK'];
const MEDIUM_LOOKUP = new ByteLookup(Object.fromEntries(MEDIA.map((m, i) => [m, i])));

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
 * The event schema over the msgpack reader: events and their fields. A subclass rather than a wrapper
 * so the hot loop calls the reader's methods on `this`, exactly as when they were one class.
 */
class EventDecoder extends MsgpackReader {
  readonly skipped: SkippedItems | undefined;
  readonly maxEvents: number;

  constructor(bytes: Uint8Array, skipped: SkippedItems | undefined, maxEvents: number) {
    super(bytes);
    this.skipped = skipped;
    this.maxEvents = maxEvents;
  }

  /** The publisher's timestamp: vLLM sends time.time(), so anything not finite is not a batch. */
  ts(): number {
    const ts = this.number('ts');
    if (!Number.isFinite(ts)) this.fail('bad_batch', `ts: expected a finite number of seconds, got ${ts}`);
    return ts;
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
      case F_BLOCK_HASHES:
        f.blockHashes = this.hashes('block_hashes');
        return;
      case F_PARENT:
        f.parent = this.optionalHash('parent_block_hash');
        return;
      case F_TOKEN_IDS:
        f.tokenIds = this.tokenIds('token_ids');
        return;
      case F_BLOCK_SIZE: {
        const n = this.integer('block_size');
        if (n <= 0) this.fail('bad_field', `block_size: expected a positive integer, got ${n}`);
        f.blockSize = n;
        return;
      }
      case F_LORA_ID:
        f.loraId = this.optionalInteger('lora_id', Number.MIN_SAFE_INTEGER);
        return;
      case F_MEDIUM:
        f.medium = this.optionalKnownString('medium', MEDIUM_LOOKUP, MEDIA);
        return;
      case F_LORA_NAME:
        f.loraName = this.optionalString('lora_name');
        return;
      case F_EXTRA_KEYS:
        f.extraKeys = this.extraKeys('extra_keys');
        return;
      case F_GROUP_IDX:
        f.groupIdx = this.optionalInteger('group_idx', 0);
        return;
      case F_SPEC_KIND:
        f.specKind = this.optionalString('kv_cache_spec_kind');
        return;
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
        f.tag === T_BLOCK_STORED
          ? BLOCK_STORED_POSITIONS
          : f.tag === T_BLOCK_REMOVED
            ? BLOCK_REMOVED_POSITIONS
            : f.tag === T_ALL_CLEARED
              ? ALL_CLEARED_POSITIONS
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
    if (n > this.maxEvents) this.fail('too_many_events', `events: batch has ${n} events, more than the limit of ${this.maxEvents}`);
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
 * Unknown event types and fields are skipped and, when `skipped` is given, recorded there. A batch of
 * more than `maxEvents` events is rejected before any of them is decoded.
 * @throws KvEventDecodeError naming the place and the problem when the payload is malformed.
 */
export function decodeEventBatch(payload: Uint8Array, skipped?: SkippedItems, maxEvents = Number.POSITIVE_INFINITY): EventBatch {
  const r = new EventDecoder(payload, skipped, maxEvents);
  let ts: number | null = null;
  let events: KvEvent[] | null = null;
  let dpRank: number | null = null;
  const an = r.arrayHeader('batch');
  if (an >= 0) {
    if (an < 2) r.fail('bad_batch', `batch: expected an array [ts, events, data_parallel_rank?], got ${an} element(s)`);
    ts = r.ts();
    events = r.events();
    if (an >= 3) dpRank = r.optionalInteger('data_parallel_rank', 0);
    for (let i = 3; i < an; i++) {
      r.noteUnknownField(`batch[${i}]`);
      r.skip(`batch[${i}]`);
    }
  } else {
    const mn = r.mapHeader('batch');
    if (mn < 0)
      r.fail(payload[0] === 0xc1 ? 'invalid_msgpack' : 'bad_batch', `batch: expected an array or a map, got ${typeName(payload[0]!)}`);
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
      if (id === 1) ts = r.ts();
      else if (id === 2) events = r.events();
      else dpRank = r.optionalInteger('data_parallel_rank', 0);
    }
    if (ts === null) r.fail('bad_batch', 'batch: map has no "ts"');
    if (events === null) r.fail('bad_batch', 'batch: map has no "events"');
  }
  if (r.pos !== r.end) r.fail('trailing_bytes', `batch: ${r.end - r.pos} unexpected byte(s) after the batch`);
  return { ts: ts!, events: events!, dpRank };
}
