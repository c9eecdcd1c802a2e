#!/usr/bin/env python3
"""Issue 9.3: does a server's memory come back after thousands of event streams close?

Usage: sse-memory.py PORT PID TOKENS_FILE [ROUNDS]

TOKENS_FILE holds one bearer token per line (`civicflow token create`, several principals: a
principal may hold 16 streams). Each round opens 5,000 streams (`GET /v1/events`) on fresh
connections, counts those answered 200 and those refused (429 past the caps), closes them all and
prints the server's resident memory (VmRSS of PID) before, while open and after.
"""
import socket
import sys
import time

port, pid, tokens_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 1
tokens = [line.strip() for line in open(tokens_file) if line.strip()]


def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return -1


for r in range(1, rounds + 1):
    before = rss_mib()
    open_streams, refused = [], 0
    for i in range(5000):
        s = socket.create_connection(("127.0.0.1", port))
        request = (
            f"GET /v1/events HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {tokens[i % len(tokens)]}\r\n"
            "accept: text/event-stream\r\n\r\n"
        )
        s.sendall(request.encode())
        status = s.recv(256).decode(errors="replace").split("\r\n")[0]
        if " 200 " in status:
            open_streams.append(s)
        else:
            refused += 1
            s.close()
    time.sleep(1)
    during = rss_mib()
    for s in open_streams:
        s.close()
    time.sleep(3)
    print(f"round {r}: {len(open_streams)} open, {refused} refused; RSS {before} -> {during} -> {rss_mib()} MiB")
