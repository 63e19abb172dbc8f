#!/usr/bin/env python3
"""BLPOP hand-off latency (issue 22): how long from a push until the client blocked on the
list has the element, kura next to redis-server in one run.

A consumer connection sends `BLPOP handoff 0` and waits until the server counts it blocked
(INFO `blocked_clients`); then a producer connection sends `RPUSH handoff job-i`, and the
time from that send to the consumer's reply is one hand-off. Servers: redis-server
(`--appendonly yes --appendfsync everysec`), one kura node, and a 3-node kura cluster (N=3
R=2 W=2) where the consumer is blocked through one node and the push goes through another:
the cluster's wake-up travels the peer protocol (`Watch`, then `Touched`) before the pop.

    python3 benches/blpop_handoff.py [--rounds 500] [--no-build]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_redis  # noqa: E402
from set_size import Conn  # noqa: E402


def blocked(ip, port):
    out = subprocess.run(["redis-cli", "-h", ip, "-p", str(port), "INFO", "clients"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("blocked_clients:"):
            return int(line.split(":")[1])
    return 0


def handoffs(consumer, producer, rounds):
    """Seconds per hand-off, `rounds` times."""
    pop = Conn(*consumer)
    push = Conn(*producer)
    out = []
    for i in range(rounds):
        pop.s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$7\r\nhandoff\r\n$1\r\n0\r\n")
        while blocked(*consumer) < 1:
            time.sleep(0.0005)
        start = time.perf_counter()
        push.call("RPUSH", "handoff", f"job-{i}")
        pop.reply()
        out.append(time.perf_counter() - start)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=vs_redis.ROOT, check=True)
    procs = vs_redis.Procs()
    try:
        rport = vs_redis.free_port()
        procs.start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", procs.tmp,
                     "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
                    os.path.join(procs.tmp, "redis.log"))
        vs_redis.wait_ping("127.0.0.1", rport)
        redis = ("127.0.0.1", rport)
        rows = [("redis", "one server", handoffs(redis, redis, args.rounds))]
        single = vs_redis.Procs()
        try:
            one = vs_redis.start_kura(single, 1, [])[0]
            rows.append(("kura", "one node", handoffs(one, one, args.rounds)))
        finally:
            single.stop()
        three = vs_redis.Procs()
        try:
            cluster = vs_redis.start_kura(three, 3, ["--n", "3", "--r", "2", "--w", "2"])
            rows.append(("kura", "3 nodes: blocked through node 1, pushed through node 2",
                         handoffs(cluster[0], cluster[1], args.rounds)))
        finally:
            three.stop()
        print(f"# BLPOP hand-off, {time.strftime('%Y-%m-%d')}, {vs_redis.machine()}; {args.rounds} rounds each")
        print()
        print("| server | where | p50 ms | p99 ms | p99.9 ms | p50 vs redis |")
        print("|---|---|---|---|---|---|")
        base = statistics.median(rows[0][2])
        for name, where, lat in rows:
            lat.sort()
            p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000  # noqa: E731
            print(f"| {name} | {where} | {p(0.5):.3f} | {p(0.99):.3f} | {p(0.999):.3f} | "
                  f"{statistics.median(lat) / base:.2f}x |")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
