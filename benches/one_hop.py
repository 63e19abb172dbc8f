#!/usr/bin/env python3
"""One hop (paper section 6.4, Table 2) on this machine: a kura cluster placed by slots
(`--placement slots`), driven by a cluster-aware client (`redis-benchmark --cluster`, which reads
CLUSTER NODES and sends each key to its slot's first replica) and by plain clients spread over
the nodes (one `redis-benchmark` per node at once, as `vs_redis.py --cluster` does), interleaved
over several rounds in one run. Prints the median throughput, p99, p99.9 and the nodes' CPU time
per request of each, their ratio, and how many writes the nodes forwarded.

With N = the number of nodes (3 nodes, N=3: the default) every node replicates every key, so a
SET or GET is never forwarded either way; what one hop saves there is the read-modify-writes
(INCR, HSET), which run at the key's deciding owner: a plain client's node forwards them. With
more nodes than N (`--nodes 5`) plain clients' writes are forwarded too. (redis-benchmark's HSET
writes one key, `myhash`: with -P 16 from three plain benchmarks at once it stalled the cluster
here, NOQUORUM on its quorum reads; issue 23's hot-key batching. Add it with `--tests`.)

    python3 benches/one_hop.py [--rounds 3] [--requests 100000] [--nodes 3] [--tests set,get,incr]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_redis as vr  # noqa: E402  (the shared helpers: start, parse, CPU time)


def forwarded(metrics_addrs):
    return sum(vr.metric(ip, port, "kura_forwarded_total") for ip, port in metrics_addrs)


def cluster_benchmark(target, args, pipeline, pids, test):
    """One `redis-benchmark --cluster` through `target`; its rps, p99, p99.9 and CPU µs/request."""
    before = vr.cpu_seconds(pids)
    cmd = ["redis-benchmark", "--cluster", "-h", target[0], "-p", str(target[1]), "-c", str(args.clients),
           "-n", str(args.requests), "-P", str(pipeline), "-t", test, "-r", str(args.keyspace)]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    results = vr.parse_benchmark(out)
    if not results:
        raise RuntimeError(f"redis-benchmark --cluster printed no result:\n{out[-2000:]}")
    r = next(iter(results.values()))
    r["cpu"] = (vr.cpu_seconds(pids) - before) * 1e6 / args.requests
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--keyspace", type=int, default=100000)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--tests", default="set,get,incr")
    ap.add_argument("--pipeline", default="1,16")
    args = ap.parse_args()
    if not os.path.exists(vr.KURA):
        subprocess.run(["cargo", "build", "--release"], cwd=vr.ROOT, check=True)
    procs = vr.Procs()
    pids = []
    try:
        extra = ["--placement", "slots", "--n", str(args.n)]
        metrics_addrs = []
        targets = vr.start_kura(procs, args.nodes, extra, pids, metrics_addrs)
        rows = {}
        for rnd in range(args.rounds):
            for test in args.tests.split(","):
                for p in [int(x) for x in args.pipeline.split(",")]:
                    order = ["cluster", "plain"] if rnd % 2 == 0 else ["plain", "cluster"]
                    for how in order:
                        before = forwarded(metrics_addrs)
                        if how == "cluster":
                            r = cluster_benchmark(targets[0], args, p, pids, test)
                        else:
                            merged = vr.run_benchmark(targets, args, p, pids, test)
                            r = next(iter(merged.values()))
                        r["forwarded"] = (forwarded(metrics_addrs) - before) / args.requests
                        rows.setdefault((test.upper(), p, how), []).append(r)
        print(f"\n{args.nodes} kura nodes, N={args.n}, --placement slots; {vr.machine()}; "
              f"{time.strftime('%Y-%m-%d')}; medians of {args.rounds} interleaved rounds, "
              f"-c {args.clients} -n {args.requests} -r {args.keyspace}\n")
        print("| test | cluster client rps | plain clients rps | ratio | p99.9 cluster / plain (ms) "
              "| CPU µs/request cluster / plain | forwarded per request cluster / plain |")
        print("|---|---|---|---|---|---|---|")
        for test in args.tests.split(","):
            for p in [int(x) for x in args.pipeline.split(",")]:
                c = rows[(test.upper(), p, "cluster")]
                q = rows[(test.upper(), p, "plain")]
                med = lambda rs, k: statistics.median(r.get(k) or 0.0 for r in rs)  # noqa: E731
                print(f"| {test.upper()} P{p} | {med(c, 'rps'):.0f} | {med(q, 'rps'):.0f} | "
                      f"{med(c, 'rps') / max(med(q, 'rps'), 1):.2f}x | {med(c, 'p999'):.1f} / {med(q, 'p999'):.1f} | "
                      f"{med(c, 'cpu'):.1f} / {med(q, 'cpu'):.1f} | "
                      f"{med(c, 'forwarded'):.2f} / {med(q, 'forwarded'):.2f} |")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
