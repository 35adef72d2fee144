"""Writes src/vllm/events/fixtures/payloads.json: KV-event payloads encoded by msgspec in each wire
form kvroute must read (current vLLM map-tagged events, older vLLM and SGLang array-tagged events,
map-encoded batches, byte-string hashes), each with the decoded values the TypeScript decoder must
produce. The struct definitions mirror the field names and orders of vLLM 0.33, older vLLM and SGLang.

Run: $(bash hack/python-env.sh) hack/gen_event_fixtures.py
"""

import hashlib
import json
import os
import pathlib
import sys
from typing import Any, Optional, Union

import msgspec

OUT = pathlib.Path(__file__).resolve().parent.parent / "src/vllm/events/fixtures/payloads.json"


sys.path.insert(0, os.path.dirname(__file__))
from kv_event_structs import (  # noqa: E402
    ArrayAllBlocksCleared as LegacyAllBlocksCleared,
    ArrayBlockRemoved as LegacyBlockRemoved,
    ArrayBlockStored as LegacyBlockStored,
    ArrayEvent,
    Batch,
    MapAllBlocksCleared as AllBlocksCleared,
    MapBlockRemoved as BlockRemoved,
    MapBlockStored as BlockStored,
    MapEvent,
)


# --- batch encoded as a map (some forks and bridges send it this way).
class MapBatch(msgspec.Struct, omit_defaults=True):
    ts: float
    events: list[Any]
    data_parallel_rank: Optional[int] = None


# --- SGLang: tagged arrays without medium; batch [ts, events] without a rank.
class SglBatch(msgspec.Struct, array_like=True, omit_defaults=True):
    ts: float
    events: list[Any]


class SglBlockStored(ArrayEvent, tag="BlockStored"):
    block_hashes: list[int]
    parent_block_hash: Optional[int]
    token_ids: list[int]
    block_size: int
    lora_id: Optional[int]


class SglBlockRemoved(ArrayEvent, tag="BlockRemoved"):
    block_hashes: list[int]


class SglAllBlocksCleared(ArrayEvent, tag="AllBlocksCleared"):
    pass


class UnknownMapEvent(MapEvent, tag="BlockPinned"):
    block_hashes: list[int]


def sha(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


def low64(h: Union[bytes, int]) -> str:
    if isinstance(h, bytes):
        return str(int.from_bytes(h, "big") & ((1 << 64) - 1))
    return str(h & ((1 << 64) - 1))


def expect_stored(e, block_hashes, parent, extra_keys=None, group_idx=None, spec_kind=None, lora_name=None):
    return {
        "type": "BlockStored",
        "blockHashes": [low64(h) for h in block_hashes],
        "parentBlockHash": None if parent is None else low64(parent),
        "tokenIds": list(e.token_ids),
        "blockSize": e.block_size,
        "loraId": e.lora_id,
        "loraName": lora_name,
        "medium": getattr(e, "medium", None),
        "extraKeys": extra_keys,
        "groupIdx": group_idx,
        "kvCacheSpecKind": spec_kind,
    }


cases = []


def case(name, payload_obj, ts, events, dp_rank, unknown_fields=(), unknown_types=()):
    payload = msgspec.msgpack.encode(payload_obj)
    cases.append({
        "name": name,
        "payload": payload.hex(),
        "expected": {"ts": ts, "events": events, "dpRank": dp_rank},
        "unknownFields": list(unknown_fields),
        "unknownEventTypes": list(unknown_types),
    })


tokens = list(range(1000, 1032))
big = [(1 << 64) - 1, 1 << 63, 0x0123456789ABCDEF]

e1 = BlockStored(block_hashes=big[:2], parent_block_hash=None, token_ids=tokens, block_size=16, lora_id=None, medium="GPU", lora_name=None)
e2 = BlockStored(block_hashes=[big[2]], parent_block_hash=big[1], token_ids=tokens[:16], block_size=16, lora_id=7, medium="CPU",
                 lora_name="sql-adapter", extra_keys=[("sql-adapter", "salt-1")], group_idx=1, kv_cache_spec_kind="full_attention",
                 kv_cache_spec_sliding_window=None, locality="LOCAL", session_id="s1", lookahead_token_ids=[[1, 2]])
e3 = BlockRemoved(block_hashes=[big[0], 5], medium="GPU")
e4 = BlockRemoved(block_hashes=[42], medium=None, group_idx=2)
case("vllm-0.33 map events, int hashes", Batch(ts=1732500000.25, events=[e1, e2, e3, e4, AllBlocksCleared()], data_parallel_rank=0), 1732500000.25, [
    expect_stored(e1, e1.block_hashes, None),
    expect_stored(e2, e2.block_hashes, big[1], extra_keys=[["sql-adapter", "salt-1"]], group_idx=1, spec_kind="full_attention", lora_name="sql-adapter"),
    {"type": "BlockRemoved", "blockHashes": [low64(h) for h in e3.block_hashes], "medium": "GPU", "groupIdx": None},
    {"type": "BlockRemoved", "blockHashes": ["42"], "medium": None, "groupIdx": 2},
    {"type": "AllBlocksCleared", "medium": None},
], 0)

mm = BlockStored(block_hashes=[sha(1), sha(2)], parent_block_hash=sha(0), token_ids=tokens, block_size=16, lora_id=None, medium="GPU",
                 lora_name=None, extra_keys=[("img-abc", 0), None])
case("vllm-0.33 map events, 32-byte hashes, multimodal extra keys, dp rank 3",
     Batch(ts=2.5, events=[mm, BlockRemoved(block_hashes=[sha(1)], medium="GPU")], data_parallel_rank=3), 2.5, [
         expect_stored(mm, mm.block_hashes, sha(0), extra_keys=[["img-abc", 0], None]),
         {"type": "BlockRemoved", "blockHashes": [low64(sha(1))], "medium": "GPU", "groupIdx": None},
     ], 3)

short_hash = b"\x01\x02\x03"
sh = BlockStored(block_hashes=[short_hash], parent_block_hash=None, token_ids=tokens[:4], block_size=4, lora_id=None, medium=None, lora_name=None)
case("byte-string hash shorter than 8 bytes", Batch(ts=3.0, events=[sh]), 3.0, [expect_stored(sh, [short_hash], None)], None)

case("batch without dp rank, unknown event type skipped",
     Batch(ts=4.0, events=[UnknownMapEvent(block_hashes=[1]), AllBlocksCleared()]), 4.0,
     [{"type": "AllBlocksCleared", "medium": None}], None, unknown_types=["BlockPinned"])

case("map-encoded batch", MapBatch(ts=5.0, events=[e3], data_parallel_rank=1), 5.0,
     [{"type": "BlockRemoved", "blockHashes": [low64(h) for h in e3.block_hashes], "medium": "GPU", "groupIdx": None}], 1)

l1 = LegacyBlockStored(block_hashes=[11, 12], parent_block_hash=10, token_ids=tokens, block_size=16, lora_id=None, medium="GPU")
l2 = LegacyBlockStored(block_hashes=[13], parent_block_hash=12, token_ids=tokens[:16], block_size=16, lora_id=3, medium="GPU",
                       lora_name="adapter-a", extra_keys=[("adapter-a",)], group_idx=0)
case("older vLLM array events with medium, lora_name, extra_keys", Batch(ts=6.0, events=[l1, l2, LegacyBlockRemoved(block_hashes=[11], medium="GPU"),
                                                                      LegacyAllBlocksCleared()], data_parallel_rank=0), 6.0, [
    expect_stored(l1, [11, 12], 10),
    expect_stored(l2, [13], 12, extra_keys=[["adapter-a"]], group_idx=0, lora_name="adapter-a"),
    {"type": "BlockRemoved", "blockHashes": ["11"], "medium": "GPU", "groupIdx": None},
    {"type": "AllBlocksCleared", "medium": None},
], 0)

# Older vLLM hashed with Python's hash(): negative int64 values appear on the wire.
s1 = SglBlockStored(block_hashes=[-1, -(1 << 63), 9], parent_block_hash=-2, token_ids=tokens[:24], block_size=8, lora_id=None)
case("SGLang array events, negative hashes, batch without rank",
     SglBatch(ts=7.0, events=[s1, SglBlockRemoved(block_hashes=[9]), SglAllBlocksCleared()]), 7.0, [
         {**expect_stored(s1, [-1, -(1 << 63), 9], -2), "medium": None},
         {"type": "BlockRemoved", "blockHashes": ["9"], "medium": None, "groupIdx": None},
         {"type": "AllBlocksCleared", "medium": None},
     ], None)

# A field a future vLLM might add: skipped and reported, the rest decoded.
raw = msgspec.msgpack.encode([8.0, [{"type": "BlockRemoved", "block_hashes": [77], "medium": "GPU", "future_field": {"a": [1, 2]}}], 0])
cases.append({
    "name": "unknown field in a map event",
    "payload": raw.hex(),
    "expected": {"ts": 8.0, "events": [{"type": "BlockRemoved", "blockHashes": ["77"], "medium": "GPU", "groupIdx": None}], "dpRank": 0},
    "unknownFields": ["future_field"],
    "unknownEventTypes": [],
})

OUT.write_text(json.dumps({"generator": "hack/gen_event_fixtures.py", "msgspec": msgspec.__version__, "cases": cases}, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {OUT}")
