//! Streams on real processes (issue 22, item 4): XREAD BLOCK and XREADGROUP BLOCK through one
//! node woken by an XADD through another; a consumer group read by consumers on every node of
//! a cluster hands each entry to one consumer; entries added on both sides of a partition are
//! all there after the heal, with no ID given twice and IDs increasing as seen through the
//! key's home (`version::stream`).

use crate::harness;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use harness::{blocked_clients, flat as text, query as q, resp_cmd, wait_split, wait_until, Cluster, Cut, Node};
use redis::Value;

const NRW: [&str; 6] = ["--n", "3", "--r", "2", "--w", "2"];

fn send(s: &mut TcpStream, args: &[&str]) {
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    s.write_all(&resp_cmd(&argv)).expect("write");
}

fn reply(s: &mut TcpStream) -> Value {
    redis::Parser::new().parse_value(&mut *s).expect("a reply")
}

/// The IDs of an XRANGE reply.
fn ids(v: &Value) -> Vec<String> {
    match v {
        Value::Array(entries) => entries
            .iter()
            .filter_map(|e| match e {
                Value::Array(pair) => pair.first().map(text),
                _ => None,
            })
            .collect(),
        other => panic!("entries, got {other:?}"),
    }
}

fn id_of(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("ms-seq");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

#[test]
fn xread_block_on_one_node_is_woken_by_an_xadd_on_another() {
    let c = Cluster::start(3, &NRW);
    let (a, b) = (&c.nodes[0], &c.nodes[2]);
    q(b, &["XADD", "events", "1-1", "k", "old"]).expect("XADD");
    let mut reader = a.raw();
    send(&mut reader, &["XREAD", "BLOCK", "0", "STREAMS", "events", "$"]);
    let mut grouped = a.raw();
    q(b, &["XGROUP", "CREATE", "events", "g", "$"]).expect("XGROUP CREATE");
    send(&mut grouped, &["XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "events", ">"]);
    wait_until("both readers to block", Duration::from_secs(10), || (blocked_clients(a) == 2).then_some(()));
    q(b, &["XADD", "events", "2-1", "k", "new"]).expect("XADD");
    assert_eq!(text(&reply(&mut reader)), "events 2-1 k new");
    assert_eq!(text(&reply(&mut grouped)), "events 2-1 k new");
    // The group's delivery is pending for alice, seen through the other node.
    assert_eq!(text(&q(b, &["XPENDING", "events", "g"]).expect("XPENDING")), "1 2-1 2-1 alice 1");
    // A timeout answers a null array, as Redis does.
    assert_eq!(q(a, &["XREAD", "BLOCK", "50", "STREAMS", "events", "$"]).expect("XREAD"), Value::Nil);
}

/// Consumers of one group on every node, XREADGROUP BLOCK and XACK: every entry is delivered
/// to exactly one consumer while the key's deciding node is up.
#[test]
fn a_group_read_through_every_node_delivers_each_entry_once() {
    let c = Cluster::start(4, &NRW);
    q(&c.nodes[0], &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]).expect("XGROUP CREATE");
    const JOBS: usize = 300;
    let workers: Vec<_> = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let mut con = node.conn();
            std::thread::spawn(move || {
                let me = format!("w{i}");
                let mut got = Vec::new();
                loop {
                    let v: Value = redis::cmd("XREADGROUP")
                        .arg(&["GROUP", "workers", &me, "COUNT", "5", "BLOCK", "2000", "STREAMS", "jobs", ">"][..])
                        .query(&mut con)
                        .expect("XREADGROUP");
                    let Value::Array(streams) = v else { break };
                    for stream in streams {
                        let Value::Array(kv) = stream else { continue };
                        let Some(Value::Array(entries)) = kv.get(1) else { continue };
                        for e in entries {
                            let Value::Array(pair) = e else { continue };
                            let id = text(&pair[0]);
                            let _: i64 =
                                redis::cmd("XACK").arg(&["jobs", "workers", &id][..]).query(&mut con).expect("XACK");
                            got.push(text(&pair[1]));
                        }
                    }
                    if got.iter().any(|j| j == "job end") {
                        break;
                    }
                }
                got
            })
        })
        .collect();
    let producer = &c.nodes[1];
    for j in 0..JOBS {
        q(producer, &["XADD", "jobs", "*", "job", &j.to_string()]).expect("XADD");
    }
    // One end marker per worker: each stops after it reads one.
    for _ in 0..c.nodes.len() {
        q(producer, &["XADD", "jobs", "*", "job", "end"]).expect("XADD");
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for w in workers {
        for job in w.join().expect("a worker") {
            *seen.entry(job).or_default() += 1;
        }
    }
    for j in 0..JOBS {
        assert_eq!(
            seen.get(&format!("job {j}")),
            Some(&1),
            "job {j} delivered {:?} times",
            seen.get(&format!("job {j}"))
        );
    }
    assert_eq!(text(&q(&c.nodes[3], &["XPENDING", "jobs", "workers"]).expect("XPENDING")), "0 nil nil nil");
}

/// Issue 22 item 4: XADDs on both sides of a partition all survive the heal, no ID is given
/// twice, and through the key's home the IDs increase (the other side's stand-in tags its
/// sequence numbers).
#[test]
fn entries_added_on_both_sides_of_a_partition_all_survive() {
    let c = Cluster::start(5, &NRW);
    let key = "log";
    let home = c.preflist(0, key)[0];
    // Two nodes without the home on one side, the home and two others on the other.
    let left: Vec<&Node> = (0..5).filter(|&i| i != home).take(2).map(|i| &c.nodes[i]).collect();
    let right: Vec<&Node> =
        (0..5).filter(|&i| !left.iter().any(|n| std::ptr::eq(*n, &c.nodes[i]))).map(|i| &c.nodes[i]).collect();
    q(&c.nodes[home], &["XADD", key, "*", "side", "before"]).expect("XADD");
    let _cuts = Cut::sides(&left, &right);
    wait_split(&left, &right);
    let mut added = BTreeSet::new();
    for i in 0..30 {
        for (side, node) in [("left", left[i % 2]), ("right", right[i % 3])] {
            let reply = q(node, &["XADD", key, "*", "side", side, "i", &i.to_string()]);
            let id = text(&reply.unwrap_or_else(|e| panic!("XADD through {} ({side}): {e}", node.addr())));
            assert!(added.insert(id.clone()), "{id} given twice");
        }
    }
    drop(_cuts);
    // After the heal (read repair and anti-entropy), every node reads every entry.
    for node in &c.nodes {
        wait_until("every entry on every node", Duration::from_secs(30), || {
            let got: BTreeSet<String> = ids(&q(node, &["XRANGE", key, "-", "+"]).ok()?).into_iter().collect();
            added.is_subset(&got).then_some(())
        });
    }
    let all = ids(&q(&c.nodes[home], &["XRANGE", key, "-", "+"]).expect("XRANGE"));
    assert_eq!(all.len(), added.len() + 1);
    let mut sorted = all.clone();
    sorted.sort_by_key(|id| id_of(id));
    assert_eq!(all, sorted, "XRANGE lists the entries in ID order");
    // Through the home, a new ID is above every ID of both sides.
    let next = text(&q(&c.nodes[home], &["XADD", key, "*", "side", "after"]).expect("XADD"));
    assert!(all.iter().all(|id| id_of(id) < id_of(&next)), "{next} is not above {all:?}");
    assert_eq!(q(&c.nodes[home], &["XLEN", key]).expect("XLEN"), Value::Int(all.len() as i64 + 1));
}
