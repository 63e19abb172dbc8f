"""redis-py's RedisCluster against kura (issue 25: one hop).

    python3 onehop.py HOST:PORT... [--phases FILE]

1,000 SET/GET of keys spread over every slot, then MSET/MGET of 50 keys of one hash tag,
through the cluster client (it reads CLUSTER SLOTS and sends each key to its slot's node).
With --phases FILE it then writes FILE.ready, waits until FILE exists (the test adds a node
meanwhile), and does it all again with the same client, reading the first phase's keys back:
a client whose map went stale keeps working (it follows MOVED or is served by forwarding).
Prints one JSON line: the nodes of the client's map before and after.
"""
import json
import os
import sys
import time

from redis.cluster import ClusterNode, RedisCluster


def phase(rc, tag):
    for i in range(1000):
        key = f"onehop:{tag}:{i}"
        rc.set(key, f"v{i}")
    for i in range(1000):
        key = f"onehop:{tag}:{i}"
        got = rc.get(key)
        assert got == f"v{i}", f"{key}: {got!r}"
    keys = {f"{{cart:{tag}}}:{i}": f"item{i}" for i in range(50)}
    rc.mset(keys)
    got = rc.mget(list(keys))
    assert got == list(keys.values()), f"MGET of one tag: {got!r}"


def primaries(rc):
    # From the slot map: every kura node is a primary of some slots and a replica of others,
    # and redis-py keeps one role per node object (the last one it read).
    return sorted({nodes[0].name for nodes in rc.nodes_manager.slots_cache.values()})


def main():
    args = sys.argv[1:]
    phases = None
    if "--phases" in args:
        at = args.index("--phases")
        phases = args[at + 1]
        del args[at : at + 2]
    nodes = [ClusterNode(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args]
    rc = RedisCluster(startup_nodes=nodes, decode_responses=True, socket_timeout=20)
    phase(rc, "a")
    before = primaries(rc)
    after = before
    if phases:
        open(phases + ".ready", "w").close()
        # Waits for the test's condition (a node joined and the ring settled), polling; gives
        # up after 5 minutes so that a test that failed meanwhile leaves no process behind.
        deadline = time.monotonic() + 300
        while not os.path.exists(phases):
            if time.monotonic() > deadline:
                sys.exit("the test never said the node joined")
            time.sleep(0.05)
        phase(rc, "b")
        for i in range(1000):
            assert rc.get(f"onehop:a:{i}") == f"v{i}"
        after = primaries(rc)
    print(json.dumps({"before": before, "after": after}))


if __name__ == "__main__":
    main()
