"""Writes src/vllm/events/testdata/kv-events.json: KV-event payloads encoded by msgspec exactly
as vLLM (and SGLang) put them on the wire, with the fields a decoder must recover from each.

Run: $(bash hack/vllm-env.sh) hack/golden/gen_kv_events.py

Encodings:
- "vllm-0.33": vLLM's own classes from the installed wheel (vllm.distributed.kv_events): the batch
  is an array [ts, events, data_parallel_rank], each event a map tagged {"type": "BlockStored", ...}
  with default-valued fields omitted (vLLM PR #42892 switched events from arrays to maps).
  (omit_defaults has no effect on array_like structs: msgspec writes all their fields.)
- "vllm-array-0.23": the positional form vLLM used up to 0.23 (struct options array_like=True,
  tag=True, omit_defaults=True), with the field list those releases had.
- "vllm-array-0.10": the older positional form without dp rank, lora_name, extra_keys, group_idx.
- "vllm-map-batch": the batch itself as a map {"ts", "events", "data_parallel_rank"}, as vLLM main
  had it at commit 0181ea3173e53eea8cf04a86891488e3dc89bb34 (events as maps too).
- "sglang": SGLang's python/sglang/srt/disaggregation/kv_events.py at commit
  612d579090db24ec7c47cc5ca6b83e0c649b8c28: [ts, events, attn_dp_rank], events as positional
  arrays without medium; block hashes are Python ints that may be negative (int64).

Block hashes of vLLM events are the real sha256_cbor hashes (vLLM's hash_block_tokens) of the
events' token ids with PYTHONHASHSEED=0, so the file also serves engine-key parity tests.

The replay section is captured live from vLLM's own ZmqEventPublisher over ipc:// with a DEALER
client: the frames a subscriber receives for a replay request, and the end marker.
"""

import json
import os
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import vllm_shim  # noqa: E402  (must run before any vllm import)

import msgspec  # noqa: E402
import zmq  # noqa: E402
from vllm.distributed import kv_events as vllm_events  # noqa: E402
from kv_event_structs import Array010BlockStored, ArrayAllBlocksCleared, ArrayBlockRemoved, Batch  # noqa: E402
from vllm.lora.request import LoRARequest  # noqa: E402
from vllm.utils.hashing import sha256_cbor  # noqa: E402
from vllm.v1.core import kv_cache_utils  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "src", "vllm", "events", "testdata", "kv-events.json")
TS = 1764043200.123456
TOPIC = "kv@pod-a@Qwen/Qwen3-8B"
BLOCK_SIZE = 16
U64 = (1 << 64) - 1


# --- the positional forms of earlier releases: same tags (class names), fields in wire order ---


class ArrayEvent023(msgspec.Struct, array_like=True, omit_defaults=True, gc=False, tag=True):
    pass


class BlockStored023(ArrayEvent023, tag="BlockStored"):
    block_hashes: list[int | bytes]
    parent_block_hash: int | bytes | None
    token_ids: list[int]
    block_size: int
    lora_id: int | None
    medium: str | None
    lora_name: str | None
    extra_keys: list[tuple[Any, ...] | None] | None = None
    group_idx: int | None = None
    kv_cache_spec_kind: str | None = None
    kv_cache_spec_sliding_window: int | None = None


class BlockRemoved023(ArrayEvent023, tag="BlockRemoved"):
    block_hashes: list[int | bytes]
    medium: str | None
    group_idx: int | None = None


class Batch010(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    ts: float
    events: list[Any]


class MapBatch(msgspec.Struct, omit_defaults=True, gc=False):
    ts: float
    events: list[Any]
    data_parallel_rank: int | None = None


class SglangEvent(msgspec.Struct, array_like=True, omit_defaults=True, gc=False, tag=True):
    pass


class SglangBlockStored(SglangEvent, tag="BlockStored"):
    block_hashes: list[int]
    parent_block_hash: int | None
    token_ids: list[int]
    block_size: int
    lora_id: int | None


class SglangBlockRemoved(SglangEvent, tag="BlockRemoved"):
    block_hashes: list[int]


class SglangAllBlocksCleared(SglangEvent, tag="AllBlocksCleared"):
    pass


class SglangBatch(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    ts: float
    events: list[Any]
    attn_dp_rank: int | None = None


# --- real block hashes and extra keys from vLLM's code ---


def chain(tokens, lora=None, cache_salt=None, mm=()):
    """Digests and event extra keys of every full block, as vLLM's scheduler computes them."""
    os.environ["PYTHONHASHSEED"] = "0"
    kv_cache_utils.init_none_hash(sha256_cbor)
    request = SimpleNamespace(
        block_hashes=[],
        num_tokens=len(tokens),
        all_token_ids=list(tokens),
        mm_features=[
            SimpleNamespace(identifier=i, mm_position=SimpleNamespace(offset=o, length=n))
            for i, o, n in mm
        ],
        lora_request=LoRARequest(lora[0], 7, lora[1]) if lora else None,
        cache_salt=cache_salt,
        prompt_embeds=None,
    )
    digests = kv_cache_utils.get_request_block_hasher(BLOCK_SIZE, sha256_cbor)(request)
    tagged, mm_idx = [], 0
    for start in range(0, len(digests) * BLOCK_SIZE, BLOCK_SIZE):
        keys, mm_idx = kv_cache_utils.generate_block_hash_extra_keys(
            request, start, start + BLOCK_SIZE, mm_idx
        )
        tagged.append(keys)
    return digests, kv_cache_utils.to_event_extra_keys(tagged)


def as_int(digest):
    """What vLLM publishes with VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1 (the default)."""
    return int.from_bytes(digest, "big") & U64


TOKENS = [(i * 7919 + 13) % 151000 for i in range(3 * BLOCK_SIZE + 5)]
DIGESTS, _ = chain(TOKENS)
LORA_TOKENS = [(i * 104729 + 7) % 151000 for i in range(2 * BLOCK_SIZE)]
LORA_DIGESTS, LORA_EXTRA = chain(
    LORA_TOKENS,
    lora=("sql-adapter", "/adapters/sql-adapter"),
    cache_salt="tenant-7",
    mm=[("img-a3f1", 3, 20)],
)


# --- expected decoded values, in the shape of src/indexer/types.ts (uint64 as decimal strings) ---


def engine_key(h):
    if h is None:
        return None
    if isinstance(h, bytes):
        return str(int.from_bytes(h[-8:], "big"))
    return str(h & U64)  # two's complement for the negative int64 hashes SGLang can send


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    return value


def expect_stored(e, **overrides):
    out = {
        "type": "BlockStored",
        "blockHashes": [engine_key(h) for h in e.block_hashes],
        "parentBlockHash": engine_key(e.parent_block_hash),
        "tokenIds": list(e.token_ids),
        "blockSize": e.block_size,
        "loraId": e.lora_id,
        "loraName": getattr(e, "lora_name", None),
        "medium": getattr(e, "medium", None),
        "extraKeys": jsonable(getattr(e, "extra_keys", None)),
        "groupIdx": getattr(e, "group_idx", None),
        "kvCacheSpecKind": getattr(e, "kv_cache_spec_kind", None),
    }
    out.update(overrides)
    return out


def expect_removed(e):
    return {
        "type": "BlockRemoved",
        "blockHashes": [engine_key(h) for h in e.block_hashes],
        "medium": getattr(e, "medium", None),
        "groupIdx": getattr(e, "group_idx", None),
    }


def expect_cleared(_e):
    return {"type": "AllBlocksCleared", "medium": None}


EXPECT = {"BlockStored": expect_stored, "BlockRemoved": expect_removed, "AllBlocksCleared": expect_cleared}


def record(name, encoding, batch, events, dp_rank, seq, notes=""):
    payload = msgspec.msgpack.encode(batch)
    return {
        "name": name,
        "encoding": encoding,
        "notes": notes,
        "topic": TOPIC,
        "seq": seq,
        "frames": [TOPIC.encode().hex(), seq.to_bytes(8, "big").hex(), payload.hex()],
        "payloadHex": payload.hex(),
        "wire": jsonable(msgspec.msgpack.decode(payload)),
        "expected": {
            "ts": batch.ts,
            "dpRank": dp_rank,
            "events": [EXPECT[type(e).__struct_config__.tag](e) for e in events],
        },
    }


def tokens_of(block_from, block_to):
    return TOKENS[block_from * BLOCK_SIZE : block_to * BLOCK_SIZE]


def vllm_033_vectors():
    E = vllm_events
    out = []
    stored_a = E.BlockStored(
        block_hashes=[as_int(d) for d in DIGESTS[:2]], parent_block_hash=None,
        token_ids=tokens_of(0, 2), block_size=BLOCK_SIZE, lora_id=None, medium="GPU",
        lora_name=None, extra_keys=[None, None], group_idx=0,
    )
    stored_b = E.BlockStored(
        block_hashes=[as_int(DIGESTS[2])], parent_block_hash=as_int(DIGESTS[1]),
        token_ids=tokens_of(2, 3), block_size=BLOCK_SIZE, lora_id=None, medium="GPU",
        lora_name=None, extra_keys=[None], group_idx=0,
    )
    events = [stored_a, stored_b]
    out.append(record("parent chain, int hashes", "vllm-0.33",
                      E.KVEventBatch(ts=TS, events=events, data_parallel_rank=0), events, 0, 0,
                      "as the 0.33 scheduler emits them: extra_keys [None, ...] and group_idx 0 present"))

    removed = E.BlockRemoved(block_hashes=[DIGESTS[2]], medium="GPU", group_idx=0)
    stored_bytes = E.BlockStored(
        block_hashes=list(DIGESTS[:3]), parent_block_hash=None, token_ids=tokens_of(0, 3),
        block_size=BLOCK_SIZE, lora_id=None, medium="GPU", lora_name=None,
    )
    events = [stored_bytes, removed, E.AllBlocksCleared()]
    out.append(record("store remove clear, 32-byte hashes, dp rank 1", "vllm-0.33",
                      E.KVEventBatch(ts=TS, events=events, data_parallel_rank=1), events, 1, 1,
                      "VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0: hashes are the full digests"))

    stored_lora = E.BlockStored(
        block_hashes=[as_int(d) for d in LORA_DIGESTS], parent_block_hash=None,
        token_ids=list(LORA_TOKENS), block_size=BLOCK_SIZE, lora_id=7, medium="GPU",
        lora_name="sql-adapter", extra_keys=LORA_EXTRA, group_idx=0,
    )
    events = [stored_lora]
    out.append(record("lora, cache_salt and multimodal extra keys", "vllm-0.33",
                      E.KVEventBatch(ts=TS, events=events, data_parallel_rank=0), events, 0, 2,
                      "extra_keys as to_event_extra_keys publishes them (untagged); the hashes use "
                      "the tagged keys, including the adapter path /adapters/sql-adapter that events "
                      "do not carry"))

    stored_cpu = E.BlockStored(
        block_hashes=[as_int(DIGESTS[0])], parent_block_hash=None, token_ids=tokens_of(0, 1),
        block_size=BLOCK_SIZE, lora_id=None, medium="CPU", lora_name=None, group_idx=1,
        kv_cache_spec_kind="sliding_window", kv_cache_spec_sliding_window=4096,
        locality="LOCAL", ownership="offload-tier-1", session_id="sess-42",
        lookahead_token_ids=[[11, 12]],
    )
    removed_cpu = E.BlockRemoved(block_hashes=[as_int(DIGESTS[0])], medium="CPU", group_idx=1,
                                 locality="LOCAL")
    events = [stored_cpu, removed_cpu]
    out.append(record("cpu tier with fields a decoder does not model", "vllm-0.33",
                      E.KVEventBatch(ts=TS, events=events, data_parallel_rank=0), events, 0, 3,
                      "kv_cache_spec_sliding_window, locality, ownership, session_id and "
                      "lookahead_token_ids must be skipped (and counted), not rejected"))

    extremes = E.BlockRemoved(block_hashes=[0, 1, (1 << 53) + 1, 1 << 63, U64], medium=None)
    events = [extremes]
    out.append(record("uint64 extremes and null medium", "vllm-0.33",
                      E.KVEventBatch(ts=TS, events=events), events, None, 4,
                      "hashes above 2^53 must not go through a JS number; dp rank omitted "
                      "(a batch built without a publisher)"))
    return out


def legacy_vectors():
    out = []
    a = BlockStored023(
        block_hashes=[as_int(d) for d in DIGESTS[:2]], parent_block_hash=None,
        token_ids=tokens_of(0, 2), block_size=BLOCK_SIZE, lora_id=None, medium="GPU",
        lora_name=None, extra_keys=[None, None], group_idx=0,
    )
    b = BlockStored023(
        block_hashes=[as_int(DIGESTS[2])], parent_block_hash=as_int(DIGESTS[1]),
        token_ids=tokens_of(2, 3), block_size=BLOCK_SIZE, lora_id=None, medium="GPU",
        lora_name=None, extra_keys=[None], group_idx=0, kv_cache_spec_kind="full_attention",
    )
    events = [a, b]
    out.append(record("parent chain, int hashes", "vllm-array-0.23",
                      Batch(ts=TS, events=events, data_parallel_rank=0), events, 0, 0,
                      "msgspec writes every field of an array_like struct, defaults included; "
                      "arrays from older releases are shorter (see vllm-array-0.10)"))
    lora = BlockStored023(
        block_hashes=list(LORA_DIGESTS), parent_block_hash=None, token_ids=list(LORA_TOKENS),
        block_size=BLOCK_SIZE, lora_id=7, medium="GPU", lora_name="sql-adapter",
        extra_keys=LORA_EXTRA,
    )
    removed = BlockRemoved023(block_hashes=[LORA_DIGESTS[1]], medium="GPU")
    events = [lora, removed, ArrayAllBlocksCleared()]
    out.append(record("lora extra keys, 32-byte hashes, remove, clear", "vllm-array-0.23",
                      Batch(ts=TS, events=events, data_parallel_rank=2), events, 2, 1))

    old = Array010BlockStored(
        block_hashes=[as_int(d) for d in DIGESTS[:3]], parent_block_hash=None,
        token_ids=tokens_of(0, 3), block_size=BLOCK_SIZE, lora_id=None, medium="GPU",
    )
    old_removed = ArrayBlockRemoved(block_hashes=[as_int(DIGESTS[2])], medium="GPU")
    events = [old, old_removed, ArrayAllBlocksCleared()]
    out.append(record("store remove clear, no dp rank", "vllm-array-0.10",
                      Batch010(ts=TS, events=events), events, None, 0))

    E = vllm_events
    stored = E.BlockStored(
        block_hashes=[as_int(d) for d in DIGESTS[:2]], parent_block_hash=None,
        token_ids=tokens_of(0, 2), block_size=BLOCK_SIZE, lora_id=None, medium="GPU",
        lora_name=None, extra_keys=[None, None], group_idx=0,
    )
    events = [stored, E.BlockRemoved(block_hashes=[as_int(DIGESTS[1])], medium="GPU", group_idx=0)]
    out.append(record("batch as a map", "vllm-map-batch",
                      MapBatch(ts=TS, events=events, data_parallel_rank=0), events, 0, 0))

    s = SglangBlockStored(
        block_hashes=[-5764607523034234880, 9007199254740993], parent_block_hash=None,
        token_ids=tokens_of(0, 2), block_size=BLOCK_SIZE, lora_id=None,
    )
    s2 = SglangBlockStored(
        block_hashes=[-1], parent_block_hash=9007199254740993, token_ids=tokens_of(2, 3),
        block_size=BLOCK_SIZE, lora_id=None,
    )
    events = [s, s2, SglangBlockRemoved(block_hashes=[-1]), SglangAllBlocksCleared()]
    out.append(record("sglang store remove clear, negative int64 hashes", "sglang",
                      SglangBatch(ts=TS, events=events, attn_dp_rank=0), events, 0, 0,
                      "SGLang hashes are not vLLM's; negative int64 values are read as uint64 "
                      "(two's complement) so that -1 and 18446744073709551615 are one key"))
    return out


def capture_replay():
    """Runs vLLM's ZmqEventPublisher and records what a DEALER subscriber receives on replay."""
    tmp = tempfile.mkdtemp(prefix="kvroute-golden-")
    pub_ep, replay_ep = f"ipc://{tmp}/pub", f"ipc://{tmp}/replay"
    publisher = vllm_events.ZmqEventPublisher(
        data_parallel_rank=0, endpoint=pub_ep, replay_endpoint=replay_ep, topic=TOPIC
    )
    payloads = []
    try:
        for i in range(3):
            batch = vllm_events.KVEventBatch(
                ts=TS + i, events=[vllm_events.BlockRemoved(block_hashes=[i + 1], medium="GPU")]
            )
            payloads.append(msgspec.msgpack.encode(
                vllm_events.KVEventBatch(ts=TS + i, events=batch.events, data_parallel_rank=0)))
            publisher.publish(batch)
        ctx = zmq.Context.instance()
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.RCVTIMEO, 5000)
        dealer.connect(replay_ep)
        deadline = time.monotonic() + 10
        while publisher._event_queue.qsize() > 0 or len(publisher._buffer) < 3:
            if time.monotonic() > deadline:
                raise TimeoutError("publisher did not buffer the batches")
            time.sleep(0.01)
        request = [b"", (1).to_bytes(8, "big")]
        dealer.send_multipart(request)
        replies = []
        while True:
            frames = dealer.recv_multipart()
            replies.append(frames)
            if frames[-2] == vllm_events.ZmqEventPublisher.END_SEQ:
                break
        dealer.close(linger=0)
    finally:
        publisher.shutdown()
    for frames, payload in zip(replies[:-1], payloads[1:]):
        assert frames[-1] == payload, "replayed payload differs from the published one"
    return {
        "source": "vllm.distributed.kv_events.ZmqEventPublisher (vLLM "
        + vllm_shim.vllm_version() + "), captured with a DEALER socket",
        "request": [f.hex() for f in request],
        "requestSeq": 1,
        "replies": [[f.hex() for f in frames] for frames in replies],
        "endMarkerSeqHex": vllm_events.ZmqEventPublisher.END_SEQ.hex(),
        "legacyReplies": [
            ["", seq.to_bytes(8, "big").hex(), payloads[seq].hex()] for seq in (1, 2)
        ] + [["", vllm_events.ZmqEventPublisher.END_SEQ.hex(), ""]],
        "legacySource": "vLLM releases up to 0.23 and SGLang (commit 612d5790) send "
        "(identity, b'', seq, payload) from the ROUTER: no topic frame, end marker (b'', END_SEQ, b'')",
    }


def main():
    doc = {
        "generator": "hack/golden/gen_kv_events.py",
        "vllmVersion": vllm_shim.vllm_version(),
        "msgspecVersion": msgspec.__version__,
        "hashSeed": "0",
        "blockSize": BLOCK_SIZE,
        "batches": vllm_033_vectors() + legacy_vectors(),
        "replay": capture_replay(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {len(doc['batches'])} batches to {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
