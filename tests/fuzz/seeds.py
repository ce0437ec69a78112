"""Seed corpora for the fuzz targets, from the captured bytes in tests/vectors: python3 seeds.py VECTORS OUT."""
import hashlib
import json
import os
import sys

vectors, out = sys.argv[1], sys.argv[2]


def lines(name):
    with open(os.path.join(vectors, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def save(target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


bodies = []
for name in ("zerorpc-python.jsonl", "zerorpc-node.jsonl"):
    for v in lines(name):
        if v.get("frames_hex"):
            bodies.append(bytes.fromhex(v["frames_hex"][-1]))
for b in bodies:
    save("event", b)
    save("msgpack", b)
    if len(b) < 255:
        save("server", bytes([len(b)]) + b)
# a few events shaped by the target itself (0xff): a call, a stream, a chunked call with chunks, a stop
save("server", bytes([0xff, 0, 0, 1, 2, 0xff, 0, 2, 5, 0, 0xff, 0, 16, 0, 0, 0xff, 1, 0, 8, 3, 0, 0xff, 1, 0, 9, 0, 0]))

# the client's call table (client_fuzz.cpp): scripts of a call answered, a stream, a deferred call past its
# limit, and the captured server events fed raw after an open call
save("client", bytes([0, 5, 0, 1, 0, 1, 0, 0, 7, 0, 3, 200]))
save("client", bytes([0, 5, 0, 1, 1, 3, 1, 0, 0, 1, 3, 1, 0, 3, 4, 4, 0, 0, 0]))
save("client", bytes([0x10, 5, 50, 0, 1, 0, 1, 0, 1, 2, 2, 3, 100, 3, 100]))
for v in lines("zerorpc-python.jsonl"):
    b = bytes.fromhex(v["frames_hex"][-1])
    if v["dir"] == "s2c" and len(b) < 255:
        save("client", bytes([0, 5, 0, 1, 0, 2, len(b)]) + b)

for v in lines("ductworks.jsonl"):
    if v.get("frame_hex"):
        save("frame", b"\x00" + bytes.fromhex(v["frame_hex"]))
for v in lines("multiprocessing.jsonl"):
    if v.get("frame_hex"):
        save("frame", b"\x01" + bytes.fromhex(v["frame_hex"]))
    if v.get("payload_hex") and v.get("kind"):  # the authkey handshake's messages, as a peer sent them
        payload = bytes.fromhex(v["payload_hex"])[:255]
        save("authkey", bytes([v.get("seq", 0) & 1, len(payload)]) + payload)

for text in ['1', '-2.5e3', '"two words"', '[1, [2, {"a": null}]]', '{"$bin": "00ff"}', 'true false null',
             '{"k": "v"} [1] 2', '"\\u00e9\\n"', '[[[[[]]]]]', '1e400']:
    save("json_args", text.encode())

# rpc-broker's routing (broker_fuzz.cpp): a worker announces itself and answers a call; a stream with credit; calls
# queued with no worker (past the bounds), then a worker, then time past every deadline
save("broker", bytes([3, 0, 0, 3, 1, 50, 0, 0, 1, 4, 0, 0, 2, 0, 0, 2, 1, 3, 3, 14, 5, 50]))
save("broker", bytes([3, 0, 0, 3, 1, 50, 0, 0, 1, 8, 0, 1, 2, 0, 0, 2, 1, 3, 1, 16, 0, 0, 3, 1, 1, 3, 5, 11,
                      2, 0, 0, 4, 1, 4, 17, 5, 200]))
save("broker", bytes(sum(([0, i % 4, i, 0, 0, 0] for i in range(8)), [])) + bytes([5, 100, 3, 1, 0, 3, 2, 60, 5, 255]))
