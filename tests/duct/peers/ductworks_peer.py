"""A ductworks-framing peer for the C++ tests: 0x54, big-endian uint32 length, UTF-8 JSON as json.dumps writes it.

Usage: ductworks_peer.py ADDRESS   (unix:PATH or tcp://HOST:PORT)
Connects, sends a greeting, then answers every message M with {"echo": M} until end of stream.
"""
import json
import socket
import struct
import sys

address = sys.argv[1]
if address.startswith("unix:"):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address[len("unix:"):])
else:
    host, port = address[len("tcp://"):].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))


def send(obj):
    payload = json.dumps(obj).encode("utf-8")
    sock.sendall(b"T" + struct.pack("!I", len(payload)) + payload)


def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def recv():
    header = recv_exact(5)
    if header is None:
        return None
    if header[0] != 0x54:
        raise SystemExit("bad magic byte %r" % header[0])
    (size,) = struct.unpack("!I", header[1:])
    return (json.loads(recv_exact(size).decode("utf-8", "replace")),)


send(["hello from python", 3.25, None, True, "\u00e9\U0001F600"])
while (message := recv()) is not None:
    send({"echo": message[0]})
sock.close()
