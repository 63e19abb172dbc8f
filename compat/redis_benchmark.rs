//! redis-benchmark against a real kura node: SET/GET/PING (inline and multi-bulk), plain and
//! pipelined, must finish with every request answered and no errors. (This checks that the
//! tool works; speed is measured in `benches/`, not asserted here.)

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::net::Ipv4Addr;
use std::process::Command;

use harness::Node;

fn run(node: &Node, extra: &[&str]) -> Vec<(String, f64)> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &node.port.to_string(), "-c", "20", "-n", "5000", "-r", "1000", "--csv"])
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

#[test]
fn set_get_and_ping_complete_without_errors() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    for extra in [&[][..], &["-P", "16"][..]] {
        let mut args = vec!["-t", "set,get,ping"];
        args.extend_from_slice(extra);
        let rows = run(&node, &args);
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["PING_INLINE", "PING_MBULK", "SET", "GET"], "{rows:?}");
        assert!(rows.iter().all(|(_, rps)| *rps > 0.0), "{rows:?}");
    }
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
    for extra in [&[][..], &["-P", "16"][..]] {
        let mut args = vec!["-t", "ping,set,get,mset"];
        args.extend_from_slice(extra);
        let rows = run(&node, &args);
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["PING_INLINE", "PING_MBULK", "SET", "GET", "MSET (10 keys)"], "{rows:?}");
        assert!(rows.iter().all(|(_, rps)| *rps > 0.0), "{rows:?}");
    }
}
