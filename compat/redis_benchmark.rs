//! redis-benchmark against a real kura node: SET/GET/PING (inline and multi-bulk), MSET, INCR,
//! SADD, HSET and SPOP, plain and pipelined, must finish with every request answered and no
//! errors; so must its default run (no `-t`: lists and sorted sets too) against one node and a
//! 3-node cluster. (This checks that the tool works; speed is measured in `benches/`, not
//! asserted here.)

use crate::harness;

use std::net::Ipv4Addr;
use std::process::Command;

use harness::Node;

fn run(node: &Node, extra: &[&str]) -> Vec<(String, f64)> {
    run_with(node, &["-c", "20", "-n", "5000", "-r", "1000"], extra)
}

fn run_with(node: &Node, base: &[&str], extra: &[&str]) -> Vec<(String, f64)> {
    let out = Command::new("redis-benchmark")
        .args(["-h", &node.addr().ip().to_string(), "-p", &node.port.to_string(), "--csv"])
        .args(base)
        .args(extra)
        .output()
        .expect("redis-benchmark (install redis-tools)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-benchmark failed: {stderr}");
    assert!(!stderr.to_lowercase().contains("error"), "redis-benchmark saw errors: {stderr}");
    stdout
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split(',').map(|c| c.trim_matches('"')).collect();
            (cols[0].to_string(), cols[1].parse().expect("rps"))
        })
        .collect()
}

/// Runs the `tests` plain and with `-P 16`; each must report the rows `names`, all nonzero.
fn run_plain_and_pipelined(node: &Node, tests: &str, names: &[&str]) {
    for extra in [&[][..], &["-P", "16"][..]] {
        let mut args = vec!["-t", tests];
        args.extend_from_slice(extra);
        let rows = run(node, &args);
        let got: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, names, "{rows:?}");
        assert!(rows.iter().all(|(_, rps)| *rps > 0.0), "{rows:?}");
    }
}

#[test]
fn set_get_and_ping_complete_without_errors() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run_plain_and_pipelined(&node, "set,get,ping", &["PING_INLINE", "PING_MBULK", "SET", "GET"]);
    // The SETs landed: keys of the form key:000000000NNN, value xxx.
    let size: u64 = node.cli_out(&["DBSIZE"]).parse().unwrap();
    assert!(size > 100 && size <= 1000, "{size}");
    let mut con = node.conn();
    let keys: Vec<String> = (0..1000).map(|i| format!("key:{i:012}")).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    let present: Vec<&String> = values.iter().flatten().collect();
    assert_eq!(present.len() as u64, size);
    assert!(present.iter().all(|v| v.len() == 3), "{present:?}");
}

/// `redis-benchmark -t ping,set,get,mset` (the issue's list), plain and pipelined.
#[test]
fn ping_set_get_and_mset_complete_without_errors() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run_plain_and_pipelined(&node, "ping,set,get,mset", &["PING_INLINE", "PING_MBULK", "SET", "GET", "MSET (10 keys)"]);
}

/// `redis-benchmark -t incr,sadd,hset,spop` (issue 13's list), plain and pipelined: the
/// counters (`counter:<n>` over 1000 keys) add up to exactly the INCRs the node ran (INFO
/// commandstats; redis-benchmark's pipelined run sends a few more than `-n`, against
/// redis-server too); the hash holds redis-benchmark's fields and SPOP emptied the set.
#[test]
fn incr_sadd_hset_spop_complete_and_counters_count_every_increment() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    run_plain_and_pipelined(&node, "incr,sadd,hset,spop", &["INCR", "SADD", "HSET", "SPOP"]);
    let fields: u64 = node.cli_out(&["HLEN", "myhash"]).parse().unwrap();
    assert!(fields > 100 && fields <= 1000, "{fields}");
    // Each run's SPOPs (5000) outnumber the members its SADDs made (at most 1000): all popped.
    assert_eq!(node.cli_out(&["SCARD", "myset"]), "0");
    assert_eq!(node.cli_out(&["SADD", "myset", "x"]), "1");
    let mut con = node.conn();
    let keys: Vec<String> = (0..1000).map(|i| format!("counter:{i:012}")).collect();
    let values: Vec<Option<i64>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    let stats = node.cli_out(&["INFO", "commandstats"]);
    let calls: i64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_incr:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cmdstat_incr in {stats}"));
    assert!(calls >= 10_000, "{calls}");
    assert_eq!(values.iter().flatten().sum::<i64>(), calls);
}

/// The rows of redis-benchmark 7.0's default run (no `-t`), in its order.
const DEFAULT_RUN: &[&str] = &[
    "PING_INLINE",
    "PING_MBULK",
    "SET",
    "GET",
    "INCR",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "SADD",
    "HSET",
    "SPOP",
    "ZADD",
    "ZPOPMIN",
    "LPUSH (needed to benchmark LRANGE)",
    "LRANGE_100 (first 100 elements)",
    "LRANGE_300 (first 300 elements)",
    "LRANGE_500 (first 500 elements)",
    "LRANGE_600 (first 600 elements)",
    "MSET (10 keys)",
];

/// The default run (`-c 50`), plain, with `-r 100000` and with `-P 16`, against `node`: every
/// row there, none without requests, no error. `-n` is 2,000 here (`KURA_BENCH_REQUESTS`
/// raises it: the issue's 100,000 takes minutes; `benches/vs_redis.py --default-run` measures
/// it side by side with redis-server).
fn default_run(node: &Node) {
    let n = std::env::var("KURA_BENCH_REQUESTS").unwrap_or_else(|_| "2000".into());
    for extra in [&[][..], &["-r", "100000"][..], &["-P", "16"][..], &["-r", "100000", "-P", "16"][..]] {
        let rows = run_with(node, &["-c", "50", "-n", &n], extra);
        let got: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, DEFAULT_RUN, "{extra:?}: {rows:?}");
        assert!(rows.iter().all(|(_, rps)| *rps > 0.0), "{extra:?}: {rows:?}");
    }
}

/// Issue 21: redis-benchmark with no `-t` runs to its end against one node; the lists it
/// pushed hold what LRANGE_600 reads.
#[test]
fn the_default_run_completes_against_one_node() {
    let _heavy = harness::heavy();
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    default_run(&node);
    let len: u64 = node.cli_out(&["LLEN", "mylist"]).parse().unwrap();
    assert!(len >= 600, "{len}");
}

/// The same against any node of a 3-node cluster (N=3, R=2, W=2): each request forwarded or
/// replicated as a cluster does, none failing.
#[test]
fn the_default_run_completes_against_a_three_node_cluster() {
    let _heavy = harness::heavy();
    let cluster = harness::Cluster::start(3, &[]);
    for node in &cluster.nodes[1..] {
        default_run(node);
    }
    let lens: Vec<String> = cluster.nodes.iter().map(|n| n.cli_out(&["LLEN", "mylist"])).collect();
    assert!(lens.iter().all(|l| l == &lens[0]), "every node reads one list: {lens:?}");
}
