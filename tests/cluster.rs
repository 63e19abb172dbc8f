//! Real clusters of kura processes on 127.0.0.1..6: one ring, keys on exactly their preference
//! lists, preference lists across zones, quorums, read repair after a partition (iptables), and
//! the cluster secret.

use crate::harness;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use harness::{local, metric, query as q, ring, text, wait_until, Cluster, Cut, Node};
use redis::Value;

const NRW: [&str; 6] = ["--n", "3", "--r", "2", "--w", "2"];

fn get(node: &Node, key: &str) -> String {
    text(&q(node, &["GET", key]).unwrap_or_else(|e| panic!("GET {key} via {}: {e}", node.addr())))
}

#[test]
fn five_nodes_share_one_balanced_ring_and_keys_live_on_their_preference_lists() {
    let c = Cluster::start(5, &NRW);
    let ring0 = ring(&c.nodes[0]);
    assert_eq!(ring0.len(), 64);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, owner) in &ring0 {
        *counts.entry(owner.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), 5, "{counts:?}");
    let (min, max) = (counts.values().min().unwrap(), counts.values().max().unwrap());
    assert!(max - min <= 1, "ownership is unbalanced: {counts:?}");

    for i in 0..300 {
        let node = &c.nodes[i % 5];
        let reply = q(node, &["SET", &format!("key{i}"), &format!("v{i}")]).expect("SET");
        assert_eq!(reply, Value::Okay);
    }
    for i in (0..300).step_by(7) {
        let key = format!("key{i}");
        let owners = c.preflist(i % 5, &key);
        assert_eq!(owners.len(), 3, "{key}: {owners:?}");
        for j in 0..5 {
            assert_eq!(c.preflist(j, &key), owners, "every node computes the same preference list");
        }
        // W=2: the third replica may still be storing it; it gets there without any read.
        wait_until(&format!("{key} on exactly {owners:?}"), Duration::from_secs(20), || {
            (0..5).all(|j| (local(&c.nodes[j], &key) == vec![format!("v{i}")]) == owners.contains(&j)).then_some(())
        });
        for node in &c.nodes {
            assert_eq!(get(node, &key), format!("v{i}"), "GET {key} via {}", node.addr());
        }
    }
    // Siblings made through two different coordinators, merged through a third.
    let a = &c.nodes[0];
    q(a, &["DPUT", "cart", "", "x"]).unwrap();
    q(&c.nodes[1], &["DPUT", "cart", "", "y"]).unwrap();
    let (ctx, values) = harness::parse_dget(&q(&c.nodes[2], &["DGET", "cart"]).unwrap());
    assert_eq!(values, vec!["x", "y"]);
    q(&c.nodes[3], &["DPUT", "cart", &ctx, "x,y"]).unwrap();
    for node in &c.nodes {
        assert_eq!(harness::parse_dget(&q(node, &["DGET", "cart"]).unwrap()).1, vec!["x,y"]);
    }
    // A pipeline runs requests on distinct keys at once but keeps the order on one key.
    let mut con = c.nodes[4].conn();
    let mut pipe = redis::pipe();
    for i in 0..20 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i).cmd("GET").arg(format!("p{i}"));
    }
    pipe.cmd("SET").arg("p0").arg("again").cmd("GET").arg("p0").cmd("DEL").arg("p0").cmd("GET").arg("p0");
    let replies: Vec<Value> = pipe.query(&mut con).expect("pipeline");
    for i in 0..20 {
        assert_eq!(replies[2 * i], Value::Okay);
        assert_eq!(text(&replies[2 * i + 1]), i.to_string());
    }
    assert_eq!(replies[40..], [Value::Okay, Value::BulkString(b"again".to_vec()), Value::Int(1), Value::Nil]);
    // Puts from outside a key's preference list were forwarded.
    let forwarded: f64 = c.nodes.iter().filter_map(|n| metric(&n.metrics(), "kura_forwarded_total")).sum();
    assert!(forwarded > 0.0);
}

#[test]
fn a_replica_cut_off_during_a_write_is_repaired_by_a_read() {
    let c = Cluster::start(3, &NRW);
    let (coordinator, cut_off) = (&c.nodes[0], &c.nodes[2]);
    let key = "repair-me";
    assert_eq!(c.preflist(0, key).len(), 3, "with three nodes every node is a replica");
    {
        let _cuts = Cut::sides(&[cut_off], &[&c.nodes[0], &c.nodes[1]]);
        assert_eq!(
            q(coordinator, &["SET", key, "fresh"]).expect("W=2 is met without the cut-off replica"),
            Value::Okay
        );
        assert!(local(cut_off, key).is_empty(), "the cut-off replica cannot have it");
        // Stay cut until the coordinator gave up on the replica (its request timed out and the
        // connection was closed), so TCP cannot deliver the write late after healing.
        let addr = cut_off.cluster_addr().to_string();
        wait_until("the coordinator to see the replica down", Duration::from_secs(30), || {
            harness::members(coordinator).iter().any(|m| m["addr"] == addr && m["reachable"] == "down").then_some(())
        });
    }
    // Healed. A read through the coordinator finds the stale replica and repairs it.
    let repairs_before = metric(&coordinator.metrics(), "kura_read_repairs_total").unwrap_or(0.0);
    wait_until("the read to repair the stale replica", Duration::from_secs(30), || {
        assert_eq!(get(coordinator, key), "fresh");
        (local(cut_off, key) == vec!["fresh".to_string()]).then_some(())
    });
    let repairs_after = metric(&coordinator.metrics(), "kura_read_repairs_total").unwrap_or(0.0);
    assert!(repairs_after > repairs_before, "read repair was counted");
}

/// A read asks only the replicas R needs (here one besides the coordinator's own copy), the
/// same peer first for every key (so that reads made together travel in one batch), every
/// replica on one read in eight (read repair's chance), and one more when the one asked is cut
/// off: every GET through the cut is answered (issue 23, hedged reads).
#[test]
fn a_read_asks_the_replicas_r_needs_and_hedges_past_a_cut_off_one() {
    let c = Cluster::start(3, &NRW);
    let coordinator = &c.nodes[0];
    let asked = |why: &str| {
        metric(&coordinator.metrics(), &format!("kura_read_requests_total{{asked=\"{why}\"}}")).unwrap_or(0.0)
    };
    // Reads a peer served, answered "same as yours" by digest (the coordinator holds every key).
    let served = |n: &Node| metric(&n.metrics(), "kura_reads_same_total").unwrap_or(0.0);
    const KEYS: usize = 20;
    for i in 0..KEYS {
        assert_eq!(q(coordinator, &["SET", &format!("h{i}"), &format!("v{i}")]).unwrap(), Value::Okay);
    }
    const GETS: usize = 80;
    let before = (asked("first"), served(&c.nodes[1]), served(&c.nodes[2]));
    for i in 0..GETS {
        assert_eq!(get(coordinator, &format!("h{}", i % KEYS)), format!("v{}", i % KEYS));
    }
    let first = asked("first") - before.0;
    assert!(
        first >= (GETS + GETS / 8) as f64 && first < (2 * GETS) as f64,
        "{first} replicas asked first for {GETS} reads: one each, both on one read in eight"
    );
    let served = [served(&c.nodes[1]) - before.1, served(&c.nodes[2]) - before.2];
    let (preferred, other) = if served[0] > served[1] { (1, 2) } else { (2, 1) };
    assert!(
        served[preferred - 1] >= GETS as f64 && served[other - 1] < (GETS / 4) as f64,
        "one peer serves every read, the other only the reads that ask both: {served:?}"
    );
    let hedges = asked("hedge");
    let _cut = Cut::sides(&[&c.nodes[preferred]], &[&c.nodes[0], &c.nodes[other]]);
    let mut i = 0;
    wait_until("a read to ask one more replica past the cut-off one", Duration::from_secs(30), || {
        i += 1;
        assert_eq!(get(coordinator, &format!("h{}", i % KEYS)), format!("v{}", i % KEYS));
        (asked("hedge") > hedges).then_some(())
    });
}

#[test]
fn unreachable_quorums_give_noquorum_and_never_hang() {
    let mut c = Cluster::start(3, &["--n", "3", "--r", "2", "--w", "2", "--request-timeout-ms", "1000"]);
    let key = "q";
    assert_eq!(q(&c.nodes[0], &["SET", key, "v"]).unwrap(), Value::Okay);
    {
        let _cuts = Cut::sides(&[&c.nodes[2]], &[&c.nodes[0], &c.nodes[1]]);
        let err = harness::err_of(q(&c.nodes[0], &["DGET", key, "R", "3"]));
        assert!(err.starts_with("NOQUORUM read needed 3 replicas, 2 answered"), "{err}");
        let err = harness::err_of(q(&c.nodes[0], &["DPUT", key, "", "w", "W", "3"]));
        assert!(err.starts_with("NOQUORUM write needed 3 replicas, 2 answered"), "{err}");
        assert!(err.contains("may have landed"), "{err}");
        // R=2 and W=2 are still met.
        assert_eq!(q(&c.nodes[1], &["SET", key, "v2"]).unwrap(), Value::Okay);
    }
    // Two of three replicas dead: nothing reaches R=2 or W=2.
    c.nodes[1].kill9();
    c.nodes[2].kill9();
    let err = harness::err_of(q(&c.nodes[0], &["GET", key]));
    assert!(err.starts_with("NOQUORUM read needed 2 replicas, 1 answered"), "{err}");
    let err = harness::err_of(q(&c.nodes[0], &["SET", key, "v3"]));
    assert!(err.starts_with("NOQUORUM write needed 2 replicas, 1 answered"), "{err}");
    // R=1 still reads what the survivor has.
    let v = q(&c.nodes[0], &["DGET", key, "R", "1"]).unwrap();
    assert!(!harness::parse_dget(&v).1.is_empty());
}

#[test]
fn a_peer_with_the_wrong_secret_cannot_join_or_send_requests() {
    let c = Cluster::start(2, &["--cluster-secret", "right"]);
    let seed = c.nodes[0].cluster_addr().to_string();
    let intruder = Node::start(
        Ipv4Addr::new(127, 0, 0, 3),
        &["--node-id", "intruder", "--cluster-secret", "wrong", "--seed", &seed],
    );
    wait_until("the seed to refuse the handshake", Duration::from_secs(30), || {
        metric(&c.nodes[0].metrics(), "kura_peer_errors_total{kind=\"handshake\"}").filter(|v| *v >= 1.0)
    });
    for node in &c.nodes {
        assert_eq!(harness::members(node).len(), 2, "the intruder is not a member");
    }
    assert!(harness::members(&intruder).is_empty(), "the intruder never got the cluster state");
    let err = harness::err_of(q(&intruder, &["GET", "k"]));
    assert!(err.contains("not joined"), "{err}");
    // A connection that skips the handshake is closed without an answer.
    let mut raw = TcpStream::connect(c.nodes[0].cluster_addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    assert!(buf.is_empty(), "no answer without a handshake: {buf:?}");
    // The cluster still works.
    assert_eq!(q(&c.nodes[1], &["SET", "k", "v"]).unwrap(), Value::Okay);
    assert_eq!(get(&c.nodes[0], "k"), "v");
}

/// Six nodes in three zones (`--zone`), N=3: every key's preference list holds one node of each
/// zone (paper 4.3, replicas across data centers), every node computes the same list, and a
/// write lands on exactly those three nodes.
#[test]
fn preference_lists_span_the_zones() {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..6 {
        let (id, zone) = (format!("node{}", i + 1), format!("zone{}", i % 3));
        let mut args: Vec<String> = vec!["--node-id".into(), id, "--zone".into(), zone];
        if let Some(first) = nodes.first() {
            args.extend(["--seed".into(), first.cluster_addr().to_string()]);
        }
        args.extend(NRW.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(Ipv4Addr::new(127, 0, 0, 1 + i as u8), &args));
    }
    let c = Cluster { nodes };
    c.wait_converged(Duration::from_secs(90));
    let zone_of: BTreeMap<String, String> =
        harness::members(&c.nodes[0]).into_iter().map(|m| (m["addr"].clone(), m["zone"].clone())).collect();
    assert_eq!(zone_of.values().collect::<std::collections::BTreeSet<_>>().len(), 3, "{zone_of:?}");
    for i in 0..60 {
        let key = format!("zoned{i}");
        let owners = c.preflist(0, &key);
        let zones: std::collections::BTreeSet<&String> =
            owners.iter().map(|&j| &zone_of[&c.nodes[j].cluster_addr().to_string()]).collect();
        assert_eq!(zones.len(), 3, "{key} has owners {owners:?} in zones {zones:?}");
        for j in 1..6 {
            assert_eq!(c.preflist(j, &key), owners, "every node computes the same preference list");
        }
        if i % 10 == 0 {
            assert_eq!(q(&c.nodes[i % 6], &["SET", &key, "v"]).unwrap(), Value::Okay);
            wait_until(&format!("{key} on exactly {owners:?}"), Duration::from_secs(20), || {
                (0..6).all(|j| (local(&c.nodes[j], &key) == vec!["v".to_string()]) == owners.contains(&j)).then_some(())
            });
        }
    }
}

/// Secure by default (issue 24, point 2): a cluster address off loopback without a secret
/// refuses to start and says what to add; `--insecure` is the explicit way out.
#[test]
fn a_cluster_address_off_loopback_refuses_to_start_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let ip = Ipv4Addr::LOCALHOST;
    let run = |extra: &[&str]| {
        let listen = format!("127.0.0.1:{}", harness::free_port(ip));
        let metrics = format!("127.0.0.1:{}", harness::free_port(ip));
        let cluster = format!("0.0.0.0:{}", harness::free_port(ip));
        let data = dir.path().join("data").display().to_string();
        let args = ["server", "--listen", &listen, "--metrics-listen", &metrics, "--cluster-listen", &cluster];
        std::process::Command::new(harness::KURA)
            .args(args)
            .args(["--data-dir", &data])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running kura")
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("--cluster-secret") && said.contains("not a loopback address"), "{said}");
    // With --insecure it starts.
    let cluster = format!("0.0.0.0:{}", harness::free_port(ip));
    let listen = format!("127.0.0.1:{}", harness::free_port(ip));
    let mut child = std::process::Command::new(harness::KURA)
        .args(["server", "--listen", &listen, "--cluster-listen", &cluster, "--insecure"])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", harness::free_port(ip))])
        .args(["--data-dir", &dir.path().join("insecure").display().to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("running kura");
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    wait_until("the insecure node to answer", Duration::from_secs(30), || {
        assert!(child.try_wait().unwrap().is_none(), "kura --insecure exited");
        TcpStream::connect(addr).ok()
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// Before the handshake a peer's frames are tiny: a stranger who announces frames of 200 MB on
/// the peer port is cut off at once, and the node does not set memory aside for them.
#[test]
fn strangers_on_the_peer_port_cannot_make_a_node_hold_memory() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let (_, before) = node.memory();
    // Eight at once, each announcing a frame of 200 MB and sending a little of it.
    let mut strangers: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut raw = TcpStream::connect(node.cluster_addr()).unwrap();
            raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            raw.write_all(&(200u32 << 20).to_be_bytes()).unwrap();
            let _ = raw.write_all(&[7u8; 1000]);
            raw
        })
        .collect();
    for raw in &mut strangers {
        let mut buf = Vec::new();
        let _ = raw.read_to_end(&mut buf);
        assert!(buf.is_empty(), "no answer to a stranger: {buf:?}");
    }
    let grown = node.memory().1.saturating_sub(before);
    assert!(grown < 64 << 20, "8 strangers grew the node's peak memory by {grown} bytes");
    assert_eq!(q(&node, &["SET", "k", "v"]).unwrap(), Value::Okay);
}

/// After the handshake the peer is the node the request is for: when another node answers at
/// a member's address (here a node of its own that took the address of a member that died),
/// requests for the member fail there (counted as `wrong_peer`), never served by the stranger.
#[test]
fn a_request_for_a_member_is_not_served_by_another_node_at_its_address() {
    let mut c = Cluster::start(3, &NRW);
    c.nodes[2].kill9();
    let _ = std::fs::remove_dir_all(&c.nodes[2].dir);
    // No seed: it founds a cluster of its own (had it joined, it would replace node3).
    c.nodes[2].set_extra(&["--node-id", "impostor", "--n", "3", "--r", "2", "--w", "2"]);
    c.nodes[2].spawn();
    wait_until("a request for node3 to reach the impostor and be refused", Duration::from_secs(60), || {
        metric(&c.nodes[0].metrics(), "kura_peer_errors_total{kind=\"wrong_peer\"}").filter(|v| *v >= 1.0)
    });
    // node3 is down for the others; writes go on (W=2 of node1 and node2, or a stand-in).
    assert_eq!(q(&c.nodes[0], &["SET", "k", "v"]).unwrap(), Value::Okay);
    assert_eq!(get(&c.nodes[1], "k"), "v");
}

/// In a cluster a pipeline's requests on distinct keys run in waves whose replies are held until
/// the wave is done; a wave is bounded (32), so a pipeline of many large replies is written out
/// as it goes instead of piling up past the connection's output limit, which would close it.
#[test]
fn a_pipeline_of_large_replies_through_a_cluster_stays_under_the_output_limit() {
    let c = Cluster::start(3, &NRW);
    let mut con = c.nodes[0].conn();
    let value = "x".repeat(96 << 10);
    let mut pipe = redis::pipe();
    for i in 0..64 {
        pipe.cmd("SET").arg(format!("big:{i}")).arg(&value).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("normal 4mb 0 0")
        .query(&mut con)
        .unwrap();
    // 64 replies of 96 KiB are 6 MiB: over the limit if held all at once, not in waves of 32.
    let mut pipe = redis::pipe();
    for i in 0..64 {
        pipe.cmd("GET").arg(format!("big:{i}"));
    }
    let got: Vec<String> = pipe.query(&mut con).expect("the whole pipeline answered");
    assert_eq!(got.len(), 64);
    assert!(got.iter().all(|v| *v == value));
}

/// Issue 23: a pipeline's writes reach each replica as batches (one message, one journal
/// flush there, one answer for many keys), and every key still gets all its copies.
/// Issue 23: a hot key's read-modify-writes, sent through every node at once, are decided
/// together at its decider (one quorum read, one store and one replication for a batch), and
/// each is still its own: every INCR's reply is a different count, the replies are exactly
/// 1..total, and every replica ends with the total.
#[test]
fn a_hot_keys_operations_are_decided_together_each_as_its_own() {
    let c = Cluster::start(3, &NRW);
    let combined =
        || c.nodes.iter().map(|n| metric(&n.metrics(), "kura_rmw_combined_total").unwrap_or(0.0)).sum::<f64>();
    let mut replies: Vec<i64> = Vec::new();
    wait_until("INCRs of one key decided together", Duration::from_secs(60), || {
        let rounds: Vec<Vec<i64>> = std::thread::scope(|s| {
            let sent: Vec<_> = c
                .nodes
                .iter()
                .map(|n| {
                    s.spawn(move || {
                        let mut con = n.conn();
                        let mut pipe = redis::pipe();
                        for _ in 0..16 {
                            pipe.cmd("INCR").arg("hot");
                        }
                        pipe.query::<Vec<i64>>(&mut con).expect("the pipeline is answered")
                    })
                })
                .collect();
            sent.into_iter().map(|t| t.join().expect("a client")).collect()
        });
        replies.extend(rounds.into_iter().flatten());
        (combined() >= 32.0).then_some(())
    });
    let total = replies.len() as i64;
    replies.sort_unstable();
    assert_eq!(replies, (1..=total).collect::<Vec<_>>(), "each INCR counted once, in one order");
    for n in &c.nodes {
        wait_until(&format!("the total on {}", n.addr()), Duration::from_secs(20), || {
            (local(n, "hot") == vec![total.to_string()]).then_some(())
        });
    }
}

#[test]
fn a_pipelines_replication_travels_in_batches() {
    let c = Cluster::start(3, &NRW);
    let mut con = c.nodes[0].conn();
    let batched = || metric(&c.nodes[0].metrics(), "kura_peer_batched_requests_total").unwrap_or(0.0);
    let mut round = 0;
    // A wave of 16 SETs sends 16 copies to each of the two other replicas in one poll: each
    // pair of peers gets them as a batch (a batch the runtime happened to split still counts
    // when it holds more than one).
    wait_until("the replication of pipelines sent in batches", Duration::from_secs(60), || {
        let mut pipe = redis::pipe();
        for i in 0..16 {
            pipe.cmd("SET").arg(format!("batch:{round}:{i}")).arg(format!("v{i}")).ignore();
        }
        pipe.query::<()>(&mut con).expect("the pipeline is answered");
        round += 1;
        (batched() >= 32.0).then_some(())
    });
    for r in 0..round {
        for i in 0..16 {
            let key = format!("batch:{r}:{i}");
            wait_until(&format!("{key} on every replica"), Duration::from_secs(20), || {
                c.nodes.iter().all(|n| local(n, &key) == vec![format!("v{i}")]).then_some(())
            });
        }
    }
}
