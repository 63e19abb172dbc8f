//! Disk trouble (issue 24, point 5), on real processes whose data dir is a small tmpfs filled
//! to the brim and then freed (`SmallDisk`: needs root, as CI has).
//!
//! - Too little free space (below `--min-free-disk`, by default 5% of this small disk): writes
//!   answer Redis's `-MISCONF`, reads, PING and INFO are served, INFO and the metrics show it,
//!   and writes are accepted again once the filler is gone, in the same process.
//! - A journal write that failed (no reserve: `--min-free-disk 0`): fjall is poisoned for
//!   good, so writes answer `-MISCONF` and reads go on until the disk takes writes again; then
//!   the node exits with code 75 for its supervisor, and restarted on the same data dir it
//!   has every acknowledged write.
//! - In a 3-node cluster (N=3, W=2) one node's full disk leaves the cluster writable through
//!   the others (its replica writes fail cleanly, read-modify-writes it would decide move to
//!   the next owner), and after it is freed its copy converges.

use crate::harness;

use std::net::Ipv4Addr;
use std::time::Duration;

use harness::{converged, err_of, local, metric, preflist, q, raw_line, resp_cmd, text, wait_until, Node, SmallDisk};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// How long the node gets to notice the disk's state (it checks once a second).
const NOTICE: Duration = Duration::from_secs(15);

/// The tail every MISCONF reply ends with (Redis 7's shape).
const MISCONF_TAIL: &str =
    ". Commands that may modify the data set are disabled. Please check the node's log for details.";

/// A field of `INFO persistence`.
fn info(node: &Node, field: &str) -> String {
    let mut con = node.conn();
    let reply: String = redis::cmd("INFO").arg("persistence").query(&mut con).expect("INFO persistence");
    let prefix = format!("{field}:");
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("INFO persistence has no {field}:\n{reply}"))
}

/// Waits until INFO shows the disk in `state` (`ok`, `low_space`, `failed`).
fn wait_disk(node: &Node, state: &str) {
    wait_until(&format!("INFO to show the disk {state}"), NOTICE, || {
        (info(node, "kura_disk_state") == state).then_some(())
    });
}

/// The error a write gets, which must be a MISCONF with a reason.
fn misconf(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    let e = err_of(c.query(con));
    assert!(e.starts_with("MISCONF Errors writing to the disk: "), "{args:?}: {e}");
    assert!(e.ends_with(MISCONF_TAIL), "{args:?}: {e}");
    e
}

#[test]
fn a_full_disk_refuses_writes_serves_reads_and_takes_writes_again_once_freed() {
    let disk = SmallDisk::mount("32m");
    let mut node = Node::new(LOCAL, disk.path.clone(), &[]);
    node.spawn();
    let mut con = node.conn();
    for i in 0..100 {
        q(&mut con, &["SET", &format!("before:{i}"), &format!("v{i}")]);
    }
    q(&mut con, &["SADD", "set", "a"]);
    assert_eq!(info(&node, "kura_disk_ok"), "1");
    assert_eq!(info(&node, "aof_last_write_status"), "ok");
    // A transaction whose write was queued before the disk filled.
    let mut queued = node.conn();
    q(&mut queued, &["MULTI"]);
    assert_eq!(text(&q(&mut queued, &["SET", "queued", "x"])), "QUEUED");

    disk.fill();
    wait_disk(&node, "low_space");
    // Writes of every kind are refused with Redis's MISCONF, byte for byte in its shape.
    let mut raw = node.raw();
    let line = raw_line(&mut raw, &resp_cmd(&[b"SET", b"after", b"x"]));
    assert!(line.starts_with("-MISCONF Errors writing to the disk: No space left on device ("), "{line:?}");
    assert!(line.ends_with(&format!("{MISCONF_TAIL}\r\n")), "{line:?}");
    for write in [&["INCR", "counter"][..], &["DEL", "before:1"], &["SADD", "set", "b"], &["EXPIRE", "before:2", "100"]]
    {
        misconf(&mut con, write);
    }
    // Inside MULTI the write is refused as it is queued, and the EXEC fails.
    q(&mut con, &["MULTI"]);
    misconf(&mut con, &["SET", "in-multi", "x"]);
    let exec = err_of(redis::cmd("EXEC").query(&mut con));
    assert!(exec.starts_with("EXECABORT"), "{exec}");
    let exec = err_of(redis::cmd("EXEC").query(&mut queued));
    assert!(
        exec.starts_with("EXECABORT Transaction discarded because of: MISCONF Errors writing to the disk"),
        "{exec}"
    );
    // Reads, PING and admin commands are served.
    for i in 0..100 {
        let v: String = redis::cmd("GET").arg(format!("before:{i}")).query(&mut con).expect("GET");
        assert_eq!(v, format!("v{i}"));
    }
    let members: Vec<String> = redis::cmd("SMEMBERS").arg("set").query(&mut con).expect("SMEMBERS");
    assert_eq!(members, ["a"]);
    assert_eq!(text(&q(&mut con, &["PING"])), "PONG");
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(dbsize, 101, "nothing queued was written");
    // INFO and the metrics show it.
    assert_eq!(info(&node, "kura_disk_ok"), "0");
    assert_eq!(info(&node, "aof_last_write_status"), "err");
    assert!(info(&node, "kura_disk_error").starts_with("No space left on device"));
    assert_eq!(info(&node, "kura_disk_free_bytes"), "0");
    let refused: u64 = info(&node, "kura_disk_refused_writes").parse().expect("a count");
    assert!(refused >= 6, "{refused} writes refused");
    let metrics = node.metrics();
    assert_eq!(metric(&metrics, "kura_disk_ok"), Some(0.0), "{metrics}");
    assert!(metric(&metrics, "kura_disk_refused_writes_total").is_some_and(|n| n >= 6.0), "{metrics}");

    disk.free();
    wait_disk(&node, "ok");
    assert_eq!(text(&q(&mut con, &["SET", "after", "x"])), "OK");
    assert_eq!(text(&q(&mut con, &["GET", "after"])), "x");
    assert_eq!(text(&q(&mut con, &["SADD", "set", "b"])), "1");
    assert_eq!(info(&node, "aof_last_write_status"), "ok");
    assert_eq!(metric(&node.metrics(), "kura_disk_ok"), Some(1.0));
    // Logged once when it began and once when it ended, not once a second.
    let log = node.log_tail(1000);
    assert_eq!(log.matches("refusing writes").count(), 1, "{log}");
    assert_eq!(log.matches("writes are accepted again").count(), 1, "{log}");
    assert!(!log.contains("fsync failed"), "{log}");
}

#[test]
fn a_failed_journal_write_ends_in_a_restart_that_keeps_every_acknowledged_write() {
    let disk = SmallDisk::mount("32m");
    // No reserve: the disk fills under the engine, whose journal write fails.
    let mut node = Node::new(LOCAL, disk.path.clone(), &["--min-free-disk", "0"]);
    node.spawn();
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut con = node.conn();
    for i in 0..100 {
        let (k, v) = (format!("before:{i}"), format!("v{i}"));
        q(&mut con, &["SET", &k, &v]);
        acked.push((k, v));
    }

    disk.fill();
    // Writes go on into the journal's last page until its flush fails: that write is not
    // acknowledged (its connection closes, or it answers MISCONF), those before it are.
    let value = "x".repeat(200);
    for i in 0.. {
        assert!(i < 100_000, "the journal never filled up");
        let k = format!("during:{i}");
        match redis::cmd("SET").arg(&k).arg(&value).query::<String>(&mut con) {
            Ok(_) => acked.push((k, value.clone())),
            Err(_) => break,
        }
    }
    wait_disk(&node, "failed");
    let mut con = node.conn();
    let e = misconf(&mut con, &["SET", "after", "x"]);
    assert!(e.contains("No space left on device"), "{e}");
    assert!(info(&node, "kura_disk_error").contains("No space left on device"));
    for (k, v) in &acked {
        let got: String = redis::cmd("GET").arg(k).query(&mut con).expect("GET");
        assert_eq!(&got, v, "{k} while the disk is full");
    }
    assert_eq!(text(&q(&mut con, &["PING"])), "PONG");
    assert_eq!(info(&node, "kura_disk_restart_wanted"), "0", "not while the disk is full");

    // The disk has room again, the engine does not take writes: the node exits for its
    // supervisor (here: this test) to restart it.
    disk.free();
    let status = node.wait_exit();
    assert_eq!(status.code(), Some(75), "{status}:\n{}", node.log_tail(20));
    assert!(node.log_tail(50).contains("exiting with code 75 for a restart on the same data dir"));
    node.spawn();
    let mut con = node.conn();
    for (k, v) in &acked {
        let got: Option<String> = redis::cmd("GET").arg(k).query(&mut con).expect("GET");
        assert_eq!(got.as_ref(), Some(v), "{k} after the restart");
    }
    assert_eq!(text(&q(&mut con, &["SET", "after", "x"])), "OK");
    assert_eq!(info(&node, "kura_disk_ok"), "1");
}

#[test]
fn a_node_with_a_full_disk_leaves_its_cluster_writable_and_converges_once_freed() {
    let disk = SmallDisk::mount("64m");
    let flags = ["--n", "3", "--r", "2", "--w", "2", "--aae-interval", "1"];
    let with = |extra: &[&str]| -> Vec<String> { extra.iter().chain(flags.iter()).map(|s| s.to_string()).collect() };
    let args = with(&["--node-id", "node1"]);
    let n1 = Node::start(LOCAL, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let seed = n1.cluster_addr().to_string();
    let args = with(&["--node-id", "node2", "--seed", &seed]);
    let n2 = Node::start(Ipv4Addr::new(127, 0, 0, 2), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let args = with(&["--node-id", "node3", "--seed", &seed]);
    let mut n3 =
        Node::new(Ipv4Addr::new(127, 0, 0, 3), disk.path.clone(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    n3.spawn();
    wait_until("the cluster to converge", Duration::from_secs(60), || converged(&[&n1, &n2, &n3]).then_some(()));
    let mut c1 = n1.conn();
    for i in 0..20 {
        q(&mut c1, &["SET", &format!("before:{i}"), "v"]);
    }
    // Counters whose first owner (their read-modify-writes' decider) is node 3, and others.
    let home = |k: &str| preflist(&n1, k)[0] == n3.cluster_addr().to_string();
    let counters: Vec<String> = (0..200).map(|i| format!("c:{i}")).filter(|k| home(k)).take(5).collect();
    let others: Vec<String> = (0..200).map(|i| format!("c:{i}")).filter(|k| !home(k)).take(5).collect();
    assert_eq!(counters.len(), 5, "node 3 is the first owner of some keys");

    disk.fill();
    wait_disk(&n3, "low_space");
    // Through the other nodes every write succeeds: node 3's copy fails cleanly, W=2 remain.
    let mut c2 = n2.conn();
    for i in 0..60 {
        let con = if i % 2 == 0 { &mut c1 } else { &mut c2 };
        assert_eq!(text(&q(con, &["SET", &format!("k:{i}"), &format!("v{i}")])), "OK");
    }
    for k in counters.iter().chain(&others) {
        let n: i64 = redis::cmd("INCR").arg(k).query(&mut c1).expect("INCR decided by another owner");
        assert_eq!(n, 1, "{k}");
    }
    // Node 3 refuses client writes, serves reads (from the quorum), holds none of the new keys.
    let mut c3 = n3.conn();
    misconf(&mut c3, &["SET", "k:0", "through node 3"]);
    for i in 0..60 {
        let v: String = redis::cmd("GET").arg(format!("k:{i}")).query(&mut c3).expect("GET through node 3");
        assert_eq!(v, format!("v{i}"));
    }
    assert!(local(&n3, "k:0").is_empty(), "node 3 stored a write while its disk was full");
    let refused: u64 = info(&n3, "kura_disk_refused_writes").parse().expect("a count");
    assert!(refused >= 60, "node 3 refused its replica writes ({refused})");

    disk.free();
    wait_disk(&n3, "ok");
    // Anti-entropy (and read repair) bring node 3's copy up to date.
    wait_until("node 3's copy to converge", Duration::from_secs(60), || {
        let keys = (0..60).all(|i| local(&n3, &format!("k:{i}")) == vec![format!("v{i}")]);
        let counted = counters.iter().chain(&others).all(|k| local(&n3, k) == vec!["1".to_owned()]);
        (keys && counted).then_some(())
    });
    assert_eq!(text(&q(&mut c3, &["SET", "k:0", "through node 3"])), "OK");
    assert_eq!(text(&q(&mut c1, &["GET", "k:0"])), "through node 3");
}
