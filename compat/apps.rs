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
    let mut args: Vec<String> = vec![format!("{DIR}/{script}")];
    args.extend(nodes.iter().map(|n| n.addr().to_string()));
    if cluster {
        args.push("--cluster".into());
    }
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
