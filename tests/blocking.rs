//! Blocking pops on real processes (issue 22, item 1): clients blocked on a key are woken by
//! a push, first blocked first served; CLIENT UNBLOCK ends a wait; a client that disconnects
//! while blocked pops nothing; in a cluster a push through any node wakes a pop blocked through
//! any other, and a queue drained by workers blocked on four nodes hands every job out once.

use crate::harness;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::{blocked_clients, flat as show, query as q, resp_cmd, wait_until, Cluster, Node};
use redis::Value;

const NRW: [&str; 6] = ["--n", "3", "--r", "2", "--w", "2"];

/// Sends one request on `s` without reading its answer.
fn send(s: &mut TcpStream, args: &[&str]) {
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    s.write_all(&resp_cmd(&argv)).expect("write");
}

/// Reads one reply from `s` (a parser may read past it: only for a reply nothing follows).
fn reply(s: &mut TcpStream) -> String {
    let mut parser = redis::Parser::new();
    match parser.parse_value(&mut *s) {
        Ok(v) => show(&v),
        Err(e) => format!("error: {e}"),
    }
}

fn int(v: redis::RedisResult<Value>) -> i64 {
    match v {
        Ok(Value::Int(n)) => n,
        other => panic!("an integer reply, got {other:?}"),
    }
}

fn wait_blocked(node: &Node, n: usize) {
    wait_until(&format!("{n} clients blocked"), Duration::from_secs(20), || (blocked_clients(node) == n).then_some(()));
}

fn client_id(s: &mut TcpStream) -> i64 {
    send(s, &["CLIENT", "ID"]);
    reply(s).parse().expect("an id")
}

fn connect(node: &Node) -> TcpStream {
    let s = TcpStream::connect(node.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s
}

#[test]
fn blocked_clients_are_served_in_order_and_leave_without_popping() {
    let node = Node::start(std::net::Ipv4Addr::LOCALHOST, &[]);
    // Three clients block on `q` in turn (the third on another key first).
    let mut waiters: Vec<TcpStream> = (0..3).map(|_| connect(&node)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        if i == 2 {
            send(w, &["BLPOP", "other", "q", "0"]);
        } else {
            send(w, &["BLPOP", "q", "0"]);
        }
        wait_blocked(&node, i + 1);
    }
    assert_eq!(int(q(&node, &["RPUSH", "q", "a", "b"])), 2);
    assert_eq!(reply(&mut waiters[0]), "q a");
    assert_eq!(reply(&mut waiters[1]), "q b");
    wait_blocked(&node, 1);
    assert_eq!(int(q(&node, &["LPUSH", "q", "c"])), 1);
    assert_eq!(reply(&mut waiters[2]), "q c");
    wait_blocked(&node, 0);

    // CLIENT UNBLOCK: a timeout's null, or -UNBLOCKED; 0 for a client that is not blocked.
    let mut w = connect(&node);
    let id = client_id(&mut w);
    send(&mut w, &["BZPOPMIN", "z", "0"]);
    wait_blocked(&node, 1);
    assert_eq!(int(q(&node, &["CLIENT", "UNBLOCK", &id.to_string()])), 1);
    assert_eq!(reply(&mut w), "nil");
    assert_eq!(int(q(&node, &["CLIENT", "UNBLOCK", &id.to_string()])), 0);
    send(&mut w, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]);
    wait_blocked(&node, 1);
    assert_eq!(int(q(&node, &["CLIENT", "UNBLOCK", &id.to_string(), "ERROR"])), 1);
    assert_eq!(reply(&mut w), "-UNBLOCKED client unblocked via CLIENT UNBLOCK");
    // The connection goes on: a request pipelined behind a blocking one is answered after it.
    send(&mut w, &["BLPOP", "later", "0"]);
    send(&mut w, &["ECHO", "after"]);
    wait_blocked(&node, 1);
    assert_eq!(int(q(&node, &["RPUSH", "later", "x"])), 1);
    let expected = b"*2\r\n$5\r\nlater\r\n$1\r\nx\r\n$5\r\nafter\r\n";
    let mut got = vec![0u8; expected.len()];
    w.read_exact(&mut got).expect("both replies");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));

    // A client that disconnects while blocked pops nothing: the next push stays.
    let mut gone = connect(&node);
    send(&mut gone, &["BRPOP", "kept", "0"]);
    wait_blocked(&node, 1);
    drop(gone);
    wait_blocked(&node, 0);
    assert_eq!(int(q(&node, &["RPUSH", "kept", "job"])), 1);
    assert_eq!(int(q(&node, &["LLEN", "kept"])), 1);

    // A timeout passes with nothing pushed: null, and the client is no longer blocked.
    let mut t = connect(&node);
    send(&mut t, &["BLPOP", "never", "0.2"]);
    assert_eq!(reply(&mut t), "nil");
    assert_eq!(blocked_clients(&node), 0);
    let mut buf = [0u8; 1];
    t.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    assert!(t.read(&mut buf).is_err(), "nothing more was sent");
}

/// In a 3-node cluster (N=3, R=W=2), a client blocked through each node is woken by a push
/// through each other node; then workers blocked on every node drain a queue that producers
/// fill through every node, and each job is handed out exactly once (no faults: the key's
/// first owner decides every pop).
#[test]
fn a_push_through_any_node_wakes_a_pop_blocked_through_another() {
    let c = Cluster::start(3, &NRW);
    for (i, waiting) in c.nodes.iter().enumerate() {
        for (j, pushing) in c.nodes.iter().enumerate().filter(|(j, _)| *j != i) {
            let key = format!("wake-{i}-{j}");
            let mut w = connect(waiting);
            send(&mut w, &["BLPOP", &key, "0"]);
            wait_blocked(waiting, 1);
            assert_eq!(int(q(pushing, &["RPUSH", &key, "hello"])), 1);
            assert_eq!(reply(&mut w), format!("{key} hello"));
            wait_blocked(waiting, 0);
        }
    }
    // BZPOPMIN through node 3, ZADD through node 1.
    let mut w = connect(&c.nodes[2]);
    send(&mut w, &["BZPOPMIN", "board", "0"]);
    wait_blocked(&c.nodes[2], 1);
    assert_eq!(int(q(&c.nodes[0], &["ZADD", "board", "7", "m"])), 1);
    assert_eq!(reply(&mut w), "board m 7");

    // Six workers, two per node, each popping until it gets its own stop word.
    const JOBS: usize = 300;
    let workers: Vec<std::thread::JoinHandle<Vec<String>>> = (0..6)
        .map(|i| {
            let addr = c.nodes[i % 3].addr();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
                let mut got = Vec::new();
                loop {
                    send(&mut s, &["BLPOP", "jobs", "0"]);
                    let r = reply(&mut s);
                    let job = r.strip_prefix("jobs ").unwrap_or_else(|| panic!("worker {i}: {r}")).to_owned();
                    if job == "stop" {
                        return got;
                    }
                    got.push(job);
                }
            })
        })
        .collect();
    for n in &c.nodes {
        wait_blocked(n, 2);
    }
    for j in 0..JOBS {
        q(&c.nodes[j % 3], &["RPUSH", "jobs", &format!("job-{j}")]).expect("push");
    }
    wait_until("the queue drained", Duration::from_secs(60), || {
        (int(q(&c.nodes[0], &["LLEN", "jobs"])) == 0).then_some(())
    });
    for _ in 0..6 {
        q(&c.nodes[1], &["RPUSH", "jobs", "stop"]).expect("push stop");
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for w in workers {
        for job in w.join().expect("worker") {
            *seen.entry(job).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs handed out twice: {twice:?}");
    assert_eq!(seen.len(), JOBS, "every job handed out");
}
