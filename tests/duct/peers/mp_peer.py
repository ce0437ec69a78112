"""A multiprocessing.connection peer for the C++ tests (standard library only).

Usage: mp_peer.py listen|connect [AUTHKEY]
The C++ test talks to us over a control connection on DUCT_FD (multiprocessing framing):
  listen:  we send our Listener's "tcp://127.0.0.1:PORT", accept one client, answer "ping" with "pong:ping",
           answer a large message with its SHA-256, then report "ok" (or "error:NAME:MESSAGE") on the control.
  connect: we receive the address to dial, connect, send "ping", and report "ok:<reply>" (or "error:...").
"""
import hashlib
import os
import sys
from multiprocessing.connection import Client, Connection, Listener

control = Connection(int(os.environ["DUCT_FD"]))
role = sys.argv[1]
authkey = sys.argv[2].encode() if len(sys.argv) > 2 else None


def report_error(e):
    control.send_bytes(("error:%s:%s" % (type(e).__name__, e)).encode())


if role == "listen":
    with Listener(("127.0.0.1", 0), authkey=authkey) as listener:
        control.send_bytes(("tcp://%s:%d" % listener.address).encode())
        try:
            conn = listener.accept()
        except Exception as e:
            report_error(e)
            sys.exit(0)
        with conn:
            conn.send_bytes(b"pong:" + conn.recv_bytes())
            big = conn.recv_bytes()
            conn.send_bytes(hashlib.sha256(big).hexdigest().encode())
        control.send_bytes(b"ok")
elif role == "connect":
    address = control.recv_bytes().decode()
    host, port = address[len("tcp://"):].rsplit(":", 1)
    try:
        conn = Client((host, int(port)), authkey=authkey)
    except Exception as e:
        report_error(e)
        sys.exit(0)
    with conn:
        conn.send_bytes(b"ping")
        control.send_bytes(b"ok:" + conn.recv_bytes())
