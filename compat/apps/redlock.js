// node-redlock (npm's redlock 4, its Lua scripts through EVALSHA with an EVAL fallback) over
// ioredis, one Redis instance per Redlock: acquire, a second Redlock refused while the lock is
// held, extend, a second Redlock retrying until the holder unlocks, a stale unlock refused,
// and an unreleased lock expiring.
//
// Usage: node redlock.js HOST:PORT [HOST:PORT ...] [--cluster]
// The holder's Redlock uses the first node, the other one the second (the first if alone).
// Exits non-zero on the first failed check.

const Redis = require("ioredis");
const Redlock = require("redlock");

const nodes = process.argv
  .slice(2)
  .filter((a) => !a.startsWith("--"))
  .map((a) => ({ host: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)) }));
const run = Math.random().toString(16).slice(2, 10);

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

async function waitFor(what, cond, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    check(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10)); // poll interval, bounded by the deadline
  }
}

async function rejects(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return e;
  }
}

async function main() {
  const a = new Redis({ ...nodes[0], maxRetriesPerRequest: 1 });
  const b = new Redis({ ...nodes[1 % nodes.length], maxRetriesPerRequest: 1 });
  // Count the other side's attempts: each is one EVALSHA (or EVAL) of the lock script.
  let bAttempts = 0;
  for (const cmd of ["evalsha", "eval"]) {
    const orig = b[cmd].bind(b);
    b[cmd] = (...args) => {
      bAttempts++;
      return orig(...args);
    };
  }
  const holder = new Redlock([a], { retryCount: 0 });
  const impatient = new Redlock([b], { retryCount: 0 });
  const patient = new Redlock([b], { retryCount: 3000, retryDelay: 10, retryJitter: 5 });
  const resource = `redlock:${run}`;

  const lock = await holder.lock(resource, 2000);
  check((await a.get(resource)) === lock.value, "the lock's random value is in the key");
  const ttl = await b.pttl(resource);
  check(ttl > 0 && ttl <= 2000, `PTTL ${ttl}`);
  const refused = await rejects(impatient.lock(resource, 1000));
  check(refused instanceof Redlock.LockError, `a second Redlock is refused: ${refused}`);

  await lock.extend(5000);
  const extended = await b.pttl(resource);
  check(extended > 2000 && extended <= 5000, `extended PTTL ${extended}`);

  const before = bAttempts;
  let acquiredAt = 0;
  const waiting = patient.lock(resource, 5000).then((l) => {
    acquiredAt = Date.now();
    return l;
  });
  await waitFor("the second Redlock to try 5 times", () => bAttempts >= before + 5);
  check(acquiredAt === 0, "the second Redlock waits while the lock is held");
  const stale = lock.value;
  const unlockedAt = Date.now();
  await lock.unlock();
  const second = await waiting;
  check(acquiredAt >= unlockedAt, "acquired only after the unlock");
  check((await a.get(resource)) === second.value, "the second lock's value is in the key");
  check(second.value !== stale, "a new random value");

  // Unlocking with the first holder's value (a lock that someone else now holds) fails.
  const staleUnlock = await rejects(holder.unlock({ resource, value: stale, expiration: 0 }));
  check(staleUnlock instanceof Redlock.LockError, `a stale unlock is refused: ${staleUnlock}`);
  check((await a.get(resource)) === second.value, "the second lock survives the stale unlock");
  await second.unlock();
  check((await a.exists(resource)) === 0, "unlocked");

  // A lock that is never unlocked expires, and then the other side takes it.
  const short = await holder.lock(`${resource}:short`, 300);
  check(short.value.length > 0, "a short lock");
  check((await rejects(impatient.lock(`${resource}:short`, 1000))) instanceof Redlock.LockError, "held");
  const taken = await patient.lock(`${resource}:short`, 1000);
  check((await b.get(`${resource}:short`)) === taken.value, "taken after the expiry");
  await taken.unlock();

  a.disconnect();
  b.disconnect();
  console.log("redlock.js: all checks passed");
}

main().catch((e) => {
  console.error("FAILED:", e);
  process.exit(1);
});
