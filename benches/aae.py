#!/usr/bin/env python3
"""Anti-entropy costs on a 3-node kura cluster (N=3): bytes exchanged per partition when the
replicas agree (a root comparison) and when k of n keys differ (one replica was cut off with
iptables while k keys were written; needs root), and the foreground's throughput and p99.9
with anti-entropy idle (--aae-interval 3600) and running continuously (--aae-interval 1).

    sudo python3 benches/aae.py [--keys 50000] [--differ 100]
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_redis  # noqa: E402
from vs_redis import KURA, ROOT, Procs, free_port, machine, parse_benchmark, wait_ping  # noqa: E402


def metric(node, name):
    return vs_redis.metric(node["ip"], node["mport"], name)


def cli(node, *args):
    return vs_redis.cli(node["ip"], node["port"], *args)


def info_field(node, field):
    for line in cli(node, "INFO", "antientropy").splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":")[1])
    return 0


def start_cluster(procs, aae_interval, tag):
    nodes = []
    for i in range(3):
        ip = f"127.0.0.{i + 1}"
        n = {"ip": ip, "port": free_port(ip), "cport": free_port(ip), "mport": free_port(ip)}
        cmd = [KURA, "server", "--listen", f"{ip}:{n['port']}", "--cluster-listen", f"{ip}:{n['cport']}",
               "--metrics-listen", f"{ip}:{n['mport']}", "--data-dir", os.path.join(procs.tmp, f"{tag}{i}"),
               "--node-id", f"node{i + 1}", "--aae-interval", str(aae_interval)]
        if nodes:
            cmd += ["--seed", f"{nodes[0]['ip']}:{nodes[0]['cport']}"]
        procs.start(cmd, os.path.join(procs.tmp, f"{tag}{i}.log"))
        wait_ping(ip, n["port"])
        nodes.append(n)
    while any(cli(n, "KURA", "MEMBERS").count("valid") < 3 or "transition:1" in cli(n, "INFO", "transfers")
              for n in nodes):
        time.sleep(0.2)
    return nodes


def load(node, keys, prefix="key"):
    data = "".join(f"*3\r\n$3\r\nSET\r\n${len(f'{prefix}:{k}')}\r\n{prefix}:{k}\r\n$100\r\n{'v' * 100}\r\n"
                   for k in range(keys))
    subprocess.run(["redis-cli", "-h", node["ip"], "-p", str(node["port"]), "--pipe"], input=data.encode(),
                   capture_output=True, check=True)


def aae_round(nodes, initiator):
    """Triggers a round on `initiator` and waits until its exchange count stops growing."""
    before_bytes = sum(metric(n, "kura_aae_bytes_total") for n in nodes)
    before_ex = info_field(initiator, "aae_exchanges")
    before_rep = info_field(initiator, "aae_keys_repaired")
    cli(initiator, "KURA", "AAE")
    last, stable = -1, 0
    while stable < 5:
        time.sleep(0.2)
        ex = info_field(initiator, "aae_exchanges")
        stable = stable + 1 if ex == last and ex > before_ex else 0
        last = ex
    exchanges = last - before_ex
    moved = sum(metric(n, "kura_aae_bytes_total") for n in nodes) - before_bytes
    return exchanges, moved, info_field(initiator, "aae_keys_repaired") - before_rep


def iptables(op, a, b):
    for x, y in ((a, b), (b, a)):
        for d, port in (("--dport", y["cport"]), ("--sport", x["cport"])):
            subprocess.run(["iptables", "-w", op, "INPUT", "-p", "tcp", "-s", x["ip"], "-d", y["ip"], d, str(port),
                            "-j", "DROP"], check=True)


def foreground(node, args):
    out = subprocess.run(["redis-benchmark", "-h", node["ip"], "-p", str(node["port"]), "-t", "set,get", "-c", "50",
                          "-n", str(args.requests), "-r", str(args.keys)], capture_output=True, text=True).stdout
    return parse_benchmark(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=50000)
    ap.add_argument("--differ", type=int, default=100)
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    procs = Procs()
    try:
        nodes = start_cluster(procs, 3600, "idle")
        load(nodes[0], args.keys)
        time.sleep(2)
        ex, moved, rep = aae_round(nodes, nodes[0])
        print(f"# anti-entropy costs, {time.strftime('%Y-%m-%d')}, {machine()}; 3 nodes, N=3, {args.keys} keys")
        print()
        print("| case | exchanges | bytes | bytes per exchange | keys repaired |")
        print("|---|---|---|---|---|")
        print(f"| replicas agree | {ex} | {moved:,.0f} | {moved / max(ex, 1):,.0f} | {rep} |")
        iptables("-I", nodes[2], nodes[0])
        iptables("-I", nodes[2], nodes[1])
        try:
            time.sleep(5)
            load(nodes[0], args.differ, prefix="diff")
            # Past the request timeout (2 s), so that no write to the cut replica is still in a
            # TCP retransmit queue that the heal would deliver.
            time.sleep(4)
        finally:
            iptables("-D", nodes[2], nodes[0])
            iptables("-D", nodes[2], nodes[1])
        time.sleep(3)
        ex, moved, rep = aae_round(nodes, nodes[0])
        print(f"| {args.differ} of {args.keys + args.differ} keys differ on one replica | {ex} | {moved:,.0f} | "
              f"{moved / max(ex, 1):,.0f} | {rep} |")
        idle = foreground(nodes[0], args)
        procs.stop()
        procs = Procs()
        nodes = start_cluster(procs, 1, "busy")
        load(nodes[0], args.keys)
        busy = foreground(nodes[0], args)
        print()
        print("| foreground (redis-benchmark -c 50 on one node) | SET rps | SET p99.9 ms | GET rps | GET p99.9 ms |")
        print("|---|---|---|---|---|")
        for name, r in (("AAE idle (--aae-interval 3600)", idle), ("AAE every second (--aae-interval 1)", busy)):
            print(f"| {name} | {r['SET']['rps']:,.0f} | {r['SET']['p999']} | {r['GET']['rps']:,.0f} | {r['GET']['p999']} |")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
