#!/usr/bin/env python3
"""EVALSHA of a 3-command script and XADD (auto ID, with and without `MAXLEN ~ 1000`), kura
next to redis-server in one run, measured by redis-benchmark (plain and `-P 16`).

- `EVALSHA <sha> 1 k:<random>`: the script `GET`s its key, `INCR`s it and `EXPIRE`s it (60 s),
  and returns what GET read; keys drawn from `--keyspace` (redis-benchmark's `-r`). The script is
  SCRIPT LOADed first.
- `XADD bench:stream * f v`: one stream, auto IDs, growing by `--requests` each run (the stream
  is deleted before each run).
- `XADD bench:stream MAXLEN ~ 1000 * f v`: the same, trimmed (approximately) to 1,000 entries.

Servers: redis-server (`--appendonly yes --appendfsync everysec`), one kura node and (unless
`--no-cluster`) a 3-node kura cluster (N=3 R=2 W=2, one redis-benchmark per node at once, the
clients split over them, as vs_redis.py does). All run at once; each round runs every test
against each server one after the other, the order turned each round. Prints the median over
rounds of rps, p50, p99 and p99.9 (redis-benchmark's own histogram), and kura's rps over redis's;
a run that an error reply ended is left out of the medians and named in the table.

    python3 benches/script_stream.py [--rounds 3] [--requests 50000] [--clients 50] [--no-build]
"""

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_redis  # noqa: E402

SCRIPT = ("local v = redis.call('GET', KEYS[1]) "
          "redis.call('INCR', KEYS[1]) "
          "redis.call('EXPIRE', KEYS[1], 60) "
          "return v")
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
TESTS = [
    ("EVALSHA (GET, INCR, EXPIRE)", ["EVALSHA", SHA, "1", "k:__rand_int__"]),
    ("XADD * (no trim)", ["XADD", "bench:stream", "*", "f", "v"]),
    ("XADD MAXLEN ~ 1000 *", ["XADD", "bench:stream", "MAXLEN", "~", "1000", "*", "f", "v"]),
]


def run(targets, command, args, pipeline):
    """One redis-benchmark per target at once; rps summed, latencies the worst of them."""
    clients = max(1, args.clients // len(targets))
    requests = args.requests // len(targets)
    procs = []
    for ip, port in targets:
        cmd = ["redis-benchmark", "-h", ip, "-p", str(port), "-c", str(clients), "-n", str(requests),
               "-P", str(pipeline), "-r", str(args.keyspace), *command]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    out = {"rps": 0.0, "p50": 0.0, "p99": 0.0, "p999": 0.0}
    for p in procs:
        text, _ = p.communicate()
        results = list(vs_redis.parse_benchmark(text).values())
        if not results or "rps" not in results[0]:
            # A run that did not finish (an error reply ends redis-benchmark): kept as such.
            errors = [l for l in text.replace("\r", "\n").splitlines() if l.startswith(("Error", "-"))]
            return {"error": errors[-1] if errors else text[-300:]}
        r = results[0]
        out["rps"] += r["rps"]
        for k in ("p50", "p99", "p999"):
            out[k] = max(out[k], r.get(k) or 0.0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--keyspace", type=int, default=100000)
    ap.add_argument("--no-cluster", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=vs_redis.ROOT, check=True)
    procs = [vs_redis.Procs() for _ in range(3)]
    samples = {}
    try:
        rport = vs_redis.free_port()
        procs[0].start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", procs[0].tmp,
                        "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
                       os.path.join(procs[0].tmp, "redis.log"))
        vs_redis.wait_ping("127.0.0.1", rport)
        setups = [("redis", "one server", [("127.0.0.1", rport)]),
                  ("kura", "one node", vs_redis.start_kura(procs[1], 1, []))]
        if not args.no_cluster:
            setups.append(("kura", "3 nodes (N=3 R=2 W=2), clients spread",
                           vs_redis.start_kura(procs[2], 3, ["--n", "3", "--r", "2", "--w", "2"])))
        for _, _, targets in setups:
            for ip, port in targets:
                loaded = vs_redis.cli(ip, port, "SCRIPT", "LOAD", SCRIPT).strip()
                assert loaded == SHA, (loaded, SHA)
        for rnd in range(args.rounds):
            order = list(range(len(setups)))
            order = order[rnd % len(order):] + order[:rnd % len(order)]
            for pipeline in (1, 16):
                for label, command in TESTS:
                    for i in order:
                        ip, port = setups[i][2][0]
                        vs_redis.cli(ip, port, "DEL", "bench:stream")
                        r = run(setups[i][2], command, args, pipeline)
                        samples.setdefault((label, pipeline, i), []).append(r)
                        if "error" in r:
                            print(f"  {setups[i][0]} {setups[i][1]} {label} -P {pipeline}: {r['error']}", file=sys.stderr)
                        else:
                            print(f"  {setups[i][0]} {setups[i][1]} {label} -P {pipeline}: {r['rps']:,.0f} rps, "
                                  f"p50 {r['p50']:.3f} ms", file=sys.stderr)
    finally:
        for p in procs:
            p.stop()

    def med(label, pipeline, i, field):
        done = [s[field] for s in samples[(label, pipeline, i)] if "error" not in s]
        return statistics.median(done) if done else float("nan")

    def failed(label, pipeline, i):
        return [s["error"] for s in samples[(label, pipeline, i)] if "error" in s]

    print(f"# EVALSHA and XADD, {time.strftime('%Y-%m-%d')}, {vs_redis.machine()}; redis-benchmark -c {args.clients} "
          f"-n {args.requests} -r {args.keyspace}, median of {args.rounds} interleaved rounds; "
          f"redis-server --appendonly yes --appendfsync everysec")
    print()
    print("| command | pipeline | server | rps | p50 ms | p99 ms | p99.9 ms | rps vs redis |")
    print("|---|---|---|---|---|---|---|---|")
    for pipeline in (1, 16):
        for label, _ in TESTS:
            base = med(label, pipeline, 0, "rps")
            for i, (name, where, _) in enumerate(setups):
                rps = med(label, pipeline, i, "rps")
                who = name if i < 2 else f"{name} 3 nodes"
                errors = failed(label, pipeline, i)
                if errors:
                    who += f" ({len(errors)} of {args.rounds} runs failed: {errors[-1][:120]})"
                print(f"| {label} | {pipeline} | {who} | {rps:,.0f} | {med(label, pipeline, i, 'p50'):.3f} | "
                      f"{med(label, pipeline, i, 'p99'):.3f} | {med(label, pipeline, i, 'p999'):.3f} | {rps / base:.2f}x |")


if __name__ == "__main__":
    main()
