// Encodes one scheduler step's KV events as the msgpack payload vLLM's ZmqEventPublisher sends:
// an array-like EventBatch [ts, events, dp_rank] whose events are tagged structs, either as maps
// (vLLM 0.33: {"type": ..., fields}, default-valued trailing fields omitted) or as positional
// arrays (older vLLM: ["BlockStored", hashes, parent, token_ids, block_size, lora_id, medium]).

import { digestToUint64 } from '../block-hash.ts';
import { MsgpackWriter } from './msgpack-writer.ts';
import {
  FULL_ATTENTION_KIND,
  MEDIUM_GPU,
  type KvEventsEncoding,
  type KvEventsHashForm,
  type SimBlockRemoved,
  type SimBlockStored,
  type SimKvEvent,
} from './engine-events.ts';

export interface EncodeOptions {
  encoding: KvEventsEncoding;
  hashForm: KvEventsHashForm;
  dpRank: number;
}

function writeHash(w: MsgpackWriter, digest: Uint8Array, form: KvEventsHashForm): void {
  if (form === 'bytes') w.bin(digest);
  else w.uint64(digestToUint64(digest));
}

function writeNullableStr(w: MsgpackWriter, s: string | null): void {
  if (s === null) w.nil();
  else w.str(s);
}

function writeNullableInt(w: MsgpackWriter, n: number | null): void {
  if (n === null) w.nil();
  else w.int(n);
}

function writeTokenIds(w: MsgpackWriter, tokens: number[]): void {
  w.arrayHeader(tokens.length);
  for (const t of tokens) w.int(t);
}

function writeStoredMap(w: MsgpackWriter, e: SimBlockStored, form: KvEventsHashForm): void {
  // type, block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium, lora_name,
  // extra_keys, group_idx, kv_cache_spec_kind; the rest are None and omitted like msgspec does.
  // BlockStored declares 16 fields, so msgspec reserves a map16 header whatever the count.
  w.mapHeader16(11);
  w.str('type');
  w.str('BlockStored');
  w.str('block_hashes');
  w.arrayHeader(e.blockHashes.length);
  for (const h of e.blockHashes) writeHash(w, h, form);
  w.str('parent_block_hash');
  if (e.parentBlockHash === null) w.nil();
  else writeHash(w, e.parentBlockHash, form);
  w.str('token_ids');
  writeTokenIds(w, e.tokenIds);
  w.str('block_size');
  w.int(e.blockSize);
  w.str('lora_id');
  writeNullableInt(w, e.loraId);
  w.str('medium');
  w.str(MEDIUM_GPU);
  w.str('lora_name');
  writeNullableStr(w, e.loraName);
  w.str('extra_keys');
  w.arrayHeader(e.extraKeys.length);
  for (const keys of e.extraKeys) {
    if (keys === null) {
      w.nil();
      continue;
    }
    w.arrayHeader(keys.length);
    for (const k of keys) w.str(k);
  }
  w.str('group_idx');
  w.int(0);
  w.str('kv_cache_spec_kind');
  w.str(FULL_ATTENTION_KIND);
}

function writeRemovedMap(w: MsgpackWriter, e: SimBlockRemoved, form: KvEventsHashForm): void {
  w.mapHeader(4);
  w.str('type');
  w.str('BlockRemoved');
  w.str('block_hashes');
  w.arrayHeader(1);
  writeHash(w, e.blockHash, form);
  w.str('medium');
  w.str(MEDIUM_GPU);
  w.str('group_idx');
  w.int(0);
}

function writeStoredArray(w: MsgpackWriter, e: SimBlockStored, form: KvEventsHashForm): void {
  w.arrayHeader(7);
  w.str('BlockStored');
  w.arrayHeader(e.blockHashes.length);
  for (const h of e.blockHashes) writeHash(w, h, form);
  if (e.parentBlockHash === null) w.nil();
  else writeHash(w, e.parentBlockHash, form);
  writeTokenIds(w, e.tokenIds);
  w.int(e.blockSize);
  writeNullableInt(w, e.loraId);
  w.str(MEDIUM_GPU);
}

function writeRemovedArray(w: MsgpackWriter, e: SimBlockRemoved, form: KvEventsHashForm): void {
  w.arrayHeader(3);
  w.str('BlockRemoved');
  w.arrayHeader(1);
  writeHash(w, e.blockHash, form);
  w.str(MEDIUM_GPU);
}

function writeEvent(w: MsgpackWriter, e: SimKvEvent, opts: EncodeOptions): void {
  const map = opts.encoding === 'map';
  switch (e.type) {
    case 'BlockStored':
      if (map) writeStoredMap(w, e, opts.hashForm);
      else writeStoredArray(w, e, opts.hashForm);
      return;
    case 'BlockRemoved':
      if (map) writeRemovedMap(w, e, opts.hashForm);
      else writeRemovedArray(w, e, opts.hashForm);
      return;
    case 'AllBlocksCleared':
      if (map) {
        w.mapHeader(1);
        w.str('type');
        w.str('AllBlocksCleared');
      } else {
        w.arrayHeader(1);
        w.str('AllBlocksCleared');
      }
      return;
  }
}

/** Encodes one batch; `ts` is seconds since the epoch as vLLM's time.time(). */
export function encodeEventBatch(ts: number, events: readonly SimKvEvent[], opts: EncodeOptions, writer = new MsgpackWriter()): Uint8Array {
  writer.arrayHeader(3);
  writer.float64(ts);
  writer.arrayHeader(events.length);
  for (const e of events) writeEvent(writer, e, opts);
  writer.int(opts.dpRank);
  return writer.finish();
}
