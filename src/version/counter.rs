//! A counter that converges (INCR, DECR, INCRBY, DECRBY, HINCRBY): a PN-counter with Riak's
//! reset-remove (riak_dt's `emcntr`, the counter embedded in a map, with exact resets).
//!
//! The state is a clock (every write whose effects it has seen: the context its write
//! observed, and its own dots) and, per actor (see [`Actor`]: a node incarnation and key
//! epoch), one *entry*: the totals of the increments and decrements it made in its current
//! *generation*, the dot of its latest increment, and the dot its generation began with. An
//! actor's increments are made one after another on one copy, so of two entries of one actor
//! the one with the later dot is its continuation (or a new generation it began after its old
//! totals were lost to it: a counter made anew after `SET k abc`, `DEL k`). A reset (SET of an
//! integer, DEL) keeps the entries and records the totals it observed as *floors* of their
//! generation, which no longer count, and sets the *base*, a last-write-wins register (the
//! value SET gave, or none after DEL): increments it did not observe are above the floors, so
//! they survive it, to the unit. Two states merge per actor: the later entry wins and the
//! higher floor of one generation; an entry only one side holds stays unless the other side's
//! clock has seen its dot (that side made a counter anew over it). So a counter made anew
//! never counts what the old one held, however many replicas still hold it: its clock (the
//! key's context where it was written, [`Counter::witness`]) has seen those entries' dots, and
//! its actor's new generation is not lowered by the old generation's floors.
//! The value is `base + sum(increments - decrements above the floor of their generation)`.

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

impl Totals {
    fn max(self, other: Totals) -> Totals {
        Totals { inc: self.inc.max(other.inc), dec: self.dec.max(other.dec) }
    }

    /// What these totals add above `floor`.
    fn above(self, floor: Totals) -> (u128, u128) {
        (self.inc.saturating_sub(floor.inc), self.dec.saturating_sub(floor.dec))
    }
}

/// An actor's part of the count: the dot its generation began with, its latest increment's
/// dot and its totals in that generation. Dots 0 mark an entry converted from the form before
/// entries had dots (no clock has seen it; see [`Counter`]'s decoding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub start: u64,
    pub dot: u64,
    pub totals: Totals,
}

impl Entry {
    /// The later of one actor's two entries (equal dots: one event, the same totals; the
    /// maximum keeps the join commutative whatever it is given).
    fn later(self, other: Entry) -> Entry {
        match (self.dot, self.start).cmp(&(other.dot, other.start)) {
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Equal => Entry { totals: self.totals.max(other.totals), ..self },
        }
    }
}

/// The totals a reset observed of one generation of an actor's entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floor {
    pub start: u64,
    pub totals: Totals,
}

impl Floor {
    /// The floor of the later generation; of one generation, the higher.
    fn max(self, other: Floor) -> Floor {
        match self.start.cmp(&other.start) {
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Equal => Floor { start: self.start, totals: self.totals.max(other.totals) },
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
    /// Per actor (sorted): the totals the last resets observed of a generation of its entry.
    floors: Vec<(Actor, Floor)>,
    base: Option<Base>,
}

/// Whether `clock` has seen the entry of `actor` with dot counter `dot` (never one converted
/// from the old form).
fn seen(clock: &VersionVector, actor: Actor, dot: u64) -> bool {
    dot > 0 && clock.covers(Dot { actor, counter: dot })
}

/// Merges two lists sorted by actor: `both` for an actor both hold, `one` (given the other
/// side's clock) for one only one side holds (`None`: dropped).
fn merge_by_actor<T: Copy>(
    a: &[(Actor, T)],
    b: &[(Actor, T)],
    both: impl Fn(T, T) -> T,
    one: impl Fn(Actor, T, bool) -> Option<T>,
) -> Vec<(Actor, T)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, both(x.1, y.1)));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.extend(one(x.0, x.1, true).map(|v| (x.0, v)));
                i += 1;
            }
            (Some(x), None) => {
                out.extend(one(x.0, x.1, true).map(|v| (x.0, v)));
                i += 1;
            }
            (_, Some(y)) => {
                out.extend(one(y.0, y.1, false).map(|v| (y.0, v)));
                j += 1;
            }
            (None, None) => unreachable!("the loop condition"),
        }
    }
    out
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
        // An entry only one side holds goes when the other side's clock has seen it.
        let entries = merge_by_actor(&self.entries, &other.entries, Entry::later, |actor, e, mine| {
            let theirs = if mine { &other.clock } else { &self.clock };
            (!seen(theirs, actor, e.dot)).then_some(e)
        });
        let floors = merge_by_actor(&self.floors, &other.floors, Floor::max, |_, f, _| Some(f));
        Counter { clock: self.clock.join(&other.clock), entries, floors, base }
    }

    /// The floor of `actor`'s generation `start` (none: zero).
    fn floor(&self, actor: Actor, start: u64) -> Totals {
        match self.floors.binary_search_by_key(&actor, |(a, _)| *a) {
            Ok(i) if self.floors[i].1.start == start => self.floors[i].1.totals,
            _ => Totals::default(),
        }
    }

    /// The sum of what counts: the base and every entry above its floor.
    fn sum(&self) -> i128 {
        let mut v = i128::from(self.base.and_then(|b| b.value).unwrap_or(0));
        for &(actor, e) in &self.entries {
            let (inc, dec) = e.totals.above(self.floor(actor, e.start));
            // Totals of any real history are far below i128's range (a stored or received
            // state's need not be): past it they saturate.
            let wide = |t: u128| i128::try_from(t).unwrap_or(i128::MAX);
            v = v.saturating_add(wide(inc).saturating_sub(wide(dec)));
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

    /// Whether anything sets the value: a base, or an entry above its floor.
    pub fn exists(&self) -> bool {
        self.base.is_some_and(|b| b.value.is_some())
            || self.entries.iter().any(|&(actor, e)| e.totals.above(self.floor(actor, e.start)) != (0, 0))
    }

    /// Adds `by` (negative: subtracts) as the write `dot`. The caller checked the range.
    pub fn add(&mut self, dot: Dot, by: i64) {
        let i = match self.entries.binary_search_by_key(&dot.actor, |(a, _)| *a) {
            Ok(i) => i,
            Err(i) => {
                let fresh = Entry { start: dot.counter, dot: dot.counter, totals: Totals::default() };
                self.entries.insert(i, (dot.actor, fresh));
                i
            }
        };
        let e = &mut self.entries[i].1;
        e.dot = e.dot.max(dot.counter);
        if by >= 0 {
            e.totals.inc = e.totals.inc.saturating_add(by as u128);
        } else {
            e.totals.dec = e.totals.dec.saturating_add(by.unsigned_abs() as u128);
        }
        self.clock.add(dot);
    }

    /// Whether adding `by` keeps the value within i64 (Redis refuses an overflowing INCRBY).
    pub fn can_add(&self, by: i64) -> bool {
        let v = self.value().unwrap_or(0);
        v.checked_add(by).is_some()
    }

    /// A reset that observed this state: every total observed stops counting, and the value
    /// becomes `value` (`None`: the key is deleted) as written by `origin` at `written_ms`.
    pub fn reset(&self, value: Option<i64>, written_ms: u64, origin: Actor) -> Counter {
        let observed: Vec<(Actor, Floor)> =
            self.entries.iter().map(|&(a, e)| (a, Floor { start: e.start, totals: e.totals })).collect();
        Counter {
            clock: self.clock.clone(),
            entries: self.entries.clone(),
            floors: merge_by_actor(&self.floors, &observed, Floor::max, |_, f, _| Some(f)),
            base: Some(Base { written_ms, origin, value }),
        }
    }

    /// Records that the write of this state observed `seen` (the key's context, or a hash's
    /// clock, where it was written): entries under those dots that this state lacks are gone.
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
        24 + 16 * self.clock.entries().len() + 56 * self.entries.len() + 48 * self.floors.len()
    }
}

/// Marks the stored form with entries and a clock: the form before began with the length of
/// its list of totals, which is never this.
const ENTRIES_FORM: u64 = u64::MAX;

impl Serialize for Counter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(5)?;
        t.serialize_element(&ENTRIES_FORM)?;
        t.serialize_element(&self.clock)?;
        t.serialize_element(&self.entries)?;
        t.serialize_element(&self.floors)?;
        t.serialize_element(&self.base)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Counter {
    /// This form, or the one before entries had dots (`counts`, `floors`, `base`: per actor
    /// its totals and the totals its last reset observed), whose entries become the totals
    /// above their floors with dots 0, seen by no clock.
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
                    let floors = seq.next_element()?.ok_or_else(missing)?;
                    let base = seq.next_element()?.ok_or_else(missing)?;
                    return Ok(Counter { clock, entries, floors, base });
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
                        let (inc, dec) = t.above(floor(a));
                        (a, Entry { start: 0, dot: 0, totals: Totals { inc, dec } })
                    })
                    .filter(|(_, e)| e.totals != Totals::default())
                    .collect();
                entries.sort_by_key(|(a, _)| *a);
                Ok(Counter { clock: VersionVector::default(), entries, floors: Vec::new(), base })
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

    /// Found by fuzzing (`fuzz/`, target `sibling_set`): a stored counter whose totals were
    /// past i128's range overflowed the sum its value is (a panic where overflow is checked,
    /// elsewhere a value of the wrong sign). The sum, and the totals, saturate.
    #[test]
    fn totals_past_any_real_history_saturate() {
        let huge = Entry { start: 1, dot: 1, totals: Totals { inc: u128::MAX, dec: 0 } };
        let mut c = Counter { entries: vec![(A, huge), (B, huge)], ..Counter::default() };
        assert_eq!(c.value(), Some(i64::MAX));
        c.add(dot(A, 2), 1);
        assert_eq!(c.value(), Some(i64::MAX));
        c.add(dot(B, 2), i64::MIN);
        assert_eq!(c.value(), Some(i64::MAX));
        // The fuzzer's input: a stored sibling set holding such a counter.
        let found = [
            0xc4, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x06, 0x01, 0x05, 0x7e, 0x01, 0x02, 0x01, 0x6d, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x05, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0xfc, 0x3f, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0xff, 0xcf, 0x95, 0xbc, 0xff, 0x30,
        ];
        if let Ok(set) = crate::version::SiblingSet::decode(&found) {
            let _ = set.get(0);
        }
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

    /// A DEL on one side of a partition observed the actor's first increment; on the other
    /// side the same actor kept incrementing its entry: only what the DEL did not observe
    /// counts (the floor of that generation), to the unit (`convergent.rs` found it: 16, not 15).
    #[test]
    fn a_reset_subtracts_exactly_what_it_observed_of_an_entry_that_went_on() {
        let mut c = Counter::default().reset(Some(50), 1, A);
        c.add(dot(A, 2), 1);
        let deleted = c.reset(None, 10, B);
        let mut went_on = c.clone();
        for n in 3..6 {
            went_on.add(dot(A, n), 5);
        }
        assert_eq!(deleted.join(&went_on).value(), Some(15));
        assert_eq!(went_on.join(&deleted).value(), Some(15));
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
