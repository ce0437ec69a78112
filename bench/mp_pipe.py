"""Python's multiprocessing.Pipe() measured the way duct-bench measures ducts; prints one JSON object.

Usage: mp_pipe.py oneway SIZE COUNT | roundtrip COUNT
"""
import json
import multiprocessing as mp
import sys
import time


def sender(conn, size, count):
    payload = b"x" * size
    conn.recv_bytes()  # go
    for _ in range(count):
        conn.send_bytes(payload)
    conn.close()


def echo(conn, count):
    for _ in range(count):
        conn.send_bytes(conn.recv_bytes())


def main():
    ctx = mp.get_context("fork")
    mode = sys.argv[1]
    parent, child = ctx.Pipe()
    if mode == "oneway":
        size, count = int(sys.argv[2]), int(sys.argv[3])
        p = ctx.Process(target=sender, args=(child, size, count))
        p.start()
        start = time.perf_counter()
        parent.send_bytes(b"go")
        for _ in range(count):
            parent.recv_bytes()
        elapsed = time.perf_counter() - start
        p.join()
        print(json.dumps({"msgs_per_s": count / elapsed, "bytes_per_s": count * size / elapsed}))
    else:
        count = int(sys.argv[2])
        p = ctx.Process(target=echo, args=(child, count))
        p.start()
        samples = []
        payload = b"x" * 64
        for _ in range(count):
            t = time.perf_counter()
            parent.send_bytes(payload)
            parent.recv_bytes()
            samples.append(time.perf_counter() - t)
        p.join()
        samples.sort()
        print(json.dumps({"p50_us": samples[len(samples) // 2] * 1e6, "p99_us": samples[len(samples) * 99 // 100] * 1e6}))


if __name__ == "__main__":
    main()
