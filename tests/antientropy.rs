//! Anti-entropy on real processes: a node that lost its disk is refilled by Merkle exchanges,
//! replicas that diverged with no hints to carry the difference converge, and a delete made
//! during the divergence stays deleted, also after its tombstone is reaped.

use crate::harness;

use std::time::Duration;

use harness::{local, metric, parse_dget, query as q, text, wait_until, Cluster, Cut, Node};
use redis::Value;

/// KURA LOCAL of many keys at once (a pipeline): each key's sorted values.
fn locals(node: &Node, keys: &[String]) -> Vec<Vec<String>> {
    let mut con = node.conn();
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.cmd("KURA").arg("LOCAL").arg(k);
    }
    let replies: Vec<Value> = pipe.query(&mut con).expect("KURA LOCAL");
    replies.iter().map(|v| parse_dget(v).1).collect()
}

fn sum_metric(c: &Cluster, series: &str) -> f64 {
    c.nodes.iter().filter(|n| harness::ping(n.addr())).filter_map(|n| metric(&n.metrics(), series)).sum()
}

#[test]
fn a_node_that_lost_its_disk_is_refilled_and_its_new_writes_are_kept() {
    // `--aae-walk-at-open-keys 0`: a node restarted on its data builds its leaves in the
    // background (as a large store does), and its rounds wait for them.
    let mut c =
        Cluster::start(3, &["--n", "3", "--r", "2", "--w", "2", "--aae-interval", "5", "--aae-walk-at-open-keys", "0"]);
    let keys: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
    {
        let mut con = c.nodes[0].conn();
        let mut pipe = redis::pipe();
        for (i, k) in keys.iter().enumerate() {
            pipe.cmd("SET").arg(k).arg(format!("v{i}")).ignore();
        }
        pipe.query::<()>(&mut con).expect("load");
    }
    // A key the doomed node coordinated itself (with three nodes it is in every preference
    // list, so it coordinates what it receives).
    assert_eq!(q(&c.nodes[2], &["SET", "mine", "old"]).unwrap(), Value::Okay);
    wait_until("every replica to hold every key", Duration::from_secs(30), || {
        c.nodes.iter().all(|n| locals(n, &keys).iter().all(|v| v.len() == 1)).then_some(())
    });
    // node1 restarts on its data: its leaves are built by the walk in the background.
    c.nodes[0].restart();
    wait_until("node1's leaves to be built in the background", Duration::from_secs(60), || {
        c.nodes[0].log_tail(400).contains("anti-entropy leaves built in").then_some(())
    });
    // Lose node3's disk and bring it back under the same node id.
    c.nodes[2].kill9();
    std::fs::remove_dir_all(&c.nodes[2].dir).expect("wiping the data dir");
    c.nodes[2].spawn();
    // It answers PING before it has rejoined (its cluster state comes from a seed); what it
    // holds is not checked here, as anti-entropy may refill it at once (the repairs counted
    // below show that it had lost the keys).
    wait_until("the rebuilt node to rejoin its cluster", Duration::from_secs(60), || {
        q(&c.nodes[2], &["KURA", "LOCAL", "k0"]).ok()
    });
    // It coordinates a write to a key it had written before it lost its disk: its new
    // incarnation's version must not look already seen to the other replicas.
    q(&c.nodes[2], &["DPUT", "mine", "", "again"]).expect("a write through the rebuilt node");
    wait_until("anti-entropy to refill the rebuilt node", Duration::from_secs(90), || {
        let got = locals(&c.nodes[2], &keys);
        got.iter().enumerate().all(|(i, v)| v == &vec![format!("v{i}")]).then_some(())
    });
    wait_until("the new write to be kept everywhere", Duration::from_secs(60), || {
        c.nodes.iter().all(|n| local(n, "mine") == vec!["again".to_string(), "old".to_string()]).then_some(())
    });
    assert!(sum_metric(&c, "kura_aae_keys_repaired_total") >= 500.0, "the repairs were counted");
    let info = text(&q(&c.nodes[2], &["INFO", "antientropy"]).unwrap());
    assert!(info.contains("aae_keys_repaired:"), "{info}");
}

#[test]
fn diverged_replicas_converge_and_a_delete_stays_deleted() {
    let c = Cluster::start(3, &["--n", "3", "--r", "2", "--w", "2", "--aae-interval", "3"]);
    let (a, b, lone) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    assert_eq!(q(a, &["SET", "doomed", "alive"]).unwrap(), Value::Okay);
    assert_eq!(q(a, &["SET", "sib", "base"]).unwrap(), Value::Okay);
    wait_until("the lone node to hold the base values", Duration::from_secs(30), || {
        (local(lone, "doomed") == vec!["alive"] && local(lone, "sib") == vec!["base"]).then_some(())
    });
    let (ctx, _) = parse_dget(&q(a, &["DGET", "sib"]).unwrap());
    let div: Vec<String> = (0..50).map(|i| format!("div{i}")).collect();
    {
        // Three nodes, three replicas: no stand-in exists, so no hint will carry anything.
        let _cuts = Cut::sides(&[lone], &[a, b]);
        let addr = lone.cluster_addr().to_string();
        wait_until("the majority to see the lone node down", Duration::from_secs(15), || {
            harness::members(a).iter().any(|m| m["addr"] == addr && m["reachable"] == "down").then_some(())
        });
        for (i, k) in div.iter().enumerate() {
            assert_eq!(q(a, &["SET", k, &format!("d{i}")]).unwrap(), Value::Okay);
        }
        assert_eq!(q(b, &["DEL", "doomed"]).unwrap(), Value::Int(1));
        q(a, &["DPUT", "sib", &ctx, "left"]).expect("a write on the majority side");
        q(lone, &["DPUT", "sib", &ctx, "right", "W", "1"]).expect("a W=1 write on the lone side");
        assert_eq!(local(lone, "doomed"), vec!["alive"]);
    }
    // Healed; nobody reads. Anti-entropy alone brings the replicas together.
    wait_until("the replicas to converge", Duration::from_secs(90), || {
        let same = c.nodes.iter().all(|n| {
            local(n, "sib") == vec!["left", "right"]
                && local(n, "doomed").is_empty()
                && locals(n, &div).iter().enumerate().all(|(i, v)| v == &vec![format!("d{i}")])
        });
        same.then_some(())
    });
    // The tombstone is reaped once every replica has it, and the delete stays.
    wait_until("the tombstone to be reaped everywhere", Duration::from_secs(60), || {
        c.nodes.iter().all(|n| metric(&n.metrics(), "kura_reaped_keys_total").unwrap_or(0.0) >= 1.0).then_some(())
    });
    for n in &c.nodes {
        assert_eq!(q(n, &["KURA", "AAE"]).unwrap(), Value::Okay);
    }
    wait_until("another anti-entropy round on every node", Duration::from_secs(30), || {
        let rounds: Vec<u64> = c
            .nodes
            .iter()
            .map(|n| {
                let info = text(&q(n, &["INFO", "antientropy"]).unwrap());
                info.lines()
                    .find_map(|l| l.strip_prefix("aae_exchanges:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            })
            .collect();
        rounds.iter().all(|r| *r > 0).then_some(())
    });
    for n in &c.nodes {
        assert_eq!(q(n, &["GET", "doomed"]).unwrap(), Value::Nil, "the delete stays via {}", n.addr());
        assert!(local(n, "doomed").is_empty());
    }
}

/// Whether `node` stores anything for `key`, a tombstone included: KURA LOCAL of a missing
/// key answers the empty context.
fn holds_record(node: &Node, key: &str) -> bool {
    let context = |k: &str| parse_dget(&q(node, &["KURA", "LOCAL", k]).unwrap()).0;
    context(key) != context("never-written-key")
}

/// A stand-in holds a hinted old value it cannot deliver (cut off from the owner) while the
/// key is deleted and its tombstone passes the reap grace: the tombstone must not be reaped
/// while the hint exists, or delivering the hint afterwards would bring the value back.
#[test]
fn a_tombstone_outlives_a_hint_of_the_value_it_deleted() {
    let mut c = Cluster::start(4, &["--n", "3", "--r", "2", "--w", "2", "--reap-grace-ms", "1000"]);
    let key = "cart-item";
    let owners = c.preflist(0, key);
    let (coordinator, owner) = (owners[0], owners[2]);
    let stand_in = (0..4).find(|i| !owners.contains(i)).expect("four nodes, three owners");
    let owner_addr = c.nodes[owner].cluster_addr().to_string();
    c.nodes[owner].kill9();
    wait_until("the others to see the owner down", Duration::from_secs(15), || {
        (0..4)
            .filter(|&i| i != owner)
            .all(|i| harness::members(&c.nodes[i]).iter().any(|m| m["addr"] == owner_addr && m["reachable"] == "down"))
            .then_some(())
    });
    assert_eq!(q(&c.nodes[coordinator], &["SET", key, "old"]).unwrap(), Value::Okay);
    wait_until("the stand-in to hold the hinted copy", Duration::from_secs(20), || {
        (local(&c.nodes[stand_in], key) == vec!["old"]).then_some(())
    });
    // The owner returns, but the stand-in cannot reach it: the hint stays where it is.
    let _cut = Cut::between(&c.nodes[stand_in], &c.nodes[owner]);
    c.nodes[owner].spawn();
    wait_until("the coordinator to see the owner up", Duration::from_secs(30), || {
        harness::members(&c.nodes[coordinator])
            .iter()
            .any(|m| m["addr"] == owner_addr && m["reachable"] == "up")
            .then_some(())
    });
    assert_eq!(q(&c.nodes[coordinator], &["DEL", key]).unwrap(), Value::Int(1));
    wait_until("all three owners to hold the tombstone", Duration::from_secs(30), || {
        owners.iter().all(|&i| holds_record(&c.nodes[i], key) && local(&c.nodes[i], key).is_empty()).then_some(())
    });
    // Every owner's reaper has had the tombstone past its grace before it: it either kept the
    // tombstone (right) or reaped it (wrong: the hint brings the value back below).
    wait_until("every owner's reaper to have decided on the tombstone", Duration::from_secs(60), || {
        owners
            .iter()
            .all(|&i| {
                let text = c.nodes[i].metrics();
                metric(&text, "kura_reap_deferred_total").unwrap_or(0.0) >= 1.0
                    || metric(&text, "kura_reaped_keys_total").unwrap_or(0.0) >= 1.0
            })
            .then_some(())
    });
    drop(_cut);
    wait_until("the hint to be delivered", Duration::from_secs(60), || {
        match q(&c.nodes[stand_in], &["KURA", "HINTS"]) {
            Ok(Value::Int(0)) => Some(()),
            _ => None,
        }
    });
    for n in &c.nodes {
        assert_eq!(q(n, &["GET", key]).unwrap(), Value::Nil, "the delete stays via {}", n.addr());
        assert!(local(n, key).is_empty(), "no live value on {}", n.addr());
    }
    // With the hint gone the tombstone is reaped after all.
    wait_until("the tombstone to be reaped everywhere", Duration::from_secs(60), || {
        c.nodes.iter().all(|n| !holds_record(n, key)).then_some(())
    });
    for n in &c.nodes {
        assert_eq!(q(n, &["GET", key]).unwrap(), Value::Nil, "still deleted via {}", n.addr());
    }
}
