//! Real applications' patterns through real client libraries (compat/apps/): redis-py and
//! ioredis scripts of a cache, a session store, a check-and-set and a test teardown, against
//! one node and through every node of a 4-node N=3 cluster, and redis-py's pub/sub across two
//! nodes. `.ci/run` installs both
//! libraries (pip's `redis`, npm's `ioredis` in compat/apps/node_modules).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::net::Ipv4Addr;
use std::process::Command;

use harness::{Cluster, Node};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/apps");

fn run(program: &str, script: &str, nodes: &[&Node], cluster: bool) {
    run_with(program, script, nodes, cluster, &[]);
}

/// Runs `program DIR/script ADDR... [--cluster] extra...` in compat/apps and fails the test
/// with its output unless it exits 0.
fn run_with(program: &str, script: &str, nodes: &[&Node], cluster: bool, extra: &[&str]) {
    let mut args: Vec<String> = vec![format!("{DIR}/{script}")];
    args.extend(nodes.iter().map(|n| n.addr().to_string()));
    if cluster {
        args.push("--cluster".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(program)
        .args(&args)
        .current_dir(DIR)
        .output()
        .unwrap_or_else(|e| panic!("running {program} {script}: {e} (run .ci/run to install it)"));
    assert!(
        out.status.success(),
        "{program} {script} {args:?} failed ({}):\n{}\n{}\n(libraries missing? .ci/run installs them)",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

/// RQ (compat/apps/rqapp.py): 1,000 jobs, three `rq worker --burst` processes, every result;
/// workers killed mid-job and RQ's abandoned-job rule (failed registry, or re-queued).
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

/// The sliding-window limiter in MULTI with its clients on different nodes: 48 or 49 of 200
/// hits pass where the limit is 50, because EXEC is not isolated across nodes (two EXECs through
/// different nodes reply the same ZCARD). Design.md says a MULTI over keys of one tag is atomic
/// at the key's deciding owner; this test is ignored until transactions are placed there.
#[test]
#[ignore = "EXEC is not yet run at the key's owner in a cluster (docs/commands.md, Transactions)"]
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
