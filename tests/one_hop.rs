//! One hop (issue 25; paper section 6.4): with `--placement slots` a key's partition is a range
//! of Redis Cluster slots, and CLUSTER SLOTS / NODES / SHARDS show each range's preference
//! list, so real cluster clients (redis-py `RedisCluster`, ioredis `Cluster`, `redis-cli -c`,
//! `redis-benchmark --cluster`) send each request to a node that replicates its key: no node
//! forwards. A connection that said it is a cluster client's is answered MOVED for a key its
//! node does not replicate; any other is served as before. With the default MD5 placement the
//! CLUSTER commands answer as one shard, so cluster clients still connect.

use crate::harness;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::{Cluster, Node, RedisServer};
use redis::Value;

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/apps");

/// Runs `program APPS/script args...` and returns its stdout; fails the test unless it exits 0.
fn app(program: &str, script: &str, args: &[String]) -> String {
    let out = Command::new(program)
        .arg(format!("{APPS}/{script}"))
        .args(args)
        .current_dir(APPS)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program} {script}: {e} (run .ci/run to install it)"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {script} {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// Puts forwarded by all `nodes` so far.
fn forwarded(nodes: &[Node]) -> f64 {
    nodes.iter().map(|n| harness::metric(&n.metrics(), "kura_forwarded_total").unwrap_or(0.0)).sum()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

/// A range of CLUSTER SLOTS: first, last, and its nodes (ip, port).
type SlotRange = (i64, i64, Vec<(String, i64)>);

/// CLUSTER SLOTS as (first, last, [(ip, port)]), in order.
fn slots(node: &Node) -> Vec<SlotRange> {
    let Value::Array(ranges) = harness::query(node, &["CLUSTER", "SLOTS"]).expect("CLUSTER SLOTS") else {
        panic!("CLUSTER SLOTS is not an array")
    };
    ranges
        .iter()
        .map(|r| {
            let Value::Array(r) = r else { panic!("a range is not an array: {r:?}") };
            let nodes = r[2..]
                .iter()
                .map(|n| match n {
                    Value::Array(n) => (harness::text(&n[0]), int(&n[1])),
                    other => panic!("a node is not an array: {other:?}"),
                })
                .collect();
            (int(&r[0]), int(&r[1]), nodes)
        })
        .collect()
}

/// Checks that `node`'s CLUSTER SLOTS covers the 16384 slots in order with no hole, each range
/// with `replicas` distinct nodes of `cluster`, the master first.
fn assert_covers(cluster: &[Node], node: &Node, replicas: usize) {
    let ranges = slots(node);
    let mut next = 0;
    let known: BTreeSet<(String, i64)> = cluster.iter().map(|n| (n.ip.to_string(), i64::from(n.port))).collect();
    for (first, last, nodes) in &ranges {
        assert_eq!(*first, next, "a hole or an overlap before slot {first}: {ranges:?}");
        assert!(last >= first);
        next = last + 1;
        assert_eq!(nodes.len(), replicas, "slots {first}-{last}: {nodes:?}");
        assert_eq!(nodes.iter().collect::<BTreeSet<_>>().len(), replicas, "distinct nodes: {nodes:?}");
        assert!(nodes.iter().all(|n| known.contains(n)), "{nodes:?} are not all nodes of the cluster");
    }
    assert_eq!(next, 16384, "slots after {next} are not covered");
}

/// Sends `commands` on one connection and returns each reply's first line (`+OK`, `-MOVED ...`,
/// `$1`: enough for these checks).
fn on_one_connection(node: &Node, commands: &[&[&str]]) -> Vec<String> {
    let mut con = node.raw();
    commands
        .iter()
        .map(|args| {
            let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            harness::raw_line(&mut con, &harness::resp_cmd(&argv)).trim_end().to_owned()
        })
        .collect()
}

/// The slot map, the redirection and real cluster clients on a 4-node cluster placed by slots;
/// then a fifth node joins under a client that keeps its map, and the tools still work.
#[test]
fn cluster_clients_reach_a_keys_replicas_in_one_hop() {
    let _heavy = harness::heavy();
    let mut cluster = Cluster::start(4, &["--n", "3", "--placement", "slots"]);
    for node in &cluster.nodes {
        assert_covers(&cluster.nodes, node, 3);
        let info = harness::text(&harness::query(node, &["CLUSTER", "INFO"]).unwrap());
        assert!(info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:4"), "{info}");
        assert!(node.cli_out(&["INFO", "cluster"]).contains("cluster_enabled:1"));
    }
    // Every member is a master of some slots in CLUSTER NODES, the answering one `myself`.
    let nodes_text = harness::text(&harness::query(&cluster.nodes[0], &["CLUSTER", "NODES"]).unwrap());
    let lines: Vec<&str> = nodes_text.lines().collect();
    assert_eq!(lines.len(), 4, "{nodes_text}");
    assert!(lines.iter().all(|l| l.split(' ').count() > 8 && l.split(' ').nth(2).unwrap().contains("master")));
    assert_eq!(lines.iter().filter(|l| l.contains("myself")).count(), 1);
    let myid = harness::text(&harness::query(&cluster.nodes[0], &["CLUSTER", "MYID"]).unwrap());
    assert!(myid.len() == 40 && nodes_text.contains(&format!("{myid} {}", cluster.nodes[0].addr())));

    // The redirection: a cluster client's connection is sent to the master of a key this node
    // does not replicate; a plain connection is served.
    let via = &cluster.nodes[0];
    let away = (0..)
        .map(|i| format!("away:{i}"))
        .find(|k| !cluster.preflist(0, k).contains(&0))
        .expect("a key node 1 does not replicate");
    let slot = int(&harness::query(via, &["CLUSTER", "KEYSLOT", &away]).unwrap());
    let master = cluster.preflist(0, &away)[0];
    let replies = on_one_connection(via, &[&["SET", &away, "1"], &["READONLY"], &["GET", &away]]);
    assert_eq!(replies, ["+OK", "+OK", &format!("-MOVED {slot} {}", cluster.nodes[master].addr())]);
    assert_eq!(harness::text(&harness::query(via, &["GET", &away]).unwrap()), "1");
    // redis-cli -c follows it.
    let mut cli = Command::new("redis-cli")
        .args(["-c", "-h", &via.ip.to_string(), "-p", &via.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    cli.stdin.take().unwrap().write_all(format!("READONLY\nSET {away} 3\nGET {away}\n").as_bytes()).unwrap();
    let out = String::from_utf8_lossy(&cli.wait_with_output().unwrap().stdout).into_owned();
    assert!(out.contains(&format!("Redirected to slot [{slot}] located at {}", cluster.nodes[master].addr())), "{out}");
    assert!(out.trim_end().ends_with("OK\n3"), "{out}");
    // A plain client's writes through node 1 of keys it does not replicate are forwarded (the
    // measure below can see a forward).
    let before = forwarded(&cluster.nodes);
    harness::query(via, &["SET", &away, "2"]).unwrap();
    assert!(forwarded(&cluster.nodes) > before, "a plain SET of {away} via node 1 was not forwarded");

    // CLUSTER KEYSLOT is Redis's (checked against redis-server in cluster mode).
    // Its bus port is named: by default it is the port + 10000, which may be taken, or past
    // 65535 (it then never answered: a failed run).
    let bus = harness::free_port(std::net::Ipv4Addr::LOCALHOST).to_string();
    let redis = RedisServer::start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        &bus,
    ]);
    let mut reference =
        redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap().get_connection().unwrap();
    let mut con = via.conn();
    let mut rng_keys: Vec<Vec<u8>> =
        vec![b"".to_vec(), b"{}".to_vec(), b"{}x".to_vec(), b"a{b}{c}".to_vec(), b"{".to_vec()];
    rng_keys.extend((0..300u32).map(|i| format!("user:{i}:{{tag{}}}", i % 7).into_bytes()));
    rng_keys.extend((0..300u32).map(|i| (0..(i % 23)).map(|j| (i * 31 + j * 7) as u8).collect()));
    for key in &rng_keys {
        let ours: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut con).unwrap();
        let theirs: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut reference).unwrap();
        assert_eq!(ours, theirs, "CLUSTER KEYSLOT {key:?}");
    }

    // redis-py's RedisCluster and ioredis's Cluster: every request to a replica of its key.
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr().to_string()).collect();
    let before = forwarded(&cluster.nodes);
    let out = app("python3", "onehop.py", &addrs[..2]);
    assert!(out.contains("127.0.0.4"), "redis-py's map names every node: {out}");
    app("node", "onehop.js", &addrs[..1]);
    let forwards = forwarded(&cluster.nodes) - before;
    // 2,200 writes; a write goes elsewhere only if its master's detector flickered meanwhile.
    assert!(forwards <= 5.0, "cluster clients' writes were forwarded {forwards} times");

    // COUNTKEYSINSLOT / GETKEYSINSLOT: a replica's own keys of one slot.
    let tag_slot = int(&harness::query(via, &["CLUSTER", "KEYSLOT", "{cart:a}"]).unwrap()).to_string();
    let holder = &cluster.nodes[cluster.preflist(0, "{cart:a}")[0]];
    // (Other keys of the test may share the tag's slot.)
    let count = int(&harness::query(holder, &["CLUSTER", "COUNTKEYSINSLOT", &tag_slot]).unwrap());
    let in_slot = |limit: &str| -> Vec<String> {
        match harness::query(holder, &["CLUSTER", "GETKEYSINSLOT", &tag_slot, limit]).unwrap() {
            Value::Array(keys) => keys.iter().map(harness::text).collect(),
            other => panic!("GETKEYSINSLOT is not an array: {other:?}"),
        }
    };
    let all = in_slot("100000");
    assert_eq!(all.len() as i64, count);
    assert_eq!(all.iter().filter(|k| k.starts_with("{cart:a}:")).count(), 50, "{all:?}");
    assert!(all
        .iter()
        .all(|k| int(&harness::query(holder, &["CLUSTER", "KEYSLOT", k]).unwrap()).to_string() == tag_slot));
    assert_eq!(in_slot("10").len(), 10);
    let e = harness::err_of(harness::query(holder, &["CLUSTER", "COUNTKEYSINSLOT", "16384"]));
    assert!(e.contains("Invalid slot"), "{e}");

    // redis-cli -c and redis-benchmark --cluster.
    for i in 0..20 {
        let key = format!("cli:{i}");
        let node = &cluster.nodes[i % 4];
        let set = Command::new("redis-cli")
            .args(["-c", "-h", &node.ip.to_string(), "-p", &node.port.to_string(), "SET", &key, "v"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&set.stdout).trim(), "OK");
    }
    benchmark(&cluster.nodes[1]);

    // A fifth node joins while redis-py keeps the map it read before: its next requests
    // follow MOVED or are forwarded, and the first phase's keys read back.
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("joined");
    let mut client = Command::new("python3")
        .arg(format!("{APPS}/onehop.py"))
        .args(&addrs[..1])
        .args(["--phases", flag.to_str().unwrap()])
        .current_dir(APPS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let ready = flag.with_extension("ready");
    let early = harness::wait_until("the client's first phase", Duration::from_secs(120), || match client.try_wait() {
        Ok(Some(status)) => Some(Some(status)),
        _ => ready.exists().then_some(None),
    });
    if let Some(status) = early {
        panic!("onehop.py ended early ({status}): {:?}", client.wait_with_output());
    }
    cluster.add(&["--n", "3", "--placement", "slots"]);
    cluster.wait_converged(Duration::from_secs(120));
    std::fs::File::create(&flag).unwrap().write_all(b"").unwrap();
    let out = client.wait_with_output().expect("onehop.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "after the join: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    for node in &cluster.nodes {
        assert_covers(&cluster.nodes, node, 3);
    }
    assert!(slots(&cluster.nodes[0]).iter().any(|(_, _, n)| n[0].0 == "127.0.0.5"), "the new node leads slots");
    app("python3", "onehop.py", &addrs[2..3]);
    benchmark(&cluster.nodes[4]);
}

/// `redis-benchmark --cluster -t set,get`: it reads CLUSTER NODES and sends each key to its
/// slot's master; it must finish with no error.
fn benchmark(node: &Node) {
    let out = Command::new("redis-benchmark")
        .args(["--cluster", "-h", &node.ip.to_string(), "-p", &node.port.to_string()])
        .args(["-t", "set,get", "-n", "5000", "-c", "10", "-r", "1000", "--csv"])
        .output()
        .expect("redis-benchmark (install redis-tools)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "redis-benchmark --cluster failed: {stdout}\n{stderr}");
    assert!(!format!("{stdout}{stderr}").to_lowercase().contains("error"), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"SET\"") && stdout.contains("\"GET\""), "{stdout}");
}

/// With the default MD5 placement a node answers CLUSTER as one shard owning every slot, so a
/// cluster client connects to a plain node and works (through it).
#[test]
fn an_md5_node_answers_cluster_as_one_shard() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    let ranges = slots(&node);
    assert_eq!(ranges, vec![(0, 16383, vec![(node.ip.to_string(), i64::from(node.port))])]);
    assert!(node.cli_out(&["INFO", "cluster"]).contains("cluster_enabled:0"));
    assert_eq!(on_one_connection(&node, &[&["READONLY"], &["READWRITE"], &["ASKING"]]), ["+OK", "+OK", "+OK"]);
    let e = harness::err_of(harness::query(&node, &["CLUSTER", "COUNTKEYSINSLOT", "1"]));
    assert!(e.contains("--placement slots"), "{e}");
    let e = harness::err_of(harness::query(&node, &["CLUSTER", "NOPE"]));
    assert!(e.contains("unknown subcommand"), "{e}");
    app("python3", "onehop.py", &[node.addr().to_string()]);
}

/// The placement is fixed when the cluster is founded, as `--partitions` is: a restart keeps
/// its data dir's whatever the flag says, and a node started with the other flag that joins takes
/// its cluster's (it stores nothing yet).
#[test]
fn a_clusters_placement_is_its_founders() {
    let mut node = Node::start(Ipv4Addr::LOCALHOST, &["--placement", "slots"]);
    harness::query(&node, &["SET", "k", "v"]).unwrap();
    node.terminate();
    node.set_extra(&[]);
    node.spawn();
    assert!(node.cli_out(&["INFO", "cluster"]).contains("kura_placement:slots"));
    assert!(node.log_tail(400).contains("counts only when a cluster is founded"));
    assert_eq!(harness::text(&harness::query(&node, &["GET", "k"]).unwrap()), "v");
    // A joiner started without the flag (MD5) takes the cluster's placement.
    let seed = node.cluster_addr().to_string();
    let joiner = Node::start(Ipv4Addr::new(127, 0, 0, 2), &["--seed", &seed]);
    harness::wait_until("the two nodes to agree on one ring", Duration::from_secs(60), || {
        harness::converged(&[&node, &joiner]).then_some(())
    });
    assert!(joiner.log_tail(400).contains("joining a cluster placed by slots"));
    assert!(joiner.cli_out(&["INFO", "cluster"]).contains("cluster_enabled:1"));
    let cluster = [node, joiner];
    assert_covers(&cluster, &cluster[1], 2);
    for i in 0..50 {
        let key = format!("j{i}");
        harness::query(&cluster[i % 2], &["SET", &key, "x"]).unwrap();
        for n in &cluster {
            assert_eq!(harness::text(&harness::query(n, &["GET", &key]).unwrap()), "x", "{key}");
        }
    }
    assert_eq!(harness::text(&harness::query(&cluster[1], &["GET", "k"]).unwrap()), "v");
}
