// BullMQ (npm's bullmq over ioredis) against kura: a queue of 1,000 trivial jobs under the
// hash-tagged prefix '{bull}' (BullMQ's rule for Redis Cluster), some delayed, some failing
// their first attempts and retried with `attempts` and a fixed `backoff`, run by four Workers
// (each with its own connections), and a QueueEvents listener (XREAD BLOCK on the queue's
// events stream). Checks: every job's successful attempt ran exactly once and no attempt ran
// twice, delayed jobs did not start before their delay, a retry did not start before its
// backoff after the failure, every Worker 'completed' once per job, QueueEvents saw every
// completion (with its return value) exactly once, the queue's counts end at 1,000 completed
// and nothing else, and BullMQ's INFO check (redis_version, maxmemory_policy) printed no
// warning.
//
// Usage: node bullmq.js HOST:PORT [HOST:PORT ...] [--cluster]
// The Queue (adds, counts) uses the first node; Worker i uses node i mod the number of nodes
// (with --cluster and four nodes, one Worker per node); QueueEvents uses the last node.
// Exits non-zero on the first failed check.

const Redis = require("ioredis");
const { Queue, Worker, QueueEvents } = require("bullmq");

const nodes = process.argv
  .slice(2)
  .filter((a) => !a.startsWith("--"))
  .map((a) => ({ host: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)) }));
const run = Math.random().toString(16).slice(2, 10);
const JOBS = 1000;
const WORKERS = 4;
const CONCURRENCY = 4; // jobs in flight per Worker
const BACKOFF_MS = 200;
const PREFIX = "{bull}";

// BullMQ reports its INFO check (a too old redis_version, a maxmemory_policy other than
// noeviction) with console.warn: keep what it says, to check and to print.
const warnings = [];
const warn = console.warn.bind(console);
console.warn = (...args) => {
  warnings.push(args.join(" "));
  warn(...args);
};

// On a failed check about jobs: their entries in the queue's events stream, to tell what
// happened to them (set once the queue exists).
let history = async () => "";

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    const ids = [...new Set(String(what).match(/job-\d+/g) || [])].slice(0, 3);
    history(ids)
      .then((h) => console.error(h))
      .finally(() => process.exit(1));
    throw new Error("check failed"); // stops the caller; the process exits once the history is printed
  }
}

async function waitFor(what, cond, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    check(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20)); // poll interval, bounded by the deadline
  }
}

// Job n: delayed by 100 + (n % 7) * 50 ms when n % 5 == 0; fails its first (n % 3) + 1 attempts
// when n % 10 == 3 (of 4 attempts allowed, a fixed backoff between them).
const delayOf = (n) => (n % 5 === 0 ? 100 + (n % 7) * 50 : 0);
const failuresOf = (n) => (n % 10 === 3 ? (n % 3) + 1 : 0);

async function main() {
  const connection = (i) => ({ ...nodes[i % nodes.length], maxRetriesPerRequest: null });
  const name = `jobs-${run}`;
  const started = Date.now();

  // What the processors saw, per job id: every attempt's start and end.
  const attempts = new Map(); // id -> [{attempt, start, end, ok, worker}]
  const workerCompleted = new Map(); // id -> count of Worker 'completed' events
  const eventsCompleted = new Map(); // id -> [returnvalue...] from QueueEvents
  const workerErrors = [];

  // QueueEvents first: it reads the events stream from its start (the queue is new), so it
  // misses nothing however late its first XREAD BLOCK arrives.
  const events = new QueueEvents(name, { connection: connection(nodes.length - 1), prefix: PREFIX, lastEventId: "0-0" });
  events.on("completed", ({ jobId, returnvalue }) => {
    if (!eventsCompleted.has(jobId)) eventsCompleted.set(jobId, []);
    eventsCompleted.get(jobId).push(returnvalue);
  });
  events.on("error", (e) => workerErrors.push(`QueueEvents: ${e}`));
  await events.waitUntilReady();

  history = async (ids) => {
    const r = new Redis({ ...nodes[0], maxRetriesPerRequest: 1 });
    const entries = await r.xrange(`${PREFIX}:${name}:events`, "-", "+");
    r.disconnect();
    return ids
      .map((id) => {
        const mine = entries.filter(([, f]) => f[f.indexOf("jobId") + 1] === id && f.indexOf("jobId") >= 0);
        return `events of ${id}:\n` + mine.map(([eid, f]) => `  ${eid} ${f.join(" ").slice(0, 160)}`).join("\n");
      })
      .join("\n");
  };
  const queue = new Queue(name, { connection: connection(0), prefix: PREFIX, streams: { events: { maxLen: 100000 } } });
  await queue.waitUntilReady();

  const workers = [];
  for (let w = 0; w < WORKERS; w++) {
    const worker = new Worker(
      name,
      async (job) => {
        const n = job.data.n;
        const rec = { attempt: job.attemptsMade, start: Date.now(), end: 0, ok: false, worker: w };
        if (!attempts.has(job.id)) attempts.set(job.id, []);
        attempts.get(job.id).push(rec);
        rec.end = Date.now();
        if (job.attemptsMade < failuresOf(n)) throw new Error(`job ${n} fails attempt ${job.attemptsMade + 1}`);
        rec.ok = true;
        return n * 2;
      },
      { connection: connection(w), prefix: PREFIX, concurrency: CONCURRENCY },
    );
    worker.on("completed", (job) => workerCompleted.set(job.id, (workerCompleted.get(job.id) || 0) + 1));
    worker.on("error", (e) => workerErrors.push(`worker ${w}: ${e}`));
    workers.push(worker);
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));

  const specs = [];
  for (let n = 0; n < JOBS; n++) {
    const opts = { jobId: `job-${n}`, attempts: 4, backoff: { type: "fixed", delay: BACKOFF_MS } };
    if (delayOf(n)) opts.delay = delayOf(n);
    specs.push({ name: "double", data: { n }, opts });
  }
  // In batches, as an application adding jobs as they come would (one MULTI of adds each).
  const added = new Map(); // id -> Job
  for (let i = 0; i < JOBS; i += 100) {
    for (const job of await queue.addBulk(specs.slice(i, i + 100))) added.set(job.id, job);
  }
  check(added.size === JOBS, `addBulk returned ${added.size} distinct jobs of ${JOBS}`);

  await waitFor(
    `QueueEvents to see ${JOBS} completions (seen ${eventsCompleted.size})`,
    () => eventsCompleted.size >= JOBS,
    90000,
  );
  // Late duplicates (an attempt run twice, a second completion) would show up right after.
  await waitFor(`every Worker 'completed' event`, () => workerCompleted.size >= JOBS, 10000);
  const counts = await queue.getJobCounts("completed", "failed", "delayed", "wait", "active", "prioritized", "waiting-children");
  const elapsed = Date.now() - started;

  check(workerErrors.length === 0, `worker/QueueEvents errors: ${workerErrors.slice(0, 5).join("; ")}`);
  let retried = 0;
  let delayed = 0;
  for (let n = 0; n < JOBS; n++) {
    const id = `job-${n}`;
    const job = added.get(id);
    check(job, `job ${id} was added`);
    const runs = attempts.get(id) || [];
    const ok = runs.filter((r) => r.ok);
    check(ok.length === 1, `${id}: ${ok.length} successful attempts (want exactly 1): ${JSON.stringify(runs)}`);
    check(
      runs.length === failuresOf(n) + 1,
      `${id}: ${runs.length} attempts run (want ${failuresOf(n) + 1}): ${JSON.stringify(runs)}`,
    );
    runs.forEach((r, i) => check(r.attempt === i, `${id}: attempt ${i} saw attemptsMade ${r.attempt}`));
    if (delayOf(n)) {
      delayed++;
      check(
        runs[0].start >= job.timestamp + delayOf(n),
        `${id}: delayed ${delayOf(n)} ms but started ${runs[0].start - job.timestamp} ms after it was added`,
      );
    }
    for (let i = 1; i < runs.length; i++) {
      retried++;
      check(
        runs[i].start >= runs[i - 1].end + BACKOFF_MS,
        `${id}: attempt ${i + 1} started ${runs[i].start - runs[i - 1].end} ms after attempt ${i} failed (backoff ${BACKOFF_MS} ms)`,
      );
    }
    check(workerCompleted.get(id) === 1, `${id}: ${workerCompleted.get(id) || 0} Worker 'completed' events`);
    const seen = eventsCompleted.get(id) || [];
    check(seen.length === 1, `${id}: QueueEvents saw ${seen.length} completions`);
    check(Number(seen[0]) === n * 2, `${id}: QueueEvents return value ${JSON.stringify(seen[0])}, want ${n * 2}`);
  }
  check(eventsCompleted.size === JOBS, `QueueEvents saw completions of ${eventsCompleted.size} jobs, not ${JOBS}`);
  const want = { completed: JOBS, failed: 0, delayed: 0, wait: 0, active: 0, prioritized: 0, "waiting-children": 0 };
  check(JSON.stringify(counts) === JSON.stringify(want), `job counts ${JSON.stringify(counts)}, want ${JSON.stringify(want)}`);
  const sample = await queue.getJob("job-13");
  check(sample && sample.returnvalue === 26 && sample.attemptsMade === failuresOf(13) + 1, `job-13 read back: ${JSON.stringify(sample && sample.asJSON())}`);

  const version = `${queue.backend.redisVersion} (${queue.backend.databaseType})`;
  check(warnings.length === 0, `BullMQ warned: ${warnings.join(" | ")}`);

  await Promise.all(workers.map((w) => w.close()));
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  console.log(
    `bullmq: ${JOBS} jobs (${delayed} delayed, ${retried} retries after ${BACKOFF_MS} ms backoff) by ${WORKERS} workers ` +
      `on ${new Set(workers.map((_, w) => w % nodes.length)).size} node(s) in ${elapsed} ms; ` +
      `INFO: redis_version ${version}, no warning from BullMQ's version/maxmemory-policy check`,
  );
  process.exit(0);
}

main().catch((e) => {
  if (e && e.message === "check failed") return; // check() prints and exits
  console.error(`FAILED: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
