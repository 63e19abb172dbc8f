//! The point of Dynamo, on real processes: writes succeed with owners dead or cut off, stand-ins
//! keep durable hints and hand them back, a split cluster heals into siblings, and a shopping
//! cart under kill -9, restarts and partitions loses no acknowledged add.

use crate::harness;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{local, parse_dget, query as q, sees, text, wait_until, Cluster, Cut, Node};
use redis::Value;

const NRW: [&str; 6] = ["--n", "3", "--r", "2", "--w", "2"];

fn hints(node: &Node) -> i64 {
    match q(node, &["KURA", "HINTS"]) {
        Ok(Value::Int(n)) => n,
        other => panic!("KURA HINTS: {other:?}"),
    }
}

#[test]
fn two_dead_owners_stand_ins_keep_durable_hints_and_hand_them_back() {
    let mut c = Cluster::start(5, &NRW);
    let key = "hinted-key";
    let owners = c.preflist(0, key);
    let dead = [owners[1], owners[2]];
    let live: Vec<usize> = (0..5).filter(|i| !dead.contains(i)).collect();
    let dead_addrs: Vec<String> = dead.iter().map(|&i| c.nodes[i].cluster_addr().to_string()).collect();
    for &i in &dead {
        c.nodes[i].kill9();
    }
    wait_until("the live nodes to see both dead owners down", Duration::from_secs(15), || {
        live.iter().all(|&i| dead_addrs.iter().all(|a| sees(&c.nodes[i], a, "down"))).then_some(())
    });
    // Writes and reads of the key succeed through every live node.
    for (n, &i) in live.iter().enumerate() {
        let value = format!("v{n}");
        assert_eq!(q(&c.nodes[i], &["SET", key, &value]).expect("SET with two owners dead"), Value::Okay);
        assert_eq!(text(&q(&c.nodes[i], &["GET", key]).expect("GET")), value);
    }
    let last = format!("v{}", live.len() - 1);
    // The stand-ins (the two live non-owners) hold hinted copies.
    let stand_ins: Vec<usize> = live.iter().copied().filter(|i| !owners.contains(i)).collect();
    assert_eq!(stand_ins.len(), 2);
    wait_until("both stand-ins to hold a hint", Duration::from_secs(20), || {
        stand_ins
            .iter()
            .all(|&i| hints(&c.nodes[i]) >= 1 && local(&c.nodes[i], key) == vec![last.clone()])
            .then_some(())
    });
    // A stand-in restarted (kill -9) still holds its hint: the owners are still dead.
    let s = stand_ins[0];
    c.nodes[s].restart();
    assert!(hints(&c.nodes[s]) >= 1, "the hint survived the restart");
    assert_eq!(local(&c.nodes[s], key), vec![last.clone()]);
    // The owners come back: they get the hints, and the stand-ins drop them.
    for &i in &dead {
        c.nodes[i].spawn();
    }
    wait_until("every hint to be delivered", Duration::from_secs(60), || {
        c.nodes.iter().all(|n| hints(n) == 0).then_some(())
    });
    for &i in &dead {
        assert_eq!(local(&c.nodes[i], key), vec![last.clone()], "owner {i} got the hinted write");
    }
    let delivered: f64 =
        c.nodes.iter().filter_map(|n| harness::metric(&n.metrics(), "kura_handoff_delivered_total")).sum();
    assert!(delivered >= 2.0, "deliveries were counted: {delivered}");
}

#[test]
fn a_split_cluster_takes_writes_on_both_sides_and_heals_into_siblings() {
    let c = Cluster::start(5, &NRW);
    let (left, right): (Vec<&Node>, Vec<&Node>) = (c.nodes[..2].iter().collect(), c.nodes[2..].iter().collect());
    assert_eq!(q(left[0], &["SET", "shared", "base"]).unwrap(), Value::Okay);
    let (ctx, values) = parse_dget(&q(right[0], &["DGET", "shared"]).unwrap());
    assert_eq!(values, vec!["base"]);
    {
        let _cuts = Cut::sides(&left, &right);
        harness::wait_split(&left, &right);
        for i in 0..100 {
            let (l, r) = (left[i % 2], right[i % 3]);
            let reply = q(l, &["SET", &format!("left{i}"), &format!("L{i}")]);
            assert_eq!(reply.unwrap_or_else(|e| panic!("SET left{i} via {}: {e}", l.addr())), Value::Okay);
            let reply = q(r, &["SET", &format!("right{i}"), &format!("R{i}")]);
            assert_eq!(reply.unwrap_or_else(|e| panic!("SET right{i} via {}: {e}", r.addr())), Value::Okay);
        }
        // The same read context, a write on each side: concurrent versions.
        q(left[1], &["DPUT", "shared", &ctx, "from-left"]).expect("DPUT on the left");
        q(right[1], &["DPUT", "shared", &ctx, "from-right"]).expect("DPUT on the right");
    }
    wait_until("every node's DGET to show both siblings", Duration::from_secs(60), || {
        c.nodes
            .iter()
            .all(|n| q(n, &["DGET", "shared"]).is_ok_and(|v| parse_dget(&v).1 == vec!["from-left", "from-right"]))
            .then_some(())
    });
    let (merged_ctx, _) = parse_dget(&q(&c.nodes[4], &["DGET", "shared"]).unwrap());
    q(&c.nodes[0], &["DPUT", "shared", &merged_ctx, "from-both"]).expect("the merge");
    wait_until("one value everywhere", Duration::from_secs(30), || {
        c.nodes
            .iter()
            .all(|n| q(n, &["DGET", "shared"]).is_ok_and(|v| parse_dget(&v).1 == vec!["from-both"]))
            .then_some(())
    });
    // Every write made during the partition reads back (hints reach the owners).
    wait_until("every partition-time write to read back", Duration::from_secs(60), || {
        (0..100)
            .all(|i| {
                let via = &c.nodes[i % 5];
                let l = q(via, &["GET", &format!("left{i}")]).map(|v| text(&v)).unwrap_or_default();
                let r = q(via, &["GET", &format!("right{i}")]).map(|v| text(&v)).unwrap_or_default();
                l == format!("L{i}") && r == format!("R{i}")
            })
            .then_some(())
    });
}

/// A cart is a set of items, stored as its items joined by commas; siblings merge by union.
fn items(values: &[String]) -> BTreeSet<String> {
    values.iter().flat_map(|v| v.split(',')).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[test]
fn shopping_cart_loses_no_acknowledged_add_under_faults() {
    let c =
        Arc::new(Mutex::new(Cluster::start(5, &["--n", "3", "--r", "2", "--w", "2", "--request-timeout-ms", "1000"])));
    let urls: Vec<String> = c.lock().unwrap().nodes.iter().map(|n| n.url()).collect();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let (failed, max_siblings) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (urls, acked, failed, max_siblings) =
                (urls.clone(), acked.clone(), failed.clone(), max_siblings.clone());
            std::thread::spawn(move || {
                for i in 0..60 {
                    let item = format!("c{client}-{i}");
                    let url = &urls[(client + i * 3) % urls.len()];
                    let attempt = || -> redis::RedisResult<()> {
                        let mut con =
                            redis::Client::open(url.as_str())?.get_connection_with_timeout(Duration::from_secs(2))?;
                        con.set_read_timeout(Some(Duration::from_secs(10)))?;
                        let v: Value = redis::cmd("DGET").arg("cart").query(&mut con)?;
                        let (ctx, values) = parse_dget(&v);
                        max_siblings.fetch_max(values.len(), Ordering::Relaxed);
                        let mut cart = items(&values);
                        cart.insert(item.clone());
                        let joined = cart.into_iter().collect::<Vec<_>>().join(",");
                        let _: String = redis::cmd("DPUT").arg("cart").arg(&ctx).arg(joined).query(&mut con)?;
                        Ok(())
                    };
                    match attempt() {
                        Ok(()) => {
                            acked.lock().unwrap().insert(item);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    // Faults, paced by the clients' progress rather than by the clock.
    let mut faults = 0;
    let progress = |n: usize| {
        let acked = acked.clone();
        let failed = failed.clone();
        wait_until("the clients to make progress", Duration::from_secs(120), move || {
            (acked.lock().unwrap().len() + failed.load(Ordering::Relaxed) >= n).then_some(())
        })
    };
    for round in 0..4 {
        progress(20 + round * 50);
        let victim = (round * 2 + 1) % 5;
        c.lock().unwrap().nodes[victim].kill9();
        faults += 1;
        progress(35 + round * 50);
        c.lock().unwrap().nodes[victim].spawn();
        let guard = c.lock().unwrap();
        let (a, b): (Vec<&Node>, Vec<&Node>) = (guard.nodes[..2].iter().collect(), guard.nodes[2..].iter().collect());
        let cuts = Cut::sides(&a, &b);
        faults += 1;
        drop(guard);
        progress(45 + round * 50);
        drop(cuts);
    }
    for t in clients {
        t.join().expect("client thread");
    }
    let acked = acked.lock().unwrap().clone();
    let c = c.lock().unwrap();
    c.wait_converged(Duration::from_secs(60));
    // Reads repair and hints land: the merged cart converges to hold every acknowledged add.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let missing: Vec<String> = loop {
        let cart = q(&c.nodes[0], &["DGET", "cart"]).map(|v| items(&parse_dget(&v).1)).unwrap_or_default();
        let missing: Vec<String> = acked.difference(&cart).cloned().collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(200)); // poll until the deadline
    };
    assert!(missing.is_empty(), "acknowledged adds missing from the final cart: {missing:?}");
    eprintln!(
        "shopping cart: {} adds acknowledged, {} failed, {faults} faults, at most {} siblings seen",
        acked.len(),
        failed.load(Ordering::Relaxed),
        max_siblings.load(Ordering::Relaxed)
    );
    assert!(acked.len() >= 120, "most adds were acknowledged: {}", acked.len());
}

#[test]
fn a_stand_in_writing_a_key_again_after_handing_it_off_never_reuses_a_version() {
    let c = Cluster::start(5, &NRW);
    let key = "reused";
    let owners: Vec<&Node> = c.preflist(0, key).into_iter().map(|i| &c.nodes[i]).collect();
    let stand_ins: Vec<&Node> =
        c.nodes.iter().filter(|n| !owners.iter().any(|o| o.cluster_addr() == n.cluster_addr())).collect();
    let hinted_write = |value: &str| {
        let _cuts = Cut::sides(&owners, &stand_ins);
        wait_until("the stand-ins to see every owner down", Duration::from_secs(15), || {
            stand_ins
                .iter()
                .all(|s| owners.iter().all(|o| sees(s, &o.cluster_addr().to_string(), "down")))
                .then_some(())
        });
        // No owner is reachable: a stand-in coordinates, with no history of the key.
        q(stand_ins[0], &["DPUT", key, "", value]).expect("a write with every owner cut off");
    };
    // Two stand-ins hold hints for two of the three owners; a read repairs the third.
    let delivered = |expect: Vec<&str>| {
        wait_until("the hints to reach the owners", Duration::from_secs(60), || {
            c.nodes.iter().all(|n| hints(n) == 0).then_some(())
        });
        wait_until("every owner to hold the write", Duration::from_secs(30), || {
            let _ = q(owners[0], &["DGET", key]);
            owners.iter().all(|o| local(o, key) == expect).then_some(())
        });
    };
    hinted_write("first");
    delivered(vec!["first"]);
    // The stand-in dropped its hint: its own copy of the key is empty again. Its next write
    // must still be a new version, not one the owners think they have seen.
    assert!(local(stand_ins[0], key).is_empty());
    hinted_write("second");
    delivered(vec!["first", "second"]);
    for n in &c.nodes {
        assert_eq!(parse_dget(&q(n, &["DGET", key]).unwrap()).1, vec!["first", "second"]);
    }
}

/// A forwarded write held up by a partition is not applied when the partition heals. A stand-in
/// forwards `SET k old` to the key's owners, which it cannot reach yet (the cut is new: it
/// still thinks them up), so it coordinates the write itself and answers; `SET k new` follows,
/// acknowledged. The forwards sit in the kernel's send queues, and TCP delivers them once the
/// cut is gone; an owner that ran such a forward would make `old` a new write, newer than
/// `new`. Each carries its sender's deadline instead, and arrives refused.
#[test]
fn a_forward_held_up_by_a_partition_is_not_applied_after_the_heal() {
    let c = Cluster::start(5, &NRW);
    let key = "late-forward";
    let owners: Vec<&Node> = c.preflist(0, key).into_iter().map(|i| &c.nodes[i]).collect();
    let stand_ins: Vec<&Node> =
        c.nodes.iter().filter(|n| !owners.iter().any(|o| o.cluster_addr() == n.cluster_addr())).collect();
    {
        let _cuts = Cut::sides(&owners, &stand_ins);
        assert_eq!(q(stand_ins[0], &["SET", key, "old"]), Ok(Value::Okay));
        assert_eq!(q(stand_ins[0], &["SET", key, "new"]), Ok(Value::Okay));
    }
    wait_until("the hints to reach the owners", Duration::from_secs(60), || {
        c.nodes.iter().all(|n| hints(n) == 0).then_some(())
    });
    // The held-up forwards arrive within a few retransmissions of the heal.
    for _ in 0..10 {
        for n in &c.nodes {
            assert_eq!(q(n, &["GET", key]), Ok(Value::BulkString(b"new".to_vec())), "via {}", n.ip);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
