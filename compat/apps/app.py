"""Everyday redis-py patterns against a kura node: a cache with timeouts and set_many in a
transaction (as Django's cache does), a session store with sliding expiry, Rails' EXPIRE NX
and a SCAN by prefix, WATCH/MULTI check-and-set, a FLUSHDB teardown of a test database, and
sets, hashes and counters as applications keep tags, profiles and hit counts.

Usage: python3 app.py HOST:PORT [HOST:PORT ...] [--cluster]
Writes go through the first port and reads through the others too. With --cluster, the
concurrent check-and-set is not asserted exact (EXEC is not isolated across nodes: docs/commands.md).
Exits non-zero on the first failed check.
"""

import sys
import threading
import uuid

import redis

args = [a for a in sys.argv[1:] if not a.startswith("--")]
cluster = "--cluster" in sys.argv
nodes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args]
run = uuid.uuid4().hex[:8]


def client(node, db=0):
    return redis.Redis(host=node[0], port=node[1], db=db, decode_responses=True)


w = client(nodes[0])
readers = [client(n) for n in nodes]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


# The library's handshake: redis-py reads the server's version for some features.
check(w.ping(), "PING")
check(int(w.info("server")["redis_version"].split(".")[0]) >= 7, "redis_version >= 7")

# 1. Cache: set with a timeout, get, TTL; set_many as Django does (MULTI, MSET, EXPIREs, EXEC).
w.set(f"cache:{run}:page", "<html>", ex=60)
for r in readers:
    check(r.get(f"cache:{run}:page") == "<html>", "cached value through every node")
    check(0 < r.ttl(f"cache:{run}:page") <= 60, "TTL of a cached value")
pipe = w.pipeline(transaction=True)
pipe.mset({f"cache:{run}:a": "1", f"cache:{run}:b": "2"})
pipe.expire(f"cache:{run}:a", 300)
pipe.expire(f"cache:{run}:b", 300)
check(pipe.execute() == [True, True, True], "set_many transaction replies")
for r in readers:
    check(r.mget(f"cache:{run}:a", f"cache:{run}:b", f"cache:{run}:missing") == ["1", "2", None], "get_many")
    check(0 < r.ttl(f"cache:{run}:b") <= 300, "set_many keys expire")
check(w.delete(f"cache:{run}:a", f"cache:{run}:missing") == 1, "delete_many counts existing keys")
check(w.set(f"cache:{run}:add", "x", nx=True) is True, "cache.add of a new key")
check(w.set(f"cache:{run}:add", "y", nx=True) is None, "cache.add of an existing key")
check(w.get(f"cache:{run}:add") == "x", "cache.add kept the first value")

# 2. Session store: write with expiry, slide it on each access, Rails' EXPIRE NX, SCAN by prefix.
for i in range(30):
    w.set(f"session:{run}:{i}", f"user-{i}", ex=30)
w.set(f"other:{run}", "not a session")
check(w.expire(f"session:{run}:3", 120) is True, "sliding EXPIRE")
check(w.expire(f"session:{run}:3", 5, nx=True) is False, "EXPIRE NX on a key with a TTL")
w.persist(f"session:{run}:4")
check(w.expire(f"session:{run}:4", 50, nx=True) is True, "EXPIRE NX on a key without a TTL")
check(w.ttl(f"session:{run}:3") > 30, "the slid expiry")
for r in readers:
    found = sorted(r.scan_iter(match=f"session:{run}:*", count=7))
    check(found == sorted(f"session:{run}:{i}" for i in range(30)), f"SCAN by prefix found {len(found)}")
check(w.getex(f"session:{run}:5", ex=90) == "user-5", "GETEX slides and reads")
check(w.getdel(f"session:{run}:6") == "user-6", "GETDEL logs out")
check(w.exists(f"session:{run}:6") == 0, "logged-out session gone")

# 3. WATCH/MULTI check-and-set: concurrent appends of a counter kept in a string.
key = f"cas:{run}"
w.set(key, "0")
aborted = [0]


def bump(times):
    c = client(nodes[0])
    for _ in range(times):
        with c.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    n = int(pipe.get(key))
                    pipe.multi()
                    pipe.set(key, str(n + 1))
                    pipe.execute()
                    break
                except redis.WatchError:
                    aborted[0] += 1


threads = [threading.Thread(target=bump, args=(25,)) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
final = int(w.get(key))
if cluster:
    check(0 < final <= 150, f"check-and-set counter {final}")
else:
    check(final == 150, f"check-and-set counter exact on one node: {final} ({aborted[0]} aborts)")

# 4. Test teardown: a test database flushed, the main one untouched.
t = client(nodes[0], db=1)
for i in range(20):
    t.set(f"fixture:{i}", "x")
check(t.dbsize() == 20, "test database size")
check(t.flushdb() is True, "FLUSHDB")
check(t.dbsize() == 0, "test database empty after FLUSHDB")
check(w.get(f"cache:{run}:add") == "x", "database 0 untouched by FLUSHDB of 1")
for n in nodes:
    check(client(n, db=1).dbsize() == 0, "flushed everywhere")

# 5. Tags in a set, a profile in a hash with a hit counter, page views in a pipeline.
tags = f"tags:{run}"
check(w.sadd(tags, "rust", "redis", "dynamo") == 3, "SADD new tags")
check(w.sadd(tags, "rust") == 0, "SADD an existing tag")
check(w.srem(tags, "redis", "nope") == 1, "SREM")
for r in readers:
    check(r.smembers(tags) == {"rust", "dynamo"}, "SMEMBERS as a Python set through every node")
    check(r.sismember(tags, "rust") and not r.sismember(tags, "redis"), "SISMEMBER")
    check(r.type(tags) == "set", "TYPE set")
profile = f"user:{run}"
w.hset(profile, mapping={"name": "Ada", "email": "ada@example.com", "visits": 0})
pipe = w.pipeline(transaction=False)
for _ in range(10):
    pipe.hincrby(profile, "visits", 1)
    pipe.incr(f"views:{run}")
replies = pipe.execute()
check(replies[-2:] == [10, 10], f"pipelined HINCRBY and INCR: {replies[-2:]}")
for r in readers:
    check(r.hgetall(profile) == {"name": "Ada", "email": "ada@example.com", "visits": "10"}, "HGETALL as a dict")
    check(r.hmget(profile, "name", "missing") == ["Ada", None], "HMGET")
check(w.hdel(profile, "email") == 1 and w.hlen(profile) == 2, "HDEL, HLEN")
try:
    w.get(profile)
    check(False, "GET of a hash must fail")
except redis.ResponseError as e:
    check(str(e).startswith("WRONGTYPE"), f"WRONGTYPE: {e}")
check(w.pfadd(f"visitors:{run}", *[f"u{i}" for i in range(100)]) == 1, "PFADD")
check(95 <= w.pfcount(f"visitors:{run}") <= 105, "PFCOUNT")

print("redis-py app: OK")
