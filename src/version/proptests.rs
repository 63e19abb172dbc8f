//! Property tests of the clock algebra over states reachable by real histories: replicas that
//! write (with contexts read earlier, possibly stale) and sync with each other in random order.

use proptest::prelude::*;

use super::{Actor, Dot, DvvSet, VersionVector};

#[derive(Clone, Debug)]
enum Op {
    /// Replica `at` coordinates a write with the context of snapshot `ctx` (or none).
    Write { at: usize, ctx: Option<usize> },
    /// Replica `to` merges replica `from`'s set.
    Sync { from: usize, to: usize },
}

const REPLICAS: usize = 3;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..REPLICAS, proptest::option::of(0usize..64)).prop_map(|(at, ctx)| Op::Write { at, ctx }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

/// Runs a history; returns every state seen on the way (the snapshots).
fn run(ops: &[Op]) -> Vec<DvvSet<u32>> {
    let mut replicas = vec![DvvSet::<u32>::new(); REPLICAS];
    let mut snapshots = vec![DvvSet::new()];
    let mut next_value = 0u32;
    for op in ops {
        match *op {
            Op::Write { at, ctx } => {
                let ctx = ctx.map(|i| snapshots[i % snapshots.len()].join()).unwrap_or_default();
                next_value += 1;
                let (s, _) = replicas[at].update(&ctx, Actor(at as u64 + 1), next_value);
                replicas[at] = s;
            }
            Op::Sync { from, to } => {
                let merged = replicas[to].sync(&replicas[from]);
                replicas[to] = merged;
            }
        }
        snapshots.extend(replicas.iter().cloned());
    }
    snapshots
}

fn sorted_values(s: &DvvSet<u32>) -> Vec<(Dot, u32)> {
    let mut v: Vec<_> = s.dotted_values().map(|(d, v)| (d, *v)).collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_join_in_place_is_the_join(
        a in proptest::collection::vec((1u64..6, 1u64..20), 0..6),
        b in proptest::collection::vec((1u64..6, 1u64..20), 0..6),
    ) {
        let vv = |e: Vec<(u64, u64)>| VersionVector::from_entries(e.into_iter().map(|(a, n)| (Actor(a), n)).collect());
        let (a, b) = (vv(a), vv(b));
        let mut joined = a.clone();
        joined.join_from(&b);
        prop_assert_eq!(joined, a.join(&b));
    }

    #[test]
    fn sync_is_commutative_associative_idempotent(
        ops in proptest::collection::vec(op(), 1..40),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let states = run(&ops);
        let a = picks[0].get(&states);
        let b = picks[1].get(&states);
        let c = picks[2].get(&states);
        prop_assert_eq!(a.sync(b), b.sync(a));
        prop_assert_eq!(a.sync(b).sync(c), a.sync(&b.sync(c)));
        prop_assert_eq!(a.sync(a), a.clone());
        // The merge has seen both and loses no value that neither side superseded.
        let m = a.sync(b);
        prop_assert!(m.join().descends(&a.join()) && m.join().descends(&b.join()));
        for (dot, v) in a.dotted_values() {
            let superseded_by_b = b.join().covers(dot) && !b.dotted_values().any(|(d, _)| d == dot);
            let kept = m.dotted_values().any(|(d, w)| d == dot && w == v);
            prop_assert_eq!(kept, !superseded_by_b);
        }
    }

    /// A copy whose clock has seen every event of another gains nothing by merging it: what a
    /// replica answering a read-modify-write's read with "same" (`ReadUnlessSame`) relies on.
    #[test]
    fn a_copy_that_has_seen_all_of_another_is_its_merge(
        ops in proptest::collection::vec(op(), 1..40),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 2),
    ) {
        let states = run(&ops);
        let (a, b) = (picks[0].get(&states), picks[1].get(&states));
        if a.join().descends(&b.join()) {
            prop_assert_eq!(a.sync(b), a.clone());
        }
    }

    #[test]
    fn write_with_context_supersedes_exactly_what_it_saw(
        ops in proptest::collection::vec(op(), 1..40),
        pick_state in any::<prop::sample::Index>(),
        pick_ctx in any::<prop::sample::Index>(),
        actor in 1u64..5,
    ) {
        let states = run(&ops);
        let s = pick_state.get(&states);
        let ctx: VersionVector = pick_ctx.get(&states).join();
        let (after, dot) = s.update(&ctx, Actor(actor), 9999);
        let mut expected: Vec<(Dot, u32)> =
            sorted_values(s).into_iter().filter(|(d, _)| !ctx.covers(*d)).collect();
        expected.push((dot, 9999));
        expected.sort();
        prop_assert_eq!(sorted_values(&after), expected);
        // The new dot is fresh: neither the context nor the old state had seen it.
        prop_assert!(!ctx.covers(dot) && !s.join().covers(dot));
        prop_assert!(s.less(&after));
    }
}

/// Counters through the DVV machinery: replicas increment (each a sibling holding the whole
/// counter state it saw, written over everything it saw, as `Replica::modify` does) and sync
/// in random order; once every replica has synced with every other, each reads the exact sum
/// of every increment ever made, whatever the order.
mod counters {
    use proptest::prelude::*;

    use crate::version::{Actor, Dot, Sibling, SiblingSet, Value};

    #[derive(Clone, Debug)]
    enum Op {
        Incr { at: usize, by: i64 },
        Sync { from: usize, to: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, -50i64..50).prop_map(|(at, by)| Op::Incr { at, by }),
            (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Sync { from, to }),
        ]
    }

    fn incr(set: &SiblingSet, actor: Actor, by: i64, ms: u64) -> SiblingSet {
        let mut c = match set.resolve(0).map(|r| r.value) {
            Some(Value::Counter(c)) => c,
            _ => set.counter().reset(Some(0), ms, actor),
        };
        // The dot the DVV gives this write, and what it observed (as `Replica::modify` does).
        let n = set.counters().find(|&(a, _)| a == actor).map_or(0, |(_, n)| n);
        c.witness(&set.context());
        c.add(Dot { actor, counter: n + 1 }, by);
        let sibling = Sibling {
            value: Some(Value::Counter(c)),
            written_ms: ms,
            origin: actor,
            expires_ms: None,
            resets: Vec::new(),
            flush_seen: None,
        };
        set.update(&set.context(), sibling).0
    }

    proptest! {
        #[test]
        fn every_increment_counts_once_in_any_sync_order(ops in proptest::collection::vec(op(), 1..60)) {
            let mut replicas = vec![SiblingSet::new(); 3];
            let mut sum = 0i64;
            for (t, op) in ops.iter().enumerate() {
                match *op {
                    Op::Incr { at, by } => {
                        replicas[at] = incr(&replicas[at], Actor(at as u64 + 1), by, t as u64 + 1);
                        sum += by;
                    }
                    Op::Sync { from, to } => replicas[to] = replicas[to].sync(&replicas[from]),
                }
            }
            // Everyone syncs with everyone (twice round, so each has all).
            for _ in 0..2 {
                for from in 0..3 {
                    for to in 0..3 {
                        replicas[to] = replicas[to].sync(&replicas[from]);
                    }
                }
            }
            let made = ops.iter().any(|o| matches!(o, Op::Incr { .. }));
            for r in &replicas {
                let value = match r.resolve(0).map(|r| r.value) {
                    Some(Value::Counter(c)) => c.value(),
                    None => None,
                    Some(other) => return Err(TestCaseError::fail(format!("not a counter: {other:?}"))),
                };
                prop_assert_eq!(value, made.then_some(sum));
                prop_assert_eq!(r, &replicas[0]);
            }
        }
    }
}
