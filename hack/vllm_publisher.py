"""Drives vLLM's own ZmqEventPublisher (from the vllm wheel, via hack/golden/vllm_shim.py) for kvroute's
e2e tests: block hashes from vLLM's own request block hasher (sha256_cbor, PYTHONHASHSEED=0), events
as vLLM's own msgspec structs, sequence numbers, wire frames and the replay ROUTER all vLLM's code.

The one thing added is a lossy wire: the publisher's PUB socket is wrapped so that a batch can be lost
after vLLM numbered and buffered it, as a PUB drops messages past its high-water mark. The indexer
must then recover it from vLLM's replay buffer.

Driven by JSON lines on stdin, one command each, answered by one JSON line on stdout:
  {"op": "store", "tokens": [...], "from": 0, "to": 2, "drop": false}  -> {"ok": true, "seq": N}
      publishes BlockStored for full blocks [from, to) of `tokens`, parent = block from-1's hash
  {"op": "remove", "tokens": [...], "block": 3}  -> {"ok": true, "seq": N}
  {"op": "quit"}
On start it prints {"ready": true, "vllm": "<version>"} once its sockets are bound or connected.

Run: $(bash hack/vllm-env.sh) hack/vllm_publisher.py --endpoint tcp://127.0.0.1:5970 \
       --replay tcp://127.0.0.1:5971 --topic kv@127.0.0.1@Qwen/Qwen3-8B
"""

import argparse
import json
import os
import sys
import time
from types import SimpleNamespace

os.environ["PYTHONHASHSEED"] = "0"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden"))
import vllm_shim  # noqa: E402  (must run before any vllm import)

from vllm.distributed import kv_events  # noqa: E402
from vllm.utils.hashing import sha256_cbor  # noqa: E402
from vllm.v1.core import kv_cache_utils  # noqa: E402


class LossyWire:
    """The publisher's PUB socket, losing the next `drop` messages it is asked to send."""

    def __init__(self, socket):
        self._socket = socket
        self.drop = 0

    def send_multipart(self, frames, *args, **kwargs):
        if self.drop > 0:
            self.drop -= 1
            return None
        return self._socket.send_multipart(frames, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._socket, name)


def block_hashes(tokens, block_size):
    """vLLM's engine block hashes of every full block, as its events carry them."""
    request = SimpleNamespace(
        block_hashes=[],
        num_tokens=len(tokens),
        all_token_ids=list(tokens),
        mm_features=[],
        lora_request=None,
        cache_salt=None,
        prompt_embeds=None,
    )
    digests = kv_cache_utils.get_request_block_hasher(block_size, sha256_cbor)(request)
    return [kv_cache_utils.maybe_convert_block_hash(d) for d in digests]


class Driver:
    def __init__(self, args):
        kv_cache_utils.init_none_hash(sha256_cbor)
        self.block_size = args.block_size
        self.publisher = kv_events.ZmqEventPublisher(
            data_parallel_rank=args.dp_rank,
            endpoint=args.endpoint,
            replay_endpoint=args.replay,
            topic=args.topic,
        )
        self.wire = LossyWire(self.publisher._pub)
        self.publisher._pub = self.wire

    def publish(self, events, drop):
        """Publishes one batch through vLLM's queue and thread; returns the sequence number vLLM gave it."""
        before = len(self.publisher._buffer)
        self.wire.drop = 1 if drop else 0
        self.publisher.publish(kv_events.KVEventBatch(ts=time.time(), events=events))
        deadline = time.monotonic() + 10
        # The buffer is vLLM's replay buffer: a batch is in it once vLLM numbered and sent (or lost) it.
        while len(self.publisher._buffer) == before:
            if time.monotonic() > deadline:
                raise TimeoutError("vLLM's publisher thread did not take the batch")
            time.sleep(0.001)
        return self.publisher._buffer[-1][0]

    def store(self, cmd):
        tokens = cmd["tokens"]
        hashes = block_hashes(tokens, self.block_size)
        start, end = cmd.get("from", 0), cmd.get("to", len(hashes))
        if not 0 <= start < end <= len(hashes):
            raise ValueError(f"blocks [{start}, {end}) out of range: the tokens make {len(hashes)} full blocks")
        event = kv_events.BlockStored(
            block_hashes=hashes[start:end],
            parent_block_hash=hashes[start - 1] if start > 0 else None,
            token_ids=tokens[start * self.block_size : end * self.block_size],
            block_size=self.block_size,
            lora_id=None,
            medium=kv_events.MEDIUM_GPU,
            lora_name=None,
        )
        return self.publish([event], cmd.get("drop", False))

    def remove(self, cmd):
        hashes = block_hashes(cmd["tokens"], self.block_size)
        event = kv_events.BlockRemoved(block_hashes=[hashes[cmd["block"]]], medium=kv_events.MEDIUM_GPU)
        return self.publish([event], cmd.get("drop", False))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True, help="PUB endpoint; vLLM connects unless it has * or is ipc/inproc")
    parser.add_argument("--replay", default=None, help="replay ROUTER endpoint (vLLM binds it)")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--dp-rank", type=int, default=0)
    args = parser.parse_args()
    driver = Driver(args)
    print(json.dumps({"ready": True, "vllm": vllm_shim.vllm_version()}), flush=True)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "quit":
                break
            try:
                if op == "store":
                    reply = {"ok": True, "seq": driver.store(cmd)}
                elif op == "remove":
                    reply = {"ok": True, "seq": driver.remove(cmd)}
                else:
                    reply = {"ok": False, "error": f"unknown op {op!r}"}
            except Exception as e:  # reported to the test, which fails with the message
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(reply), flush=True)
    finally:
        driver.publisher.shutdown()


if __name__ == "__main__":
    main()
