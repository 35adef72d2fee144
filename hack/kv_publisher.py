"""A vLLM-style KV-event publisher for kvroute's tests, in its own process: numbered msgpack batches on a
ZMQ PUB socket ([topic, seq as 8-byte big-endian, payload]) and, optionally, a ROUTER replay socket
that serves its buffer as vLLM's ZmqEventPublisher does (reply form of vLLM 0.33 or of older releases).

Driven by JSON lines on stdin, one command each, answered by one JSON line on stdout:
  {"op": "publish", "events": [EVENT...], "drop": false, "dp_rank": 0}  -> {"ok": true, "seq": N}
      EVENT: {"type": "BlockStored", "block_hashes": ["<decimal>" | {"bytes": "<hex>"}...],
              "parent_block_hash": ..., "token_ids": [...], "block_size": 16, "medium": "GPU", ...}
      "drop": number and buffer the batch (replay can serve it) but never send it: a lost message.
  {"op": "garbage", "kind": "frames|topic|seq|payload|truncated"}  -> a malformed message; no seq used
  {"op": "restart"}  -> numbering starts again at 0 and the buffer empties, as after a process restart
  {"op": "quit"}
On start it prints {"ready": true, "endpoint": ..., "replay": ...} once its sockets are bound or connected,
with the endpoints the sockets bound (a port 0 resolved to the port the kernel picked).

Run: $(bash hack/python-env.sh) hack/kv_publisher.py --endpoint tcp://127.0.0.1:5601 --topic kv@pod@model
"""

import argparse
import collections
import json
import os
import sys
import threading
import time

import msgspec
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_event_structs import FORMS, Batch  # noqa: E402

END_SEQ = (-1).to_bytes(8, "big", signed=True)


def parse_hash(v):
    if isinstance(v, dict):
        return bytes.fromhex(v["bytes"])
    return int(v)


def build_event(form, e):
    cls = FORMS[form][e["type"]]
    fields = {k: v for k, v in e.items() if k != "type"}
    if "block_hashes" in fields:
        fields["block_hashes"] = [parse_hash(h) for h in fields["block_hashes"]]
    if fields.get("parent_block_hash") is not None:
        fields["parent_block_hash"] = parse_hash(fields["parent_block_hash"])
    if fields.get("extra_keys") is not None:
        fields["extra_keys"] = [None if k is None else tuple(k) for k in fields["extra_keys"]]
    if e["type"] == "BlockStored":
        for name in ("parent_block_hash", "lora_id", "medium"):
            fields.setdefault(name, None)
        if form == "map":
            fields.setdefault("lora_name", None)
    if e["type"] == "BlockRemoved":
        fields.setdefault("medium", None)
    return cls(**fields)


class Publisher:
    def __init__(self, args):
        self.args = args
        self.ctx = zmq.Context.instance()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        if args.bind:
            self.pub.bind(args.endpoint)
        else:
            self.pub.connect(args.endpoint)
        self.topic = args.topic.encode()
        self.seq = 0
        self.buffer = collections.deque(maxlen=args.buffer_steps)
        self.lock = threading.Lock()
        self.encoder = msgspec.msgpack.Encoder()
        self.running = True
        self.replay = None
        if args.replay:
            self.replay = self.ctx.socket(zmq.ROUTER)
            self.replay.setsockopt(zmq.LINGER, 0)
            self.replay.bind(args.replay)
            self.thread = threading.Thread(target=self.serve_replay, daemon=True)
            self.thread.start()

    def serve_replay(self):
        while self.running:
            if not self.replay.poll(50):
                continue
            frames = self.replay.recv_multipart()
            if len(frames) != 3:
                continue
            client, _, start = frames
            start_seq = int.from_bytes(start, "big")
            with self.lock:
                items = [(s, p) for s, p in self.buffer if s >= start_seq]
            for s, payload in items:
                seq_bytes = s.to_bytes(8, "big")
                if self.args.reply_form == "legacy":
                    self.replay.send_multipart((client, b"", seq_bytes, payload))
                else:
                    self.replay.send_multipart((client, b"", self.topic, seq_bytes, payload))
            if self.args.reply_form == "legacy":
                self.replay.send_multipart((client, b"", END_SEQ, b""))
            else:
                self.replay.send_multipart((client, b"", b"", END_SEQ, b""))

    def publish(self, cmd):
        events = [build_event(self.args.encoding, e) for e in cmd.get("events", [])]
        dp_rank = cmd.get("dp_rank", self.args.dp_rank)
        payload = self.encoder.encode(Batch(ts=time.time(), events=events, data_parallel_rank=dp_rank))
        with self.lock:
            seq = self.seq
            self.seq += 1
            self.buffer.append((seq, payload))
        if not cmd.get("drop"):
            self.pub.send_multipart((self.topic, seq.to_bytes(8, "big"), payload))
        return {"ok": True, "seq": seq}

    def garbage(self, kind):
        seq = self.seq.to_bytes(8, "big")
        good = self.encoder.encode(Batch(ts=time.time(), events=[], data_parallel_rank=self.args.dp_rank))
        frames = {
            "frames": (self.topic, seq),
            "topic": (b"not-a-kv-topic", seq, good),
            "seq": (self.topic, b"\x01\x02", good),
            "payload": (self.topic, seq, b"\xc1garbage"),
            "truncated": (self.topic, seq, good[:-1] if len(good) > 1 else b"\x92"),
        }[kind]
        self.pub.send_multipart(frames)
        return {"ok": True}

    def restart(self):
        with self.lock:
            self.seq = 0
            self.buffer.clear()
        return {"ok": True}

    def close(self):
        self.running = False
        if self.replay is not None:
            self.thread.join(timeout=1)
            self.replay.close(0)
        self.pub.close(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", required=True, help="PUB endpoint (connected unless --bind)")
    ap.add_argument("--bind", action="store_true", help="bind the PUB socket instead of connecting")
    ap.add_argument("--replay", help="ROUTER endpoint to bind for replay requests")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--encoding", choices=["map", "array"], default="map", help="map: vLLM 0.33 events; array: older positional events")
    ap.add_argument("--reply-form", choices=["topic", "legacy"], default="topic", help="replay replies with a topic frame (0.33) or without")
    ap.add_argument("--buffer-steps", type=int, default=10_000)
    ap.add_argument("--dp-rank", type=int, default=0)
    args = ap.parse_args()

    p = Publisher(args)
    # Bound endpoints as the sockets report them, so a test can bind port 0 and learn the port.
    endpoint = p.pub.getsockopt_string(zmq.LAST_ENDPOINT) if args.bind else args.endpoint
    replay = p.replay.getsockopt_string(zmq.LAST_ENDPOINT) if p.replay is not None else None
    print(json.dumps({"ready": True, "endpoint": endpoint, "replay": replay}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "publish":
                out = p.publish(cmd)
            elif op == "garbage":
                out = p.garbage(cmd["kind"])
            elif op == "restart":
                out = p.restart()
            elif op == "quit":
                print(json.dumps({"ok": True}), flush=True)
                break
            else:
                out = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as err:  # a bad command is reported to the test, not fatal
            out = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        print(json.dumps(out), flush=True)
    p.close()


if __name__ == "__main__":
    main()
