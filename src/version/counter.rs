//! A counter that converges (INCR, DECR, INCRBY, DECRBY, HINCRBY): a PN-counter with Riak's
//! reset-remove, built as riak_dt's `emcntr` (the counter embedded in a map).
//!
//! The state is a clock (every write whose effects it has seen: the context its write
//! observed, and its own dots) and, per actor (see [`Actor`]: a node incarnation and key
//! epoch), one *entry*: the dot of that actor's latest increment this state holds and the
//! totals of the increments and decrements it made since the last reset that observed them.
//! An actor's increments are made one after another on one copy, so of two entries of one
//! actor the one with the later dot is its continuation (or what it started after a reset).
//! A reset (SET of an integer, DEL, a string or anything else written over it) drops the
//! entries it observed and keeps the clock; it sets the *base*, a last-write-wins register
//! (the value SET gave, or none after DEL). Two states merge per actor: the later of two
//! entries wins; an entry only one side holds stays unless the other side's clock has seen
//! its dot (then the other side reset it). So increments a reset did not observe survive it,
//! and a counter made anew over a key (after `SET k abc`, `DEL k`) never counts again what
//! the old one held, however many replicas still hold it: its clock (the key's context where
//! it was written, `Counter::witness`) has seen those entries' dots.
//! The value is `base + sum(increments - decrements)` over the entries.

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Actor, Dot, VersionVector};

/// One actor's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub inc: u128,
    pub dec: u128,
}

/// An actor's part of the count: its latest increment's dot counter and its totals since the
/// last reset that observed them. Dot 0 marks an entry converted from the form before entries
/// had dots (no clock has seen it; see [`Counter`]'s decoding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub dot: u64,
    pub totals: Totals,
}

impl Entry {
    /// The later of one actor's two entries (equal dots: one event, the same totals; the
    /// maximum keeps the join commutative whatever it is given).
    fn later(self, other: Entry) -> Entry {
        match self.dot.cmp(&other.dot) {
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Equal => Entry {
                dot: self.dot,
                totals: Totals {
                    inc: self.totals.inc.max(other.totals.inc),
                    dec: self.totals.dec.max(other.totals.dec),
                },
            },
        }
    }
}

/// The base a reset set: when, by whom (last write wins), and the value (`None`: deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub written_ms: u64,
    pub origin: Actor,
    pub value: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Every write whose effects this state has seen.
    clock: VersionVector,
    /// Per actor (sorted by actor): its entry.
    entries: Vec<(Actor, Entry)>,
    base: Option<Base>,
}

/// Whether `clock` has seen the entry of `actor` with dot counter `dot` (never one converted
/// from the old form).
fn seen(clock: &VersionVector, actor: Actor, dot: u64) -> bool {
    dot > 0 && clock.covers(Dot { actor, counter: dot })
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
        let (a, b) = (&self.entries, &other.entries);
        let mut entries = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    entries.push((x.0, x.1.later(y.1)));
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    if !seen(&other.clock, x.0, x.1.dot) {
                        entries.push(*x);
                    }
                    i += 1;
                }
                (Some(x), None) => {
                    if !seen(&other.clock, x.0, x.1.dot) {
                        entries.push(*x);
                    }
                    i += 1;
                }
                (_, Some(y)) => {
                    if !seen(&self.clock, y.0, y.1.dot) {
                        entries.push(*y);
                    }
                    j += 1;
                }
                (None, None) => unreachable!("the loop condition"),
            }
        }
        Counter { clock: self.clock.join(&other.clock), entries, base }
    }

    /// The sum of what counts: the base and every entry.
    fn sum(&self) -> i128 {
        let mut v = i128::from(self.base.and_then(|b| b.value).unwrap_or(0));
        for (_, e) in &self.entries {
            v += e.totals.inc as i128 - e.totals.dec as i128;
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

    /// Whether anything sets the value: a base, or an entry.
    pub fn exists(&self) -> bool {
        self.base.is_some_and(|b| b.value.is_some()) || !self.entries.is_empty()
    }

    /// Adds `by` (negative: subtracts) as the write `dot`. The caller checked the range.
    pub fn add(&mut self, dot: Dot, by: i64) {
        let i = match self.entries.binary_search_by_key(&dot.actor, |(a, _)| *a) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (dot.actor, Entry::default()));
                i
            }
        };
        let e = &mut self.entries[i].1;
        e.dot = e.dot.max(dot.counter);
        if by >= 0 {
            e.totals.inc += by as u128;
        } else {
            e.totals.dec += by.unsigned_abs() as u128;
        }
        self.clock.add(dot);
    }

    /// Whether adding `by` keeps the value within i64 (Redis refuses an overflowing INCRBY).
    pub fn can_add(&self, by: i64) -> bool {
        let v = self.value().unwrap_or(0);
        v.checked_add(by).is_some()
    }

    /// A reset that observed this state: every entry observed stops counting, and the value
    /// becomes `value` (`None`: the key is deleted) as written by `origin` at `written_ms`.
    pub fn reset(&self, value: Option<i64>, written_ms: u64, origin: Actor) -> Counter {
        Counter { clock: self.clock.clone(), entries: Vec::new(), base: Some(Base { written_ms, origin, value }) }
    }

    /// Records that the write of this state observed `seen` (the key's context, or a hash's
    /// clock, where it was written): entries under those dots that this state lacks were reset.
    pub fn witness(&mut self, seen: &VersionVector) {
        self.clock.join_from(seen);
    }

    /// What a tombstone (a DEL that saw no counter) means to counters it meets: the base is
    /// gone as of its time; increments it never saw still count.
    pub fn deleted_at(written_ms: u64, origin: Actor) -> Counter {
        Counter { base: Some(Base { written_ms, origin, value: None }), ..Counter::default() }
    }

    /// Bytes this state takes, roughly (MEMORY USAGE).
    pub fn size(&self) -> usize {
        24 + 16 * self.clock.entries().len() + 48 * self.entries.len()
    }
}

/// Marks the stored form with entries and a clock: the form before began with the length of
/// its list of totals, which is never this.
const ENTRIES_FORM: u64 = u64::MAX;

impl Serialize for Counter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(4)?;
        t.serialize_element(&ENTRIES_FORM)?;
        t.serialize_element(&self.clock)?;
        t.serialize_element(&self.entries)?;
        t.serialize_element(&self.base)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Counter {
    /// This form, or the one before entries had dots (`counts`, `floors`, `base`: per actor
    /// its totals and the totals its last reset observed), whose entries become the totals
    /// above their floors with dot 0, seen by no clock.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Counter, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Counter;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a counter")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Counter, A::Error> {
                let missing = || serde::de::Error::custom("a truncated counter");
                let first: u64 = seq.next_element()?.ok_or_else(missing)?;
                if first == ENTRIES_FORM {
                    let clock = seq.next_element()?.ok_or_else(missing)?;
                    let entries = seq.next_element()?.ok_or_else(missing)?;
                    let base = seq.next_element()?.ok_or_else(missing)?;
                    return Ok(Counter { clock, entries, base });
                }
                // The form before: `first` was the length of `counts`.
                let mut counts: Vec<(Actor, Totals)> = Vec::new();
                for _ in 0..first {
                    counts.push(seq.next_element()?.ok_or_else(missing)?);
                }
                let floors: Vec<(Actor, Totals)> = seq.next_element()?.ok_or_else(missing)?;
                let base: Option<Base> = seq.next_element()?.ok_or_else(missing)?;
                let floor = |a: Actor| floors.iter().find(|(f, _)| *f == a).map(|(_, t)| *t).unwrap_or_default();
                let mut entries: Vec<(Actor, Entry)> = counts
                    .into_iter()
                    .map(|(a, t)| {
                        let f = floor(a);
                        let totals = Totals { inc: t.inc.saturating_sub(f.inc), dec: t.dec.saturating_sub(f.dec) };
                        (a, Entry { dot: 0, totals })
                    })
                    .filter(|(_, e)| e.totals != Totals::default())
                    .collect();
                entries.sort_by_key(|(a, _)| *a);
                Ok(Counter { clock: VersionVector::default(), entries, base })
            }
        }
        // A tuple longer than any form: each form reads the elements it has.
        deserializer.deserialize_tuple(usize::MAX, Either)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: Actor = Actor(1);
    const B: Actor = Actor(2);

    fn dot(actor: Actor, counter: u64) -> Dot {
        Dot { actor, counter }
    }

    #[test]
    fn increments_of_two_actors_add_up() {
        let mut a = Counter::default();
        a.add(dot(A, 1), 5);
        let mut b = a.clone();
        a.add(dot(A, 2), 2);
        b.add(dot(B, 1), -10);
        assert_eq!(a.join(&b).value(), Some(-3));
        assert_eq!(b.join(&a), a.join(&b));
    }

    #[test]
    fn a_reset_keeps_the_increments_it_did_not_observe() {
        let mut c = Counter::default();
        c.add(dot(A, 1), 10);
        let mut concurrent = c.clone();
        concurrent.add(dot(B, 1), 1);
        // DEL observed 10: it no longer counts; the concurrent +1 does.
        let deleted = c.reset(None, 100, A);
        assert_eq!(deleted.value(), None);
        assert!(!deleted.exists());
        assert_eq!(deleted.join(&concurrent).value(), Some(1));
        // SET 7 over it, concurrent with another +1.
        let set = c.reset(Some(7), 100, A);
        assert_eq!(set.join(&concurrent).value(), Some(8));
        // A later increment by the actor that reset continues from the reset.
        let mut after = set.clone();
        after.add(dot(A, 3), 3);
        assert_eq!(after.join(&concurrent).value(), Some(11));
    }

    /// Issue 20, item 2: the owner's actor takes 10 increments; the other side adds 1 on that
    /// state; the owner's side writes a string over the key, deletes it and increments it
    /// again (a new counter of the same actor). The merge counts the other side's unseen +1
    /// and the new +1, not the 10 the string overwrote.
    #[test]
    fn a_counter_made_anew_never_counts_the_old_ones_entries() {
        let mut old = Counter::default();
        for n in 1..=10 {
            old.add(dot(A, n), 1);
        }
        let mut other = old.clone();
        other.add(dot(B, 1), 1);
        // `SET k abc` (A:11) and `DEL k` (A:12) left the key's context at {A:12}; `INCR k`
        // (A:13) makes a counter from nothing that witnesses that context.
        let mut anew = Counter::default();
        anew.witness(&VersionVector::from_entries(vec![(A, 12)]));
        anew.add(dot(A, 13), 1);
        assert_eq!(anew.join(&other).value(), Some(2));
        assert_eq!(other.join(&anew).value(), Some(2));
        // Without the witness (what the key's clock knew), the old entry is still replaced
        // by the actor's later one; another actor's old entry the new one did not see would
        // come back: the witness is what drops it.
        let mut third = old.clone();
        third.add(dot(Actor(3), 1), 5);
        let mut seen_third = Counter::default();
        seen_third.witness(&VersionVector::from_entries(vec![(A, 12), (Actor(3), 1)]));
        seen_third.add(dot(A, 13), 1);
        assert_eq!(seen_third.join(&third).value(), Some(1));
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
        c.add(dot(A, 1), 1);
        c.add(dot(A, 2), -1);
        assert_eq!(c.value(), Some(0));
    }

    /// The stored form before entries had dots still decodes: per actor the totals above its
    /// floor, and the base.
    #[test]
    fn the_form_before_entries_had_dots_decodes() {
        #[derive(Serialize)]
        struct Before {
            counts: Vec<(Actor, Totals)>,
            floors: Vec<(Actor, Totals)>,
            base: Option<Base>,
        }
        let before = Before {
            counts: vec![(A, Totals { inc: 12, dec: 1 }), (B, Totals { inc: 3, dec: 0 })],
            floors: vec![(A, Totals { inc: 10, dec: 0 })],
            base: Some(Base { written_ms: 5, origin: A, value: Some(100) }),
        };
        let bytes = postcard::to_stdvec(&before).unwrap();
        let c: Counter = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(c.value(), Some(100 + 2 - 1 + 3));
        // And this form round-trips.
        let mut now = c.clone();
        now.add(dot(A, 7), 4);
        let again: Counter = postcard::from_bytes(&postcard::to_stdvec(&now).unwrap()).unwrap();
        assert_eq!(again, now);
        assert_eq!(again.value(), Some(108));
    }

    /// Three replicas of one key, each writing as its own actor, resetting and merging from
    /// one another: the states of one real history.
    fn arb_replicas() -> impl Strategy<Value = Vec<Counter>> {
        proptest::collection::vec((0usize..3, 0u8..4, -50i64..50, 0usize..3, 0u64..100), 0..24).prop_map(|ops| {
            let mut replicas = vec![Counter::default(); 3];
            let mut dots = [0u64; 3];
            for (r, kind, by, from, ms) in ops {
                let actor = Actor(r as u64 + 1);
                match kind {
                    0 | 1 => {
                        dots[r] += 1;
                        replicas[r].add(dot(actor, dots[r]), by);
                    }
                    2 => {
                        dots[r] += 1;
                        let mut reset = replicas[r].reset((by > 0).then_some(by), ms, actor);
                        reset.clock.add(dot(actor, dots[r]));
                        replicas[r] = reset;
                    }
                    _ => replicas[r] = replicas[r].join(&replicas[from]),
                }
            }
            replicas
        })
    }

    proptest! {
        #[test]
        fn join_is_a_semilattice(s in arb_replicas()) {
            let (a, b, c) = (&s[0], &s[1], &s[2]);
            prop_assert_eq!(a.join(b), b.join(a));
            prop_assert_eq!(a.join(b).join(c), a.join(&b.join(c)));
            prop_assert_eq!(a.join(a), a.clone());
        }

        /// Replicas that start from one state and each add: the merge holds every addition.
        #[test]
        fn no_acknowledged_increment_is_lost(
            start in arb_replicas(),
            left in proptest::collection::vec(-100i64..100, 0..10),
            right in proptest::collection::vec(-100i64..100, 0..10),
        ) {
            let start = &start[0];
            let (mut l, mut r) = (start.clone(), start.clone());
            let first = 1000;
            for (i, by) in left.iter().enumerate() { l.add(dot(A, first + i as u64), *by); }
            for (i, by) in right.iter().enumerate() { r.add(dot(B, first + i as u64), *by); }
            let expected = i128::from(start.value().unwrap_or(0)) + left.iter().chain(&right).map(|&x| i128::from(x)).sum::<i128>();
            prop_assert_eq!(i128::from(l.join(&r).value().unwrap_or(0)), expected);
        }
    }
}
