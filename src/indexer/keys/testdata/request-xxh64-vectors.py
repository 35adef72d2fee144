"""Generates request-xxh64-vectors.json: XXH64 reference values from python-xxhash (the C reference
implementation) for the JavaScript port in ../request-xxh64.ts, and request-key chains computed with
the same reference for ../request.ts.

Run: $(bash hack/python-env.sh) src/indexer/keys/testdata/request-xxh64-vectors.py
"""
import json
import os
import random
import struct

import xxhash

rng = random.Random(20260125)
MASK = (1 << 64) - 1


def u64(lo_hi):
    return str(lo_hi)


bytes_vectors = []
for length in list(range(0, 72)) + [100, 255, 256, 1000]:
    data = bytes(rng.getrandbits(8) for _ in range(length))
    for seed in (0, 1, rng.getrandbits(64), MASK):
        bytes_vectors.append({"hex": data.hex(), "seed": str(seed), "xxh64": str(xxhash.xxh64_intdigest(data, seed))})

words_vectors = []
for count in (0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 64, 100):
    words = [rng.getrandbits(32) for _ in range(count)]
    seed = rng.getrandbits(64)
    data = struct.pack("<%dI" % count, *words)
    words_vectors.append({"words": words, "seed": str(seed), "xxh64": str(xxhash.xxh64_intdigest(data, seed))})


# Request keys (the scheme documented in ../request.ts):
#   root = 0 when neither LoRA name nor cache salt is set, else XXH64(seed material, seed 0) where the
#   material is, for each present part, a tag byte (1 = LoRA name, 2 = cache salt), the UTF-8 length
#   as 4 bytes little-endian, then the UTF-8 bytes.
#   key[i] = XXH64(little-endian uint32 token ids of block i, seed = key[i-1] or root).
def root_seed(lora, salt):
    material = b""
    for tag, value in ((1, lora), (2, salt)):
        if value:
            raw = value.encode("utf-8")
            material += bytes([tag]) + struct.pack("<I", len(raw)) + raw
    return xxhash.xxh64_intdigest(material, 0) if material else 0


def request_keys(tokens, block_size, lora, salt):
    parent = root_seed(lora, salt)
    keys = []
    for start in range(0, len(tokens) - block_size + 1, block_size):
        block = struct.pack("<%dI" % block_size, *tokens[start:start + block_size])
        parent = xxhash.xxh64_intdigest(block, parent)
        keys.append(str(parent))
    return keys


chains = []
for block_size, n_tokens, lora, salt in (
    (16, 50, None, None),
    (16, 64, "sql-adapter", None),
    (16, 64, None, "tenant-a"),
    (16, 64, "sql-adapter", "tenant-a"),
    (64, 200, None, None),
    (1, 5, None, None),
    (3, 10, "ünïcode", None),
):
    tokens = [rng.randrange(0, 200000) for _ in range(n_tokens)]
    chains.append({"blockSize": block_size, "tokens": tokens, "loraName": lora, "cacheSalt": salt,
                   "keys": request_keys(tokens, block_size, lora, salt)})

out = {"generator": "request-xxh64-vectors.py", "xxhash": xxhash.VERSION, "bytes": bytes_vectors,
       "words": words_vectors, "chains": chains}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "request-xxh64-vectors.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
print(path)
