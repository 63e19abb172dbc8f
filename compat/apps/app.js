// Everyday ioredis patterns against a kura node: a cache with timeouts and a multi() of
// MSET + EXPIRE, a session store with sliding expiry and scanStream by prefix, WATCH/MULTI
// check-and-set, pipelining, a FLUSHDB teardown of a test database, and sets, hashes and
// counters as applications keep tags, profiles and hit counts.
//
// Usage: node app.js HOST:PORT [HOST:PORT ...] [--cluster]
// Writes go through the first port, reads through every one. With --cluster the concurrent
// check-and-set is not asserted exact (EXEC is not isolated across nodes: docs/commands.md).
// Exits non-zero on the first failed check.

const Redis = require("ioredis");

const cluster = process.argv.includes("--cluster");
const nodes = process.argv
  .slice(2)
  .filter((a) => !a.startsWith("--"))
  .map((a) => ({ host: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)) }));
const run = Math.random().toString(16).slice(2, 10);
const opts = (node, db = 0) => ({ host: node.host, port: node.port, db, maxRetriesPerRequest: 1 });

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

async function main() {
  const w = new Redis(opts(nodes[0]));
  const readers = nodes.map((n) => new Redis(opts(n)));
  const all = [w, ...readers];

  check((await w.ping()) === "PONG", "PING");

  // 1. Cache: SET EX, GET, TTL; MULTI of MSET and EXPIREs.
  await w.set(`cache:${run}:page`, "<html>", "EX", 60);
  for (const r of readers) {
    check((await r.get(`cache:${run}:page`)) === "<html>", "cached value through every node");
    const ttl = await r.ttl(`cache:${run}:page`);
    check(ttl > 0 && ttl <= 60, `TTL ${ttl}`);
  }
  const tx = await w
    .multi()
    .mset(`cache:${run}:a`, "1", `cache:${run}:b`, "2")
    .expire(`cache:${run}:a`, 300)
    .expire(`cache:${run}:b`, 300)
    .exec();
  check(JSON.stringify(tx) === JSON.stringify([[null, "OK"], [null, 1], [null, 1]]), `multi replies ${JSON.stringify(tx)}`);
  for (const r of readers) {
    const got = await r.mget(`cache:${run}:a`, `cache:${run}:b`, `cache:${run}:none`);
    check(JSON.stringify(got) === JSON.stringify(["1", "2", null]), `mget ${JSON.stringify(got)}`);
  }
  check((await w.set(`cache:${run}:lock`, "me", "PX", 60000, "NX")) === "OK", "SET NX PX of a free key");
  check((await w.set(`cache:${run}:lock`, "you", "PX", 60000, "NX")) === null, "SET NX PX of a taken key");

  // 2. Sessions: sliding expiry, EXPIRE NX, scanStream by prefix, pipelined writes.
  const p = w.pipeline();
  for (let i = 0; i < 40; i++) p.set(`sess:${run}:${i}`, `user-${i}`, "EX", 30);
  const replies = await p.exec();
  check(replies.every(([err, r]) => err === null && r === "OK"), "pipelined session writes");
  check((await w.expire(`sess:${run}:1`, 120)) === 1, "sliding EXPIRE");
  check((await w.call("EXPIRE", `sess:${run}:1`, 5, "NX")) === 0, "EXPIRE NX on a key with a TTL");
  for (const r of readers) {
    const keys = await new Promise((resolve, reject) => {
      const found = [];
      r.scanStream({ match: `sess:${run}:*`, count: 9 })
        .on("data", (batch) => found.push(...batch))
        .on("end", () => resolve(found))
        .on("error", reject);
    });
    check(new Set(keys).size === 40, `scanStream found ${new Set(keys).size}`);
  }
  check((await w.getdel(`sess:${run}:2`)) === "user-2", "GETDEL");
  check((await w.exists(`sess:${run}:2`)) === 0, "logged out");

  // 3. WATCH/MULTI check-and-set, concurrent connections.
  const key = `cas:${run}`;
  await w.set(key, "0");
  let aborts = 0;
  const bump = async (times) => {
    const c = new Redis(opts(nodes[0]));
    for (let i = 0; i < times; i++) {
      for (;;) {
        await c.watch(key);
        const n = Number(await c.get(key));
        const res = await c.multi().set(key, String(n + 1)).exec();
        if (res !== null) break;
        aborts++;
      }
    }
    c.disconnect();
  };
  await Promise.all([1, 2, 3, 4, 5, 6].map(() => bump(20)));
  const final = Number(await w.get(key));
  if (cluster) check(final > 0 && final <= 120, `check-and-set counter ${final}`);
  else check(final === 120, `check-and-set exact on one node: ${final} (${aborts} aborts)`);

  // 4. Teardown of a test database.
  const t = new Redis(opts(nodes[0], 1));
  for (let i = 0; i < 15; i++) await t.set(`fixture:${i}`, "x");
  check((await t.dbsize()) === 15, "test database size");
  check((await t.flushdb()) === "OK", "FLUSHDB");
  check((await t.dbsize()) === 0, "empty after FLUSHDB");
  check((await w.get(`cache:${run}:lock`)) === "me", "database 0 untouched");

  // 5. Tags in a set, a profile in a hash with a hit counter, page views in a pipeline.
  const tags = `tags:${run}`;
  check((await w.sadd(tags, "rust", "redis", "dynamo")) === 3, "SADD new tags");
  check((await w.srem(tags, "redis")) === 1, "SREM");
  for (const r of readers) {
    const members = (await r.smembers(tags)).sort();
    check(JSON.stringify(members) === JSON.stringify(["dynamo", "rust"]), `SMEMBERS ${members}`);
    check((await r.type(tags)) === "set", "TYPE set");
  }
  const profile = `user:${run}`;
  await w.hset(profile, { name: "Ada", visits: 0 });
  const views = w.pipeline();
  for (let i = 0; i < 10; i++) views.hincrby(profile, "visits", 1).incr(`views:${run}`);
  const counted = await views.exec();
  check(counted[counted.length - 2][1] === 10 && counted[counted.length - 1][1] === 10, "pipelined HINCRBY and INCR");
  for (const r of readers) {
    const h = await r.hgetall(profile);
    check(h.name === "Ada" && h.visits === "10", `HGETALL ${JSON.stringify(h)}`);
  }
  let wrong = "";
  try {
    await w.get(profile);
  } catch (e) {
    wrong = String(e.message);
  }
  check(wrong.startsWith("WRONGTYPE"), `GET of a hash: ${wrong}`);

  t.disconnect();
  all.forEach((c) => c.disconnect());
  console.log("ioredis app: OK");
}

main().catch((e) => {
  console.error("FAILED:", e);
  process.exit(1);
});
