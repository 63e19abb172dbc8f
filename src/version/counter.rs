//! A counter that converges (INCR, DECR, INCRBY, DECRBY): a PN-counter with Riak's
//! reset-remove (riak_dt's `emcntr`, Redis Enterprise's counters).
//!
//! Each actor (see [`Actor`]: a node incarnation and key epoch, never reused) keeps the totals
//! of the increments and decrements it made; they only grow, so two replicas' states merge by
//! taking the larger total per actor, in any order and any number of times. A reset (SET of
//! an integer, DEL) does not forget totals: it records the totals it observed as *floors*,
//! which no longer count, and sets the *base* (a last-write-wins register: the value SET gave,
//! or none after DEL). Increments the reset did not observe are above the floors, so they
//! survive it. The value is `base + sum(increments - floors) - sum(decrements - floors)`.

use serde::{Deserialize, Serialize};

use super::Actor;

/// One actor's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub inc: u128,
    pub dec: u128,
}

impl Totals {
    fn max(self, other: Totals) -> Totals {
        Totals { inc: self.inc.max(other.inc), dec: self.dec.max(other.dec) }
    }
}

/// The base a reset set: when, by whom (last write wins), and the value (`None`: deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub written_ms: u64,
    pub origin: Actor,
    pub value: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Per actor (sorted by actor): what it added and subtracted in all.
    counts: Vec<(Actor, Totals)>,
    /// Per actor (sorted): the totals the last resets observed.
    floors: Vec<(Actor, Totals)>,
    base: Option<Base>,
}

/// Merges two sorted per-actor lists by the larger totals.
fn join_totals(a: &[(Actor, Totals)], b: &[(Actor, Totals)]) -> Vec<(Actor, Totals)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1.max(y.1)));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push(*y);
                j += 1;
            }
            (None, None) => unreachable!("the loop condition"),
        }
    }
    out
}

fn totals_of(list: &[(Actor, Totals)], actor: Actor) -> Totals {
    list.binary_search_by_key(&actor, |(a, _)| *a).map(|i| list[i].1).unwrap_or_default()
}

impl Counter {
    /// The merge of two replicas' states: commutative, associative, idempotent.
    pub fn join(&self, other: &Counter) -> Counter {
        let base = match (self.base, other.base) {
            // Ties (one actor's two resets in one millisecond) are broken by the value, so the
            // join commutes whatever it is given. One actor's resets are causally ordered (the
            // later one's write saw the earlier), so real replicas never join such a pair: the
            // DVV drops the older sibling first.
            (Some(a), Some(b)) => {
                Some(if (b.written_ms, b.origin, b.value) > (a.written_ms, a.origin, a.value) { b } else { a })
            }
            (a, b) => a.or(b),
        };
        Counter {
            counts: join_totals(&self.counts, &other.counts),
            floors: join_totals(&self.floors, &other.floors),
            base,
        }
    }

    /// The sum of what counts: the base and every total above its floor.
    fn sum(&self) -> i128 {
        let mut v = i128::from(self.base.and_then(|b| b.value).unwrap_or(0));
        for &(actor, t) in &self.counts {
            let f = totals_of(&self.floors, actor);
            v += t.inc.saturating_sub(f.inc) as i128 - t.dec.saturating_sub(f.dec) as i128;
        }
        v
    }

    /// The counter's value; `None` when the key reads as missing (deleted, and nothing added
    /// since that the delete did not see).
    pub fn value(&self) -> Option<i64> {
        if !self.exists() {
            return None;
        }
        // Out of range only through concurrent increments on both sides of a partition; it
        // then reads as the nearest end of the range (each side refused to pass it alone).
        Some(self.sum().clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// Whether anything sets the value: a base, or a total above its floor.
    pub fn exists(&self) -> bool {
        self.base.is_some_and(|b| b.value.is_some())
            || self.counts.iter().any(|&(a, t)| {
                let f = totals_of(&self.floors, a);
                t.inc > f.inc || t.dec > f.dec
            })
    }

    /// Adds `by` (negative: subtracts) as `actor`. The caller checked the range.
    pub fn add(&mut self, actor: Actor, by: i64) {
        let i = match self.counts.binary_search_by_key(&actor, |(a, _)| *a) {
            Ok(i) => i,
            Err(i) => {
                self.counts.insert(i, (actor, Totals::default()));
                i
            }
        };
        let t = &mut self.counts[i].1;
        if by >= 0 {
            t.inc += by as u128;
        } else {
            t.dec += by.unsigned_abs() as u128;
        }
    }

    /// Whether adding `by` keeps the value within i64 (Redis refuses an overflowing INCRBY).
    pub fn can_add(&self, by: i64) -> bool {
        let v = self.value().unwrap_or(0);
        v.checked_add(by).is_some()
    }

    /// A reset that observed this state: every total observed stops counting, and the value
    /// becomes `value` (`None`: the key is deleted) as written by `origin` at `written_ms`.
    pub fn reset(&self, value: Option<i64>, written_ms: u64, origin: Actor) -> Counter {
        Counter {
            counts: self.counts.clone(),
            floors: join_totals(&self.floors, &self.counts),
            base: Some(Base { written_ms, origin, value }),
        }
    }

    /// What a tombstone (a DEL that saw no counter) means to counters it meets: the base is
    /// gone as of its time; increments it never saw still count.
    pub fn deleted_at(written_ms: u64, origin: Actor) -> Counter {
        Counter { base: Some(Base { written_ms, origin, value: None }), ..Counter::default() }
    }

    /// Bytes this state takes, roughly (MEMORY USAGE).
    pub fn size(&self) -> usize {
        24 + 40 * (self.counts.len() + self.floors.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: Actor = Actor(1);
    const B: Actor = Actor(2);

    #[test]
    fn increments_of_two_actors_add_up() {
        let mut a = Counter::default();
        a.add(A, 5);
        let mut b = a.clone();
        a.add(A, 2);
        b.add(B, -10);
        assert_eq!(a.join(&b).value(), Some(-3));
        assert_eq!(b.join(&a), a.join(&b));
    }

    #[test]
    fn a_reset_keeps_the_increments_it_did_not_observe() {
        let mut c = Counter::default();
        c.add(A, 10);
        let mut concurrent = c.clone();
        concurrent.add(B, 1);
        // DEL observed 10: it no longer counts; the concurrent +1 does.
        let deleted = c.reset(None, 100, A);
        assert_eq!(deleted.value(), None);
        assert!(!deleted.exists());
        assert_eq!(deleted.join(&concurrent).value(), Some(1));
        // SET 7 over it, concurrent with another +1.
        let set = c.reset(Some(7), 100, A);
        assert_eq!(set.join(&concurrent).value(), Some(8));
        // A later increment by the actor that reset continues from the floor.
        let mut after = set.clone();
        after.add(A, 3);
        assert_eq!(after.join(&concurrent).value(), Some(11));
    }

    #[test]
    fn bases_of_one_millisecond_join_in_either_order() {
        let five = Counter::default().reset(Some(5), 8, B);
        let ten = Counter::default().reset(Some(10), 8, B);
        assert_eq!(five.join(&ten), ten.join(&five));
    }

    #[test]
    fn zero_after_increments_exists() {
        let mut c = Counter::default();
        c.add(A, 1);
        c.add(A, -1);
        assert_eq!(c.value(), Some(0));
    }

    fn arb_actor() -> impl Strategy<Value = Actor> {
        (1u64..4).prop_map(Actor)
    }

    /// A counter built by a sequence of operations of one history.
    fn arb_counter() -> impl Strategy<Value = Counter> {
        proptest::collection::vec((arb_actor(), -50i64..50, any::<bool>(), 0u64..100), 0..12).prop_map(|ops| {
            let mut c = Counter::default();
            for (actor, by, reset, ms) in ops {
                if reset && by % 5 == 0 {
                    c = c.reset((by > 0).then_some(by), ms, actor);
                } else {
                    c.add(actor, by);
                }
            }
            c
        })
    }

    proptest! {
        #[test]
        fn join_is_a_semilattice(a in arb_counter(), b in arb_counter(), c in arb_counter()) {
            prop_assert_eq!(a.join(&b), b.join(&a));
            prop_assert_eq!(a.join(&b).join(&c), a.join(&b.join(&c)));
            prop_assert_eq!(a.join(&a), a.clone());
        }

        /// Replicas that start from one state and each add: the merge holds every addition.
        #[test]
        fn no_acknowledged_increment_is_lost(
            start in arb_counter(),
            left in proptest::collection::vec(-100i64..100, 0..10),
            right in proptest::collection::vec(-100i64..100, 0..10),
        ) {
            let (mut l, mut r) = (start.clone(), start.clone());
            for by in &left { l.add(A, *by); }
            for by in &right { r.add(B, *by); }
            let expected = i128::from(start.value().unwrap_or(0)) + left.iter().chain(&right).map(|&x| i128::from(x)).sum::<i128>();
            prop_assert_eq!(i128::from(l.join(&r).value().unwrap_or(0)), expected);
        }
    }
}
