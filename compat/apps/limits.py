"""Locks and rate limiters through redis-py: its Lock held through one node while a second
client on another node waits in acquire() until the release (extend and reacquire meanwhile),
a sliding-window limiter (ZREMRANGEBYSCORE, ZADD, ZCARD, PEXPIRE in MULTI) and a fixed-window
limiter script (INCR, PEXPIRE, PTTL), each hit by 8 clients spread over the nodes at once:
exactly the allowed number pass in a window, and the window slides / expires.

Usage: python3 limits.py HOST:PORT [HOST:PORT ...] [--cluster] [--only=lock,sliding,fixed]
Client i uses node i (mod the number of nodes). --only runs the named parts (default: all).
Exits non-zero on the first failed check.
"""

import sys
import threading
import time
import uuid

import redis
from redis.exceptions import LockNotOwnedError

args = [a for a in sys.argv[1:] if not a.startswith("--")]
only = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), ["lock", "sliding", "fixed"])
nodes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args]
run = uuid.uuid4().hex[:8]
CLIENTS, HITS, LIMIT = 8, 25, 50


def client(i):
    h, p = nodes[i % len(nodes)]
    return redis.Redis(host=h, port=p, decode_responses=True)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def wait_for(what, cond, timeout=30):
    deadline = time.time() + timeout
    while not cond():
        check(time.time() < deadline, f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)  # poll interval, bounded by the deadline


def hammer(hit):
    """CLIENTS threads, each on its own connection to node i % nodes, HITS calls of hit(c, i, j)
    at once; returns how many were allowed."""
    allowed = [0] * CLIENTS
    errors = []
    start = threading.Barrier(CLIENTS)

    def worker(i):
        c = client(i)
        start.wait()
        try:
            for j in range(HITS):
                if hit(c, i, j):
                    allowed[i] += 1
        except Exception as e:  # reported below, in the main thread
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, f"limiter calls failed: {errors[:3]}")
    return sum(allowed)


def lock():
    """redis-py's Lock: a second client, through another node, blocks in acquire() until the
    holder releases; meanwhile the holder extends and reacquires."""
    name = f"lock:{run}"
    holder_conn, waiter_conn = client(0), client(1)
    holder = holder_conn.lock(name, timeout=10)
    check(holder.acquire(blocking=False), "Lock.acquire of a free lock")
    waiter = waiter_conn.lock(name, timeout=10, sleep=0.01, blocking_timeout=30, thread_local=False)
    attempts = [0]
    do_acquire = waiter.do_acquire

    def counted_acquire(token):
        attempts[0] += 1
        return do_acquire(token)

    waiter.do_acquire = counted_acquire
    got = {}

    def wait_for_lock():
        got["ok"] = waiter.acquire()
        got["at"] = time.time()

    t = threading.Thread(target=wait_for_lock)
    t.start()
    wait_for("the second client to try 5 times", lambda: attempts[0] >= 5)
    check(holder.extend(5), "Lock.extend")
    check(10_000 < holder_conn.pttl(name) <= 15_000, f"extended TTL {holder_conn.pttl(name)}")
    check(holder.reacquire(), "Lock.reacquire")
    check(9_000 < holder_conn.pttl(name) <= 10_000, f"reacquired TTL {holder_conn.pttl(name)}")
    tries = attempts[0]
    wait_for("the second client to try again", lambda: attempts[0] >= tries + 5)
    check("ok" not in got, "the second client waits while the lock is held")
    check(holder.owned() and not waiter.owned(), "Lock.owned of the holder, not of the waiter")
    stale = holder.local.token
    released = time.time()
    holder.release()
    t.join(timeout=30)
    check(got.get("ok") is True, f"the second client got the lock after the release: {got}")
    check(got["at"] >= released, "not before the release")
    check(waiter.owned() and not holder.owned(), "now the waiter owns it")
    # The holder's stale token (as after its lock had expired and been taken) releases nothing.
    holder.local.token = stale
    try:
        holder.release()
        check(False, "releasing a lock someone else holds raises LockNotOwnedError")
    except LockNotOwnedError:
        pass
    check(holder_conn.get(name) == waiter.local.token.decode(), "the waiter's token is in the key")
    waiter.release()
    check(holder_conn.exists(name) == 0, "released")
    # A lock that is not released expires; then another client takes it.
    short = holder_conn.lock(f"{name}:short", timeout=0.3)
    check(short.acquire(blocking=False), "short lock")
    other = waiter_conn.lock(f"{name}:short", timeout=5)
    check(not other.acquire(blocking=False), "taken")
    wait_for("the short lock to expire", lambda: other.acquire(blocking=False))
    other.release()


def sliding():
    """A sliding window in MULTI: drop hits older than the window, add this one, count."""
    def limiter(key, window_ms, shift_ms=0):
        def hit(c, i, j):
            now = int(time.time() * 1000) + shift_ms
            pipe = c.pipeline(transaction=True)
            pipe.zremrangebyscore(key, "-inf", now - window_ms)
            pipe.zadd(key, {f"{i}:{j}:{uuid.uuid4().hex}": now})
            pipe.zcard(key)
            pipe.pexpire(key, window_ms)
            _, added, count, _ = pipe.execute()
            check(added == 1, "ZADD of a new member")
            return count <= LIMIT

        return hit

    key = f"sliding:{run}"
    n = hammer(limiter(key, 60_000))
    check(n == LIMIT, f"sliding window: {n} of {CLIENTS * HITS} passed, the limit is {LIMIT}")
    check(client(0).zcard(key) == CLIENTS * HITS, "every hit recorded")
    # One window later (the clock shifted forward rather than waited for), the old hits drop out.
    n = hammer(limiter(key, 60_000, shift_ms=60_000))
    check(n == LIMIT, f"sliding window, next window: {n} passed, the limit is {LIMIT}")
    check(client(0).zcard(key) == CLIENTS * HITS, "the first window's hits dropped")


def fixed():
    """A fixed window in a script: INCR, PEXPIRE on the first hit, PTTL for Retry-After."""
    LIMITER = """
    local n = redis.call('INCR', KEYS[1])
    if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
      redis.call('PEXPIRE', KEYS[1], ARGV[1])
    end
    local ttl = redis.call('PTTL', KEYS[1])
    if n > tonumber(ARGV[2]) then return {0, ttl} end
    return {1, ttl}
    """
    script = client(0).register_script(LIMITER)
    key = f"fixed:{run}"
    retry_after = []

    def hit(c, i, j):
        ok, ttl = script(keys=[key], args=[60_000, LIMIT], client=c)
        check(0 < ttl <= 60_000, f"PTTL in the window: {ttl}")
        if not ok:
            retry_after.append(ttl)
        return ok == 1

    n = hammer(hit)
    check(n == LIMIT, f"fixed window script: {n} of {CLIENTS * HITS} passed, the limit is {LIMIT}")
    check(len(retry_after) == CLIENTS * HITS - LIMIT, "every refusal carries a Retry-After")
    check(int(client(0).get(key)) == CLIENTS * HITS, "every hit counted")
    # A short window expires, and the count starts again.
    key = f"fixed:{run}:short"
    c0, c1 = client(0), client(1)
    check([script(keys=[key], args=[300, 2], client=c)[0] for c in (c0, c1, c0)] == [1, 1, 0], "2 per window")
    wait_for("the window to expire", lambda: c1.exists(key) == 0)
    check(script(keys=[key], args=[300, 2], client=c1)[0] == 1, "a new window")


for part in only:
    {"lock": lock, "sliding": sliding, "fixed": fixed}[part]()
    print(f"limits.py: {part} passed")
print("limits.py: all checks passed")
