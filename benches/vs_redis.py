#!/usr/bin/env python3
"""kura next to redis-server, measured by redis-benchmark in one run on one machine.

Starts a kura node (release build) and a redis-server (Debian package, with
`--appendonly yes --appendfsync everysec`, the fair peer of kura's journal), then runs
`redis-benchmark -t set,get -c 50 -n 200000 -r 100000`, plain and with `-P 16`, against each,
interleaved over several rounds (kura, redis, redis, kura, ...) so that a noisy machine hurts
both alike. Prints the median throughput, p99 and p99.9 of each and their ratio, and (each test
runs alone) the servers' CPU time per request, which is stable where throughput is not.

With `--cluster 3` it starts a 3-node kura cluster (N=3 R=2 W=2) on 127.0.0.1..3 instead and
spreads the benchmark's clients over the nodes (one redis-benchmark per node, run at once).

    python3 benches/vs_redis.py [--rounds 3] [--requests 200000] [--cluster 3] [--tests set,get,incr]
    python3 benches/vs_redis.py --tests default --requests 100000 --keyspace 0   (redis-benchmark's default run)
"""

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# KURA_BIN names another build (e.g. target/ci/kura, without LTO) to measure.
KURA = os.environ.get("KURA_BIN") or os.path.join(ROOT, "target", "release", "kura")


def free_port(ip="127.0.0.1"):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def wait_ping(ip, port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{ip}:{port} did not answer PING")


def cli(ip, port, *args):
    """redis-cli's output of one command."""
    return subprocess.run(["redis-cli", "-h", ip, "-p", str(port), *args], capture_output=True, text=True).stdout


def metric(ip, port, name):
    """The sum over all label sets of Prometheus series `name` at a node's metrics address."""
    text = urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=10).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith((name + " ", name + "{")))


def parse_benchmark(text):
    """rps, p50, p99 and p99.9 (ms) per test from redis-benchmark's full (non --csv) output."""
    results = {}
    current = None
    for line in re.split(r"[\r\n]+", text):
        m = re.match(r"^====== (.+) ======", line.strip())
        if m:
            current = m.group(1)
            results[current] = {"p999": None}
            continue
        if current is None:
            continue
        m = re.match(r"^\s*([\d.]+)% <= ([\d.]+) milliseconds", line)
        if m and float(m.group(1)) >= 99.9 and results[current]["p999"] is None:
            results[current]["p999"] = float(m.group(2))
        m = re.match(r"^\s*throughput summary: ([\d.]+) requests per second", line)
        if m:
            results[current]["rps"] = float(m.group(1))
        m = re.match(r"^\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if m and "rps" in results[current]:
            # avg min p50 p95 p99 max
            results[current]["p50"] = float(m.group(3))
            results[current]["p99"] = float(m.group(5))
    return results


def cpu_seconds(pids):
    """User + system CPU time so far of these processes (every thread), from /proc."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def run_benchmark(targets, args, pipeline, pids, tests):
    """Runs one redis-benchmark per (ip, port) target at once; sums rps, takes worst latencies.

    With one test, also the servers' CPU time per request (µs): stable where rps is noisy."""
    clients = max(1, args.clients // len(targets))
    requests = args.requests // len(targets)
    procs = []
    before = cpu_seconds(pids)
    for ip, port in targets:
        cmd = ["redis-benchmark", "-h", ip, "-p", str(port), "-c", str(clients), "-n", str(requests),
               "-P", str(pipeline)]
        if tests != "default":
            cmd += ["-t", tests]
        if args.keyspace:
            cmd += ["-r", str(args.keyspace)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    merged = {}
    for p in procs:
        out, _ = p.communicate()
        if not parse_benchmark(out):
            print(f"redis-benchmark {' '.join(p.args[1:])} printed no result (exit {p.returncode}):\n{out[-1500:]}",
                  file=sys.stderr)
        for test, r in parse_benchmark(out).items():
            m = merged.setdefault(test, {"rps": 0.0, "p99": 0.0, "p999": 0.0})
            m["rps"] += r.get("rps", 0.0)
            m["p99"] = max(m["p99"], r.get("p99") or 0.0)
            m["p999"] = max(m["p999"], r.get("p999") or 0.0)
    if tests != "default" and len(merged) == 1:
        for m in merged.values():
            m["cpu"] = (cpu_seconds(pids) - before) * 1e6 / (requests * len(targets))
    return merged


class Procs:
    def __init__(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="kura-bench-")

    def start(self, cmd, log):
        p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p.pid

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_kura(procs, nodes, extra, pids, metrics=None):
    """Starts `nodes` kura nodes and returns their (ip, port); appends each node's metrics
    address to `metrics` when given."""
    ips = [f"127.0.0.{i + 1}" for i in range(nodes)]
    cluster_ports = {ip: free_port(ip) for ip in ips}
    targets = []
    for i, ip in enumerate(ips):
        port, mport = free_port(ip), free_port(ip)
        if metrics is not None:
            metrics.append((ip, mport))
        cmd = [KURA, "server", "--listen", f"{ip}:{port}", "--cluster-listen", f"{ip}:{cluster_ports[ip]}",
               "--metrics-listen", f"{ip}:{mport}", "--data-dir", os.path.join(procs.tmp, f"kura{i}")]
        if i > 0:
            cmd += ["--seed", f"{ips[0]}:{cluster_ports[ips[0]]}"]
        pids.append(procs.start(cmd + extra, os.path.join(procs.tmp, f"kura{i}.log")))
        wait_ping(ip, port)
        targets.append((ip, port))
    if nodes > 1:
        wait_members(targets[0], nodes)
        # Members are valid before every node has the ring: until then a node serves as if
        # alone (no replication), which would flatter the first measurement.
        wait_ring(targets, min(3, nodes))
    return targets


def wait_ring(nodes, n, timeout=60):
    """Waits until every node places a key on `n` owners (the ring has formed everywhere)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        lists = [subprocess.run(["redis-cli", "-h", ip, "-p", str(port), "KURA", "PREFLIST", "probe"],
                                capture_output=True, text=True).stdout.split() for ip, port in nodes]
        if all(len(x) == n for x in lists) and all(x == lists[0] for x in lists):
            return
        time.sleep(0.5)
    raise RuntimeError("the ring did not form")


def wait_members(target, n, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(["redis-cli", "-h", target[0], "-p", str(target[1]), "KURA", "MEMBERS"],
                             capture_output=True, text=True).stdout
        if out.count("valid") >= n:
            return
        time.sleep(0.2)
    raise RuntimeError("the cluster did not form")


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tests", default="set,get",
                    help="redis-benchmark's -t list (set,get,incr ...); 'default': its default run (no -t)")
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--keyspace", type=int, default=100000, help="redis-benchmark's -r (0: none)")
    ap.add_argument("--cluster", type=int, default=1, help="kura nodes (1 = one node)")
    ap.add_argument("--kura-arg", action="append", default=[], help="extra flag for every kura node")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install redis-server redis-tools")

    procs = Procs()
    try:
        kura_pids, redis_pids = [], []
        kura = start_kura(procs, args.cluster, args.kura_arg, kura_pids)
        rport = free_port()
        redis_pids.append(procs.start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", procs.tmp,
                     "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
                    os.path.join(procs.tmp, "redis.log")))
        wait_ping("127.0.0.1", rport)
        redis = [("127.0.0.1", rport)]

        samples = {}
        for rnd in range(args.rounds):
            for pipeline in (1, 16):
                order = [("kura", kura, kura_pids), ("redis", redis, redis_pids)]
                if rnd % 2:
                    order.reverse()
                # One test at a time (so that each has its CPU time), unless the default run.
                for tests in ([args.tests] if args.tests == "default" else args.tests.split(",")):
                    for name, targets, pids in order:
                        for test, r in run_benchmark(targets, args, pipeline, pids, tests).items():
                            samples.setdefault((test, pipeline, name), []).append(r)

        def med(test, pipeline, name, field):
            vals = [s[field] for s in samples.get((test, pipeline, name), []) if s.get(field)]
            return statistics.median(vals) if vals else float("nan")

        label = "kura" if args.cluster == 1 else f"kura {args.cluster} nodes (N=3 R=2 W=2)"
        print(f"# kura vs redis-server, {time.strftime('%Y-%m-%d')}, {machine()}")
        tests = "(default run, no -t)" if args.tests == "default" else f"-t {args.tests}"
        keyspace = f" -r {args.keyspace}" if args.keyspace else ""
        print(f"# redis-benchmark {tests} -c {args.clients} -n {args.requests}{keyspace}, "
              f"median of {args.rounds} interleaved rounds; {label}; redis-server --appendonly yes --appendfsync everysec")
        print()
        print("| test | pipeline | kura rps | redis rps | ratio | kura p99 / p99.9 ms | redis p99 / p99.9 ms "
              "| CPU µs/request kura / redis |")
        print("|---|---|---|---|---|---|---|---|")
        for pipeline in (1, 16):
            # In redis-benchmark's own order.
            for test in dict.fromkeys(t for (t, p, _) in samples if p == pipeline):
                k, r = med(test, pipeline, "kura", "rps"), med(test, pipeline, "redis", "rps")
                print(f"| {test} | {pipeline} | {k:,.0f} | {r:,.0f} | {k / r:.2f}x | "
                      f"{med(test, pipeline, 'kura', 'p99'):.3f} / {med(test, pipeline, 'kura', 'p999'):.3f} | "
                      f"{med(test, pipeline, 'redis', 'p99'):.3f} / {med(test, pipeline, 'redis', 'p999'):.3f} | "
                      f"{med(test, pipeline, 'kura', 'cpu'):.1f} / {med(test, pipeline, 'redis', 'cpu'):.1f} |")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
