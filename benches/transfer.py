#!/usr/bin/env python3
"""Transfer throughput of a join: a 3-node kura cluster (N=3 R=2 W=2) is loaded with --mb of
data (1 KiB values, redis-cli --pipe), then a 4th node joins; the time until the ring settles
and the keys and bytes the transfers moved (from every node's /metrics) give MB/s and keys/s.

    python3 benches/transfer.py [--mb 1024] [--transfer-limit 2]
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vs_redis import KURA, ROOT, Procs, cli, free_port, machine, metric, wait_ping  # noqa: E402


def settled(nodes):
    for ip, port, _ in nodes:
        if cli(ip, port, "KURA", "TRANSFERS").strip() != "0":
            return False
        info = cli(ip, port, "INFO", "transfers")
        if "transition:1" in info:
            return False
        if cli(ip, port, "KURA", "MEMBERS").count("valid") != len(nodes):
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024, help="data to load, in MiB (before replication)")
    ap.add_argument("--transfer-limit", type=int, default=2)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    procs = Procs()
    nodes = []
    try:
        flags = ["--n", "3", "--r", "2", "--w", "2", "--transfer-limit", str(args.transfer_limit)]

        def start(i):
            ip = f"127.0.0.{i + 1}"
            port, cport, mport = free_port(ip), free_port(ip), free_port(ip)
            cmd = [KURA, "server", "--listen", f"{ip}:{port}", "--cluster-listen", f"{ip}:{cport}",
                   "--metrics-listen", f"{ip}:{mport}", "--data-dir", os.path.join(procs.tmp, f"n{i}"),
                   "--node-id", f"node{i + 1}"] + flags
            if nodes:
                cmd += ["--seed", nodes[0][3]]
            procs.start(cmd, os.path.join(procs.tmp, f"n{i}.log"))
            wait_ping(ip, port)
            nodes.append((ip, port, mport, f"{ip}:{cport}"))

        for i in range(3):
            start(i)
        while not settled([(n[0], n[1], n[2]) for n in nodes]):
            time.sleep(0.2)
        keys = args.mb * 1024
        value = "v" * 1024
        t0 = time.time()
        for n, (ip, port, _, _) in enumerate(nodes):
            lo, hi = n * keys // 3, (n + 1) * keys // 3
            data = "".join(f"*3\r\n$3\r\nSET\r\n${len(f'key:{k}')}\r\nkey:{k}\r\n$1024\r\n{value}\r\n" for k in range(lo, hi))
            out = subprocess.run(["redis-cli", "-h", ip, "-p", str(port), "--pipe"], input=data.encode(),
                                 capture_output=True).stdout.decode()
            if "errors: 0" not in out:
                sys.exit(f"loading failed: {out}")
        load_s = time.time() - t0
        before_keys = sum(metric(n[0], n[2], "kura_transfer_keys_total") for n in nodes)
        before_bytes = sum(metric(n[0], n[2], "kura_transfer_bytes_total") for n in nodes)
        t0 = time.time()
        start(3)
        time.sleep(1)
        while not settled([(n[0], n[1], n[2]) for n in nodes]):
            time.sleep(0.2)
        took = time.time() - t0
        moved_keys = sum(metric(n[0], n[2], "kura_transfer_keys_total") for n in nodes) - before_keys
        moved_bytes = sum(metric(n[0], n[2], "kura_transfer_bytes_total") for n in nodes) - before_bytes
        print(f"# join transfer, {time.strftime('%Y-%m-%d')}, {machine()}")
        print(f"# {args.mb} MiB loaded ({keys} keys of 1 KiB, N=3) in {load_s:.1f} s; "
              f"a 4th node joined with --transfer-limit {args.transfer_limit}")
        print()
        print("| moved keys | moved MiB | join took s | MiB/s | keys/s |")
        print("|---|---|---|---|---|")
        print(f"| {moved_keys:,.0f} | {moved_bytes / 2**20:,.1f} | {took:.1f} | "
              f"{moved_bytes / 2**20 / took:,.1f} | {moved_keys / took:,.0f} |")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
