"""redis-py's pub/sub through kura: subscribers through the last node, publishers through the
first (two nodes of one cluster, or one node twice): PubSub.subscribe/psubscribe and
get_message, a handler run by run_in_thread, PUBSUB NUMSUB/NUMPAT/CHANNELS as redis-py parses
them, and a RESP3 connection (protocol=3) whose messages are pushes.

Usage: python3 pubsub.py HOST:PORT [HOST:PORT ...]
Exits non-zero on the first failed check.
"""

import sys
import threading
import time
import uuid

import redis

args = [a for a in sys.argv[1:] if not a.startswith("--")]
nodes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args]
run = uuid.uuid4().hex[:8]


def client(node, **kw):
    return redis.Redis(host=node[0], port=node[1], decode_responses=True, **kw)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


pub = client(nodes[0])
sub = client(nodes[-1])
chat, events = f"chat:{run}", f"events:{run}"

# 1. subscribe / psubscribe, their confirmations, then messages by get_message.
p = sub.pubsub()
p.subscribe(chat)
p.psubscribe(f"{events}.*")
confirmations = []
deadline = time.time() + 10
while len(confirmations) < 2 and time.time() < deadline:
    m = p.get_message(timeout=1)
    if m:
        confirmations.append((m["type"], m["channel"], m["data"]))
check(confirmations == [("subscribe", chat, 1), ("psubscribe", f"{events}.*", 2)], f"confirmations {confirmations}")
check(pub.pubsub_numsub(chat) == [(chat, 1)], f"PUBSUB NUMSUB {pub.pubsub_numsub(chat)}")
check(pub.pubsub_numpat() >= 1, "PUBSUB NUMPAT")
check(chat in pub.pubsub_channels(f"chat:{run}*"), "PUBSUB CHANNELS")
for i in range(100):
    check(pub.publish(chat, f"m{i}") == 1, "PUBLISH counts the subscriber on the other node")
    check(pub.publish(f"{events}.login", f"e{i}") == 1, "PUBLISH counts the pattern subscriber")
got = []
deadline = time.time() + 20
while len(got) < 200 and time.time() < deadline:
    m = p.get_message(timeout=1)
    if m:
        got.append(m)
chats = [m["data"] for m in got if m["type"] == "message"]
pats = [(m["pattern"], m["channel"], m["data"]) for m in got if m["type"] == "pmessage"]
check(chats == [f"m{i}" for i in range(100)], "every chat message once, in order")
check(pats == [(f"{events}.*", f"{events}.login", f"e{i}") for i in range(100)], "every pmessage once, in order")
p.close()

# 2. A handler run in a thread, as applications wire a callback.
received = []
done = threading.Event()


def on_news(message):
    received.append(message["data"])
    if len(received) == 50:
        done.set()


p2 = sub.pubsub(ignore_subscribe_messages=True)
p2.subscribe(**{f"news:{run}": on_news})
worker = p2.run_in_thread(sleep_time=0.01, daemon=True)
deadline = time.time() + 10
while pub.pubsub_numsub(f"news:{run}") != [(f"news:{run}", 1)] and time.time() < deadline:
    time.sleep(0.05)  # polling the subscription, bounded by the deadline
for i in range(50):
    pub.publish(f"news:{run}", str(i))
check(done.wait(20), f"the handler got {len(received)} of 50")
check(received == [str(i) for i in range(50)], "the handler's messages in order")
worker.stop()
p2.close()

# 3. RESP3: a connection that subscribes and runs commands, messages as pushes.
r3 = client(nodes[-1], protocol=3)
p3 = r3.pubsub()
p3.subscribe(f"r3:{run}")
m = p3.get_message(timeout=5)
check(m is not None and m["type"] == "subscribe", f"RESP3 confirmation {m}")
check(pub.publish(f"r3:{run}", "pushed") == 1, "PUBLISH to a RESP3 subscriber")
m = None
deadline = time.time() + 10
while m is None and time.time() < deadline:
    m = p3.get_message(timeout=1)
check(m is not None and (m["type"], m["data"]) == ("message", "pushed"), f"RESP3 message {m}")
p3.close()

# 4. Closed subscribers are gone from the counts.
deadline = time.time() + 10
while pub.pubsub_numsub(chat, f"news:{run}") != [(chat, 0), (f"news:{run}", 0)] and time.time() < deadline:
    time.sleep(0.05)  # polling the unsubscription, bounded by the deadline
check(pub.pubsub_numsub(chat, f"news:{run}") == [(chat, 0), (f"news:{run}", 0)], "unsubscribed on close")
check(pub.publish(chat, "nobody") == 0, "PUBLISH with no subscriber")

print("redis-py pubsub: OK")
