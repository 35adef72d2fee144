"""A pyzmq SUB for kvroute's tests, in its own process: the KV-event consumer side of vLLM's protocol as
Python tooling and llm-d's consumers build it on libzmq (a SUB socket, [topic, seq, payload] frames).

It binds (central mode: publishers connect to it) or connects, subscribes to a topic prefix, and then
touches the socket only when told to, like a consumer whose thread is busy elsewhere. That matters:
libzmq hands a bound SUB its new connections, and so sends the peer its subscription, only when the
thread owning the socket next calls into it. A PUB that connects drops what it sends until then.

Driven by JSON lines on stdin, one command each, answered by one JSON line on stdout:
  {"op": "recv", "timeout_ms": 5000}  -> {"ok": true, "topic": "...", "seq": N, "payload": "<hex>"}
                                         or {"ok": false, "error": "timeout"}
  {"op": "quit"}                      -> {"ok": true}
On start it prints {"ready": true, "endpoint": "<bound or connected endpoint>", "zmq": "<libzmq version>"}.

Run: $(bash hack/python-env.sh) hack/kv_subscriber.py --bind tcp://127.0.0.1:0 --topic kv@
"""

import argparse
import json
import sys

import zmq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--bind", help="endpoint to bind the SUB socket to (port 0: the kernel picks)")
    where.add_argument("--connect", help="endpoint to connect the SUB socket to")
    ap.add_argument("--topic", default="", help="subscription prefix (empty: everything)")
    args = ap.parse_args()

    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if args.bind:
        sub.bind(args.bind)
        endpoint = sub.getsockopt_string(zmq.LAST_ENDPOINT)
    else:
        sub.connect(args.connect)
        endpoint = args.connect
    sub.setsockopt(zmq.SUBSCRIBE, args.topic.encode())
    print(json.dumps({"ready": True, "endpoint": endpoint, "zmq": zmq.zmq_version()}), flush=True)

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "recv":
                if sub.poll(int(cmd.get("timeout_ms", 5000)), zmq.POLLIN) == 0:
                    out = {"ok": False, "error": "timeout"}
                else:
                    frames = sub.recv_multipart()
                    if len(frames) != 3:
                        out = {"ok": False, "error": f"expected 3 frames, got {len(frames)}"}
                    else:
                        topic, seq, payload = frames
                        out = {"ok": True, "topic": topic.decode("utf-8", "replace"), "seq": int.from_bytes(seq, "big", signed=True), "payload": payload.hex()}
            elif op == "quit":
                print(json.dumps({"ok": True}), flush=True)
                break
            else:
                out = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as err:  # a bad command is reported to the test, not fatal
            out = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        print(json.dumps(out), flush=True)
    sub.close(0)


if __name__ == "__main__":
    main()
