//! A rolling upgrade (issue 24, point 7): a 3-node cluster of the previous tagged build, each
//! node stopped (SIGTERM) and started on this build over its own data dir in turn, while a
//! client writes and reads through every node. Nothing acknowledged is lost, and a request
//! fails only when it went to the node being restarted (from its stop until the cluster has
//! converged again with it). `.ci/upgrade` builds the previous tag and runs this test with
//! `KURA_PREVIOUS` naming its binary (`KURA_UPGRADE=1 .ci/run` runs it after the others).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness;
use harness::{local, wait_until, Cluster, KURA};

/// No node is being restarted.
const NONE: usize = usize::MAX;

#[test]
#[ignore = "needs the previous tagged build: `.ci/upgrade` (or `KURA_UPGRADE=1 .ci/run`) builds it and runs this"]
fn a_cluster_upgrades_one_node_at_a_time_under_writes() {
    let previous =
        std::env::var("KURA_PREVIOUS").expect("KURA_PREVIOUS: the previous build's kura (.ci/upgrade sets it)");
    let mut c = Cluster::start_binary(Path::new(&previous), 3, &["--n", "3", "--r", "2", "--w", "2"]);
    let urls: Vec<String> = c.nodes.iter().map(|n| n.url()).collect();
    // The node under restart, read by the client before and after each request.
    let restarting = Arc::new(AtomicUsize::new(NONE));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let client = {
        let (restarting, stop, writes) = (restarting.clone(), stop.clone(), writes.clone());
        std::thread::spawn(move || {
            let mut acked: BTreeMap<String, String> = BTreeMap::new();
            let mut refused: Vec<String> = Vec::new();
            let mut served = [0usize; 3];
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let node = i % 3;
                let (key, value) = (format!("key:{i}"), format!("v{i}"));
                let before = restarting.load(Ordering::SeqCst);
                let outcome = one_write_and_read(&urls[node], &key, &value);
                let after = restarting.load(Ordering::SeqCst);
                match outcome {
                    Ok(()) => {
                        acked.insert(key, value);
                        served[node] += 1;
                        writes.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) if before == node || after == node => {}
                    Err(e) => refused.push(format!("request {i} to node {node} (restarting: {before}/{after}): {e}")),
                }
                i += 1;
            }
            (acked, refused, served)
        })
    };
    // Some acknowledged writes on the old build, on each mixed cluster, and on the new build.
    let some_writes = |what: &str| {
        let start = writes.load(Ordering::SeqCst);
        wait_until(what, Duration::from_secs(60), || (writes.load(Ordering::SeqCst) >= start + 100).then_some(()));
    };
    for n in 0..c.nodes.len() {
        some_writes("the client to write through the cluster");
        restarting.store(n, Ordering::SeqCst);
        c.nodes[n].terminate();
        c.nodes[n].binary = KURA.into();
        c.nodes[n].spawn();
        c.wait_converged(Duration::from_secs(60));
        restarting.store(NONE, Ordering::SeqCst);
        pipelines_reach_every_node(&c, n);
    }
    some_writes("the client to write through the upgraded cluster");
    stop.store(true, Ordering::SeqCst);
    let (acked, refused, served) = client.join().expect("the client thread");
    eprintln!("rolling upgrade: {} writes acknowledged, per node {served:?}", acked.len());
    assert!(refused.is_empty(), "requests failed away from the restarting node:\n{}", refused.join("\n"));
    assert!(served.iter().all(|&s| s > 0), "every node served writes: {served:?}");
    // Every acknowledged write is read back, through every node.
    for node in &c.nodes {
        let mut con = node.conn();
        let keys: Vec<&String> = acked.keys().collect();
        for chunk in keys.chunks(500) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("GET").arg(*k);
            }
            let values: Vec<Option<String>> = pipe.query(&mut con).expect("GETs");
            for (k, v) in chunk.iter().zip(values) {
                assert_eq!(v.as_ref(), Some(&acked[*k]), "{k} through {} after the upgrade", node.addr());
            }
        }
    }
}

/// A SET of `key` through a new connection to `url`, then a GET of it that must not fail.
fn one_write_and_read(url: &str, key: &str, value: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(10)))?;
    con.set_write_timeout(Some(Duration::from_secs(10)))?;
    redis::cmd("SET").arg(key).arg(value).query::<()>(&mut con)?;
    redis::cmd("GET").arg(key).query::<Option<String>>(&mut con)?;
    Ok(())
}

/// A pipeline of SETs through every node (in round `round`), read back through it, and every
/// key held by every node: in a mixed cluster a new node sends its copies to a new peer in
/// batches (protocol 15) and to an old one request by request.
fn pipelines_reach_every_node(c: &Cluster, round: usize) {
    for (j, node) in c.nodes.iter().enumerate() {
        let keys: Vec<String> = (0..32).map(|k| format!("pipe:{round}:{j}:{k}")).collect();
        let mut con = node.conn();
        let mut pipe = redis::pipe();
        for (k, key) in keys.iter().enumerate() {
            pipe.cmd("SET").arg(key).arg(k).ignore();
        }
        pipe.query::<()>(&mut con).unwrap_or_else(|e| panic!("a pipeline of SETs through {}: {e}", node.addr()));
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("GET").arg(key);
        }
        let values: Vec<Option<String>> = pipe.query(&mut con).expect("a pipeline of GETs");
        let expected: Vec<Option<String>> = (0..32).map(|k| Some(k.to_string())).collect();
        assert_eq!(values, expected, "read back through {}", node.addr());
        for (k, key) in keys.iter().enumerate() {
            wait_until(&format!("{key} on every node"), Duration::from_secs(20), || {
                c.nodes.iter().all(|n| local(n, key) == vec![k.to_string()]).then_some(())
            });
        }
    }
}
