#!/usr/bin/env python3
"""Cost at scale: kura next to redis-server (with its append-only file) holding millions of keys.

For each server in turn (on the same machine, one after the other, each on a fresh data dir):
loads `--requests` random SETs of `--size` bytes over a keyspace of `--keyspace` keys
(`redis-benchmark -t set -P 16 -c 50 -r K -n N -d S`), then reports

- load: the benchmark's wall time;
- RSS right after the load and again after `--idle` seconds without requests (memory kept
  after a burst);
- disk: the bytes of the data directory (kura) or of the append-only file (redis);
- restart: the server is stopped (SIGTERM) and started again on the same directory; the time
  from the start to the first answered `GET` of a key written before the stop, and the RSS
  then.

    python3 benches/scale.py [--requests 10000000] [--keyspace 10000000] [--size 100] [--no-build]

Prints a Markdown table (the README's "Cost at scale").
"""

import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KURA = os.path.join(ROOT, "target", "release", "kura")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout.strip()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def du_mb(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total / (1 << 20)


def wait_value(port, key, value, timeout=600, ping=False):
    """Seconds until `GET key` answers `value` (a server loading its data answers LOADING or
    refuses the connection until then); with `ping`, until PING answers."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if (cli(port, "PING") == "PONG") if ping else (cli(port, "GET", key) == value):
            return time.monotonic() - start
        time.sleep(0.02)
    raise RuntimeError(f"no answer for {key} within {timeout} s")


class Server:
    def __init__(self, name, tmp):
        self.name, self.tmp, self.port, self.proc = name, tmp, free_port(), None
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)

    def cmd(self):
        if self.name == "kura":
            return [KURA, "--listen", f"127.0.0.1:{self.port}",
                    "--cluster-listen", f"127.0.0.1:{free_port()}", "--metrics-listen", f"127.0.0.1:{free_port()}",
                    "--data-dir", self.dir]
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]

    def start(self):
        self.proc = subprocess.Popen(self.cmd(), stdout=open(os.path.join(self.tmp, self.name + ".log"), "a"),
                                     stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)

    def disk_mb(self):
        if self.name == "kura":
            return du_mb(self.dir)
        return du_mb(os.path.join(self.dir, "appendonlydir"))


def measure(name, args, tmp):
    s = Server(name, tmp)
    s.start()
    wait_value(s.port, "scale:none", "", ping=True)
    began = time.monotonic()
    subprocess.run(["redis-benchmark", "-p", str(s.port), "-t", "set", "-P", "16", "-c", "50",
                    "-r", str(args.keyspace), "-n", str(args.requests), "-d", str(args.size), "-q"],
                   check=True, capture_output=True)
    load = time.monotonic() - began
    cli(s.port, "SET", "scale:probe", "here")
    rss_load = rss_mb(s.proc.pid)
    time.sleep(args.idle)
    rss_idle = rss_mb(s.proc.pid)
    keys = cli(s.port, "DBSIZE")
    s.stop()
    disk = s.disk_mb()
    s.start()
    restart = wait_value(s.port, "scale:probe", "here")
    rss_restart = rss_mb(s.proc.pid)
    s.stop()
    return {"load": load, "rss_load": rss_load, "rss_idle": rss_idle, "disk": disk, "restart": restart,
            "rss_restart": rss_restart, "keys": keys}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000_000)
    ap.add_argument("--keyspace", type=int, default=10_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds without requests before RSS is read again")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install redis-server redis-tools")
    tmp = tempfile.mkdtemp(prefix="kura-scale-")
    try:
        res = {name: measure(name, args, tmp) for name in ("kura", "redis")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    k, r = res["kura"], res["redis"]
    print(f"# cost at scale, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Linux {platform.release()}")
    print(f"# redis-benchmark -t set -P 16 -c 50 -r {args.keyspace} -n {args.requests} -d {args.size}: "
          f"{k['keys']} keys in kura, {r['keys']} in redis-server (--appendonly yes --appendfsync everysec)")
    print()
    print("| | kura | redis-server | kura / redis |")
    print("|---|---|---|---|")
    rows = [("load (s)", "load", "{:.1f}"), ("RSS after the load (MB)", "rss_load", "{:,.0f}"),
            (f"RSS after {args.idle:.0f} s idle (MB)", "rss_idle", "{:,.0f}"),
            ("disk: data dir / AOF (MB)", "disk", "{:,.0f}"), ("restart to the first GET (s)", "restart", "{:.2f}"),
            ("RSS after the restart (MB)", "rss_restart", "{:,.0f}")]
    for label, field, fmt in rows:
        print(f"| {label} | {fmt.format(k[field])} | {fmt.format(r[field])} | {k[field] / r[field]:.2f}x |")


if __name__ == "__main__":
    main()
