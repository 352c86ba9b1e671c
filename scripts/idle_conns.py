#!/usr/bin/env python3
"""Open N keep-alive connections to a server, make one request on each, and hold them idle.

Prints "ready" once every connection has had its answer, then keeps them open until stdin
closes (or HOLD seconds pass). Used by the benchmarks to measure memory per idle connection.

Usage: idle_conns.py HOST PORT N [HOLD_SECONDS]
"""
import resource
import socket
import sys
import time

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hold = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

request = b"GET /get?name=i HTTP/1.1\r\nHost: bench\r\n\r\n"
conns = []
for _ in range(n):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(request)
    conns.append(s)
for s in conns:
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("server closed a connection")
        got += chunk
    if not got.startswith(b"HTTP/1.1 200"):
        sys.exit("unexpected answer: %r" % got[:80])
print("ready", flush=True)
deadline = time.time() + hold
import select
while time.time() < deadline:
    r, _, _ = select.select([sys.stdin], [], [], 0.2)
    if r and not sys.stdin.readline():
        break
