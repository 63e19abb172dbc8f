//! Sending one request to several replicas and waiting for enough of them (paper 4.5, 4.6):
//! "send to these, need this many, replace the silent with stand-ins, finish the rest in the
//! background" (Garage's `try_call_many` is the model).
//!
//! A replica that fails, or has not answered after `sloppy_after`, is replaced by a stand-in
//! (paper 4.6: a node that does not answer *during a write* is replaced by the next node of the
//! extended preference list) without waiting for the failure detector: the request still ends
//! within its deadline. The slow replica is not cancelled; if it answers later, it counts too.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::quorum::Target;

/// One call in flight: its target, and its answer (`None`: it failed).
pub type Call<T> = Pin<Box<dyn Future<Output = (Target, Option<T>)> + Send>>;

/// What [`gather`] collected.
pub struct Gathered<T> {
    pub answers: Vec<(Target, T)>,
    pub failures: usize,
    /// Whether `enough` held when it returned.
    pub met: bool,
    /// Calls still out when it returned: finish them in the background (or drop them).
    pub pending: FuturesUnordered<Call<T>>,
}

/// Calls every target in `first`, and returns as soon as `enough(answers)` holds, when nothing
/// is left to wait for, or at `deadline`. A target that fails, or is silent for `sloppy_after`
/// (again every `sloppy_after`), is replaced by `spare(target)` if it gives one.
pub async fn gather<T: Send + 'static>(
    first: Vec<Target>,
    deadline: Instant,
    sloppy_after: Duration,
    mut spare: impl FnMut(&Target) -> Option<Target>,
    call: impl Fn(Target) -> Call<T>,
    enough: impl Fn(&[(Target, T)]) -> bool,
) -> Gathered<T> {
    let mut pending: FuturesUnordered<Call<T>> = FuturesUnordered::new();
    // Targets called and not heard from, not yet replaced.
    let mut silent: Vec<Target> = Vec::with_capacity(first.len());
    for t in first {
        silent.push(t.clone());
        pending.push(call(t));
    }
    let mut answers: Vec<(Target, T)> = Vec::new();
    let mut failures = 0;
    let mut tick = Instant::now() + sloppy_after;
    let mut replace = |t: &Target, silent: &mut Vec<Target>, pending: &mut FuturesUnordered<Call<T>>| {
        if let Some(s) = spare(t) {
            silent.push(s.clone());
            pending.push(call(s));
        }
    };
    while !enough(&answers) && !pending.is_empty() {
        tokio::select! {
            next = pending.next() => match next {
                Some((t, Some(v))) => {
                    silent.retain(|s| *s != t);
                    answers.push((t, v));
                }
                Some((t, None)) => {
                    failures += 1;
                    if let Some(i) = silent.iter().position(|s| *s == t) {
                        silent.swap_remove(i);
                        replace(&t, &mut silent, &mut pending);
                    }
                }
                None => break,
            },
            () = tokio::time::sleep_until(tick), if tick < deadline => {
                for t in std::mem::take(&mut silent) {
                    replace(&t, &mut silent, &mut pending);
                }
                tick += sloppy_after;
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    let met = enough(&answers);
    Gathered { answers, failures, met, pending }
}

/// The stand-ins of a request: nodes of the ring walk not used yet, those believed up first.
/// A stand-in for a target holds a hint for the owner that target was (or stood in for).
pub struct Spares {
    order: Vec<String>,
}

impl Spares {
    /// Stand-ins from `walk` for a request already sent to `used`.
    pub fn new(walk: &[String], used: &[&str], up: &dyn Fn(&str) -> bool) -> Spares {
        let fresh = walk.iter().filter(|n| !used.contains(&n.as_str()));
        let (mut order, down): (Vec<String>, Vec<String>) = fresh.cloned().partition(|n| up(n));
        order.extend(down);
        order.reverse(); // popped from the back
        Spares { order }
    }

    /// The stand-in for `target`.
    pub fn next(&mut self, target: &Target) -> Option<Target> {
        let node = self.order.pop()?;
        Some(Target { node, hint_for: Some(target.hint_for.clone().unwrap_or_else(|| target.node.clone())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn t(node: &str) -> Target {
        Target { node: node.into(), hint_for: None }
    }

    /// A simulated network: each node answers after its delay, or never (`None`).
    fn net(delays: &[(&str, Option<u64>)]) -> impl Fn(Target) -> Call<()> {
        let delays: Arc<HashMap<String, Option<u64>>> =
            Arc::new(delays.iter().map(|(n, d)| (n.to_string(), *d)).collect());
        move |target: Target| {
            let delay = delays.get(&target.node).copied().flatten();
            Box::pin(async move {
                match delay {
                    Some(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        (target, Some(()))
                    }
                    None => std::future::pending().await,
                }
            })
        }
    }

    fn need(n: usize) -> impl Fn(&[(Target, ())]) -> bool {
        move |a: &[(Target, ())]| a.len() >= n
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_replica_is_replaced_by_a_stand_in_before_the_deadline() {
        let walk: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        let mut spares = Spares::new(&walk, &["a", "b"], &|_| true);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(2000);
        let network = net(&[("a", Some(5)), ("b", None), ("c", None), ("d", Some(5))]);
        let g =
            gather(vec![t("a"), t("b")], deadline, Duration::from_millis(300), |x| spares.next(x), network, need(2))
                .await;
        assert!(g.met);
        // b is silent: at 300 ms c stands in for it, and is silent too; at 600 ms d does.
        let got: Vec<(String, Option<String>)> =
            g.answers.iter().map(|(t, ())| (t.node.clone(), t.hint_for.clone())).collect();
        assert_eq!(got, vec![("a".into(), None), ("d".into(), Some("b".into()))]);
        assert_eq!(Instant::now() - start, Duration::from_millis(605));
        assert_eq!(g.pending.len(), 2, "b and c are still out");
    }

    /// A hedged read (`hedge.rs`): the next replica is asked only when the one asked is late,
    /// and the one after it not at all once the answer is in.
    #[tokio::test(start_paused = true)]
    async fn a_late_replica_is_hedged_by_the_next_and_the_rest_are_not_asked() {
        let start = Instant::now();
        let network = net(&[("a", None), ("b", Some(5)), ("c", Some(1))]);
        let mut rest = vec![t("c"), t("b")]; // popped from the back
        let g = gather(
            vec![t("a")],
            start + Duration::from_secs(2),
            Duration::from_millis(20),
            |_| rest.pop(),
            network,
            need(1),
        )
        .await;
        assert!(g.met);
        let answered: Vec<&str> = g.answers.iter().map(|(t, ())| t.node.as_str()).collect();
        assert_eq!(answered, ["b"], "b was asked when a was late, and answered");
        assert_eq!(Instant::now() - start, Duration::from_millis(25));
        assert_eq!(rest, [t("c")], "c was never asked");
        assert_eq!(g.pending.len(), 1, "a is still out");
    }

    #[tokio::test(start_paused = true)]
    async fn without_spares_it_ends_at_the_deadline_with_what_it_has() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(2000);
        let network = net(&[("a", Some(1)), ("b", None)]);
        let g = gather(vec![t("a"), t("b")], deadline, Duration::from_millis(300), |_| None, network, need(2)).await;
        assert!(!g.met);
        assert_eq!(g.answers.len(), 1);
        assert_eq!(Instant::now() - start, Duration::from_millis(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_replica_is_replaced_at_once_and_stand_ins_up_come_first() {
        let walk: Vec<String> = ["a", "b", "x", "y"].iter().map(|s| s.to_string()).collect();
        let mut spares = Spares::new(&walk, &["a", "b"], &|n| n != "x");
        let network = {
            let inner = net(&[("a", Some(1)), ("y", Some(1))]);
            move |target: Target| -> Call<()> {
                if target.node == "b" {
                    Box::pin(async move { (target, None) })
                } else {
                    inner(target)
                }
            }
        };
        let start = Instant::now();
        let g = gather(
            vec![t("a"), t("b")],
            start + Duration::from_secs(2),
            Duration::from_millis(300),
            |x| spares.next(x),
            network,
            need(2),
        )
        .await;
        assert!(g.met);
        assert_eq!(g.failures, 1);
        assert_eq!(g.answers[1].0, Target { node: "y".into(), hint_for: Some("b".into()) }, "y is up, x is not");
        assert!(Instant::now() - start < Duration::from_millis(300), "no wait for a failure");
    }
}
