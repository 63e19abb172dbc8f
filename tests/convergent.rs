//! Types that converge (issue 13), on real processes: counters incremented on both sides of a
//! partition add up after the heal, a DEL on one side resets what it saw while the other
//! side's increments survive, sets and hashes written on both sides hold both sides' members
//! and fields and the removals each side observed, and racing increments on one node are
//! exact; lists and sorted sets written on both sides hold every push no pop returned and
//! both sides' members with their documented scores.

use crate::harness;

use std::time::Duration;

use harness::{query as q, wait_until, Cluster, Cut, Node};
use redis::Value;

const NRW: [&str; 6] = ["--n", "3", "--r", "2", "--w", "2"];

fn int(v: redis::RedisResult<Value>) -> i64 {
    match v {
        Ok(Value::Int(n)) => n,
        other => panic!("an integer reply, got {other:?}"),
    }
}

fn get(node: &Node, key: &str) -> Option<String> {
    match q(node, &["GET", key]) {
        Ok(Value::BulkString(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        Ok(Value::Nil) => None,
        other => panic!("GET {key}: {other:?}"),
    }
}

fn sorted(v: redis::RedisResult<Value>) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("a bulk string, got {other:?}"),
            })
            .collect(),
        other => panic!("an array, got {other:?}"),
    };
    out.sort();
    out
}

/// HGETALL as sorted `field=value` lines.
fn fields(node: &Node, key: &str) -> Vec<String> {
    let flat = sorted(q(node, &["HGETALL", key]).map(|v| {
        match v {
            Value::Array(items) => Value::Array(
                items
                    .chunks(2)
                    .map(|p| {
                        let text = |v: &Value| match v {
                            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                            other => panic!("{other:?}"),
                        };
                        Value::BulkString(format!("{}={}", text(&p[0]), text(&p[1])).into_bytes())
                    })
                    .collect(),
            ),
            other => other,
        }
    }));
    flat
}

/// Five nodes split 2/3. Before the split `hits` is 100, `reset` is 50, the set `cart` holds
/// a, b, c and the hash `profile` has `name` and a `visits` counter at 10. During it, each
/// side INCRBYs `hits` through each of its nodes, the left DELs `reset` while the right
/// increments it, both PFADD visitors, both SADD their own members to `cart`, the left SREMs
/// `a` (added before the split), both HSET a field of their own and HINCRBY `visits`. After
/// the heal every node reads the exact sum of `hits`, `reset` holds only the increments the
/// DEL did not see, PFCOUNT counts every side's visitors, `cart` holds every added member
/// and not `a`, and `profile` holds both sides' fields and the sum of their increments; of two
/// keys written with different types on the two sides, each reads as its newer write's type.
#[test]
fn convergent_types_on_both_sides_of_a_partition_converge() {
    let c = Cluster::start(5, &NRW);
    let (left, right): (Vec<&Node>, Vec<&Node>) = (c.nodes[..2].iter().collect(), c.nodes[2..].iter().collect());
    // `reset` and `cart` are read on both sides, so each side must hold a copy: a side without
    // an owner of a key reads it as missing (Dynamo's would too), and with random ports the
    // owners of a fixed name may all fall on one side.
    let on_both_sides = |base: &str| {
        (0..)
            .map(|i| format!("{base}:{i}"))
            .find(|k| {
                let owners = c.preflist(0, k);
                owners.iter().any(|&i| i < 2) && owners.iter().any(|&i| i >= 2)
            })
            .expect("a key")
    };
    let (reset_key, cart_key) = (on_both_sides("reset"), on_both_sides("cart"));
    let (reset, cart_key) = (reset_key.as_str(), cart_key.as_str());
    assert_eq!(int(q(left[0], &["INCRBY", "hits", "100"])), 100);
    assert_eq!(q(right[0], &["SET", reset, "50"]), Ok(Value::Okay));
    assert_eq!(int(q(left[1], &["INCR", reset])), 51);
    assert_eq!(int(q(right[1], &["SADD", cart_key, "a", "b", "c"])), 3);
    assert_eq!(int(q(left[0], &["HSET", "profile", "name", "kura"])), 1);
    assert_eq!(int(q(right[2], &["HINCRBY", "profile", "visits", "10"])), 10);
    // Every owner holds the writes before the split (W=2 acknowledged them; the third owner
    // gets them in the background): the DEL on the left must see the INCR to reset it (a DEL
    // decided on a copy without it leaves it counting, rightly, and `reset` reads 16).
    wait_until("every owner to hold the writes made before the split", Duration::from_secs(30), || {
        ["hits", reset, cart_key, "profile"]
            .iter()
            .all(|k| {
                let owners = harness::preflist(&c.nodes[0], k);
                let copies: Vec<Vec<String>> = owners.iter().map(|a| harness::local(c.by_cluster_addr(a), k)).collect();
                copies.windows(2).all(|w| w[0] == w[1]) && copies.iter().all(|v| !v.is_empty())
            })
            .then_some(())
    });
    let mut expected = 100;
    let mut visits = 10;
    {
        let _cuts = Cut::sides(&left, &right);
        harness::wait_split(&left, &right);
        for i in 0..30 {
            let (l, r) = (left[i % 2], right[i % 3]);
            int(q(l, &["INCRBY", "hits", "1"]));
            int(q(r, &["INCRBY", "hits", "10"]));
            int(q(r, &["DECRBY", "hits", "3"]));
            expected += 1 + 10 - 3;
        }
        assert_eq!(int(q(left[0], &["DEL", reset])), 1);
        assert_eq!(get(left[1], reset), None);
        for r in &right {
            int(q(r, &["INCRBY", reset, "5"]));
        }
        assert_eq!(get(right[0], reset), Some("66".into()), "the right side alone: 51 + 15");
        // Writes of different types, one per side, the later one a few hundred ms after.
        assert_eq!(q(left[0], &["SET", "mixed", "text"]), Ok(Value::Okay));
        assert_eq!(int(q(right[1], &["HSET", "mixed2", "f", "v"])), 1);
        // Sets and hashes: each side its own members and fields; the left removes `a`.
        for i in 0..6 {
            let (l, r) = (left[i % 2], right[i % 3]);
            assert_eq!(int(q(l, &["SADD", cart_key, &format!("left-{i}")])), 1);
            assert_eq!(int(q(r, &["SADD", cart_key, &format!("right-{i}"), "b"])), 1);
            int(q(l, &["HINCRBY", "profile", "visits", "1"]));
            int(q(r, &["HINCRBY", "profile", "visits", "100"]));
            visits += 101;
        }
        assert_eq!(int(q(left[1], &["SREM", cart_key, "a"])), 1);
        assert_eq!(int(q(left[0], &["SISMEMBER", cart_key, "a"])), 0);
        assert_eq!(int(q(right[0], &["SISMEMBER", cart_key, "a"])), 1, "the right side has not seen the removal");
        assert_eq!(int(q(left[0], &["HSET", "profile", "left", "L"])), 1);
        assert_eq!(int(q(right[1], &["HSET", "profile", "right", "R"])), 1);
        // HyperLogLogs: each side adds its own visitors.
        for i in 0..200 {
            let side = if i % 2 == 0 { &left } else { &right };
            int(q(side[i % side.len()], &["PFADD", "visitors", &format!("user-{i}")]));
        }
        assert_eq!(int(q(right[0], &["SADD", "mixed", "a"])), 1);
        assert_eq!(q(left[1], &["SET", "mixed2", "s"]), Ok(Value::Okay));
    }
    // The union of both sides' visitors, added through one node after the heal, is the
    // reference: equal registers give an equal count. (Right after the heal some of those adds
    // may be decided by a stand-in, so the reference converges too before it is compared.)
    for i in 0..200 {
        int(q(&c.nodes[0], &["PFADD", "reference", &format!("user-{i}")]));
    }
    wait_until("every node to count both sides' visitors as the reference", Duration::from_secs(60), || {
        let reference = int(q(&c.nodes[0], &["PFCOUNT", "reference"]));
        ((190..=210).contains(&reference)
            && c.nodes.iter().all(|n| {
                int(q(n, &["PFCOUNT", "reference"])) == reference && int(q(n, &["PFCOUNT", "visitors"])) == reference
            }))
        .then_some(())
    });
    let expected = expected.to_string();
    wait_until("every node to read both sides' increments", Duration::from_secs(60), || {
        c.nodes
            .iter()
            .all(|n| get(n, "hits").as_deref() == Some(&expected) && get(n, reset).as_deref() == Some("15"))
            .then_some(())
    });
    let mut cart: Vec<String> = ["b", "c"].iter().map(|s| s.to_string()).collect();
    cart.extend((0..6).flat_map(|i| [format!("left-{i}"), format!("right-{i}")]));
    cart.sort();
    let profile = vec!["left=L".to_string(), "name=kura".into(), "right=R".into(), format!("visits={visits}")];
    // Between concurrent writes of different types the newest write's type wins, everywhere.
    let kind = |n: &Node, k: &str| harness::text(&q(n, &["TYPE", k]).expect("TYPE"));
    wait_until("every node to read the newest write's type", Duration::from_secs(60), || {
        c.nodes.iter().all(|n| kind(n, "mixed") == "set" && kind(n, "mixed2") == "string").then_some(())
    });
    for n in &c.nodes {
        assert_eq!(sorted(q(n, &["SMEMBERS", "mixed"])), vec!["a"]);
        assert_eq!(get(n, "mixed2").as_deref(), Some("s"));
    }
    wait_until("every node to hold both sides' members and fields", Duration::from_secs(60), || {
        c.nodes
            .iter()
            .all(|n| sorted(q(n, &["SMEMBERS", cart_key])) == cart && fields(n, "profile") == profile)
            .then_some(())
    });
    // Converged, not just read-repaired once: every replica's own copy agrees.
    for n in &c.nodes {
        assert_eq!(get(n, "hits").as_deref(), Some(expected.as_str()));
        assert_eq!(int(q(n, &["INCRBY", "hits", "0"])), expected.parse::<i64>().unwrap());
        assert_eq!(int(q(n, &["SCARD", cart_key])), cart.len() as i64);
        assert_eq!(int(q(n, &["HINCRBY", "profile", "visits", "0"])), visits);
    }
    // SMOVE through one node: every node comes to read the move (a write that a slow replica
    // made sloppy may be missed by the next quorum read for a moment: Dynamo's R + W > N holds
    // for the owners only), and then a second SMOVE finds nothing to move.
    assert_eq!(int(q(&c.nodes[3], &["SMOVE", cart_key, "moved", "b"])), 1);
    wait_until("every node to read the move", Duration::from_secs(60), || {
        c.nodes
            .iter()
            .all(|n| int(q(n, &["SISMEMBER", "moved", "b"])) == 1 && int(q(n, &["SISMEMBER", cart_key, "b"])) == 0)
            .then_some(())
    });
    assert_eq!(int(q(&c.nodes[1], &["SMOVE", cart_key, "moved", "b"])), 0, "b is no longer in the cart");
}

/// Eight clients racing INCR on one node: the count is exact; INCR keeps a key's TTL; a SET
/// resets the counter; INCR on a non-integer is Redis's error.
#[test]
fn racing_increments_on_one_node_are_exact() {
    let node = Node::start(std::net::Ipv4Addr::LOCALHOST, &[]);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = node.client("");
            std::thread::spawn(move || {
                let mut con = client.get_connection().expect("connect");
                for _ in 0..250 {
                    let _: i64 = redis::cmd("INCR").arg("race").query(&mut con).expect("INCR");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread");
    }
    assert_eq!(get(&node, "race").as_deref(), Some("2000"));
    assert_eq!(q(&node, &["EXPIRE", "race", "100"]), Ok(Value::Int(1)));
    assert_eq!(int(q(&node, &["INCR", "race"])), 2001);
    assert!(int(q(&node, &["TTL", "race"])) > 90, "INCR kept the TTL");
    assert_eq!(q(&node, &["SET", "race", "7"]), Ok(Value::Okay));
    assert_eq!(int(q(&node, &["DECRBY", "race", "10"])), -3);
    assert_eq!(q(&node, &["TYPE", "race"]), Ok(Value::SimpleString("string".into())));
    assert_eq!(q(&node, &["SET", "word", "abc"]), Ok(Value::Okay));
    assert_eq!(harness::err_of(q(&node, &["INCR", "word"])), "ERR value is not an integer or out of range");
    // Restarted on the same data: the counter is what it was.
    let mut node = node;
    node.restart();
    assert_eq!(get(&node, "race").as_deref(), Some("-3"));
}

/// The keyspace commands work on counters and HyperLogLogs as on strings: COPY and RENAME
/// carry them (a copied counter goes on counting, a copied HLL goes on estimating), EXPIRE
/// keeps them what they are, SCAN TYPE string lists them, FLUSHALL removes them.
#[test]
fn keyspace_commands_work_on_counters_and_hyperloglogs() {
    let node = Node::start(std::net::Ipv4Addr::LOCALHOST, &[]);
    assert_eq!(int(q(&node, &["INCRBY", "c", "5"])), 5);
    assert_eq!(int(q(&node, &["COPY", "c", "c2"])), 1);
    assert_eq!(int(q(&node, &["INCR", "c2"])), 6);
    assert_eq!(q(&node, &["RENAME", "c", "c3"]), Ok(Value::Okay));
    assert_eq!(int(q(&node, &["INCR", "c3"])), 6);
    assert_eq!(int(q(&node, &["PFADD", "h", "a", "b", "c"])), 1);
    assert_eq!(int(q(&node, &["COPY", "h", "h2"])), 1);
    assert_eq!(int(q(&node, &["PFADD", "h2", "d"])), 1);
    assert_eq!(int(q(&node, &["PFCOUNT", "h2"])), 4);
    assert_eq!(q(&node, &["RENAME", "h", "h3"]), Ok(Value::Okay));
    assert_eq!(int(q(&node, &["PFCOUNT", "h3"])), 3);
    assert_eq!(int(q(&node, &["EXPIRE", "c3", "100"])), 1);
    assert_eq!(int(q(&node, &["INCR", "c3"])), 7);
    assert!(int(q(&node, &["TTL", "c3"])) > 90);
    assert_eq!(int(q(&node, &["PFADD", "h3", "z"])), 1);
    let listed = match q(&node, &["SCAN", "0", "TYPE", "string", "COUNT", "100"]) {
        Ok(Value::Array(parts)) => match &parts[1] {
            Value::Array(keys) => keys.len(),
            other => panic!("{other:?}"),
        },
        other => panic!("SCAN: {other:?}"),
    };
    assert_eq!(listed, 4);
    assert_eq!(q(&node, &["FLUSHALL"]), Ok(Value::Okay));
    assert_eq!(int(q(&node, &["DBSIZE"])), 0);
}

/// Sets and hashes through the keyspace commands: TYPE, WRONGTYPE for the string commands,
/// RENAME and COPY (the copy is a set of its own: removing from it leaves the source), EXPIRE
/// and a TTL that SADD keeps, SCAN TYPE, DEL then a fresh SADD (nothing of the old set comes
/// back), an emptied set is a missing key, and a restart keeps them.
#[test]
fn keyspace_commands_work_on_sets_and_hashes() {
    let mut node = Node::start(std::net::Ipv4Addr::LOCALHOST, &[]);
    let wrong = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(int(q(&node, &["SADD", "s", "a", "b"])), 2);
    assert_eq!(int(q(&node, &["HSET", "h", "f", "1"])), 1);
    assert_eq!(q(&node, &["TYPE", "s"]), Ok(Value::SimpleString("set".into())));
    assert_eq!(q(&node, &["TYPE", "h"]), Ok(Value::SimpleString("hash".into())));
    for cmd in [&["GET", "s"][..], &["INCR", "h"], &["APPEND", "s", "x"], &["HGET", "s", "f"], &["SADD", "h", "x"]] {
        assert_eq!(harness::err_of(q(&node, cmd)), wrong, "{cmd:?}");
    }
    assert_eq!(q(&node, &["MGET", "s", "h"]), Ok(Value::Array(vec![Value::Nil, Value::Nil])));
    assert_eq!(int(q(&node, &["COPY", "s", "s2"])), 1);
    assert_eq!(int(q(&node, &["SREM", "s2", "a"])), 1);
    assert_eq!(sorted(q(&node, &["SMEMBERS", "s"])), vec!["a", "b"]);
    assert_eq!(q(&node, &["RENAME", "h", "h2"]), Ok(Value::Okay));
    assert_eq!(int(q(&node, &["HINCRBY", "h2", "f", "4"])), 5);
    assert_eq!(int(q(&node, &["EXISTS", "h"])), 0);
    assert_eq!(int(q(&node, &["EXPIRE", "s", "100"])), 1);
    assert_eq!(int(q(&node, &["SADD", "s", "c"])), 1);
    assert!(int(q(&node, &["TTL", "s"])) > 90, "SADD keeps the TTL");
    let scan = |t: &str| match q(&node, &["SCAN", "0", "TYPE", t, "COUNT", "100"]) {
        Ok(Value::Array(parts)) => sorted(Ok(parts[1].clone())),
        other => panic!("SCAN: {other:?}"),
    };
    assert_eq!(scan("set"), vec!["s", "s2"]);
    assert_eq!(scan("hash"), vec!["h2"]);
    assert_eq!(int(q(&node, &["DEL", "s"])), 1);
    assert_eq!(int(q(&node, &["SADD", "s", "z"])), 1);
    assert_eq!(sorted(q(&node, &["SMEMBERS", "s"])), vec!["z"], "nothing of the deleted set came back");
    assert_eq!(int(q(&node, &["TTL", "s"])), -1, "a new set");
    assert_eq!(int(q(&node, &["SREM", "s2", "b"])), 1);
    assert_eq!(int(q(&node, &["EXISTS", "s2"])), 0, "an emptied set is a missing key");
    assert_eq!(q(&node, &["SET", "s2", "text"]), Ok(Value::Okay));
    assert_eq!(q(&node, &["TYPE", "s2"]), Ok(Value::SimpleString("string".into())));
    node.restart();
    assert_eq!(sorted(q(&node, &["SMEMBERS", "s"])), vec!["z"]);
    assert_eq!(fields(&node, "h2"), vec!["f=5"]);
    assert_eq!(q(&node, &["FLUSHALL"]), Ok(Value::Okay));
    assert_eq!(int(q(&node, &["DBSIZE"])), 0);
}

/// INFO's `storage_records_written` and `storage_bytes_written` of `node`.
fn written(node: &Node) -> (i64, i64) {
    let info = match q(node, &["INFO", "persistence"]) {
        Ok(Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(Value::VerbatimString { text, .. }) => text,
        other => panic!("INFO: {other:?}"),
    };
    let stat = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {info}"))
    };
    (stat("storage_records_written"), stat("storage_bytes_written"))
}

/// Issue 13, item 6: the cost of an update does not grow with the set. On a set and a hash of
/// 20,000 members, SADD, SREM, HSET, HDEL and HINCRBY each write the key's header and the one
/// member they change (two records, as INFO counts them), and about the bytes they write on a
/// set of 3 (a whole-value store would write the 20,000 members each time); after a kill -9
/// the members are all there.
#[test]
fn an_update_of_a_large_set_or_hash_writes_what_it_changes() {
    let mut node = Node::start(std::net::Ipv4Addr::LOCALHOST, &[]);
    let members: Vec<String> = (0..20_000).map(|i| format!("member:{i:05}")).collect();
    for chunk in members.chunks(5_000) {
        let mut sadd = vec!["SADD", "big"];
        sadd.extend(chunk.iter().map(String::as_str));
        assert_eq!(int(q(&node, &sadd)), chunk.len() as i64);
        let mut hset = vec!["HSET", "wide"];
        hset.extend(chunk.iter().flat_map(|m| [m.as_str(), "v"]));
        assert_eq!(int(q(&node, &hset)), chunk.len() as i64);
    }
    assert_eq!(int(q(&node, &["SADD", "small", "a", "b", "c"])), 3);
    let cost = |cmd: &[&str], reply: i64| {
        let before = written(&node);
        assert_eq!(int(q(&node, cmd)), reply, "{cmd:?}");
        let after = written(&node);
        (after.0 - before.0, after.1 - before.1)
    };
    let small = cost(&["SADD", "small", "new"], 1);
    assert_eq!(small.0, 2, "SADD to a set of 3");
    let records = |c: (i64, i64), what: &str| {
        assert!(c.1 <= 2 * small.1, "{what} wrote {} bytes, SADD to a set of 3 {}", c.1, small.1);
        c.0
    };
    assert_eq!(records(cost(&["SADD", "big", "new"], 1), "SADD"), 2);
    assert_eq!(records(cost(&["SREM", "big", "new"], 1), "SREM"), 2);
    assert_eq!(records(cost(&["SREM", "small", "new"], 1), "SREM small"), 2);
    assert_eq!(records(cost(&["HSET", "wide", "f", "1"], 1), "HSET"), 2);
    assert_eq!(records(cost(&["HINCRBY", "wide", "f", "2"], 3), "HINCRBY"), 2);
    assert_eq!(records(cost(&["HDEL", "wide", "member:00007"], 1), "HDEL"), 2);
    node.kill9();
    node.spawn();
    assert_eq!(int(q(&node, &["SCARD", "big"])), 20_000);
    assert_eq!(int(q(&node, &["HLEN", "wide"])), 20_000);
    assert_eq!(int(q(&node, &["SISMEMBER", "big", "member:19999"])), 1);
    assert_eq!(int(q(&node, &["HEXISTS", "wide", "member:00007"])), 0);
    assert_eq!(get_field(&node, "wide", "f"), "3");
    assert_eq!(sorted(q(&node, &["SMEMBERS", "small"])), vec!["a", "b", "c"]);
}

/// The sum over `nodes` of a Prometheus series.
fn metric_sum(nodes: &[&Node], series: &str) -> f64 {
    nodes.iter().map(|n| harness::metric(&n.metrics(), series).unwrap_or(0.0)).sum()
}

/// In a cluster (three nodes, N=3, R=W=2) an update of a large set moves what it changed:
/// the deciding owner's quorum read is answered "the same as yours" by digest, the write
/// goes to the other replicas as a patch of the version before, and every node writes about
/// the bytes an update of a 3-member set writes. A replica that missed a write (killed
/// during it) refuses the next patch as stale and gets the whole set; then every copy is one
/// version again.
#[test]
fn a_cluster_moves_what_an_update_of_a_large_set_changed() {
    let mut cluster = Cluster::start(3, &NRW);
    let members: Vec<String> = (0..20_000).map(|i| format!("member:{i:05}")).collect();
    for chunk in members.chunks(5_000) {
        let mut sadd = vec!["SADD", "big"];
        sadd.extend(chunk.iter().map(String::as_str));
        assert_eq!(int(q(&cluster.nodes[0], &sadd)), chunk.len() as i64);
    }
    assert_eq!(int(q(&cluster.nodes[0], &["SADD", "small", "a", "b", "c"])), 3);
    let applied = r#"kura_replication_patches_total{outcome="applied"}"#;
    let stale = r#"kura_replication_patches_total{outcome="stale"}"#;
    // One SADD through `via`, once both other replicas applied its patch: the bytes every
    // node wrote for it.
    let cost = |cluster: &Cluster, key: &str, member: &str| {
        let nodes: Vec<&Node> = cluster.nodes.iter().collect();
        let bytes = || nodes.iter().map(|n| written(n).1).sum::<i64>();
        // The last background replication of the fill may still be on its way.
        let settled = || {
            let mut last = (bytes(), metric_sum(&nodes, applied));
            wait_until("writes to settle", Duration::from_secs(30), || {
                std::thread::sleep(Duration::from_millis(200)); // the poll interval
                let now = (bytes(), metric_sum(&nodes, applied));
                let same = now == last;
                last = now;
                same.then_some(())
            });
            last
        };
        let (before, patches) = settled();
        assert_eq!(int(q(&cluster.nodes[1], &["SADD", key, member])), 1);
        wait_until("both patches applied", Duration::from_secs(30), || {
            (metric_sum(&nodes, applied) >= patches + 2.0).then_some(())
        });
        let (after, _) = settled();
        after - before
    };
    let small = cost(&cluster, "small", "x");
    let large = cost(&cluster, "big", "x");
    assert!(large <= 2 * small, "an SADD to 20,000 members wrote {large} bytes on the nodes, to 3 members {small}");
    let nodes: Vec<&Node> = cluster.nodes.iter().collect();
    assert!(metric_sum(&nodes, "kura_reads_same_total") >= 2.0, "the deciding owner's reads were answered by digest");
    // The last owner in the key's preference list down during a write (the first one up
    // decides): the next patch finds it stale, and it gets the whole set.
    let order = match q(&cluster.nodes[0], &["KURA", "PREFLIST", "big"]) {
        Ok(Value::Array(items)) => items.iter().map(harness::text).collect::<Vec<_>>(),
        other => panic!("KURA PREFLIST: {other:?}"),
    };
    assert_eq!(order.len(), 3);
    let last = cluster
        .nodes
        .iter()
        .position(|n| [n.addr().to_string(), n.cluster_addr().to_string()].contains(&order[2]))
        .expect("a node of the list");
    cluster.nodes[last].kill9();
    assert_eq!(int(q(&cluster.nodes[0], &["SADD", "big", "while-down"])), 1);
    cluster.nodes[last].spawn();
    cluster.wait_converged(Duration::from_secs(60));
    let stale_before = metric_sum(&nodes_of(&cluster), stale);
    let mut n: i64 = 0;
    wait_until("a patch refused as stale", Duration::from_secs(60), || {
        n += 1;
        let _ = q(&cluster.nodes[0], &["SADD", "big", &format!("after-{n}")]);
        (metric_sum(&nodes_of(&cluster), stale) > stale_before).then_some(())
    });
    let context = |n: &Node| harness::parse_dget(&q(n, &["KURA", "LOCAL", "big"]).expect("KURA LOCAL")).0;
    wait_until("every copy one version", Duration::from_secs(30), || {
        let first = context(&cluster.nodes[0]);
        cluster.nodes.iter().all(|n| context(n) == first).then_some(())
    });
    for node in &cluster.nodes {
        assert_eq!(int(q(node, &["SISMEMBER", "big", "while-down"])), 1);
        assert_eq!(int(q(node, &["SCARD", "big"])), 20_002 + n);
    }
}

fn nodes_of(cluster: &Cluster) -> Vec<&Node> {
    cluster.nodes.iter().collect()
}

fn get_field(node: &Node, key: &str, field: &str) -> String {
    match q(node, &["HGET", key, field]) {
        Ok(Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("HGET {key} {field}: {other:?}"),
    }
}

/// `--max-reply-members` bounds what one reply lists: SMEMBERS, HGETALL, SUNION and counts
/// above it are refused with an error that names SSCAN/HSCAN, which page within the bound and
/// still return every member.
#[test]
fn replies_over_the_bound_are_refused_and_scans_page_within_it() {
    let node = Node::start(std::net::Ipv4Addr::LOCALHOST, &["--max-reply-members", "5"]);
    let members: Vec<String> = (0..12).map(|i| format!("m{i:02}")).collect();
    let mut sadd = vec!["SADD", "big"];
    sadd.extend(members.iter().map(String::as_str));
    assert_eq!(int(q(&node, &sadd)), 12);
    let mut hset = vec!["HSET", "wide"];
    hset.extend(members.iter().flat_map(|m| [m.as_str(), "v"]));
    assert_eq!(int(q(&node, &hset)), 12);
    for cmd in [
        &["SMEMBERS", "big"][..],
        &["HGETALL", "wide"],
        &["SUNION", "big"],
        &["SRANDMEMBER", "big", "-6"],
        &["HKEYS", "wide"],
    ] {
        let e = harness::err_of(q(&node, cmd));
        assert!(e.starts_with("ERR reply too large") && e.contains("SSCAN"), "{cmd:?}: {e}");
    }
    assert_eq!(sorted(q(&node, &["SRANDMEMBER", "big", "5"])).len(), 5, "at the bound");
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let Ok(Value::Array(parts)) = q(&node, &["SSCAN", "big", &cursor, "COUNT", "100"]) else { panic!("SSCAN") };
        let page = sorted(Ok(parts[1].clone()));
        assert!(page.len() <= 5, "a page within the bound: {page:?}");
        seen.extend(page);
        cursor = harness::text(&parts[0]);
        if cursor == "0" {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, members);
    assert_eq!(
        q(&node, &["CONFIG", "GET", "kura-max-reply-members"]),
        Ok(Value::Array(
            vec![Value::BulkString(b"kura-max-reply-members".to_vec()), Value::BulkString(b"5".to_vec()),]
        ))
    );
}

/// LRANGE key 0 -1 as strings.
fn elements(node: &Node, key: &str) -> Vec<String> {
    match q(node, &["LRANGE", key, "0", "-1"]) {
        Ok(Value::Array(items)) => items.iter().map(harness::text).collect(),
        other => panic!("LRANGE {key}: {other:?}"),
    }
}

/// ZRANGE key 0 -1 WITHSCORES as `member=score` strings, in score order.
fn scored(node: &Node, key: &str) -> Vec<String> {
    match q(node, &["ZRANGE", key, "0", "-1", "WITHSCORES"]) {
        Ok(Value::Array(items)) => {
            items.chunks(2).map(|p| format!("{}={}", harness::text(&p[0]), harness::text(&p[1]))).collect()
        }
        other => panic!("ZRANGE {key}: {other:?}"),
    }
}

/// Issue 21: five nodes split 2/3. Before the split the list `queue` holds j0..j4 and the
/// sorted set `board` a=1, b=2, c=3 and shared=10. During it both sides RPUSH jobs of their
/// own, the left LPOPs three, both ZADD members of their own and ZINCRBY `shared`, the left
/// ZREMs `a` and ZINCRBYs `b` while the right ZREMs `b` and ZADDs `c` anew. After the heal every
/// node reads one list, in one order, holding every pushed job no pop returned, and one sorted set: both sides' members, not `a`, `b` with the increment the
/// right's ZREM did not see (an update wins over a concurrent removal), `c` at the right's
/// score, `shared` at 10 plus every increment.
#[test]
fn lists_and_sorted_sets_on_both_sides_of_a_partition_converge() {
    let c = Cluster::start(5, &NRW);
    let (left, right): (Vec<&Node>, Vec<&Node>) = (c.nodes[..2].iter().collect(), c.nodes[2..].iter().collect());
    // Keys one of the left side's nodes owns (else the left side, which never saw them, could
    // pop or remove nothing of what was written before the split).
    let left_addrs: Vec<String> = left.iter().map(|n| n.cluster_addr().to_string()).collect();
    let owned_left = |name: &str| {
        (0..)
            .map(|i| format!("{name}{i}"))
            .find(|k| harness::preflist(&c.nodes[0], k).iter().any(|a| left_addrs.contains(a)))
            .expect("a key")
    };
    let (queue, board_key) = (owned_left("queue"), owned_left("board"));
    let (queue, board_key) = (queue.as_str(), board_key.as_str());
    assert_eq!(int(q(left[0], &["RPUSH", queue, "j0", "j1", "j2", "j3", "j4"])), 5);
    assert_eq!(int(q(right[0], &["ZADD", board_key, "1", "a", "2", "b", "3", "c", "10", "shared"])), 4);
    let before: Vec<String> = (0..5).map(|i| format!("j{i}")).collect();
    wait_until("every owner to hold the writes made before the split", Duration::from_secs(30), || {
        [queue, board_key]
            .iter()
            .all(|k| {
                harness::preflist(&c.nodes[0], k).iter().all(|a| !harness::local(c.by_cluster_addr(a), k).is_empty())
            })
            .then_some(())
    });
    wait_until("every node to read the writes made before the split", Duration::from_secs(30), || {
        c.nodes.iter().all(|n| elements(n, queue) == before && scored(n, board_key).len() == 4).then_some(())
    });
    let mut pushed = before.clone();
    let mut popped = Vec::new();
    let mut shared = 10;
    {
        let _cuts = Cut::sides(&left, &right);
        harness::wait_split(&left, &right);
        for i in 0..6 {
            let (l, r) = (left[i % 2], right[i % 3]);
            int(q(l, &["RPUSH", queue, &format!("left-{i}")]));
            int(q(r, &["RPUSH", queue, &format!("right-{i}")]));
            pushed.extend([format!("left-{i}"), format!("right-{i}")]);
            assert_eq!(int(q(l, &["ZADD", board_key, &i.to_string(), &format!("l{i}")])), 1);
            assert_eq!(int(q(r, &["ZADD", board_key, &i.to_string(), &format!("r{i}")])), 1);
            q(l, &["ZINCRBY", board_key, "1", "shared"]).expect("ZINCRBY");
            q(r, &["ZINCRBY", board_key, "100", "shared"]).expect("ZINCRBY");
            shared += 101;
        }
        for i in 0..3 {
            match q(left[i % 2], &["LPOP", queue]) {
                Ok(Value::BulkString(b)) => popped.push(String::from_utf8_lossy(&b).into_owned()),
                other => panic!("LPOP: {other:?}"),
            }
        }
        // The head the left side holds: j0.. when one of its nodes owns `queue`, else its own
        // pushes (a stand-in that never saw the list decides on what its side wrote).
        let distinct: std::collections::BTreeSet<&String> = popped.iter().collect();
        assert!(distinct.len() == 3 && popped.iter().all(|j| pushed.contains(j)), "{popped:?}");
        assert_eq!(int(q(left[1], &["ZREM", board_key, "a"])), 1);
        q(left[0], &["ZINCRBY", board_key, "5", "b"]).expect("ZINCRBY");
        assert_eq!(int(q(right[1], &["ZREM", board_key, "b"])), 1);
        assert_eq!(int(q(right[2], &["ZADD", board_key, "30", "c"])), 0);
    }
    let mut expected_queue: Vec<String> = pushed.iter().filter(|j| !popped.contains(j)).cloned().collect();
    expected_queue.sort();
    let mut board: Vec<String> = vec!["b=7".into(), "c=30".into(), format!("shared={shared}")];
    board.extend((0..6).flat_map(|i| [format!("l{i}={i}"), format!("r{i}={i}")]));
    board.sort();
    let sorted_copy = |mut v: Vec<String>| {
        v.sort();
        v
    };
    wait_until("every node to read one list and one sorted set", Duration::from_secs(60), || {
        let first = elements(&c.nodes[0], queue);
        c.nodes
            .iter()
            .all(|n| {
                let queue = elements(n, queue);
                queue == first && sorted_copy(queue) == expected_queue && sorted_copy(scored(n, board_key)) == board
            })
            .then_some(())
    });
    for n in &c.nodes {
        assert_eq!(int(q(n, &["LLEN", queue])), expected_queue.len() as i64);
        assert_eq!(int(q(n, &["ZCARD", board_key])), board.len() as i64);
    }
}
