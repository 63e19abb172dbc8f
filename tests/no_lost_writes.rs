//! No acknowledged write lost or refused (issue 10), on real processes: a coordinator killed
//! mid-pipeline and restarted, a founding node that lost its disk, writes from the first moment
//! of a partition, a leaving stand-in's hints, writes during a ring change.

mod harness;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::{local, query as q, text, wait_until, Cluster};
use redis::Value;

const NRW: [&str; 6] = ["--n", "3", "--r", "2", "--w", "2"];

/// Item 1: a coordinator killed mid-pipeline and restarted on the same data dir must not reissue
/// a dot its replicas already hold: the `SET final` it acknowledges after the restart is what
/// every replica holds and every GET returns. Ten trials.
#[test]
fn a_restarted_coordinator_never_reissues_a_version() {
    let mut c = Cluster::start(3, &NRW);
    for trial in 0..10 {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (client, stop, progress) = (c.nodes[0].client(""), stop.clone(), progress.clone());
                std::thread::spawn(move || {
                    let Ok(mut con) = client.get_connection() else { return 0 };
                    let mut acked = 0;
                    for round in 0.. {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let mut pipe = redis::pipe();
                        for i in 0..50 {
                            pipe.cmd("SET").arg("hot").arg(format!("t{trial}-w{w}-{round}-{i}"));
                        }
                        if pipe.query::<Vec<Value>>(&mut con).is_err() {
                            break;
                        }
                        acked += 50;
                        progress.fetch_add(50, Ordering::AcqRel);
                    }
                    acked
                })
            })
            .collect();
        // Let the pipelines run, then kill the coordinator in the middle of them.
        wait_until("the writers to get going", Duration::from_secs(60), || {
            (progress.load(Ordering::Acquire) >= 2000).then_some(())
        });
        c.nodes[0].kill9();
        stop.store(true, Ordering::Release);
        let acked: usize = writers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
        c.nodes[0].spawn();
        let fin = format!("final-{trial}");
        let reply = wait_until("SET final through the restarted node", Duration::from_secs(30), || {
            q(&c.nodes[0], &["SET", "hot", &fin]).ok()
        });
        assert_eq!(reply, Value::Okay, "trial {trial}");
        wait_until(
            &format!("trial {trial} ({acked} writes acknowledged before the kill): every replica to hold only {fin}"),
            Duration::from_secs(30),
            || {
                c.nodes
                    .iter()
                    .all(|n| {
                        local(n, "hot") == vec![fin.clone()]
                            && q(n, &["GET", "hot"]).ok().map(|v| text(&v)) == Some(fin.clone())
                    })
                    .then_some(())
            },
        );
    }
}
