//! Elastic membership on real processes: nodes join a loaded cluster while a client writes,
//! a node leaves with KURA LEAVE, and a transfer survives kill -9 of its receiver.

use crate::harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{converged, local, members, query as q, ring, text, wait_until, Cluster, Node};
use redis::Value;

const NRW: [&str; 6] = ["--n", "3", "--r", "2", "--w", "2"];

fn con(node: &Node) -> redis::RedisResult<redis::Connection> {
    let con = node.client("").get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(con)
}

/// Writes `count` keys `{prefix}{i}` = `v{i}` through `node`, pipelined.
fn preload(node: &Node, prefix: &str, count: usize, value_len: usize) {
    let mut c = con(node).expect("connection");
    let pad = "x".repeat(value_len);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET").arg(format!("{prefix}{i}")).arg(format!("v{i}{pad}")).ignore();
        }
        pipe.query::<()>(&mut c).expect("preload");
    }
}

/// Every key reads back through every node (MGET in batches), with the value preload wrote.
fn all_read_back(nodes: &[&Node], keys: &[(String, String)]) {
    for node in nodes {
        let mut c = con(node).expect("connection");
        for chunk in keys.chunks(200) {
            let names: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
            let got: Vec<Option<String>> = redis::cmd("MGET").arg(&names).query(&mut c).expect("MGET");
            for ((k, want), got) in chunk.iter().zip(got) {
                assert_eq!(got.as_deref(), Some(want.as_str()), "{k} via {}", node.addr());
            }
        }
    }
}

/// Each sampled key sits on exactly its preference list (old owners dropped their copies).
fn placed_on_owners(c: &Cluster, nodes: &[usize], keys: &[(String, String)]) {
    for (k, v) in keys.iter().step_by(37) {
        let owners = c.preflist(nodes[0], k);
        assert_eq!(owners.len(), 3, "{k}: {owners:?}");
        wait_until(&format!("{k} on exactly {owners:?}"), Duration::from_secs(30), || {
            nodes.iter().all(|&j| (local(&c.nodes[j], k) == vec![v.clone()]) == owners.contains(&j)).then_some(())
        });
    }
}

fn balanced(node: &Node, owners: usize) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, owner) in ring(node) {
        *counts.entry(owner).or_default() += 1;
    }
    assert_eq!(counts.len(), owners, "{counts:?}");
    let (min, max) = (counts.values().min().unwrap(), counts.values().max().unwrap());
    assert!(max - min <= 1, "unbalanced: {counts:?}");
}

#[test]
fn two_nodes_join_a_loaded_cluster_while_a_client_writes() {
    let mut c = Cluster::start(3, &NRW);
    preload(&c.nodes[0], "pre", 1000, 16);
    let mut keys: Vec<(String, String)> =
        (0..1000).map(|i| (format!("pre{i}"), format!("v{i}{}", "x".repeat(16)))).collect();
    // A client writes through the first three nodes for the whole join.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let urls: Vec<String> = c.nodes.iter().map(|n| n.url()).collect();
    let writer = {
        let (stop, acked) = (stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (key, value) = (format!("live{i}"), format!("w{i}"));
                let ok = redis::Client::open(urls[i % urls.len()].as_str())
                    .and_then(|cl| cl.get_connection_with_timeout(Duration::from_secs(5)))
                    .and_then(|mut con| redis::cmd("SET").arg(&key).arg(&value).query::<Value>(&mut con));
                if ok == Ok(Value::Okay) {
                    acked.lock().unwrap().push((key, value));
                }
                i += 1;
            }
        })
    };
    c.add(&NRW);
    c.add(&NRW);
    c.wait_converged(Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let written = acked.lock().unwrap().clone();
    assert!(!written.is_empty(), "the client wrote during the join");
    keys.extend(written);
    balanced(&c.nodes[0], 5);
    let all: Vec<&Node> = c.nodes.iter().collect();
    all_read_back(&all, &keys);
    placed_on_owners(&c, &[0, 1, 2, 3, 4], &keys);
    let moved: f64 = c.nodes.iter().filter_map(|n| harness::metric(&n.metrics(), "kura_transfer_keys_total")).sum();
    assert!(moved > 0.0, "partitions were transferred");
}

#[test]
fn a_leaving_node_hands_everything_off_first() {
    let c = Cluster::start(5, &NRW);
    preload(&c.nodes[0], "k", 500, 8);
    let keys: Vec<(String, String)> = (0..500).map(|i| (format!("k{i}"), format!("v{i}{}", "x".repeat(8)))).collect();
    let leaver = &c.nodes[4];
    assert_eq!(q(leaver, &["KURA", "LEAVE"]).unwrap(), Value::Okay);
    let rest: Vec<&Node> = c.nodes[..4].iter().collect();
    wait_until("the leaver to be gone and the ring settled", Duration::from_secs(120), || {
        converged(&rest).then_some(())
    });
    for node in &rest {
        assert!(members(node).iter().all(|m| m["id"] != "node5"), "node5 is no longer listed");
    }
    balanced(&c.nodes[0], 4);
    all_read_back(&rest, &keys);
    placed_on_owners(&c, &[0, 1, 2, 3], &keys);
    // The leaver holds none of them any more.
    wait_until("the leaver to drop its data", Duration::from_secs(30), || {
        keys.iter().step_by(37).all(|(k, _)| local(leaver, k).is_empty()).then_some(())
    });
}

#[test]
fn a_transfer_survives_kill9_of_its_receiver() {
    // A throttled transfer gives the test time to kill the receiver in the middle of it.
    let flags = ["--n", "3", "--r", "2", "--w", "2", "--transfer-limit", "1", "--transfer-rate", "300000"];
    let mut c = Cluster::start(3, &flags);
    preload(&c.nodes[0], "big", 3000, 1000);
    let keys: Vec<(String, String)> =
        (0..3000).map(|i| (format!("big{i}"), format!("v{i}{}", "x".repeat(1000)))).collect();
    let new = c.add(&flags);
    let receiving = |n: &Node| -> u64 {
        let info = text(&q(n, &["INFO", "transfers"]).unwrap());
        info.lines()
            .find_map(|l| l.strip_prefix("transfer_keys_received:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until("the new node to receive part of a transfer", Duration::from_secs(60), || {
        (receiving(&c.nodes[new]) > 0).then_some(())
    });
    let pending = match q(&c.nodes[new], &["KURA", "TRANSFERS"]).unwrap() {
        Value::Int(n) => n,
        other => panic!("KURA TRANSFERS: {other:?}"),
    };
    assert!(pending > 0, "the receiver is killed in the middle of the transition");
    c.nodes[new].kill9();
    c.nodes[new].spawn();
    c.wait_converged(Duration::from_secs(180));
    let all: Vec<&Node> = c.nodes.iter().collect();
    all_read_back(&all, &keys);
    placed_on_owners(&c, &[0, 1, 2, 3], &keys);
}

#[test]
fn a_dead_node_removed_by_a_member_is_rebuilt_from_the_other_replicas() {
    let mut c = Cluster::start(4, &NRW);
    preload(&c.nodes[0], "r", 400, 8);
    let keys: Vec<(String, String)> = (0..400).map(|i| (format!("r{i}"), format!("v{i}{}", "x".repeat(8)))).collect();
    c.nodes[3].kill9();
    assert_eq!(q(&c.nodes[1], &["KURA", "REMOVE", "node4"]).unwrap(), Value::Okay);
    let rest: Vec<&Node> = c.nodes[..3].iter().collect();
    wait_until("the ring to settle without the removed node", Duration::from_secs(120), || {
        converged(&rest).then_some(())
    });
    balanced(&c.nodes[0], 3);
    all_read_back(&rest, &keys);
    // With three nodes left and N=3, every node holds every key again.
    placed_on_owners(&c, &[0, 1, 2], &keys);
    let err = harness::err_of(q(&c.nodes[0], &["KURA", "REMOVE", "node1"]));
    assert!(err.contains("cannot remove itself"), "{err}");
}
