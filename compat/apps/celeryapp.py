"""Celery (pip's celery, kombu's Redis transport) against kura, with the Redis broker and the
Redis result backend: 1,000 tasks sent through one node and run by three `celery worker`
processes (threads pool), every result read back with AsyncResult.get (the backend's pub/sub
and GET); then an acks_late task whose worker (solo pool) is killed with SIGKILL mid-task:
kombu keeps it in the `unacked` hash until the ack, and once visibility_timeout (2 s here) has
passed another worker's sweep puts it back on the queue, runs it and stores its result.

Usage: python3 celeryapp.py HOST:PORT [HOST:PORT ...] [--cluster]
The client (sender and result reader) uses the first node; with --cluster each worker
connects, for broker and backend, to another node (the second, third, fourth), otherwise all
of them to the one node. Exits non-zero on the first failed check.
"""

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

args = [a for a in sys.argv[1:] if not a.startswith("--")]
cluster = "--cluster" in sys.argv
nodes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args]


def url(node):
    return f"redis://{node[0]}:{node[1]}/0"


os.environ["KURA_BROKER"] = url(nodes[0])
import redis  # noqa: E402

import celerytasks  # noqa: E402  (reads KURA_BROKER)

run = uuid.uuid4().hex[:8]
DIR = os.path.dirname(os.path.abspath(__file__))
TASKS = 1000
logs = tempfile.mkdtemp(prefix="kura-celery-")
atexit.register(shutil.rmtree, logs, True)
workers = {}  # name -> (Popen, node, log path)


def die_with_parent():
    """In a worker, before exec: SIGKILL it when this script dies (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


@atexit.register
def kill_workers():
    for proc, _, _ in workers.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        kill_workers()
        for name, (_, node, log) in workers.items():
            with open(log) as f:
                tail = f.read()[-3000:]
            print(f"--- worker {name} on {node[0]}:{node[1]} ---\n{tail}", file=sys.stderr)
        sys.exit(1)


def start_worker(node, queue, name, pool, concurrency=1):
    log = os.path.join(logs, name + ".log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celerytasks", "worker", "-P", pool, "-c", str(concurrency),
         "-Q", queue, "-n", f"{name}@kura", "--loglevel", "INFO", "--without-mingle"],
        cwd=DIR, env={**os.environ, "KURA_BROKER": url(node)}, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    workers[name] = (proc, node, log)
    return proc


def wait_for(what, cond, timeout=60):
    deadline = time.time() + timeout
    while not cond():
        check(time.time() < deadline, f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # poll interval, bounded by the deadline


def shut_down(name, timeout=30):
    """Celery's warm shutdown (SIGTERM): finish what runs, then exit 0."""
    proc = workers[name][0]
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        check(False, f"worker {name} still running {timeout}s after SIGTERM")
    check(rc == 0, f"worker {name} exited with {rc}")


client = redis.Redis(host=nodes[0][0], port=nodes[0][1])
worker_nodes = nodes[1:4] if cluster else [nodes[0]] * 3

# 1. 1,000 tasks through one node, three workers, every result read back.
t0 = time.time()
queue = f"adds-{run}"
names = [f"add-{run}-{i}" for i in range(len(worker_nodes))]
for name, node in zip(names, worker_nodes):
    start_worker(node, queue, name, "threads", 4)
results = [celerytasks.add.apply_async((i, i), queue=queue) for i in range(TASKS)]
by_worker = {}
for i, r in enumerate(results):
    value = r.get(timeout=60)
    check(isinstance(value, list) and value[0] == 2 * i, f"task {i} result {value!r}")
    by_worker[value[1]] = by_worker.get(value[1], 0) + 1
    check(r.state == "SUCCESS", f"task {i} state {r.state}")
check(set(by_worker) <= {f"{n}@kura" for n in names}, f"workers named {sorted(by_worker)}")
check(len(by_worker) >= 2, f"tasks spread over workers: {by_worker}")
check(client.llen(queue) == 0, "queue drained")
for name in names:
    shut_down(name)
check(client.hlen("unacked") == 0, f"nothing left unacknowledged: {client.hkeys('unacked')}")
print(f"celery: {TASKS} tasks by {dict(sorted(by_worker.items()))} in {time.time() - t0:.1f}s")

# 2. An acks_late task whose worker is killed mid-task is re-delivered to another worker.
t0 = time.time()
queue = f"stall-{run}"
killed = f"k1-{run}"
start_worker(worker_nodes[0], queue, killed, "solo")
r = celerytasks.stall_first.apply_async((7,), queue=queue)
attempts = f"attempts:{r.id}"
wait_for("the first delivery to start", lambda: client.get(attempts) == b"1")
check(client.hlen("unacked") == 1, "the running acks_late task is unacknowledged")
workers[killed][0].kill()  # SIGKILL, mid-task
workers[killed][0].wait()
rescuer = f"k2-{run}"
start_worker(worker_nodes[1], queue, rescuer, "solo")
check(r.get(timeout=60) == 7, "the re-delivered task's result")
check(client.get(attempts) == b"2", f"delivered twice: {client.get(attempts)}")
wait_for("the ack", lambda: client.hlen("unacked") == 0)
shut_down(rescuer)
print(f"celery: killed worker's acks_late task re-delivered and completed in {time.time() - t0:.1f}s")
print("celeryapp.py: all checks passed")
