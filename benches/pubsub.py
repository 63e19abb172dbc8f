#!/usr/bin/env python3
"""PUBLISH to 1 and to 100 subscribers: the publisher's throughput and the publish -> receive
latency, kura next to redis-server in one run.

Servers: redis-server (`--appendonly yes --appendfsync everysec`), one kura node, and a 3-node
kura cluster (N=3 R=2 W=2) where the publisher is connected to node 1 and the subscribers to
nodes 2 and 3 (alternately), so every message crosses the peer protocol.

For each server and each subscriber count S (1 and 100), a child process holds S subscriber
connections (SUBSCRIBE bench) in one event loop (selectors), and this process publishes on one
connection. Messages have a fixed size (a 64-byte payload), so the child splits each socket's
bytes into messages without parsing.

- **throughput**: `--messages` PUBLISHes (a tenth of that to 100 subscribers), pipelined 16 at
  a time (send 16, read their 16 replies, repeat), and a quarter of that one at a time.
  `publish/s` = messages / time until the last PUBLISH reply; `delivered/s` = messages x S /
  time until the last copy reached the child (CLOCK_MONOTONIC, shared by both processes).
- **latency**: `--rounds` PUBLISHes paced 2 ms apart (10 ms with 100 subscribers: far below
  either server's rate), each payload holding its send time; one sample per copy, from just
  before the PUBLISH is written to when the child's recv returned it (with 100 subscribers the
  later copies include the time the child spent reading the earlier ones: the same client cost
  for both servers).

All three run at once; each repetition measures them one after the other, in a turning order.

    python3 benches/pubsub.py [--messages 20000] [--rounds 1000] [--repeat 3] [--subscribers 1,100] [--no-build]
"""

import argparse
import multiprocessing
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_redis  # noqa: E402
from set_size import Conn, encode  # noqa: E402

CHANNEL = b"bench"
PAYLOAD = 64


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def message_bytes(payload):
    """The RESP2 bytes of one delivered message, ["message", channel, payload]."""
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(CHANNEL), CHANNEL, len(payload), payload)


MESSAGE = len(message_bytes(b"0" * PAYLOAD))


def subscriber_process(targets, count, conn):
    """The child: `count` subscriber connections; answers the parent's requests on `conn`."""
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(count):
        s = socket.create_connection(targets[i % len(targets)])
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(encode("SUBSCRIBE", CHANNEL))
        socks.append(s)
    want = b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(CHANNEL), CHANNEL)
    for s in socks:
        got = b""
        while len(got) < len(want):
            got += s.recv(len(want) - len(got))
        assert got == want, got
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    conn.send("subscribed")
    while True:
        req = conn.recv()
        if req[0] == "stop":
            return
        if req[0] == "drain":  # read until quiet
            while sel.select(timeout=0.2):
                for key, _ in sel.select(timeout=0):
                    key.fileobj.recv(1 << 20)
            conn.send("drained")
        elif req[0] == "count":  # until each socket got n messages: when the last byte came
            left = {s: req[1] * MESSAGE for s in socks}
            conn.send("ready")
            last = 0
            deadline = time.time() + 120
            while left and time.time() < deadline:
                for key, _ in sel.select(timeout=1):
                    s = key.fileobj
                    data = s.recv(1 << 20)
                    last = now_ns()
                    left[s] -= len(data)
                    if left[s] <= 0:
                        del left[s]
            conn.send(("counted", last, len(left)))
        elif req[0] == "latency":  # each message's payload is its send time (ns)
            rounds = req[1]
            bufs = {s: b"" for s in socks}
            got = {s: 0 for s in socks}
            samples = []
            conn.send("ready")
            deadline = time.time() + 120
            while any(g < rounds for g in got.values()) and time.time() < deadline:
                for key, _ in sel.select(timeout=1):
                    s = key.fileobj
                    data = s.recv(1 << 20)
                    t = now_ns()
                    bufs[s] += data
                    while len(bufs[s]) >= MESSAGE:
                        one, bufs[s] = bufs[s][:MESSAGE], bufs[s][MESSAGE:]
                        samples.append(t - int(one[-2 - PAYLOAD:-2]))
                        got[s] += 1
            conn.send(("samples", samples, sum(rounds - g for g in got.values())))


def wait_subscribed(publisher, count, timeout=30):
    """Until a PUBLISH reaches `count` receivers (in a cluster, once every node knows them)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = publisher.call("PUBLISH", CHANNEL, b"w" * PAYLOAD)
        if int(line[1:]) >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"PUBLISH did not reach {count} subscribers")


def throughput(publisher, child, count, messages, pipeline):
    payload = b"p" * PAYLOAD
    child.send(("count", messages))
    assert child.recv() == "ready"
    start = now_ns()
    sent = 0
    while sent < messages:
        n = min(pipeline, messages - sent)
        publisher.s.sendall(encode("PUBLISH", CHANNEL, payload) * n)
        for _ in range(n):
            publisher.reply()
        sent += n
    published = now_ns()
    _, last, missing = child.recv()
    if missing:
        raise RuntimeError(f"{missing} subscribers did not get every message")
    return messages / ((published - start) / 1e9), messages * count / ((last - start) / 1e9)


def latency(publisher, child, rounds, gap):
    child.send(("latency", rounds))
    assert child.recv() == "ready"
    next_at = time.perf_counter()
    for _ in range(rounds):
        while time.perf_counter() < next_at:
            pass
        next_at += gap
        publisher.call("PUBLISH", CHANNEL, b"%0*d" % (PAYLOAD, now_ns()))
    _, samples, missing = child.recv()
    if missing:
        raise RuntimeError(f"{missing} copies did not arrive")
    return [x / 1e9 for x in samples]


def pct(lat, q):
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000


def measure(target, count, args):
    """One round against one setup: (plain publish/s, -P 16 publish/s, delivered/s, latencies)."""
    pub_target, sub_targets = target
    parent_end, child_end = multiprocessing.Pipe()
    child = multiprocessing.Process(target=subscriber_process, args=(sub_targets, count, child_end), daemon=True)
    child.start()
    publisher = Conn(*pub_target)
    try:
        assert parent_end.recv() == "subscribed"
        wait_subscribed(publisher, count)
        parent_end.send(("drain",))
        assert parent_end.recv() == "drained"
        messages = args.messages if count == 1 else max(1, args.messages // 10)
        plain, _ = throughput(publisher, parent_end, count, max(1, messages // 4), 1)
        piped, delivered = throughput(publisher, parent_end, count, messages, 16)
        rounds = args.rounds if count == 1 else max(1, args.rounds // 5)
        lat = latency(publisher, parent_end, rounds, 0.002 if count == 1 else 0.010)
        return plain, piped, delivered, lat
    finally:
        parent_end.send(("stop",))
        child.join(timeout=10)
        publisher.s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000, help="pipelined PUBLISHes to 1 subscriber (a tenth to 100)")
    ap.add_argument("--rounds", type=int, default=1000, help="latency rounds with 1 subscriber (a fifth with 100)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions (median throughput, pooled latencies)")
    ap.add_argument("--subscribers", default="1,100")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    counts = [int(c) for c in args.subscribers.split(",")]
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=vs_redis.ROOT, check=True)
    redis_procs, single, three = vs_redis.Procs(), vs_redis.Procs(), vs_redis.Procs()
    try:
        rport = vs_redis.free_port()
        redis_procs.start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", redis_procs.tmp,
                           "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
                          os.path.join(redis_procs.tmp, "redis.log"))
        vs_redis.wait_ping("127.0.0.1", rport)
        redis = ("127.0.0.1", rport)
        one = vs_redis.start_kura(single, 1, [])[0]
        cluster = vs_redis.start_kura(three, 3, ["--n", "3", "--r", "2", "--w", "2"])
        setups = [
            ("redis", "one server", (redis, [redis])),
            ("kura", "one node", (one, [one])),
            ("kura", "3 nodes: published through node 1, subscribers on nodes 2 and 3", (cluster[0], cluster[1:])),
        ]
        results = {}  # (setup index, count) -> [(plain, piped, delivered, lat)]
        for rep in range(args.repeat):
            # Interleaved, the order turned each repetition, so a noisy moment hurts all alike.
            order = list(range(len(setups)))
            order = order[rep % len(order):] + order[:rep % len(order)]
            for i in order:
                for count in counts:
                    r = measure(setups[i][2], count, args)
                    results.setdefault((i, count), []).append(r)
                    print(f"  {setups[i][0]} {setups[i][1]} S={count}: plain {r[0]:,.0f}/s, -P16 {r[1]:,.0f}/s "
                          f"(delivered {r[2]:,.0f}/s), p50 {pct(r[3], 0.5):.3f} ms", file=sys.stderr)
    finally:
        for p in (redis_procs, single, three):
            p.stop()

    def summary(i, count):
        rs = results[(i, count)]
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        return med(0), med(1), med(2), [x for r in rs for x in r[3]]

    print(f"# PUBLISH to S subscribers, {time.strftime('%Y-%m-%d')}, {vs_redis.machine()}; "
          f"{args.messages} pipelined messages to 1 subscriber, {max(1, args.messages // 10)} to 100 (a quarter of "
          f"that plain); {args.rounds} latency rounds with 1, {max(1, args.rounds // 5)} with 100; payload {PAYLOAD} "
          f"bytes; median of {args.repeat} interleaved repetitions, latencies pooled")
    print()
    print("| server | where | S | publish/s plain | publish/s -P 16 | delivered/s -P 16 | p50 ms | p99 ms | p99.9 ms | "
          "-P 16 vs redis | p50 vs redis |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for count in counts:
        b = summary(0, count)
        for i, (name, where, _) in enumerate(setups):
            plain, piped, delivered, lat = summary(i, count)
            print(f"| {name} | {where} | {count} | {plain:,.0f} | {piped:,.0f} | {delivered:,.0f} | "
                  f"{pct(lat, 0.5):.3f} | {pct(lat, 0.99):.3f} | {pct(lat, 0.999):.3f} | {piped / b[1]:.2f}x | "
                  f"{pct(lat, 0.5) / pct(b[3], 0.5):.2f}x |")


if __name__ == "__main__":
    main()
