//! The nemesis suite (Jepsen-style, "Call me maybe: Riak"): five real nodes, N=3 R=2 W=2,
//! clients writing through random nodes, and a seeded schedule of faults: partitions on the
//! peer port, heals, `kill -9` and restarts, one wiped disk (any node: every node has seeds),
//! a node joining and one leaving.
//! Then every fault is healed and the checker asks:
//! - cart: DGET -> union -> DPUT of unique items: every acknowledged add is in the final value;
//! - register: plain SET of unique values: the final value is one that was written, and every
//!   owner holds the same sibling set (`KURA LOCAL`);
//! - counter: INCRBY of positive amounts through random nodes: every node reads one value v
//!   with acknowledged <= v <= attempted (an increment that failed may have been applied, one
//!   that was acknowledged must be there, none is applied twice);
//! - set: SADD of unique members through random nodes: every acknowledged member is in the
//!   set every node reads;
//! - counter re-created (issue 20, item 2): per key, INCRBYs of a bit each, then `SET k abc
//!   GET` (its answer tells which increments it observed) and `DEL k`, then INCRBYs again:
//!   no increment the SET observed ever counts again, and every acknowledged increment sent
//!   after the last SET/DEL counts;
//! - flush (issue 20, item 3; only with `KURA_NEMESIS_FLUSH=1`: see docs/testing.md):
//!   in database 1, INCRBYs of a bit each, SADDs and HSETs of unique members and fields, and
//!   FLUSHDBs (a fault of the schedule, with one node cut off): nothing acknowledged before the
//!   flush began is there afterwards, and everything acknowledged that began after it ended is;
//! - rate limiter (issue 20, item 7): windows of `SET k 100 PX 400` and INCRs on one key, the
//!   next window after the last one expired: an INCR never answers more than 100 plus the
//!   window's own increments (an expired count never counts again). A window whose SET failed
//!   or one of whose INCRs did not see its SET (under a sloppy quorum it may start from
//!   nothing, a counter with no expiry) leaves the key out of the check from then on;
//! - queue (issue 21): producers RPUSH unique jobs, consumers LPOP, through random nodes;
//!   after the heal a final drain through one node: every acknowledged job was popped at
//!   least once (but for at most one per LPOP that failed: it may have taken one unseen), none
//!   was popped that was never pushed; jobs popped more than once (both sides of a partition
//!   popped them) are counted and printed;
//! - convergence: how long after the last heal the owners agreed (printed; bounded).
//!
//! `KURA_NEMESIS_SECS` (default 40) sets how long faults run, `KURA_NEMESIS_SEED` replays a
//! schedule. The seed and the fault history are printed; a failure prints the lost items and
//! the history around them.

use crate::harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{local, parse_dget, query as q, text, wait_until, Cluster, Cut, Node};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Value;

const FLAGS: [&str; 10] = ["--n", "3", "--r", "2", "--w", "2", "--aae-interval", "5", "--reap-grace-ms", "2000"];
const CARTS: usize = 3;
const REGISTERS: usize = 4;
const COUNTERS: usize = 2;
const SETS: usize = 2;

/// What happened when, since the start: faults and the clients' acknowledgements.
#[derive(Default)]
struct History {
    events: Vec<(Duration, String)>,
}

/// An operation in database 1: key, what it added, when it began and when it was acknowledged.
type FlushOp = (String, String, Duration, Option<Duration>);

struct Run {
    start: Instant,
    history: Mutex<History>,
    /// Cart items acknowledged, by cart key.
    cart_acked: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Register values written (acknowledged or not) and acknowledged, by key.
    reg_written: Mutex<BTreeMap<String, BTreeSet<String>>>,
    reg_acked: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Counter increments sent (acknowledged or not) and acknowledged, summed by key.
    counter_attempted: Mutex<BTreeMap<String, i64>>,
    counter_acked: Mutex<BTreeMap<String, i64>>,
    /// Set members acknowledged, by key.
    set_acked: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Re-created counters, by key.
    recreated: Mutex<BTreeMap<String, Recreated>>,
    /// Operations in database 1 (key, what it added, began, acknowledged), and the flushes of
    /// it (began, acknowledged).
    flush_ops: Mutex<Vec<FlushOp>>,
    flushes: Mutex<Vec<(Duration, Option<Duration>)>>,
    /// Rate-limiter windows checked, and what went wrong in them.
    windows: Mutex<usize>,
    window_errors: Mutex<Vec<String>>,
    /// Jobs pushed (sent, acknowledged), popped (every one an LPOP returned), and LPOPs that
    /// failed.
    jobs_tried: Mutex<BTreeSet<String>>,
    jobs_acked: Mutex<BTreeSet<String>>,
    jobs_popped: Mutex<Vec<String>>,
    pops_failed: Mutex<usize>,
    stop: AtomicBool,
}

impl Run {
    /// A fault (printed as it happens) or an acknowledgement (kept for a failure's report).
    fn log(&self, what: String) {
        let at = self.start.elapsed();
        if !what.starts_with("ack ") {
            eprintln!("[nemesis {:>7.3}s] {what}", at.as_secs_f64());
        }
        self.history.lock().unwrap().events.push((at, what));
    }

    /// Every event of `key` (logged as `... {key} via ...`) and the faults from its first to
    /// its last.
    fn of_key(&self, key: &str) -> String {
        let h = self.history.lock().unwrap();
        let mine = format!(" {key} via ");
        let times: Vec<Duration> = h.events.iter().filter(|(_, e)| e.contains(&mine)).map(|(t, _)| *t).collect();
        let (Some(&first), Some(&last)) = (times.first(), times.last()) else { return String::new() };
        h.events
            .iter()
            .filter(|(t, e)| e.contains(&mine) || (!e.starts_with("ack ") && *t >= first && *t <= last))
            .map(|(t, e)| format!("  {:>7.3}s {e}\n", t.as_secs_f64()))
            .collect()
    }

    /// The history within `around` of the moment `what` was logged.
    fn around(&self, what: &str, around: Duration) -> String {
        let h = self.history.lock().unwrap();
        let Some(&(at, _)) = h.events.iter().find(|(_, e)| e.ends_with(what)) else { return String::new() };
        h.events
            .iter()
            .filter(|(t, _)| *t + around >= at && *t <= at + around)
            .map(|(t, e)| format!("  {:>7.3}s {e}\n", t.as_secs_f64()))
            .collect()
    }
}

/// What a re-created counter's client knows: the bits of the increments a `SET k abc GET`
/// answered (it observed them: they never count again), and those acknowledged since the last
/// SET or DEL was sent (they must count).
#[derive(Default)]
struct Recreated {
    observed: BTreeSet<u32>,
    since_reset: BTreeSet<u32>,
    sent: BTreeSet<u32>,
}

/// The bits of a counter's value (an increment of one bit each: their sum is their union).
fn bits(v: i64) -> BTreeSet<u32> {
    (0..63).filter(|b| v & (1i64 << b) != 0).collect()
}

/// A client of counters it re-creates: on its own key (a new one every ten rounds, so the bits
/// last), four INCRBYs of a new bit each, `SET k abc GET`, `DEL k`.
fn recreate_client(run: &Run, clients: &[redis::Client], worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut round = 0u32;
    while !run.stop.load(Ordering::Acquire) {
        let key = format!("recreate-{worker}-{}", round / 10);
        let bit0 = (round % 10) * 5;
        round += 1;
        let (via, mut con) = loop {
            let via = rng.gen_range(0..clients.len());
            if let Ok(con) = clients[via].get_connection_with_timeout(Duration::from_secs(2)) {
                break (via, con);
            }
        };
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        for bit in bit0..bit0 + 4 {
            run.recreated.lock().unwrap().entry(key.clone()).or_default().sent.insert(bit);
            let done = redis::cmd("INCRBY").arg(&key).arg(1i64 << bit).query::<i64>(&mut con);
            run.log(format!("ack recreate {key} via node {via}: INCRBY bit {bit}: {done:?}"));
            if done.is_ok() {
                run.recreated.lock().unwrap().entry(key.clone()).or_default().since_reset.insert(bit);
            }
        }
        if run.stop.load(Ordering::Acquire) {
            break; // the key ends as a counter
        }
        run.recreated.lock().unwrap().entry(key.clone()).or_default().since_reset.clear();
        let old = redis::cmd("SET").arg(&key).arg("abc").arg("GET").query::<Option<String>>(&mut con);
        run.log(format!("ack recreate {key} via node {via}: SET abc GET: {old:?}"));
        if let Ok(Some(old)) = old {
            if let Ok(v) = old.parse::<i64>() {
                run.recreated.lock().unwrap().entry(key.clone()).or_default().observed.extend(bits(v));
            }
        }
        let done = redis::cmd("DEL").arg(&key).query::<i64>(&mut con);
        run.log(format!("ack recreate {key} via node {via}: DEL: {done:?}"));
    }
}

/// A client of database 1: INCRBYs of a new bit each, SADDs of unique members and HSETs of
/// unique fields, through random nodes.
fn flushed_client(run: &Run, clients: &[redis::Client], worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut i = 0u32;
    while !run.stop.load(Ordering::Acquire) {
        let client = &clients[rng.gen_range(0..clients.len())];
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else { continue };
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        let (key, what, cmd) = match i % 3 {
            // 60 bits of a counter per key.
            0 => {
                let bit = (i / 3) % 60;
                let mut cmd = redis::cmd("INCRBY");
                let key = format!("fc-{worker}-{}", i / 180);
                cmd.arg(&key).arg(1i64 << bit);
                (key, bit.to_string(), cmd)
            }
            1 => {
                let m = format!("m{worker}-{i}");
                let mut cmd = redis::cmd("SADD");
                cmd.arg("fs").arg(&m);
                ("fs".to_owned(), m, cmd)
            }
            _ => {
                let f = format!("f{worker}-{i}");
                let mut cmd = redis::cmd("HSET");
                cmd.arg("fh").arg(&f).arg("v");
                ("fh".to_owned(), f, cmd)
            }
        };
        i += 1;
        let began = run.start.elapsed();
        let acked = cmd.query::<Value>(&mut con).is_ok().then(|| run.start.elapsed());
        run.flush_ops.lock().unwrap().push((key, what, began, acked));
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..20))); // pacing, not waiting
    }
}

/// A rate limiter's client: on its own key, windows of `SET k 100 PX 400` and three INCRs
/// through random nodes; the next window starts once the last one's expiry has passed.
fn limiter_client(run: &Run, clients: &[redis::Client], worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let key = format!("limiter-{worker}");
    let mut trusted = true;
    while !run.stop.load(Ordering::Acquire) {
        let client = &clients[rng.gen_range(0..clients.len())];
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else { continue };
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        let started = Instant::now();
        let set = redis::cmd("SET").arg(&key).arg(100).arg("PX").arg(400).query::<Value>(&mut con);
        trusted &= set == Ok(Value::Okay);
        for n in 1..=3i64 {
            let Ok(v) = redis::cmd("INCR").arg(&key).query::<i64>(&mut con) else {
                trusted = false; // it may have counted
                continue;
            };
            if trusted && v > 100 + n {
                run.window_errors.lock().unwrap().push(format!(
                    "{key}: INCR {n} of a window answered {v}: an expired count came back; history:\n{}",
                    run.around(&format!("ack limiter {key}"), Duration::from_secs(3))
                ));
            }
            // Anything but 100 + n: this INCR did not see the window's SET (or saw more than
            // it): the key's counts are not known from here on.
            trusted &= v == 100 + n;
            run.log(format!("ack limiter {key} {v}"));
        }
        *run.windows.lock().unwrap() += 1;
        // The next window after this one's expiry (400 ms after the SET was sent, at most).
        if let Some(left) = Duration::from_millis(450).checked_sub(started.elapsed()) {
            std::thread::sleep(left); // the window's expiry: the workload's rhythm, not a wait for the system
        }
    }
}

fn items_of(values: &[String]) -> BTreeSet<String> {
    values.iter().flat_map(|v| v.split(',')).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A cart client: read a cart through a random node, add a unique item, write it back with the
/// context it read.
fn cart_client(run: &Run, clients: &[redis::Client], worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0;
    while !run.stop.load(Ordering::Acquire) {
        // Every ten seconds the clients move on to new carts (a cart's value stays small).
        let key = format!("cart-{}-{}", run.start.elapsed().as_secs() / 10, rng.gen_range(0..CARTS));
        let client = &clients[rng.gen_range(0..clients.len())];
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else { continue };
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(v) = redis::cmd("DGET").arg(&key).query::<Value>(&mut con) else { continue };
        let (ctx, values) = parse_dget(&v);
        let item = format!("c{worker}-{n}");
        n += 1;
        let mut all = items_of(&values);
        all.insert(item.clone());
        let joined: Vec<String> = all.into_iter().collect();
        let put: redis::RedisResult<String> =
            redis::cmd("DPUT").arg(&key).arg(&ctx).arg(joined.join(",")).query(&mut con);
        if put.is_ok() {
            run.cart_acked.lock().unwrap().entry(key.clone()).or_default().insert(item.clone());
            run.log(format!("ack cart {key} +{item}"));
        }
    }
}

/// A register client: SET a unique value through a random node.
fn register_client(run: &Run, clients: &[redis::Client], worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0;
    while !run.stop.load(Ordering::Acquire) {
        let key = format!("reg-{}", rng.gen_range(0..REGISTERS));
        let value = format!("r{worker}-{n}");
        n += 1;
        let client = &clients[rng.gen_range(0..clients.len())];
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else { continue };
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        run.reg_written.lock().unwrap().entry(key.clone()).or_default().insert(value.clone());
        if redis::cmd("SET").arg(&key).arg(&value).query::<Value>(&mut con) == Ok(Value::Okay) {
            run.reg_acked.lock().unwrap().entry(key.clone()).or_default().insert(value.clone());
            run.log(format!("ack reg {key}={value}"));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..20))); // pacing, not waiting
    }
}

/// A counter client: INCRBY a positive amount through a random node.
fn counter_client(run: &Run, clients: &[redis::Client], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !run.stop.load(Ordering::Acquire) {
        let key = format!("counter-{}", rng.gen_range(0..COUNTERS));
        let by: i64 = rng.gen_range(1..1000);
        let client = &clients[rng.gen_range(0..clients.len())];
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else { continue };
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        *run.counter_attempted.lock().unwrap().entry(key.clone()).or_default() += by;
        if redis::cmd("INCRBY").arg(&key).arg(by).query::<i64>(&mut con).is_ok() {
            *run.counter_acked.lock().unwrap().entry(key.clone()).or_default() += by;
            run.log(format!("ack counter {key}+{by}"));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..20))); // pacing, not waiting
    }
}

/// A set client: SADD a unique member through a random node.
fn set_client(run: &Run, clients: &[redis::Client], worker: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut i = 0u64;
    while !run.stop.load(Ordering::Acquire) {
        let key = format!("set-{}", rng.gen_range(0..SETS));
        let member = format!("w{worker}-{i}");
        i += 1;
        let client = &clients[rng.gen_range(0..clients.len())];
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else { continue };
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        if redis::cmd("SADD").arg(&key).arg(&member).query::<i64>(&mut con).is_ok() {
            run.set_acked.lock().unwrap().entry(key.clone()).or_default().insert(member.clone());
            run.log(format!("ack set {key}+{member}"));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..20))); // pacing, not waiting
    }
}

/// A queue producer (`consumer` false: RPUSH a unique job) or consumer (LPOP one) through a
/// random node.
fn queue_client(run: &Run, clients: &[redis::Client], worker: u64, consumer: bool, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut i = 0u64;
    while !run.stop.load(Ordering::Acquire) {
        let n = rng.gen_range(0..clients.len());
        let Ok(mut con) = clients[n].get_connection_with_timeout(Duration::from_secs(2)) else { continue };
        let _ = con.set_read_timeout(Some(Duration::from_secs(10)));
        if consumer {
            match redis::cmd("LPOP").arg("queue").query::<Option<String>>(&mut con) {
                Ok(Some(job)) => {
                    run.log(format!("ack pop queue via node {n}: {job}"));
                    run.jobs_popped.lock().unwrap().push(job);
                }
                Ok(None) => {}
                Err(e) => {
                    run.log(format!("ack? pop queue via node {n} failed: {e}"));
                    *run.pops_failed.lock().unwrap() += 1;
                }
            }
        } else {
            let job = format!("j{worker}-{i}");
            i += 1;
            run.jobs_tried.lock().unwrap().insert(job.clone());
            if redis::cmd("RPUSH").arg("queue").arg(&job).query::<i64>(&mut con).is_ok() {
                run.log(format!("ack push queue via node {n}: {job}"));
                run.jobs_acked.lock().unwrap().insert(job);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..20))); // pacing, not waiting
    }
}

/// Nodes that are members now (valid or joining), as the node that lists the most of them sees
/// it. Not node 0 alone: just back with a wiped disk, it lists none until it has rejoined (a
/// seed that wiped node 0 first drew a fault from no node at all). Waits while no node lists
/// any (every node restarting).
fn members_now(c: &Cluster) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = c.nodes.iter().map(|n| members_seen_by(c, n)).max_by_key(Vec::len).unwrap_or_default();
        if !seen.is_empty() {
            return seen;
        }
        assert!(Instant::now() < deadline, "no node lists a member for 60 s");
        std::thread::sleep(Duration::from_millis(50)); // polling for the condition
    }
}

/// The nodes `by` lists as valid or joining members.
fn members_seen_by(c: &Cluster, by: &Node) -> Vec<usize> {
    let listed = harness::members(by);
    (0..c.nodes.len())
        .filter(|&i| {
            let a = c.nodes[i].cluster_addr().to_string();
            listed.iter().any(|m| m["addr"] == a && (m["status"] == "valid" || m["status"] == "joining"))
        })
        .collect()
}

#[test]
fn nemesis_loses_no_acknowledged_write() {
    let _heavy = harness::heavy();
    let seed: u64 = std::env::var("KURA_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let secs: u64 = std::env::var("KURA_NEMESIS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    eprintln!("nemesis: seed {seed} (KURA_NEMESIS_SEED={seed} replays this schedule), {secs} s of faults");
    let tmp = tempfile::tempdir().expect("a temp dir");
    let mut c = Cluster::start_seeded(5, &FLAGS, tmp.path());
    let run = Arc::new(Run {
        start: Instant::now(),
        history: Mutex::new(History::default()),
        cart_acked: Mutex::new(BTreeMap::new()),
        reg_written: Mutex::new(BTreeMap::new()),
        reg_acked: Mutex::new(BTreeMap::new()),
        counter_attempted: Mutex::new(BTreeMap::new()),
        counter_acked: Mutex::new(BTreeMap::new()),
        set_acked: Mutex::new(BTreeMap::new()),
        recreated: Mutex::new(BTreeMap::new()),
        flush_ops: Mutex::new(Vec::new()),
        flushes: Mutex::new(Vec::new()),
        windows: Mutex::new(0),
        window_errors: Mutex::new(Vec::new()),
        jobs_tried: Mutex::new(BTreeSet::new()),
        jobs_acked: Mutex::new(BTreeSet::new()),
        jobs_popped: Mutex::new(Vec::new()),
        pops_failed: Mutex::new(0),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<redis::Client> = c.nodes.iter().map(|n| n.client("")).collect();
    let mut workers = Vec::new();
    for w in 0..2 {
        let (run, clients) = (run.clone(), clients.clone());
        workers.push(std::thread::spawn(move || cart_client(&run, &clients, w, seed ^ (w as u64 + 1))));
    }
    for w in 0..2 {
        let (run, clients) = (run.clone(), clients.clone());
        workers.push(std::thread::spawn(move || register_client(&run, &clients, w, seed ^ (w as u64 + 100))));
    }
    for w in 0..2u64 {
        let (run, clients) = (run.clone(), clients.clone());
        workers.push(std::thread::spawn(move || counter_client(&run, &clients, seed ^ (w + 200))));
    }
    for w in 0..2u64 {
        let (run, clients) = (run.clone(), clients.clone());
        workers.push(std::thread::spawn(move || set_client(&run, &clients, w, seed ^ (w + 300))));
    }
    for w in 0..2 {
        let (run, clients) = (run.clone(), clients.clone());
        workers.push(std::thread::spawn(move || recreate_client(&run, &clients, w, seed ^ (w as u64 + 400))));
    }
    for w in 0..2 {
        let (run, clients) = (run.clone(), clients.clone());
        workers.push(std::thread::spawn(move || limiter_client(&run, &clients, w, seed ^ (w as u64 + 600))));
    }
    for w in 0..4u64 {
        let (run, clients) = (run.clone(), clients.clone());
        workers.push(std::thread::spawn(move || queue_client(&run, &clients, w, w >= 2, seed ^ (w + 700))));
    }
    let flushing = std::env::var("KURA_NEMESIS_FLUSH").is_ok_and(|v| v == "1");
    let db1: Vec<redis::Client> = c.nodes.iter().map(|n| n.client("/1")).collect();
    for w in (0..2).filter(|_| flushing) {
        let (run, clients) = (run.clone(), db1.clone());
        workers.push(std::thread::spawn(move || flushed_client(&run, &clients, w, seed ^ (w as u64 + 500))));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut wiped, mut joined, mut left) = (false, None::<usize>, false);
    let end = Instant::now() + Duration::from_secs(secs);
    // Every kind of fault comes once first, in a seeded order; then they are drawn at random.
    let mut first: Vec<u32> = if flushing { vec![0, 4, 7, 8, 9, 10] } else { vec![0, 4, 7, 8, 9] };
    for i in (1..first.len()).rev() {
        first.swap(i, rng.gen_range(0..=i));
    }
    if let (Some(j), Some(l)) = (first.iter().position(|&x| x == 8), first.iter().position(|&x| x == 9)) {
        if l < j {
            first.swap(j, l); // the leave comes after the join
        }
    }
    first.reverse(); // popped from the back
    while Instant::now() < end {
        let hold = Duration::from_millis(rng.gen_range(1000..4000));
        let live = members_now(&c);
        let kind = first.pop().unwrap_or_else(|| rng.gen_range(0..if flushing { 11 } else { 10 }));
        match kind {
            0..=3 => {
                // A partition: one or two members cut off from the rest, both ways.
                let mut side = live.clone();
                let k = rng.gen_range(1..=2);
                let mut minority = Vec::new();
                for _ in 0..k {
                    minority.push(side.remove(rng.gen_range(0..side.len())));
                }
                run.log(format!("partition {minority:?} | {side:?} for {hold:?}"));
                let left_side: Vec<&Node> = minority.iter().map(|&i| &c.nodes[i]).collect();
                let right_side: Vec<&Node> = side.iter().map(|&i| &c.nodes[i]).collect();
                let cuts = Cut::sides(&left_side, &right_side);
                std::thread::sleep(hold); // the fault lasts this long
                drop(cuts);
                run.log("heal".into());
                *counts.entry("partition").or_default() += 1;
            }
            4..=6 => {
                let i = live[rng.gen_range(0..live.len())];
                run.log(format!("kill -9 node {i} for {hold:?}"));
                c.nodes[i].kill9();
                std::thread::sleep(hold); // the node stays down this long
                c.nodes[i].spawn();
                run.log(format!("restart node {i}"));
                *counts.entry("kill").or_default() += 1;
            }
            7 if !wiped => {
                // One disk lost per run (two lost disks can lose a write acknowledged by W=2).
                // Every node has seeds, so the founder may be the one: it rejoins.
                let i = live[rng.gen_range(0..live.len())];
                run.log(format!("wipe the disk of node {i}"));
                c.nodes[i].kill9();
                std::fs::remove_dir_all(&c.nodes[i].dir).expect("wiping a data dir");
                c.nodes[i].spawn();
                run.log(format!("node {i} back with an empty disk"));
                wiped = true;
                *counts.entry("wipe").or_default() += 1;
            }
            8 if joined.is_none() => {
                let i = c.add(&FLAGS);
                run.log(format!("node {i} joins"));
                joined = Some(i);
                std::thread::sleep(hold); // its transfers run under the clients' load
                *counts.entry("join").or_default() += 1;
            }
            9 if joined.is_some() && !left => {
                let i = joined.expect("joined");
                run.log(format!("node {i} leaves (KURA LEAVE)"));
                let _ = q(&c.nodes[i], &["KURA", "LEAVE"]);
                left = true;
                *counts.entry("leave").or_default() += 1;
            }
            10 => {
                // FLUSHDB of database 1 through a random node, during a partition of one node.
                let i = live[rng.gen_range(0..live.len())];
                let mut side = live.clone();
                let cut_off = side.remove(rng.gen_range(0..side.len()));
                let cuts = Cut::sides(&[&c.nodes[cut_off]], &side.iter().map(|&j| &c.nodes[j]).collect::<Vec<_>>());
                let began = run.start.elapsed();
                let flushed = harness::query_db(&c.nodes[i], 1, &["FLUSHDB"]);
                let done = flushed.is_ok().then(|| run.start.elapsed());
                run.log(format!("FLUSHDB of database 1 via node {i} ({flushed:?}), node {cut_off} cut off"));
                run.flushes.lock().unwrap().push((began, done));
                std::thread::sleep(hold); // the partition lasts this long
                drop(cuts);
                run.log("heal".into());
                *counts.entry("flush").or_default() += 1;
            }
            _ => std::thread::sleep(Duration::from_millis(200)), // a quiet moment
        }
    }
    let healed = Instant::now();
    run.log("last fault healed".into());
    // Clients stop a little after the last heal.
    std::thread::sleep(Duration::from_secs(1)); // writes after the heal, too
    run.stop.store(true, Ordering::Release);
    for w in workers {
        w.join().expect("a client thread");
    }
    // Settle: one ring, no hints or transfers left, every member up.
    let members = wait_until("the members to agree on one ring", Duration::from_secs(180), || {
        let m = members_now(&c);
        let nodes: Vec<&Node> = m.iter().map(|&i| &c.nodes[i]).collect();
        harness::converged(&nodes).then_some(m)
    });
    wait_until("hints and transfers to drain", Duration::from_secs(180), || {
        c.nodes
            .iter()
            .filter(|n| harness::ping(n.addr()))
            .all(|n| {
                matches!(q(n, &["KURA", "HINTS"]), Ok(Value::Int(0)))
                    && matches!(q(n, &["KURA", "TRANSFERS"]), Ok(Value::Int(0)))
            })
            .then_some(())
    });
    let keys: Vec<String> = run
        .cart_acked
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .chain((0..REGISTERS).map(|i| format!("reg-{i}")))
        .chain(run.counter_attempted.lock().unwrap().keys().cloned())
        .chain(run.set_acked.lock().unwrap().keys().cloned())
        .chain(run.recreated.lock().unwrap().keys().cloned())
        .collect();
    // Convergence: every owner of every key holds the same sibling set.
    let agree = |k: &String| {
        let owners = harness::preflist(&c.nodes[members[0]], k);
        let sets: Vec<Vec<String>> = owners.iter().map(|a| local(c.by_cluster_addr(a), k)).collect();
        sets.windows(2).all(|w| w[0] == w[1])
    };
    for &i in &members {
        let _ = q(&c.nodes[i], &["KURA", "AAE"]);
    }
    wait_until("every owner of every key to hold the same sibling set", Duration::from_secs(180), || {
        keys.iter().all(agree).then_some(())
    });
    let converged_after = healed.elapsed();
    // The checker.
    let mut lost = Vec::new();
    for (key, acked) in run.cart_acked.lock().unwrap().iter() {
        for &i in &members {
            let v = q(&c.nodes[i], &["DGET", key]).expect("DGET after the heal");
            let have = items_of(&parse_dget(&v).1);
            for item in acked.difference(&have) {
                lost.push(format!(
                    "cart {key}: acknowledged item {item} missing via node {i}; history around it:\n{}",
                    run.around(&format!("+{item}"), Duration::from_secs(3))
                ));
            }
        }
    }
    let written = run.reg_written.lock().unwrap();
    for (key, acked) in run.reg_acked.lock().unwrap().iter() {
        for &i in &members {
            let v = text(&q(&c.nodes[i], &["GET", key]).expect("GET after the heal"));
            if !written[key].contains(&v) {
                lost.push(format!("register {key}: {v} via node {i} was never written ({} acknowledged)", acked.len()));
            }
        }
    }
    let attempted = run.counter_attempted.lock().unwrap();
    let counted = run.counter_acked.lock().unwrap();
    for (key, &tried) in attempted.iter() {
        let acked = counted.get(key).copied().unwrap_or(0);
        for &i in &members {
            let v = text(&q(&c.nodes[i], &["GET", key]).expect("GET after the heal"));
            let v: i64 = v.parse().unwrap_or(-1);
            if v < acked || v > tried {
                lost.push(format!("counter {key}: node {i} reads {v}, acknowledged {acked}, attempted {tried}"));
            }
        }
    }
    for (key, acked) in run.set_acked.lock().unwrap().iter() {
        for &i in &members {
            let have: BTreeSet<String> = match q(&c.nodes[i], &["SMEMBERS", key]) {
                Ok(Value::Array(items)) => items.iter().map(text).collect(),
                other => panic!("SMEMBERS {key} via node {i}: {other:?}"),
            };
            for member in acked.difference(&have) {
                lost.push(format!(
                    "set {key}: acknowledged member {member} missing via node {i}; history around it:\n{}",
                    run.around(&format!("+{member}"), Duration::from_secs(3))
                ));
            }
        }
    }
    for (key, r) in run.recreated.lock().unwrap().iter() {
        let mut wrong = Vec::new();
        for &i in &members {
            let v = text(&q(&c.nodes[i], &["GET", key]).expect("GET after the heal"));
            let have = v.parse::<i64>().map(bits).unwrap_or_default();
            let back: Vec<&u32> = have.intersection(&r.observed).collect();
            let missing: Vec<&u32> = r.since_reset.difference(&have).collect();
            let never: Vec<&u32> = have.difference(&r.sent).collect();
            if !back.is_empty() || !missing.is_empty() || !never.is_empty() {
                wrong.push(format!(
                    "via node {i} reads {v}: bits a SET observed back {back:?}, acknowledged after the last \
                     reset missing {missing:?}, never sent {never:?}"
                ));
            }
        }
        if !wrong.is_empty() {
            lost.push(format!("re-created counter {key}: {}; history:\n{}", wrong.join("; "), run.of_key(key)));
        }
    }
    let flushes = run.flushes.lock().unwrap().clone();
    let flush_ops = run.flush_ops.lock().unwrap().clone();
    // Acknowledged before the last acknowledged flush began: gone. Began after the last flush
    // (acknowledged or not) ended, and acknowledged: there.
    let gone_before = flushes.iter().filter_map(|&(b, d)| d.map(|_| b)).max();
    let kept_after = flushes.iter().map(|&(b, d)| d.unwrap_or(b + Duration::from_secs(20))).max();
    let flush_keys: BTreeSet<&String> = flush_ops.iter().map(|o| &o.0).collect();
    for key in flush_keys {
        let of_key: Vec<_> = flush_ops.iter().filter(|o| &o.0 == key).collect();
        for &i in &members {
            let have: BTreeSet<String> = if key.starts_with("fc-") {
                let v = text(&harness::query_db(&c.nodes[i], 1, &["GET", key]).expect("GET after the heal"));
                v.parse::<i64>().map(bits).unwrap_or_default().iter().map(u32::to_string).collect()
            } else {
                let cmd = if key == "fs" { "SMEMBERS" } else { "HKEYS" };
                match harness::query_db(&c.nodes[i], 1, &[cmd, key]) {
                    Ok(Value::Array(items)) => items.iter().map(text).collect(),
                    other => panic!("{cmd} {key} via node {i}: {other:?}"),
                }
            };
            for op in &of_key {
                let before = gone_before.is_some_and(|b| op.3.is_some_and(|a| a < b));
                let after = kept_after.is_some_and(|a| op.2 > a) && op.3.is_some();
                if before && have.contains(&op.1) {
                    lost.push(format!("db 1 {key} via node {i}: {}, acknowledged before the flush, came back", op.1));
                }
                if after && !have.contains(&op.1) {
                    lost.push(format!("db 1 {key} via node {i}: {}, acknowledged after the flush, is missing", op.1));
                }
            }
        }
    }
    lost.extend(run.window_errors.lock().unwrap().iter().cloned());
    // The queue: drained through one node, then every acknowledged job was popped.
    let mut popped = run.jobs_popped.lock().unwrap().clone();
    loop {
        match q(&c.nodes[members[0]], &["LPOP", "queue", "1000"]) {
            Ok(Value::Array(items)) if !items.is_empty() => popped.extend(items.iter().map(text)),
            Ok(Value::Array(_) | Value::Nil) => break,
            other => panic!("the final drain: {other:?}"),
        }
    }
    let mut times: BTreeMap<&String, usize> = BTreeMap::new();
    for job in &popped {
        *times.entry(job).or_default() += 1;
    }
    let duplicates = times.values().filter(|&&n| n > 1).count();
    let pops_failed = *run.pops_failed.lock().unwrap();
    let tried = run.jobs_tried.lock().unwrap();
    let jobs_acked = run.jobs_acked.lock().unwrap();
    lost.extend(times.keys().filter(|j| !tried.contains(**j)).map(|j| format!("queue: {j} popped, never pushed")));
    let unpopped: Vec<&String> = jobs_acked.iter().filter(|j| !times.contains_key(j)).collect();
    if unpopped.len() > pops_failed {
        lost.push(format!(
            "queue: acknowledged jobs never popped: {unpopped:?} ({pops_failed} LPOPs failed); history:\n{}",
            run.of_key("queue")
        ));
    }
    let set_members: usize = run.set_acked.lock().unwrap().values().map(BTreeSet::len).sum();
    let acked_items: usize = run.cart_acked.lock().unwrap().values().map(BTreeSet::len).sum();
    let acked_regs: usize = run.reg_acked.lock().unwrap().values().map(BTreeSet::len).sum();
    eprintln!(
        "nemesis: seed {seed}, faults {counts:?}, {acked_items} cart adds, {acked_regs} register writes, \
         {set_members} set members and counters {counted:?} (attempted {attempted:?}) acknowledged, \
         {} re-created counters, {} operations in database 1 and flushes {flushes:?}, {} rate-limiter windows, \
         {} jobs acknowledged ({} popped more than once, {pops_failed} LPOPs failed, {} unpopped), \
         replicas converged {converged_after:?} after \
         the last heal, {} lost",
        run.recreated.lock().unwrap().len(),
        flush_ops.len(),
        run.windows.lock().unwrap(),
        jobs_acked.len(),
        duplicates,
        unpopped.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "seed {seed}: lost acknowledged writes:\n{}", lost.join("\n"));
    assert!(
        acked_items > 0 && acked_regs > 0 && !jobs_acked.is_empty(),
        "seed {seed}: the clients got nothing acknowledged"
    );
}
