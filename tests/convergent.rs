//! Types that converge (issue 13), on real processes: counters incremented on both sides of a
//! partition add up after the heal, a DEL on one side resets what it saw while the other
//! side's increments survive, and racing increments on one node are exact.

mod harness;

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

/// Five nodes split 2/3. Before the split `hits` is 100 and `reset` is 50. During it, each
/// side INCRBYs `hits` through each of its nodes, the left DELs `reset` while the right
/// increments it, and both PFADD visitors. After the heal every node reads the exact sum of
/// `hits`, `reset` holds only the increments the DEL did not see, and PFCOUNT counts every
/// side's visitors.
#[test]
fn counters_on_both_sides_of_a_partition_add_up() {
    let c = Cluster::start(5, &NRW);
    let (left, right): (Vec<&Node>, Vec<&Node>) = (c.nodes[..2].iter().collect(), c.nodes[2..].iter().collect());
    assert_eq!(int(q(left[0], &["INCRBY", "hits", "100"])), 100);
    assert_eq!(q(right[0], &["SET", "reset", "50"]), Ok(Value::Okay));
    assert_eq!(int(q(left[1], &["INCR", "reset"])), 51);
    let mut expected = 100;
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
        assert_eq!(int(q(left[0], &["DEL", "reset"])), 1);
        assert_eq!(get(left[1], "reset"), None);
        for r in &right {
            int(q(r, &["INCRBY", "reset", "5"]));
        }
        assert_eq!(get(right[0], "reset"), Some("66".into()), "the right side alone: 51 + 15");
        // HyperLogLogs: each side adds its own visitors.
        for i in 0..200 {
            let side = if i % 2 == 0 { &left } else { &right };
            int(q(side[i % side.len()], &["PFADD", "visitors", &format!("user-{i}")]));
        }
    }
    // The union of both sides' visitors, added through one node after the heal, is the
    // reference: equal registers give an equal count.
    for i in 0..200 {
        int(q(&c.nodes[0], &["PFADD", "reference", &format!("user-{i}")]));
    }
    let reference = int(q(&c.nodes[0], &["PFCOUNT", "reference"]));
    assert!((190..=210).contains(&reference), "{reference}");
    wait_until("every node to count both sides' visitors", Duration::from_secs(60), || {
        c.nodes.iter().all(|n| int(q(n, &["PFCOUNT", "visitors"])) == reference).then_some(())
    });
    let expected = expected.to_string();
    wait_until("every node to read both sides' increments", Duration::from_secs(60), || {
        c.nodes
            .iter()
            .all(|n| get(n, "hits").as_deref() == Some(&expected) && get(n, "reset").as_deref() == Some("15"))
            .then_some(())
    });
    // Converged, not just read-repaired once: every replica's own copy agrees.
    for n in &c.nodes {
        assert_eq!(get(n, "hits").as_deref(), Some(expected.as_str()));
        assert_eq!(int(q(n, &["INCRBY", "hits", "0"])), expected.parse::<i64>().unwrap());
    }
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
