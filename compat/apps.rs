//! Real applications' patterns through real client libraries (compat/apps/), against one node
//! and through every node of a 4-node N=3 cluster (docs/testing.md has a table with times):
//! - redis-py and ioredis scripts of a cache, a session store, a check-and-set and a test
//!   teardown; applications' Lua scripts; redis-py's pub/sub across two nodes.
//! - RQ 3 (rqapp.py): 1,000 jobs, three `rq worker --burst` processes (each on another node in
//!   the cluster), every result read back from its results stream (XADD, XREVRANGE), a result
//!   waited for with XREAD BLOCK; workers killed with SIGKILL mid-job, and RQ's abandoned-job
//!   rule: FailedJobRegistry, or re-queued (and completed) with a retry left.
//! - Celery (celeryapp.py), Redis broker and result backend: 1,000 tasks, three workers, every
//!   AsyncResult.get; an acks_late task re-delivered after its worker is killed mid-task.
//! - Locks and rate limiters (limits.py, redlock.js): redis-py's Lock with a second client
//!   waiting until the release, node-redlock, a sliding window in MULTI and a fixed-window
//!   script hit by 8 clients at once, exactly the limit passing (the cluster's sliding window in
//!   MULTI is an ignored test: EXEC is not isolated across nodes).
//! - Socket.IO (socketio.js): two servers with @socket.io/redis-adapter and with its sharded
//!   adapter, broadcasts, rooms, fetchSockets and serverSideEmit across them.
//! - BullMQ (bullmq.js): 1,000 jobs under the '{bull}' prefix, delayed ones and retried ones
//!   (attempts, fixed backoff), four Workers and a QueueEvents listener; every job completes
//!   exactly once (the cluster case is an ignored test: scripts are not atomic across nodes).
//!
//! `.ci/run` installs the libraries (pip's redis, rq 3.0.0 and celery[redis] 5.7.0; npm's
//! packages of compat/apps/package.json, bullmq among them, into compat/apps/node_modules).

use crate::harness;

use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{Cluster, Node};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/apps");

fn run(program: &str, script: &str, nodes: &[&Node], cluster: bool) {
    run_with(program, script, nodes, cluster, &[]);
}

/// How long one app script may run before it is killed and its test fails.
const APP_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `program DIR/script ADDR... [--cluster] extra...` in compat/apps and fails the test
/// with its output unless it exits 0 within APP_TIMEOUT.
fn run_with(program: &str, script: &str, nodes: &[&Node], cluster: bool, extra: &[&str]) {
    let mut args: Vec<String> = vec![format!("{DIR}/{script}")];
    args.extend(nodes.iter().map(|n| n.addr().to_string()));
    if cluster {
        args.push("--cluster".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let (mut stdout, mut stderr) =
        (tempfile::tempfile().expect("a temp file"), tempfile::tempfile().expect("a temp file"));
    let mut child = Command::new(program)
        .args(&args)
        .current_dir(DIR)
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().expect("a temp file"))
        .stderr(stderr.try_clone().expect("a temp file"))
        .spawn()
        .unwrap_or_else(|e| panic!("running {program} {script}: {e} (run .ci/run to install it)"));
    let deadline = Instant::now() + APP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the app") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50)); // poll interval, bounded by the deadline
    };
    if status.is_some_and(|s| s.success()) {
        return;
    }
    let read = |f: &mut std::fs::File| {
        let mut text = String::new();
        f.seek(SeekFrom::Start(0)).and_then(|_| f.read_to_string(&mut text)).expect("reading the app's output");
        text
    };
    let (out, err) = (read(&mut stdout), read(&mut stderr));
    let status = status.map_or_else(|| format!("killed after {APP_TIMEOUT:?}"), |s| s.to_string());
    panic!("{program} {script} {args:?} failed ({status}):\n{out}\n{err}\n(libraries missing? .ci/run installs them)");
}

#[test]
fn redis_py_and_ioredis_apps_on_one_node() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run("python3", "app.py", &[&node], false);
    run("node", "app.js", &[&node], false);
}

/// Applications' Lua scripts (compat/apps/scripts.py): a lock release, a rate limiter,
/// Sidekiq's scheduler, redis-py's Script and Lock.
#[test]
fn redis_py_scripts_on_one_node() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run("python3", "scripts.py", &[&node], false);
}

#[test]
fn redis_py_and_ioredis_apps_through_a_cluster() {
    let _heavy = harness::heavy();
    let cluster = Cluster::start(4, &["--n", "3"]);
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    run("python3", "app.py", &nodes, true);
    run("node", "app.js", &nodes, true);
    run("python3", "scripts.py", &nodes, true);
}

/// redis-py's pub/sub (compat/apps/pubsub.py): subscribers through one node of a 2-node
/// cluster, publishers through the other.
#[test]
fn redis_py_pubsub_across_two_nodes() {
    let cluster = Cluster::start(2, &[]);
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    run("python3", "pubsub.py", &nodes, false);
}

/// RQ (compat/apps/rqapp.py): 1,000 jobs, three `rq worker --burst` processes, every result
/// from its results stream, one waited for with XREAD BLOCK; workers killed mid-job and RQ's
/// abandoned-job rule (failed registry, or re-queued).
#[test]
fn rq_on_one_node() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run("python3", "rqapp.py", &[&node], false);
}

/// The same with the enqueuer and each worker on a different node of a 4-node N=3 cluster.
#[test]
fn rq_through_a_cluster() {
    let cluster = Cluster::start(4, &["--n", "3"]);
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    run("python3", "rqapp.py", &nodes, true);
}

/// Celery with the Redis broker and result backend (compat/apps/celeryapp.py): 1,000 tasks,
/// three workers, every AsyncResult.get; an acks_late task re-delivered after its worker is
/// killed mid-task.
#[test]
fn celery_on_one_node() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run("python3", "celeryapp.py", &[&node], false);
}

/// The same with the client and each worker on a different node of a 4-node N=3 cluster.
#[test]
fn celery_through_a_cluster() {
    let cluster = Cluster::start(4, &["--n", "3"]);
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    run("python3", "celeryapp.py", &nodes, true);
}

/// Locks and rate limiters (compat/apps/limits.py, compat/apps/redlock.js): redis-py's Lock
/// with a second client waiting in acquire() until the release, node-redlock, a sliding-window
/// limiter in MULTI and a fixed-window limiter script, exactly the allowed number passing.
#[test]
fn locks_and_limiters_on_one_node() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run("python3", "limits.py", &[&node], false);
    run("node", "redlock.js", &[&node], false);
}

/// The same with the clients spread over a 4-node N=3 cluster, but the sliding window in
/// MULTI (the next test).
#[test]
fn locks_and_limiters_through_a_cluster() {
    let cluster = Cluster::start(4, &["--n", "3"]);
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    run_with("python3", "limits.py", &nodes, true, &["--only=lock,fixed"]);
    run("node", "redlock.js", &nodes, true);
}

/// The sliding-window limiter in MULTI with its clients on different nodes: exactly 50 of 200
/// hits pass. The transaction runs at its key's deciding owner, holding the key (before
/// transactions were placed there, two EXECs through different nodes replied the same ZCARD
/// and 48 or 49 passed).
#[test]
fn sliding_window_limiter_in_multi_through_a_cluster() {
    let cluster = Cluster::start(4, &["--n", "3"]);
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    run_with("python3", "limits.py", &nodes, true, &["--only=sliding"]);
}

/// Socket.IO's Redis adapter and sharded adapter (compat/apps/socketio.js): two Socket.IO
/// servers, clients on each, broadcasts, rooms, fetchSockets, serverSideEmit across them.
#[test]
fn socketio_redis_adapter_on_one_node() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run("node", "socketio.js", &[&node], false);
}

/// The same with the two servers' Redis connections on different nodes of a 4-node N=3 cluster.
#[test]
fn socketio_redis_adapter_through_a_cluster() {
    let cluster = Cluster::start(4, &["--n", "3"]);
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    run("node", "socketio.js", &nodes, true);
}

/// BullMQ (compat/apps/bullmq.js): 1,000 jobs under the '{bull}' prefix, some delayed, some
/// retried after a fixed backoff, four Workers and a QueueEvents listener (XREAD BLOCK); every
/// job completes exactly once and QueueEvents sees every completion.
#[test]
fn bullmq_on_one_node() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run("node", "bullmq.js", &[&node], false);
}

/// The same with the Queue and each Worker on a different node of a 4-node N=3 cluster. The
/// '{bull}' prefix puts every key of the queue in one partition, and its scripts run at that
/// partition's deciding owner holding their keys: two Workers' moveToActive (which promotes due
/// delayed jobs: ZRANGEBYSCORE delayed, ZREM, LPUSH wait) cannot both read one due job, so no
/// job runs twice (before scripts were placed, retried jobs ran twice here).
#[test]
fn bullmq_through_a_cluster() {
    let _heavy = harness::heavy();
    let cluster = Cluster::start(4, &["--n", "3"]);
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    run("node", "bullmq.js", &nodes, true);
}
