"""Writes src/vllm/testdata/vllm-block-hashes.json: prefix-caching block hashes computed by
vLLM's own code (the installed vllm wheel, see hack/vllm-env.sh) with --prefix-caching-hash-algo
sha256_cbor, and some with `sha256` (pickle, vLLM 0.33's default).

Run: $(bash hack/vllm-env.sh) hack/golden/gen_block_hashes.py

Tagged vectors go through vLLM's get_request_block_hasher, the function the scheduler uses, with a
request-shaped object carrying the token ids, LoRA request, cache_salt and multimodal features.
Untagged vectors reproduce vLLM releases before domain-tagged extra keys: the per-block keys are
vLLM's tagged keys passed through vLLM's to_event_extra_keys (which publishes exactly that older
shape) and hashed with vLLM's hash_block_tokens.
"""

import json
import os
import random
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vllm_shim  # noqa: E402  (must run before any vllm import)

from vllm.lora.request import LoRARequest  # noqa: E402
from vllm.utils.hashing import sha256, sha256_cbor  # noqa: E402
from vllm.v1.core import kv_cache_utils  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "src", "vllm", "testdata", "vllm-block-hashes.json")

MAX_SAFE_INTEGER = 2**53 - 1


HASH_FNS = {"sha256_cbor": sha256_cbor, "sha256": sha256}


def set_hash_seed(seed, algo="sha256_cbor"):
    """vLLM reads PYTHONHASHSEED from the environment when it initialises NONE_HASH."""
    if seed is None:
        os.environ.pop("PYTHONHASHSEED", None)
    else:
        os.environ["PYTHONHASHSEED"] = seed
    kv_cache_utils.init_none_hash(HASH_FNS[algo])
    return kv_cache_utils.NONE_HASH


def fresh_str(text):
    """A str object of its own, as vLLM's runtime-computed identifiers are: pickle memoizes by
    identity, so two equal literals (one object) would pickle differently from two computed ones."""
    return "".join(list(text))


def make_request(tokens, lora, cache_salt, mm_features):
    features = [
        SimpleNamespace(
            identifier=fresh_str(f["identifier"]),
            mm_position=SimpleNamespace(offset=f["offset"], length=f["length"]),
        )
        for f in mm_features
    ]
    return SimpleNamespace(
        block_hashes=[],
        num_tokens=len(tokens),
        all_token_ids=list(tokens),
        mm_features=features,
        lora_request=LoRARequest(fresh_str(lora["name"]), 1, fresh_str(lora["path"]))
        if lora
        else None,
        cache_salt=fresh_str(cache_salt) if cache_salt is not None else None,
        prompt_embeds=None,
    )


def to_json_key(value):
    if isinstance(value, tuple):
        return [to_json_key(v) for v in value]
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    return value


def tagged_hashes(request, block_size, algo):
    hasher = kv_cache_utils.get_request_block_hasher(block_size, HASH_FNS[algo])
    return hasher(request)


def per_block_extra_keys(request, block_size):
    keys = []
    mm_idx = 0
    for start in range(0, len(request.all_token_ids) - block_size + 1, block_size):
        extra, mm_idx = kv_cache_utils.generate_block_hash_extra_keys(
            request, start, start + block_size, mm_idx
        )
        keys.append(extra)
    return keys


def untagged_hashes(request, block_size, tagged_keys, algo):
    untagged = kv_cache_utils.to_event_extra_keys(tagged_keys) or [None] * len(tagged_keys)
    hashes = []
    parent = None
    for i, keys in enumerate(untagged):
        block = request.all_token_ids[i * block_size : (i + 1) * block_size]
        parent = kv_cache_utils.hash_block_tokens(HASH_FNS[algo], parent, block, keys)
        hashes.append(parent)
    return hashes, untagged


def vector(name, tokens, block_size, seed, lora=None, cache_salt=None, mm=(), fmt="tagged",
           algo="sha256_cbor"):
    set_hash_seed(seed, algo)
    request = make_request(tokens, lora, cache_salt, list(mm))
    tagged_keys = per_block_extra_keys(request, block_size)
    if fmt == "tagged":
        hashes = tagged_hashes(request, block_size, algo)
        keys = tagged_keys
    else:
        hashes, keys = untagged_hashes(request, block_size, tagged_keys, algo)
    assert len(hashes) == len(tokens) // block_size
    return {
        "name": name,
        "hashAlgo": algo,
        "blockSize": block_size,
        "hashSeed": seed,
        "extraKeysFormat": fmt,
        "loraName": lora["name"] if lora else None,
        "loraPath": lora["path"] if lora else None,
        "cacheSalt": cache_salt,
        "mmFeatures": list(mm),
        "tokens": list(tokens),
        "extraKeys": [to_json_key(k) for k in keys],
        "hashes": [h.hex() for h in hashes],
        "uint64": [str(int.from_bytes(h, "big") & (2**64 - 1)) for h in hashes],
    }


def main():
    rng = random.Random(20260525)
    small = [rng.randrange(0, 32000) for _ in range(70)]
    vocab_152k = [rng.randrange(0, 152064) for _ in range(100)]
    long_prompt = [rng.randrange(0, 128256) for _ in range(4096 + 9)]
    large_ints = [
        0, 1, 23, 24, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
        2**40 + 7, 2**48, 2**52 + 3, MAX_SAFE_INTEGER,
    ] * 2
    lora = {"name": "sql-adapter", "path": "/adapters/sql-adapter"}
    mm = [
        {"identifier": "img-a3f1", "offset": 3, "length": 20},
        {"identifier": "img-77c0", "offset": 23, "length": 2},
        {"identifier": "img-a3f1", "offset": 40, "length": 30},
    ]

    vectors = []
    for seed in ["0", "42", None, ""]:
        for block_size in [16, 32, 64, 1]:
            tokens = small[:40] if block_size == 1 else small
            vectors.append(
                vector(f"plain seed={seed!r} bs={block_size}", tokens, block_size, seed)
            )
    vectors += [
        vector("shorter than one block", small[:15], 16, "0"),
        vector("vocab above 2^16", vocab_152k, 16, "0"),
        vector("token ids across every CBOR integer width", large_ints, 16, "0"),
        vector("token ids across every CBOR integer width bs=1", large_ints, 1, None),
        vector("long prompt bs=16", long_prompt, 16, "0"),
        vector("long prompt bs=64 unset seed", long_prompt, 64, None),
        vector("lora", small, 16, "0", lora=lora),
        vector("cache_salt on first block only", small, 16, "0", cache_salt="tenant-7"),
        vector("non-ascii cache_salt", small, 16, "42", cache_salt="sel-\u00e9\u4e2d\U0001f600"),
        vector("lora and cache_salt", small, 16, None, lora=lora, cache_salt="tenant-7"),
        vector("multimodal", small[:80] + small[:10], 16, "0", mm=mm),
        vector("multimodal lora cache_salt", small[:80] + small[:10], 16, "0", lora=lora,
               cache_salt="s", mm=mm),
        vector("multimodal bs=64", small[:70] + small[:10], 64, "0", mm=mm),
        vector("untagged lora", small, 16, "0", lora=lora, fmt="untagged"),
        vector("untagged cache_salt", small, 16, "0", cache_salt="tenant-7", fmt="untagged"),
        vector("untagged multimodal lora cache_salt", small[:80] + small[:10], 16, None,
               lora=lora, cache_salt="s", mm=mm, fmt="untagged"),
    ]
    mm_dense = [
        {"identifier": "img-one", "offset": 1, "length": 2},
        {"identifier": "img-two", "offset": 4, "length": 3},
        {"identifier": "img-one", "offset": 9, "length": 12},
    ]
    p = {"algo": "sha256"}
    for seed in ["0", None]:
        for block_size in [16, 1, 2, 3, 4]:
            vectors.append(vector(f"pickle seed={seed!r} bs={block_size}", small[:48], block_size,
                                  seed, **p))
    vectors += [
        vector("pickle token ids across every int opcode", large_ints, 16, "0", **p),
        vector("pickle token ids across every int opcode bs=3", large_ints, 3, "42", **p),
        vector("pickle long prompt", long_prompt, 16, "0", **p),
        vector("pickle lora", small, 16, "0", lora=lora, **p),
        vector("pickle cache_salt", small, 16, None, cache_salt="tenant-7", **p),
        vector("pickle multimodal, several items in one block", small[:64], 16, "0", mm=mm_dense, **p),
        vector("pickle multimodal lora cache_salt", small[:80] + small[:10], 16, "0", lora=lora,
               cache_salt="s", mm=mm, **p),
        vector("pickle untagged multimodal lora cache_salt", small[:64], 16, "0", lora=lora,
               cache_salt="s", mm=mm_dense, fmt="untagged", **p),
        vector("pickle long cache_salt", small, 16, "0", cache_salt="x" * 300, **p),
    ]

    none_hashes = [
        {"hashSeed": seed, "hashAlgo": algo, "digest": set_hash_seed(seed, algo).hex()}
        for algo in ["sha256_cbor", "sha256"]
        for seed in ["0", "42", None, "", "random", "\u00e9t\u00e9", "s" * 300]
    ]
    doc = {
        "generator": "hack/golden/gen_block_hashes.py",
        "vllmVersion": vllm_shim.vllm_version(),
        "hashAlgo": "sha256_cbor",
        "defaultNoneHashSeed": kv_cache_utils.DEFAULT_NONE_HASH_SEED,
        "noneHashes": none_hashes,
        "vectors": vectors,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(vectors)} vectors to {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
