"""RQ (pip's rq, 3.0) against kura: 1,000 jobs enqueued through one node and run by three
`rq worker --burst` processes (SimpleWorker: the job runs in the worker's own process), every
result read back from its results stream (RQ 1.12 and later keep each job's results in a stream,
`XADD rq:results:<id> MAXLEN ~ 10`, read with XREVRANGE), a client waiting for a result with
`Job.latest_result(timeout=...)` (XREAD BLOCK) while a worker on another node runs the job; then
workers killed with SIGKILL mid-job, and RQ's own abandoned-job rule: StartedJobRegistry.cleanup()
moves a job whose execution expired (its worker stopped heartbeating) to the FailedJobRegistry
(AbandonedJobError), or re-queues it if it has retries left.

Usage: python3 rqapp.py HOST:PORT [HOST:PORT ...] [--cluster]
The enqueuer uses the first node; with --cluster each worker connects to another node (the
second, third, fourth), otherwise all of them to the one node. Results are read through the
last node. Exits non-zero on the first failed check.

The workers are rqjobs.BoundedExitWorker, RQ's SimpleWorker with its pub/sub thread stopped with
a 1 s bound on exit (RQ 3.0 with redis-py 8.2 can otherwise take 60 s to exit, against
redis-server too: rqjobs.py says why).
"""

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.results import Result
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

import rqjobs

args = [a for a in sys.argv[1:] if not a.startswith("--")]
cluster = "--cluster" in sys.argv
nodes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args]
run = uuid.uuid4().hex[:8]
DIR = os.path.dirname(os.path.abspath(__file__))
JOBS = 1000
logs = tempfile.mkdtemp(prefix="kura-rq-")
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


def conn(node):
    return redis.Redis(host=node[0], port=node[1])


def start_worker(node, queue, name):
    log = os.path.join(logs, name + ".log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", f"redis://{node[0]}:{node[1]}/0",
         "--worker-class", "rqjobs.BoundedExitWorker", "--path", DIR, "--name", name, queue],
        cwd=DIR, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    workers[name] = (proc, node, log)
    return proc


def wait_for(what, cond, timeout=60):
    deadline = time.time() + timeout
    while not cond():
        check(time.time() < deadline, f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # poll interval, bounded by the deadline


def wait_exit(name, timeout=120):
    proc = workers[name][0]
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        check(False, f"worker {name} still running after {timeout}s")
    check(rc == 0, f"worker {name} exited with {rc}")


enqueuer = conn(nodes[0])
reader = conn(nodes[-1])
worker_nodes = nodes[1:4] if cluster else [nodes[0]] * 3

# 1. 1,000 jobs through one node, three burst workers, every result read back.
t0 = time.time()
queue = Queue(f"squares-{run}", connection=enqueuer)
jobs = [queue.enqueue(rqjobs.square, i, result_ttl=600) for i in range(JOBS)]
check(len(queue) == JOBS, f"queue length {len(queue)} after enqueueing {JOBS}")
names = [f"sq-{run}-{i}" for i in range(len(worker_nodes))]
for name, node in zip(names, worker_nodes):
    start_worker(node, queue.name, name)
for name in names:
    wait_exit(name)
fetched = Job.fetch_many([j.id for j in jobs], connection=reader)
by_worker = {}
for i, job in enumerate(fetched):
    check(job is not None, f"job {i} readable")
    check(job.get_status() == JobStatus.FINISHED, f"job {i} finished: {job.get_status()}")
    check(job.result is not None and job.result[0] == i * i, f"job {i} result {job.result!r}")
    by_worker[job.result[1]] = by_worker.get(job.result[1], 0) + 1
pipe = reader.pipeline(transaction=False)
for job in jobs:
    pipe.xlen(f"rq:results:{job.id}")
lengths = pipe.execute()
check(lengths == [1] * JOBS, f"one entry in each job's results stream: {[n for n in lengths if n != 1][:5]}")
latest = fetched[7].latest_result()
check(latest is not None and latest.type == Result.Type.SUCCESSFUL and latest.return_value[0] == 49,
      f"job 7's latest result from its stream: {latest and (latest.type, latest.return_value)}")
check(set(by_worker) <= set(names), f"workers named {sorted(by_worker)}")
check(len(by_worker) >= 2, f"jobs spread over workers: {by_worker}")
check(Queue(queue.name, connection=reader).count == 0, "queue drained")
check(FinishedJobRegistry(queue.name, connection=reader).count == JOBS, "FinishedJobRegistry holds every job")
check(StartedJobRegistry(queue.name, connection=reader).count == 0, "StartedJobRegistry empty")
check(FailedJobRegistry(queue.name, connection=reader).count == 0, "FailedJobRegistry empty")
print(f"rq: {JOBS} jobs by {dict(sorted(by_worker.items()))} in {time.time() - t0:.1f}s")

# 1b. A client blocked in Job.latest_result(timeout=...) (XREAD BLOCK on the job's results
# stream, through the last node) gets the result once a worker (another node) runs the job.
t0 = time.time()
wq = Queue(f"wait-{run}", connection=enqueuer)
waited = wq.enqueue(rqjobs.square, 12, result_ttl=600)
got = []
blocked_before = int(reader.info("clients")["blocked_clients"])
waiter = threading.Thread(target=lambda: got.append(Job.fetch(waited.id, connection=conn(nodes[-1])).latest_result(timeout=60)))
waiter.start()
wait_for("the waiter to block in XREAD", lambda: int(reader.info("clients")["blocked_clients"]) > blocked_before)
name = f"w-{run}"
start_worker(worker_nodes[0], wq.name, name)
wait_exit(name)
waiter.join(timeout=60)
check(not waiter.is_alive(), "the waiter got an answer within 60 s")
check(got and got[0] is not None and got[0].type == Result.Type.SUCCESSFUL and got[0].return_value[0] == 144,
      f"the waiter's result: {got and got[0] and (got[0].type, got[0].return_value)}")
print(f"rq: a result waited for with XREAD BLOCK in {time.time() - t0:.1f}s")

# 2. A worker killed mid-job: without retries left the job goes to the FailedJobRegistry,
# with retries left it is queued again and the next worker completes it.
t0 = time.time()
hq = Queue(f"hang-{run}", connection=enqueuer)
doomed = hq.enqueue(rqjobs.hang, job_timeout=600)
retried = hq.enqueue(rqjobs.hang_first_attempt, 42, job_timeout=600, retry=Retry(max=1), result_ttl=600)
# The retried job is killed once its body counted its first attempt (RQ marks a job STARTED
# before it calls the function: a kill in between left no attempt, and the retry then hung).
for job, node, name, begun in (
    (doomed, worker_nodes[0], f"k1-{run}", lambda: True),
    (retried, worker_nodes[1], f"k2-{run}", lambda: reader.get(f"attempts:{retried.id}") == b"1"),
):
    start_worker(node, hq.name, name)
    wait_for(f"job {job.id} started", lambda: Job.fetch(job.id, connection=reader).get_status() == JobStatus.STARTED)
    wait_for(f"job {job.id}'s body to begin", begun)
    workers[name][0].kill()  # SIGKILL, mid-job
    workers[name][0].wait()
started = StartedJobRegistry(hq.name, connection=reader)
# RQ's cleanup runs in every worker's maintenance; it treats an execution as abandoned once
# the heartbeat the worker set (job_monitoring_interval + 60 s ahead) has passed: cleanup at
# that moment rather than waiting for it.
entries = reader.zrange(started.key, 0, -1, withscores=True)
check(len(entries) == 2, f"both killed jobs in the StartedJobRegistry: {entries}")
expiry = max(score for _, score in entries)
check(time.time() < expiry <= time.time() + 700, f"the killed workers' heartbeats expire in the future: {expiry}")
started.cleanup(timestamp=expiry + 1)
check(started.count == 0, "StartedJobRegistry emptied by cleanup")
failed = FailedJobRegistry(hq.name, connection=reader)
check(failed.get_job_ids() == [doomed.id], f"the job without retries is in the FailedJobRegistry: {failed.get_job_ids()}")
doomed = Job.fetch(doomed.id, connection=reader)
check(doomed.get_status() == JobStatus.FAILED, f"abandoned job FAILED: {doomed.get_status()}")
check("FailedJobRegistry" in (doomed.exc_info or ""), f"abandoned job's exc_info: {doomed.exc_info!r}")
retried = Job.fetch(retried.id, connection=reader)
check(retried.get_status() == JobStatus.QUEUED, f"job with a retry left re-queued: {retried.get_status()}")
check(retried.retries_left == 0, f"one retry used: {retried.retries_left}")
check(Queue(hq.name, connection=reader).job_ids == [retried.id], "re-queued job back in its queue")
name = f"k3-{run}"
start_worker(worker_nodes[2], hq.name, name)
wait_exit(name)
retried = Job.fetch(retried.id, connection=reader)
check(retried.get_status() == JobStatus.FINISHED, f"re-queued job finished: {retried.get_status()}")
check(retried.result == 42, f"re-queued job's result {retried.result!r}")
kinds = [r.type for r in retried.results()]
check(kinds and kinds[0] == Result.Type.SUCCESSFUL, f"the re-queued job's results, newest first: {kinds}")
check(reader.get(f"attempts:{retried.id}") == b"2", "the re-queued job ran twice")
check(failed.get_job_ids() == [doomed.id], "nothing else failed")
print(f"rq: killed workers' jobs failed / re-queued and completed in {time.time() - t0:.1f}s")
print("rqapp.py: all checks passed")
