#!/usr/bin/env python3
"""Foreground tails while background work runs (paper 6.5, kura issue 23): a 3-node cluster
(N=3 R=2 W=2) is loaded with --mb of 1 KiB values; then redis-benchmark (SET and GET, -P 1,
clients spread over the nodes) runs three times: idle, while a 4th node joins (partition
transfers), and while every node runs an anti-entropy round (KURA AAE). Each is done with
admission control off (--background-p99-ms 0) and on (the given target), in one run, and the
table gives p99 and p99.9 of each phase and their ratio to the idle phase, with the time the
join took.

    python3 benches/background.py [--mb 512] [--requests 300000] [--target-ms 10]
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vs_redis import KURA, ROOT, Procs, cli, free_port, machine, run_benchmark, wait_ping  # noqa: E402


def settled(nodes):
    for ip, port in nodes:
        if cli(ip, port, "KURA", "TRANSFERS").strip() != "0":
            return False
        if "transition:1" in cli(ip, port, "INFO", "transfers"):
            return False
        if cli(ip, port, "KURA", "MEMBERS").count("valid") != len(nodes):
            return False
    return True


def info_field(ip, port, section, name):
    for line in cli(ip, port, "INFO", section).splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def one_setting(args, target_ms):
    """The three phases with --background-p99-ms target_ms; returns {phase: {test: result}}."""
    procs = Procs()
    nodes, pids, seed = [], [], []
    try:
        flags = ["--n", "3", "--r", "2", "--w", "2", "--background-p99-ms", str(target_ms),
                 "--aae-interval", "3600"]

        def start(i):
            ip = f"127.0.0.{i + 1}"
            port, cport, mport = free_port(ip), free_port(ip), free_port(ip)
            cmd = [KURA, "server", "--listen", f"{ip}:{port}", "--cluster-listen", f"{ip}:{cport}",
                   "--metrics-listen", f"{ip}:{mport}", "--data-dir", os.path.join(procs.tmp, f"n{i}"),
                   "--node-id", f"node{i + 1}"] + flags + (["--seed", seed[0]] if seed else [])
            pids.append(procs.start(cmd, os.path.join(procs.tmp, f"n{i}.log")))
            wait_ping(ip, port)
            seed.append(f"{ip}:{cport}")
            nodes.append((ip, port))

        for i in range(3):
            start(i)
        while not settled(nodes):
            time.sleep(0.2)
        keys = args.mb * 1024
        value = "v" * 1024
        for n, (ip, port) in enumerate(nodes):
            lo, hi = n * keys // 3, (n + 1) * keys // 3
            data = "".join(f"*3\r\n$3\r\nSET\r\n${len(f'key:{k}')}\r\nkey:{k}\r\n$1024\r\n{value}\r\n"
                           for k in range(lo, hi))
            out = subprocess.run(["redis-cli", "-h", ip, "-p", str(port), "--pipe"], input=data.encode(),
                                 capture_output=True).stdout.decode()
            if "errors: 0" not in out:
                sys.exit(f"loading failed: {out}")
        targets = list(nodes)
        results = {}

        def bench():
            return run_benchmark(targets, args, 1, pids, "set,get")

        results["idle"] = bench()
        t0 = time.time()
        start(3)
        # The claimant puts the ring in transition a moment after the node is in: measure from
        # when transfers run.
        while not any("transition:1" in cli(ip, port, "INFO", "transfers") for ip, port in nodes):
            time.sleep(0.1)
        results["join"] = bench()
        during = time.time() - t0
        still = not settled(nodes)
        while not settled(nodes):
            time.sleep(0.2)
        join_s = time.time() - t0
        for ip, port in nodes:
            cli(ip, port, "KURA", "AAE")
        results["aae"] = bench()
        waits = sum(int(info_field(ip, port, "cluster", "kura_background_waits") or 0) for ip, port in nodes)
        waited = sum(int(info_field(ip, port, "cluster", "kura_background_waited_ms") or 0) for ip, port in nodes)
        return results, {"join_s": join_s, "bench_s": during, "covered": still, "waits": waits,
                         "waited_ms": waited}
    finally:
        procs.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=512, help="data to load, in MiB (before replication)")
    ap.add_argument("--requests", type=int, default=300000, help="requests per test and phase")
    ap.add_argument("--clients", type=int, default=48)
    ap.add_argument("--keyspace", type=int, default=100000)
    ap.add_argument("--target-ms", type=int, default=10, help="--background-p99-ms of the 'on' runs")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    rows = []
    for label, target in [("off", 0), (f"on ({args.target_ms} ms)", args.target_ms)]:
        results, extra = one_setting(args, target)
        rows.append((label, results, extra))
    print(f"# foreground tails under background work, {time.strftime('%Y-%m-%d')}, {machine()}")
    print(f"# 3 nodes N=3 R=2 W=2, {args.mb} MiB of 1 KiB values; redis-benchmark -P 1 -c {args.clients} "
          f"-r {args.keyspace} -n {args.requests} spread over the nodes; ms")
    print()
    print("| admission | test | idle p99 / p99.9 | join p99 / p99.9 | aae p99 / p99.9 | "
          "p99.9 join/idle | p99.9 aae/idle | join took s | background waits (ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, results, extra in rows:
        for test in ("SET", "GET"):
            r = {phase: results[phase].get(test, {}) for phase in ("idle", "join", "aae")}
            idle = r["idle"].get("p999") or float("nan")
            cells = " | ".join(f"{r[p].get('p99', 0):.1f} / {r[p].get('p999', 0):.1f}" for p in ("idle", "join", "aae"))
            covered = "" if extra["covered"] else " (ended before the benchmark did)"
            print(f"| {label} | {test} | {cells} | {r['join'].get('p999', 0) / idle:.2f}x | "
                  f"{r['aae'].get('p999', 0) / idle:.2f}x | {extra['join_s']:.1f}{covered} | "
                  f"{extra['waits']} ({extra['waited_ms']}) |")


if __name__ == "__main__":
    main()
