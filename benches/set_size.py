#!/usr/bin/env python3
"""What one update of a set, a hash, a list or a sorted set costs as it grows: kura next to
redis-server.

Issue 13 asks that SADD to a set of 100,000 members cost within 2x of SADD to a set of 10
(Riak's one-object sets cost more per add the larger they grew, basho/riak#483). For each
server (one kura node; redis-server with `--appendonly yes --appendfsync everysec`) and each
size, the key is filled to that size, then one connection sends pairs of updates that keep
the size: `SADD key new-i` + `SREM key new-i` (sets) and `HSET key new-i v` + `HDEL key new-i`
(hashes), `RPUSH key new-i` + `LPOP key` (lists: issue 21's queue), and for sorted sets
`ZADD key <above all> new-i`, `ZRANGE key -inf +inf BYSCORE LIMIT 0 10`, `ZRANK key <a random
member>` and `ZPOPMIN key`; one at a time, for `--seconds` or `--ops` rounds, whichever ends
first. Each command is timed on its own. Prints the
updates per second, p50/p99 per update and, per server, the ratio of the large size's cost to
the small size's (1.0 = the cost does not grow).

    python3 benches/set_size.py [--sizes 10,100000] [--seconds 10] [--ops 5000] [--cluster 3]
    python3 benches/set_size.py --kinds list,zset --sizes 10,1000000     (issue 21)

With `--cluster 3` kura is a 3-node cluster (N=3 R=2 W=2, as vs_redis.py starts it) and the
connection goes to the key's first owner (so every size is measured alike: no forwarding hop):
each update is then a quorum read, a decision there and a write to the two other replicas.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_redis  # noqa: E402  (the same process handling as the throughput benchmark)


def encode(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, ip, port):
        self.s = socket.create_connection((ip, port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self._line()
        if line[:1] == b"-":
            raise RuntimeError(line.decode())
        if line[:1] == b"$" and int(line[1:]) >= 0:
            n = int(line[1:])
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(1 << 16)
            self.buf = self.buf[n + 2:]
        elif line[:1] == b"*":
            for _ in range(max(0, int(line[1:]))):
                self.reply()
        return line

    def call(self, *args):
        self.s.sendall(encode(*args))
        return self.reply()

    def pipeline(self, commands):
        self.s.sendall(b"".join(encode(*c) for c in commands))
        for _ in commands:
            self.reply()


def fill(conn, kind, key, size):
    conn.call("DEL", key)
    batch = 1000
    for start in range(0, size, batch):
        names = [f"member-{i:09d}" for i in range(start, min(size, start + batch))]
        if kind == "set":
            conn.call("SADD", key, *names)
        elif kind == "hash":
            conn.call("HSET", key, *[x for n in names for x in (n, "v")])
        elif kind == "list":
            conn.call("RPUSH", key, *names)
        else:
            conn.call("ZADD", key, *[x for i, n in enumerate(names, start) for x in (i, n)])


def rounds(kind, key, i, size):
    """The commands of round `i` (they keep the key's size)."""
    m = f"new-{i}"
    if kind == "set":
        return [("SADD", "SADD", key, m), ("SREM", "SREM", key, m)]
    if kind == "hash":
        return [("HSET", "HSET", key, m, "v"), ("HDEL", "HDEL", key, m)]
    if kind == "list":
        return [("RPUSH", "RPUSH", key, m), ("LPOP", "LPOP", key)]
    rank_of = f"member-{(i * 7919) % size:09d}"
    return [("ZADD", "ZADD", key, size + i, m), ("ZRANGE BYSCORE LIMIT 0 10", "ZRANGE", key, "-inf", "+inf", "BYSCORE", "LIMIT", 0, 10),
            ("ZRANK", "ZRANK", key, rank_of), ("ZPOPMIN", "ZPOPMIN", key)]


def measure(conn, kind, key, size, seconds, ops):
    """Seconds per command, by command, one at a time."""
    lat = {}
    deadline = time.perf_counter() + seconds
    for i in range(ops):
        if time.perf_counter() > deadline:
            break
        for name, *cmd in rounds(kind, key, i, size):
            t = time.perf_counter()
            conn.call(*cmd)
            lat.setdefault(name, []).append(time.perf_counter() - t)
    return lat


def first_owner(nodes, key):
    """The (ip, port) of `key`'s first owner among kura `nodes` (one node per IP)."""
    ip, port = nodes[0]
    out = subprocess.run(["redis-cli", "-h", ip, "-p", str(port), "KURA", "PREFLIST", key],
                         capture_output=True, text=True, check=True).stdout.split()
    owner_ip = out[0].rsplit(":", 1)[0]
    return next(n for n in nodes if n[0] == owner_ip)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100000")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--ops", type=int, default=5000)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--cluster", type=int, default=1, help="kura nodes (1 = one node)")
    ap.add_argument("--kinds", default="set,hash", help="set,hash,list,zset")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=vs_redis.ROOT, check=True)
    procs = vs_redis.Procs()
    try:
        kura_nodes = vs_redis.start_kura(procs, args.cluster, [])
        kura = kura_nodes[0]
        rport = vs_redis.free_port()
        procs.start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", procs.tmp,
                     "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
                    os.path.join(procs.tmp, "redis.log"))
        vs_redis.wait_ping("127.0.0.1", rport)
        label = "kura" if args.cluster == 1 else f"kura {args.cluster} nodes"
        servers = [(label, kura), ("redis", ("127.0.0.1", rport))]
        rows = {}
        for kind in kinds:
            for size in sizes:
                for name, (ip, port) in servers:
                    key = f"{kind}-{size}"
                    if name != "redis" and args.cluster > 1:
                        ip, port = first_owner(kura_nodes, key)
                    conn = Conn(ip, port)
                    fill(conn, kind, key, size)
                    for cmd, lat in measure(conn, kind, key, size, args.seconds, args.ops).items():
                        lat.sort()
                        rows[(kind, cmd, size, name)] = (
                            len(lat) / sum(lat),
                            statistics.median(lat) * 1000,
                            lat[int(len(lat) * 0.99)] * 1000,
                            len(lat),
                        )
        print(f"# updates and reads by size, {time.strftime('%Y-%m-%d')}, {vs_redis.machine()}")
        print(f"# one connection, one command at a time (rounds that keep the size, see the script), "
              f"{args.seconds:g} s or {args.ops} rounds per size; redis-server --appendonly yes --appendfsync everysec")
        print()
        print("| type | command | members | server | commands/s | p50 ms | p99 ms | commands | cost vs smallest |")
        print("|---|---|---|---|---|---|---|---|---|")
        for kind in kinds:
            for cmd in dict.fromkeys(c for (k, c, _, _) in rows if k == kind):
                for name, _ in servers:
                    base = rows[(kind, cmd, sizes[0], name)][0]
                    for size in sizes:
                        rps, p50, p99, n = rows[(kind, cmd, size, name)]
                        print(f"| {kind} | {cmd} | {size:,} | {name} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {n} | "
                              f"{base / rps:.2f}x |")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
