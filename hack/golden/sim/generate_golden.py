"""Golden KV-event streams for the simulator, produced by vLLM 0.33's own KV cache manager.

Runs a request sequence through vLLM's real KVCacheManager (BlockPool, FreeKVCacheBlockQueue,
FullAttentionManager, request block hasher with sha256_cbor) under a small scheduler loop that
mirrors vLLM's Scheduler.schedule()/update_from_output() for one full-attention group: running
requests first (preempting the newest on allocation failure), then waiting requests FCFS with the
full-sequence admission check, one token budget per step, KV events taken once per step.
Each step's events are encoded with vLLM's msgspec structs (map form, as vLLM 0.33 publishes) and
with the pre-0.11 positional struct definitions (array form).

Usage: $(bash hack/vllm-env.sh) hack/golden/sim/generate_golden.py > src/sim/testdata/golden-events.json
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ["PYTHONHASHSEED"] = "0"

import vllm_shim  # noqa: E402,F401  (must run before any vllm import)

import msgspec  # noqa: E402
from kv_event_structs import Array010BlockStored, ArrayAllBlocksCleared, ArrayBlockRemoved, Batch  # noqa: E402
from vllm.distributed.kv_events import KVEventBatch  # noqa: E402
from vllm.utils.hashing import sha256_cbor  # noqa: E402
from vllm.v1.core import kv_cache_utils  # noqa: E402
from vllm.v1.core.kv_cache_manager import KVCacheManager  # noqa: E402
from vllm.v1.kv_cache_interface import (  # noqa: E402
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheGroupSpec,
)
from unittest import mock  # noqa: E402

BLOCK_SIZE = 4
NUM_BLOCKS = 14
MAX_NUM_SEQS = 3
MAX_BATCHED_TOKENS = 12
MAX_MODEL_LEN = 48
HASH_SEED = "0"


class Lora:
    def __init__(self, name, int_id, path):
        self.lora_name = name
        self.name = name
        self.lora_int_id = int_id
        self.adapter_id = int_id
        self.lora_path = path


class Req:
    """The Request attributes vLLM's KV cache manager reads."""

    def __init__(self, spec, hasher):
        self.request_id = spec["id"]
        self._all = list(spec["prompt"])
        self.num_prompt_tokens = len(spec["prompt"])
        self.outputs = list(spec["outputs"])
        self.max_tokens = len(spec["outputs"])
        lora = spec.get("lora")
        self.lora_request = Lora(lora["name"], lora["id"], lora["path"]) if lora else None
        self.cache_salt = spec.get("cacheSalt")
        self.mm_features = []
        self.prompt_embeds = None
        self.skip_reading_prefix_cache = False
        self.session_id = None
        self.num_computed_tokens = 0
        self.num_in_flight_tokens = 0
        self.num_preemptions = 0
        self.shared_prefix_boundary = 0
        self.kv_cache_report_mode = "incremental"
        self.status = "waiting"
        self.cached_tokens = None
        self._hasher = hasher
        self.block_hashes = []
        self.block_hashes.extend(hasher(self))

    @property
    def all_token_ids(self):
        return self._all

    @property
    def num_tokens(self):
        return len(self._all)

    @property
    def num_output_tokens(self):
        return len(self._all) - self.num_prompt_tokens

    def append(self, token):
        self._all.append(token)
        self.block_hashes.extend(self._hasher(self))


def seq(start, n):
    return list(range(start, start + n))


A = seq(1, 10)
SCENARIO = [
    # Two requests sharing two blocks, admitted in the same step (B hits A's just-scheduled blocks).
    {"id": "a", "arrive": 0, "prompt": A, "outputs": seq(101, 6)},
    {"id": "b", "arrive": 0, "prompt": A[:8] + [50, 51, 52], "outputs": seq(201, 3)},
    # LoRA and cache_salt change every hash (LoRA) or the chain from block 0 (salt).
    {"id": "c", "arrive": 2, "prompt": A, "outputs": seq(301, 2),
     "lora": {"name": "adapter-a", "id": 1, "path": "/adapters/a"}},
    {"id": "d", "arrive": 2, "prompt": A, "outputs": seq(401, 2), "cacheSalt": "tenant-1"},
    # A prompt of exactly two cached blocks hits only one: the last token is always recomputed.
    {"id": "e", "arrive": 9, "prompt": A[:8], "outputs": seq(501, 1)},
    {"id": "f", "arrive": 9, "prompt": A, "outputs": seq(601, 1)},
    # Memory pressure: evictions in free-queue order, then a preemption while decoding.
    {"id": "g", "arrive": 12, "prompt": seq(1000, 30), "outputs": seq(701, 4)},
    {"id": "h", "arrive": 12, "prompt": seq(2000, 18), "outputs": seq(801, 9)},
    {"id": "i", "arrive": 30, "prompt": A, "outputs": seq(901, 2)},
]
RESET_AT = 40
AFTER_RESET = [{"id": "j", "arrive": 41, "prompt": A, "outputs": seq(951, 1)}]
NUM_STEPS = 45


def run(int_hashes):
    os.environ["VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES"] = "1" if int_hashes else "0"
    kv_cache_utils.init_none_hash(sha256_cbor)
    hasher = kv_cache_utils.get_request_block_hasher(BLOCK_SIZE, sha256_cbor)
    spec = FullAttentionSpec(block_size=BLOCK_SIZE, num_kv_heads=1, head_size=1, dtype=mock.MagicMock())
    config = KVCacheConfig(
        num_blocks=NUM_BLOCKS,
        kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(["layer.0"], spec)],
    )
    km = KVCacheManager(
        config,
        max_model_len=MAX_MODEL_LEN,
        scheduler_block_size=BLOCK_SIZE,
        hash_block_size=BLOCK_SIZE,
        enable_caching=True,
        log_stats=True,
        enable_kv_cache_events=True,
    )
    requests = {s["id"]: Req(s, hasher) for s in SCENARIO + AFTER_RESET}
    arrivals = {}
    for s in SCENARIO + AFTER_RESET:
        arrivals.setdefault(s["arrive"], []).append(requests[s["id"]])
    running, waiting = [], []
    queries = hits = 0
    steps = []

    def record(step, events, note):
        nonlocal queries, hits
        stats = km.make_prefix_cache_stats()
        queries += stats.queries
        hits += stats.hits
        if not events:
            return
        batch = KVEventBatch(ts=float(step), events=events, data_parallel_rank=0)
        old = Batch(ts=float(step), events=[to_old(e) for e in events], data_parallel_rank=0)
        steps.append({
            "step": step,
            "note": note,
            "map": msgspec.msgpack.encode(batch).hex(),
            "array": msgspec.msgpack.encode(old).hex(),
            "usage": km.usage,
            "freeQueue": [b.block_id for b in km.block_pool.free_block_queue.get_all_free_blocks()],
        })

    for step in range(NUM_STEPS):
        waiting.extend(arrivals.get(step, []))
        if step == RESET_AT:
            # vLLM handles the reset between steps; its AllBlocksCleared waits in the event queue
            # until the next step that runs publishes it (an idle engine publishes nothing).
            assert km.reset_prefix_cache(), "reset must succeed when idle"
        if not running and not waiting:
            # EngineCore.step() returns early without requests: no update_from_output, no events.
            continue
        budget = MAX_BATCHED_TOKENS
        planned = {}
        preempted = []
        i = 0
        while i < len(running) and budget > 0:
            r = running[i]
            n = min(r.num_tokens - r.num_computed_tokens, budget, MAX_MODEL_LEN - r.num_computed_tokens - 1)
            if n <= 0:
                i += 1
                continue
            while True:
                new_blocks = km.allocate_slots(r, n)
                if new_blocks is not None:
                    break
                victim = running.pop()
                km.free(victim)
                victim.status = "preempted"
                victim.num_computed_tokens = 0
                victim.num_preemptions += 1
                waiting.insert(0, victim)
                preempted.append(victim.request_id)
                if victim is r:
                    break
            if new_blocks is None:
                break
            planned[r] = n
            budget -= n
            i += 1
        if not preempted:
            while budget > 0 and waiting and len(running) < MAX_NUM_SEQS:
                r = waiting[0]
                if r.num_computed_tokens == 0:
                    blocks, hit, _ = km.get_computed_blocks(r)
                else:
                    blocks, hit = km.empty_kv_cache_blocks, 0
                n = min(r.num_tokens - hit, budget)
                new_blocks = km.allocate_slots(
                    r, n, num_new_computed_tokens=hit, new_computed_blocks=blocks,
                    full_sequence_must_fit=True, has_scheduled_reqs=bool(running),
                )
                if new_blocks is None:
                    break
                km.record_prefix_cache_stats(r, hit)
                if r.num_preemptions == 0:
                    r.cached_tokens = hit
                waiting.pop(0)
                running.append(r)
                r.status = "running"
                r.num_computed_tokens = hit
                planned[r] = n
                budget -= n
        for r, n in planned.items():
            r.num_computed_tokens += n
        for r in list(planned):
            if r.status != "running" or r.num_computed_tokens < r.num_tokens:
                continue
            r.append(r.outputs[r.num_output_tokens])
            if r.num_output_tokens >= r.max_tokens or r.num_tokens >= MAX_MODEL_LEN:
                r.status = "finished"
                running.remove(r)
                km.free(r)
        note = "preempted " + ",".join(preempted) if preempted else ""
        record(step, km.take_events(), note)

    assert not running and not waiting, "scenario must drain"
    return {
        "steps": steps,
        "cachedTokens": {rid: r.cached_tokens for rid, r in requests.items()},
        "preemptions": {rid: r.num_preemptions for rid, r in requests.items()},
        "prefixCache": {"queries": queries, "hits": hits},
    }


def to_old(event):
    kind = type(event).__name__
    if kind == "BlockStored":
        return Array010BlockStored(
            block_hashes=event.block_hashes,
            parent_block_hash=event.parent_block_hash,
            token_ids=event.token_ids,
            block_size=event.block_size,
            lora_id=event.lora_id,
            medium=event.medium,
        )
    if kind == "BlockRemoved":
        return ArrayBlockRemoved(block_hashes=event.block_hashes, medium=event.medium)
    return ArrayAllBlocksCleared()


def main():
    uint64 = run(int_hashes=True)
    raw = run(int_hashes=False)
    json.dump(
        {
            "generator": "hack/golden/sim/generate_golden.py (vLLM 0.33.0 KVCacheManager)",
            "config": {
                "blockSize": BLOCK_SIZE,
                "numBlocks": NUM_BLOCKS,
                "maxNumSeqs": MAX_NUM_SEQS,
                "maxNumBatchedTokens": MAX_BATCHED_TOKENS,
                "maxModelLen": MAX_MODEL_LEN,
                "hashSeed": HASH_SEED,
                "resetAtStep": RESET_AT,
                "numSteps": NUM_STEPS,
            },
            "requests": SCENARIO + AFTER_RESET,
            "uint64": uint64,
            "bytes": {"steps": [{"step": s["step"], "map": s["map"], "array": s["array"]} for s in raw["steps"]]},
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
