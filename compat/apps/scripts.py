"""Applications' Lua scripts through redis-py: a lock release (GET-compare-DEL), a rate
limiter (INCR + PEXPIRE + PTTL), Sidekiq's scheduler (SCRIPT LOAD of ZRANGEBYSCORE ... LIMIT 0
1 + ZREM + LPUSH, then EVALSHA), redis-py's own Script objects (EVALSHA, NOSCRIPT, EVAL) and
its Lock (acquire, extend, reacquire, release are Lua scripts).

Usage: python3 scripts.py HOST:PORT [HOST:PORT ...] [--cluster]
Scripts are loaded through the first node and run through every node.
Exits non-zero on the first failed check.
"""

import sys
import time
import uuid

import redis
from redis.exceptions import LockError, NoScriptError

args = [a for a in sys.argv[1:] if not a.startswith("--")]
nodes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args]
run = uuid.uuid4().hex[:8]
clients = [redis.Redis(host=h, port=p, decode_responses=True) for h, p in nodes]
first = clients[0]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


# 1. Lock release: delete the key only if it still holds our token.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
else
  return 0
end
"""
for i, c in enumerate(clients):
    key = f"lock:{run}:{i}"
    check(c.set(key, "me", nx=True, px=10000), "lock taken")
    check(c.eval(RELEASE, 1, key, "someone-else") == 0, "a foreign token does not release")
    check(c.get(key) == "me", "lock still held")
    check(c.eval(RELEASE, 1, key, "me") == 1, "our token releases")
    check(c.get(key) is None, "lock gone")

# 2. Rate limiter: INCR, PEXPIRE on the first hit, PTTL for the caller.
LIMIT = """
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end
return {n, redis.call('pttl', KEYS[1])}
"""
limiter = first.register_script(LIMIT)
key = f"rate:{run}"
seen = []
for i in range(12):
    n, ttl = limiter(keys=[key], args=[60000], client=clients[i % len(clients)])
    check(0 < ttl <= 60000, f"PTTL within the window ({ttl})")
    seen.append(n)
check(seen == list(range(1, 13)), f"counts 1..12 ({seen})")

# 3. Sidekiq's scheduler: move due jobs from a sorted set to a queue, one at a time.
ZPOPBYSCORE = """
local key, now = KEYS[1], ARGV[1]
local jobs = redis.call("zrangebyscore", key, "-inf", now, "limit", 0, 1)
if jobs[1] then
  redis.call("zrem", key, jobs[1])
  return jobs[1]
end
"""
sha = first.script_load(ZPOPBYSCORE)
schedule, queue = f"schedule:{run}", f"queue:{run}:default"
now = time.time()
for j in range(5):
    first.zadd(schedule, {f"job{j}": now - 100 + j})
first.zadd(schedule, {"future": now + 3600})
moved = []
i = 0
while True:
    c = clients[i % len(clients)]
    i += 1
    job = c.evalsha(sha, 1, schedule, str(now))
    if job is None:
        break
    c.lpush(queue, job)
    moved.append(job)
check(moved == [f"job{j}" for j in range(5)], f"due jobs in score order ({moved})")
check(first.zrange(schedule, 0, -1) == ["future"], "the future job stays")
check(sorted(first.lrange(queue, 0, -1)) == sorted(moved), "queued")
for c in clients:
    check(c.script_exists(sha) == [True], "SCRIPT EXISTS through every node")

# 4. redis-py's Script: EVALSHA first, NOSCRIPT, then it loads the script again.
script = first.register_script("return ARGV[1] .. '!'")
check(script(args=["hi"]) == "hi!", "Script object")
first.script_flush()
try:
    first.evalsha(script.sha, 0, "x")
    check(False, "NOSCRIPT after SCRIPT FLUSH")
except NoScriptError:
    pass
check(script(args=["again"]) == "again!", "Script object reloads after NOSCRIPT")

# 5. redis-py's Lock: acquire, extend, reacquire, release (all Lua scripts).
for i, c in enumerate(clients):
    lock = c.lock(f"pylock:{run}:{i}", timeout=5, blocking_timeout=2)
    check(lock.acquire(), "Lock.acquire")
    other = c.lock(f"pylock:{run}:{i}", timeout=5, blocking_timeout=0.2)
    check(not other.acquire(), "a second Lock waits and fails")
    check(lock.extend(10), "Lock.extend")
    check(9000 < c.pttl(f"pylock:{run}:{i}") <= 15000, "extended TTL")
    check(lock.reacquire(), "Lock.reacquire")
    check(lock.owned(), "Lock.owned")
    lock.release()
    check(c.get(f"pylock:{run}:{i}") is None, "released")
    try:
        lock.release()
        check(False, "a second release fails")
    except LockError:
        pass

print("scripts.py: all checks passed")
