//! Issue 20 items 9 and 10 on real processes: a forwarded read-modify-write that may have
//! been applied answers `-NOQUORUM` (never `-ERR`, on which a client retries and counts an
//! INCR twice), and a partition is known to the failure detectors within about a second, after
//! which every read-modify-write through every node succeeds again.

use crate::harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::{err_of, local, query as q, sees, wait_until, Cluster, Cut, Node};
use redis::Value;

/// Three nodes that all hold every key and need all three copies for a write.
const W3: [&str; 6] = ["--n", "3", "--r", "2", "--w", "3"];

/// The key's decider (first owner) and the other two owners, as node indexes.
fn roles(c: &Cluster, key: &str) -> (usize, usize, usize) {
    let p = c.preflist(0, key);
    assert_eq!(p.len(), 3, "every node owns every key: {p:?}");
    (p[0], p[1], p[2])
}

/// Item 9: the decider of a forwarded read-modify-write misses W (the third owner is dead and
/// three nodes have no stand-in for it). The write was made at the decider and the second
/// owner, so the client must hear NOQUORUM ("may have been applied"), not ERR.
#[test]
fn a_forwarded_rmw_that_misses_w_at_the_decider_answers_noquorum() {
    let mut c = Cluster::start(3, &W3);
    let key = "counted";
    let (decider, via, victim) = roles(&c, key);
    // A set key and an NX key with the same owners in the same order.
    let same = |prefix: &str| {
        (0..).map(|i| format!("{prefix}-{i}")).find(|k| roles(&c, k) == (decider, via, victim)).expect("a key")
    };
    let (set_key, nx_key) = (same("s"), same("nx"));
    c.nodes[victim].kill9();
    let node = &c.nodes[via];
    for cmd in [vec!["INCR", key], vec!["SADD", &set_key, "m"], vec!["SET", &nx_key, "v", "NX"]] {
        let t = Instant::now();
        let err = err_of(q(node, &cmd));
        assert!(
            err.starts_with("NOQUORUM") && err.contains("may have"),
            "{cmd:?} through {} (decider {}) answered {err:?}, not NOQUORUM ... may have been applied",
            node.addr(),
            c.nodes[decider].addr()
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{cmd:?} took {:?}", t.elapsed());
    }
    // The INCR was applied at the decider (and the second owner): a retry on this answer would
    // count it twice, which is why the answer says so.
    assert_eq!(local(&c.nodes[decider], key), vec!["1"]);
}

/// Item 9: the forward's connection drops after the request was sent (the decider dies while
/// it waits for W, having applied the increment): the client hears NOQUORUM, not ERR.
#[test]
fn a_forward_whose_decider_dies_after_applying_it_answers_noquorum() {
    // A long request timeout: the decider waits for its silent third owner all that time.
    let mut args = W3.to_vec();
    args.extend(["--request-timeout-ms", "15000"]);
    let mut c = Cluster::start(3, &args);
    let key = "dropped";
    let (decider, via, victim) = roles(&c, key);
    let cut = Cut::between(&c.nodes[decider], &c.nodes[victim]);
    let through = c.nodes[via].addr();
    let mut con = c.nodes[via].conn();
    con.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
    let answered = std::sync::Arc::new(AtomicBool::new(false));
    let client = {
        let answered = answered.clone();
        std::thread::spawn(move || {
            let r: redis::RedisResult<Value> = redis::cmd("INCR").arg(key).query(&mut con);
            answered.store(true, Ordering::Release);
            r
        })
    };
    // The increment is in the decider's store: it is waiting for its third copy.
    wait_until("the decider to apply the forwarded INCR", Duration::from_secs(10), || {
        (local(&c.nodes[decider], key) == vec!["1"]).then_some(())
    });
    let killed_while_waiting = !answered.load(Ordering::Acquire);
    c.nodes[decider].kill9();
    let reply = client.join().expect("the client");
    drop(cut);
    assert!(killed_while_waiting, "the decider answered before it was killed: {reply:?}");
    let err = err_of(reply);
    assert!(
        err.starts_with("NOQUORUM") && err.contains("may have"),
        "INCR through {through} whose decider died answered {err:?}, not NOQUORUM ... may have been applied"
    );
}

/// Item 10: a read-modify-write forwarded to a decider that certainly never got it (its
/// process is gone: the connection is refused before anything is sent) is decided by the next
/// owner at once, before any failure detector has noticed, instead of failing.
#[test]
fn an_rmw_whose_decider_refuses_the_connection_is_decided_by_the_next_owner() {
    let mut c = Cluster::start(3, &["--n", "3", "--r", "2", "--w", "2"]);
    let key = "moved-on";
    let (decider, via, _) = roles(&c, key);
    assert_eq!(q(&c.nodes[via], &["INCR", key]), Ok(Value::Int(1)));
    let connects = |n: &Node| harness::metric(&n.metrics(), "kura_peer_errors_total{kind=\"connect\"}");
    let before = connects(&c.nodes[via]).unwrap_or(0.0);
    c.nodes[decider].kill9();
    // Its open connection to the decider (heartbeats, the first forward) has closed and a new
    // one was refused: a request written into the dead connection before it saw the close
    // could have been delivered (a NOQUORUM "may have been applied" is then the right answer;
    // seen once in a full run). The detector may or may not have noticed by now.
    wait_until("a refused connection to the killed decider", Duration::from_secs(10), || {
        (connects(&c.nodes[via]).unwrap_or(0.0) > before).then_some(())
    });
    let t = Instant::now();
    let reply = q(&c.nodes[via], &["INCR", key]);
    assert_eq!(reply, Ok(Value::Int(2)), "INCR through {} after its decider died", c.nodes[via].addr());
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
}

/// One command's outcome during the partition: when it was sent (after the cut), through
/// which node, and its error if it was refused.
struct Sent {
    at: Duration,
    via: usize,
    took: Duration,
    error: Option<String>,
}

/// Runs `cmd(worker, i)` through node `w % 5` in a loop on each of `workers` threads until
/// `until` after `t0`, and returns every outcome.
fn run_for(
    c: &Cluster,
    workers: usize,
    t0: Instant,
    until: Duration,
    cmd: impl Fn(usize, usize) -> Vec<String> + Sync,
) -> Vec<Sent> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let cmd = &cmd;
                s.spawn(move || {
                    let via = w % c.nodes.len();
                    let mut out = Vec::new();
                    for i in 0.. {
                        let at = t0.elapsed();
                        if at >= until {
                            break;
                        }
                        let args = cmd(w, i);
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let t = Instant::now();
                        let error = q(&c.nodes[via], &args).err().map(|e| e.to_string());
                        out.push(Sent { at, via, took: t.elapsed(), error });
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a worker")).collect()
    })
}

fn summary(what: &str, sent: &[Sent]) -> String {
    let refused: Vec<&Sent> = sent.iter().filter(|s| s.error.is_some()).collect();
    let mut text = format!("{what}: {} of {} refused", refused.len(), sent.len());
    if let Some(last) = refused.iter().map(|s| s.at).max() {
        text += &format!(", the last sent {last:.1?} after the cut");
    }
    for half in 0..8 {
        let (from, to) = (Duration::from_millis(500 * half), Duration::from_millis(500 * (half + 1)));
        let in_it: Vec<&Sent> = sent.iter().filter(|s| s.at >= from && s.at < to).collect();
        let bad = in_it.iter().filter(|s| s.error.is_some()).count();
        text += &format!("\n  sent {from:.1?}..{to:.1?}: {bad} of {} refused", in_it.len());
    }
    for s in refused.iter().take(6) {
        text += &format!(
            "\n  refused through node {} at {:.2?} after {:.2?}: {}",
            s.via + 1,
            s.at,
            s.took,
            s.error.as_deref().unwrap_or("")
        );
    }
    text
}

/// Item 10: five nodes split 2/3 by firewall rules on the peer port. Every node knows the other
/// side is down within a couple of seconds (heartbeats with short timeouts; the old detector
/// needed two failed 2 s heartbeats and 3 s of silence); plain SETs are never refused; once the
/// detectors have marked the other side down, INCRs through every node all succeed. The INCRs
/// refused in the first seconds (a forward sent to a decider that may have applied it cannot be
/// re-sent elsewhere) are measured and printed.
#[test]
fn a_partition_is_detected_within_seconds_and_then_every_write_succeeds() {
    let _timed = harness::timed();
    let c = Cluster::start(5, &["--n", "3", "--r", "2", "--w", "2", "--request-timeout-ms", "2000"]);
    let (left, right): (Vec<&Node>, Vec<&Node>) = (c.nodes[..2].iter().collect(), c.nodes[2..].iter().collect());
    // Every node has talked to every other about these keys before the cut.
    for (i, node) in c.nodes.iter().enumerate() {
        for k in 0..10 {
            assert_eq!(q(node, &["INCR", &format!("warm-{k}")]), Ok(Value::Int(i as i64 + 1)));
        }
    }
    let cuts = Cut::sides(&left, &right);
    let t0 = Instant::now();
    let window = Duration::from_secs(4);
    let (incrs, sets, split_at) = std::thread::scope(|s| {
        let incrs = s.spawn(|| run_for(&c, 10, t0, window, |w, i| vec!["INCR".into(), format!("c-{w}-{}", i % 4)]));
        let sets = s.spawn(|| run_for(&c, 5, t0, window, |w, i| vec!["SET".into(), format!("s-{w}-{i}"), "v".into()]));
        let down = |a: &[&Node], b: &[&Node]| {
            a.iter().all(|x| b.iter().all(|y| sees(x, &y.cluster_addr().to_string(), "down")))
        };
        let split_at = wait_until("each side to see the other down", Duration::from_secs(20), || {
            (down(&left, &right) && down(&right, &left)).then(|| t0.elapsed())
        });
        (incrs.join().expect("incr workers"), sets.join().expect("set workers"), split_at)
    });
    eprintln!("every node saw the other side down {split_at:.2?} after the cut");
    eprintln!("{}", summary("INCRs in the first 4 s", &incrs));
    eprintln!("{}", summary("SETs in the first 4 s", &sets));
    assert!(sets.iter().all(|s| s.error.is_none()), "a plain SET was refused:\n{}", summary("SETs", &sets));
    // Generous for a loaded machine; the detector's own timing is unit-tested on a fake clock.
    assert!(split_at < Duration::from_millis(2500), "the partition took {split_at:?} to be detected");
    // Now that the detectors know, INCRs and SETs through every node all succeed.
    let t1 = Instant::now();
    let after_incrs = run_for(&c, 10, t1, Duration::from_secs(2), |w, i| vec!["INCR".into(), format!("d-{w}-{i}")]);
    let after_sets =
        run_for(&c, 5, t1, Duration::from_secs(1), |w, i| vec!["SET".into(), format!("t-{w}-{i}"), "v".into()]);
    eprintln!("{}", summary("INCRs once the split was detected", &after_incrs));
    assert!(
        after_incrs.len() >= 10 && after_incrs.iter().all(|s| s.error.is_none()),
        "{}",
        summary("INCRs", &after_incrs)
    );
    assert!(after_sets.iter().all(|s| s.error.is_none()), "{}", summary("SETs", &after_sets));
    drop(cuts);
}
