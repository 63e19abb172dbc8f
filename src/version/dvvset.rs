//! Dotted version vector sets, after Riak's `dvvset.erl`.
//!
//! A set holds, per actor, the highest counter it has seen from that actor and the values whose
//! dots are still current (newest first): the entry `(a, n, [v1, v2])` means dots `(a, n)` and
//! `(a, n-1)` carry `v1` and `v2`, and every dot of `a` up to `n` is known. Anonymous values
//! (written with no actor) are not needed: every write here is an event of its coordinator.

use serde::{Deserialize, Serialize};
use smallvec::{smallvec, SmallVec};

use super::Actor;

/// The identity of one write: the `counter`-th event of `actor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub actor: Actor,
    pub counter: u64,
}

/// A version vector: per actor, the number of its events seen. Entries sorted by actor, no zeros.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(Vec<(Actor, u64)>);

impl VersionVector {
    /// Builds a vector from entries in any order; duplicate actors keep the largest counter.
    pub fn from_entries(mut entries: Vec<(Actor, u64)>) -> VersionVector {
        entries.retain(|&(_, n)| n > 0);
        entries.sort_unstable();
        entries.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = earlier.1.max(later.1);
                true
            } else {
                false
            }
        });
        VersionVector(entries)
    }

    pub fn entries(&self) -> &[(Actor, u64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counter seen for `actor` (0 if none).
    pub fn get(&self, actor: Actor) -> u64 {
        match self.0.binary_search_by_key(&actor, |&(a, _)| a) {
            Ok(i) => self.0[i].1,
            Err(_) => 0,
        }
    }

    /// Whether this vector has seen `dot`.
    pub fn covers(&self, dot: Dot) -> bool {
        self.get(dot.actor) >= dot.counter
    }

    /// Everything either vector has seen.
    pub fn join(&self, other: &VersionVector) -> VersionVector {
        let mut entries = Vec::with_capacity(self.0.len().max(other.0.len()));
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() || j < other.0.len() {
            match (self.0.get(i), other.0.get(j)) {
                (Some(&(a, n)), Some(&(b, m))) if a == b => {
                    entries.push((a, n.max(m)));
                    i += 1;
                    j += 1;
                }
                (Some(&x), Some(&(b, _))) if x.0 < b => {
                    entries.push(x);
                    i += 1;
                }
                (Some(&x), None) => {
                    entries.push(x);
                    i += 1;
                }
                (_, Some(&y)) => {
                    entries.push(y);
                    j += 1;
                }
                (None, None) => unreachable!("the loop condition"),
            }
        }
        VersionVector(entries)
    }

    /// Joins `other` into this vector ([`VersionVector::join`] without a new vector when
    /// `other` names no actor this one lacks: a write's clock over the copy it read).
    pub fn join_from(&mut self, other: &VersionVector) {
        let mut lacking = false;
        for &(actor, n) in &other.0 {
            match self.0.binary_search_by_key(&actor, |&(a, _)| a) {
                Ok(i) => self.0[i].1 = self.0[i].1.max(n),
                Err(_) => lacking = true,
            }
        }
        if lacking {
            *self = self.join(other);
        }
    }

    /// Records `dot` as seen (and every earlier event of its actor: dots of one key are
    /// handed out in order, see `DvvSet::update`).
    pub fn add(&mut self, dot: Dot) {
        match self.0.binary_search_by_key(&dot.actor, |&(a, _)| a) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(dot.counter),
            Err(i) => self.0.insert(i, (dot.actor, dot.counter)),
        }
    }

    /// Whether every event `other` has seen, this one has seen too.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|&(a, n)| self.get(a) >= n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
struct Entry<V> {
    actor: Actor,
    counter: u64,
    /// Values of dots `counter`, `counter - 1`, ... (newest first), all still current. One
    /// is held inline: a key's set, as cached, is then one allocation, not three.
    #[serde(deserialize_with = "small_vec")]
    values: SmallVec<[V; 1]>,
}

/// A set of concurrent values with the causal history that produced them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct DvvSet<V> {
    /// Sorted by actor, one entry per actor.
    /// (Inline: most keys are written by one coordinator. Stored as a sequence either way.)
    #[serde(deserialize_with = "valid_entries")]
    entries: SmallVec<[Entry<V>; 1]>,
}

/// A sequence decoded as a `Vec` is (whose room made ahead is bounded whatever length the
/// input claims; `SmallVec`'s own decoding reserves the claimed length), then held inline
/// when it fits.
fn small_vec<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<SmallVec<[T; 1]>, D::Error> {
    Ok(SmallVec::from_vec(Vec::deserialize(d)?))
}

/// The largest counter a set decodes with: no actor writes one key 2^63 times, and a write
/// adds one to its actor's counter.
const MAX_COUNTER: u64 = 1 << 63;

/// A set's entries as stored or received, refused unless sorted by actor (once each), each
/// holds no more values than its counter has dots and its counter has room for the next
/// write: merges, reads and writes rely on all three.
fn valid_entries<'de, D: serde::Deserializer<'de>, V: Deserialize<'de>>(
    d: D,
) -> Result<SmallVec<[Entry<V>; 1]>, D::Error> {
    let entries: SmallVec<[Entry<V>; 1]> = small_vec(d)?;
    if !entries.windows(2).all(|w| w[0].actor < w[1].actor) {
        return Err(serde::de::Error::custom("version vector set entries out of order"));
    }
    if entries.iter().any(|e| e.values.len() as u64 > e.counter || e.counter > MAX_COUNTER) {
        return Err(serde::de::Error::custom("a version vector set entry out of range"));
    }
    Ok(entries)
}

impl<V> Default for DvvSet<V> {
    fn default() -> Self {
        DvvSet { entries: SmallVec::new() }
    }
}

impl<V: Clone> DvvSet<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The causal history of the set: what a client that read it has seen (the context).
    pub fn join(&self) -> VersionVector {
        VersionVector(self.entries.iter().map(|e| (e.actor, e.counter)).collect())
    }

    /// Per actor, the number of its events seen (the context, without building it).
    pub fn counters(&self) -> impl Iterator<Item = (Actor, u64)> + '_ {
        self.entries.iter().map(|e| (e.actor, e.counter))
    }

    /// The current values with their dots.
    pub fn dotted_values(&self) -> impl Iterator<Item = (Dot, &V)> {
        self.entries.iter().flat_map(|e| {
            e.values.iter().enumerate().map(move |(i, v)| (Dot { actor: e.actor, counter: e.counter - i as u64 }, v))
        })
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().flat_map(|e| e.values.iter())
    }

    /// Number of current values (siblings).
    pub fn len(&self) -> usize {
        self.entries.iter().map(|e| e.values.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Merges two replicas' sets: the result has seen everything either has seen, and keeps a
    /// value unless the other side has seen its dot without keeping it. Commutative, associative
    /// and idempotent, so replicas can exchange sets in any order (read repair, hinted handoff,
    /// anti-entropy).
    pub fn sync(&self, other: &DvvSet<V>) -> DvvSet<V> {
        let mut out = SmallVec::with_capacity(self.entries.len().max(other.entries.len()));
        let (mut a, mut b) = (self.entries.iter().peekable(), other.entries.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => out.push(a.next().cloned().expect("peeked")),
                (None, Some(_)) => out.push(b.next().cloned().expect("peeked")),
                (Some(x), Some(y)) => {
                    if x.actor < y.actor {
                        out.push(a.next().cloned().expect("peeked"));
                    } else if x.actor > y.actor {
                        out.push(b.next().cloned().expect("peeked"));
                    } else {
                        out.push(merge_entry(x, y));
                        a.next();
                        b.next();
                    }
                }
            }
        }
        DvvSet { entries: out }
    }

    /// A write of `value` coordinated by `actor` by a client that had seen `context`: the values
    /// the context covers are discarded, the others stay as siblings, and `value` gets the next
    /// dot of `actor`. Returns the new set and the new value's dot.
    pub fn update(&self, context: &VersionVector, actor: Actor, value: V) -> (DvvSet<V>, Dot) {
        let seen = DvvSet {
            entries: context
                .0
                .iter()
                .map(|&(actor, counter)| Entry { actor, counter, values: SmallVec::new() })
                .collect(),
        };
        let mut merged = seen.sync(self);
        let dot = merged.event(actor, value);
        (merged, dot)
    }

    /// Appends a new event of `actor` carrying `value`.
    fn event(&mut self, actor: Actor, value: V) -> Dot {
        match self.entries.binary_search_by_key(&actor, |e| e.actor) {
            Ok(i) => {
                let e = &mut self.entries[i];
                e.counter += 1;
                // Exactly one more slot: a write that supersedes every value (the common one)
                // has the inline one free; a sibling more spills to exactly what it needs, not
                // to room for more (a sibling is 232 bytes, and the set is what is cached).
                e.values.reserve_exact(1);
                e.values.insert(0, value);
                Dot { actor, counter: e.counter }
            }
            Err(i) => {
                self.entries.insert(i, Entry { actor, counter: 1, values: smallvec![value] });
                Dot { actor, counter: 1 }
            }
        }
    }

    /// The same clock with every value mapped (a change of the values' representation).
    pub fn map_values<W>(self, mut f: impl FnMut(V) -> W) -> DvvSet<W> {
        DvvSet {
            entries: self
                .entries
                .into_iter()
                .map(|e| Entry {
                    actor: e.actor,
                    counter: e.counter,
                    values: e.values.into_iter().map(&mut f).collect(),
                })
                .collect(),
        }
    }

    /// Drops, per actor, every value from the newest one `keep` refuses down to the oldest (the
    /// window of current dots stays contiguous), keeping the clock: the dots dropped read as
    /// superseded, so a merge with a copy that still holds them drops them too. Returns whether
    /// anything was dropped.
    pub fn retain_newest(&mut self, keep: impl Fn(&V) -> bool) -> bool {
        let mut dropped = false;
        for e in &mut self.entries {
            if let Some(first_refused) = e.values.iter().position(|v| !keep(v)) {
                e.values.truncate(first_refused);
                dropped = true;
            }
        }
        dropped
    }

    /// Whether `other` has seen strictly more than `self` (its clock dominates).
    pub fn less(&self, other: &DvvSet<V>) -> bool {
        let (mine, theirs) = (self.join(), other.join());
        theirs.descends(&mine) && mine != theirs
    }

    /// Neither set's history contains the other's.
    pub fn concurrent(&self, other: &DvvSet<V>) -> bool {
        let (mine, theirs) = (self.join(), other.join());
        !mine.descends(&theirs) && !theirs.descends(&mine)
    }
}

/// Merges one actor's entry from two replicas. Values are a suffix-closed window of dots
/// `(counter - len, counter]`; a dot below the other side's window but within its counter was
/// superseded there, so it goes.
fn merge_entry<V: Clone>(x: &Entry<V>, y: &Entry<V>) -> Entry<V> {
    let (hi, lo) = if x.counter >= y.counter { (x, y) } else { (y, x) };
    let hi_floor = hi.counter - hi.values.len() as u64;
    let lo_floor = lo.counter - lo.values.len() as u64;
    if hi_floor >= lo_floor {
        hi.clone()
    } else {
        // Both windows' lower bound is the larger floor: hi keeps only dots lo still has.
        let keep = (hi.counter - lo_floor) as usize;
        Entry { actor: hi.actor, counter: hi.counter, values: hi.values[..keep].iter().cloned().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Actor = Actor(1);
    const B: Actor = Actor(2);
    const C: Actor = Actor(3);

    fn vals(s: &DvvSet<&'static str>) -> Vec<&'static str> {
        let mut v: Vec<_> = s.values().copied().collect();
        v.sort_unstable();
        v
    }

    /// A write that supersedes every value leaves room for the one it adds, not for four:
    /// the set is what the cache of decoded sets holds per key.
    #[test]
    fn a_superseding_write_holds_one_slot_per_value() {
        let (s, _) = DvvSet::new().update(&VersionVector::default(), A, "x");
        let (s, _) = s.update(&s.join(), A, "y");
        assert_eq!(vals(&s), ["y"]);
        assert!(s.entries.iter().all(|e| e.values.capacity() == e.values.len()), "no spare slots");
        let (s, _) = s.update(&VersionVector::default(), A, "z");
        assert_eq!(vals(&s), ["y", "z"]);
        assert!(s.entries.iter().all(|e| e.values.capacity() == e.values.len()), "no spare slots");
    }

    #[test]
    fn writes_without_context_are_siblings() {
        let s = DvvSet::new();
        let (s, _) = s.update(&VersionVector::default(), A, "x");
        let (s, _) = s.update(&VersionVector::default(), A, "y");
        assert_eq!(vals(&s), vec!["x", "y"]);
        assert_eq!(s.join().get(A), 2);
    }

    #[test]
    fn write_with_context_replaces_what_it_saw() {
        let s = DvvSet::new();
        let (s, _) = s.update(&VersionVector::default(), A, "x");
        let (s, _) = s.update(&VersionVector::default(), B, "y");
        let ctx = s.join();
        let (s, _) = s.update(&VersionVector::default(), A, "z"); // unseen by ctx
        let (s, dot) = s.update(&ctx, C, "merged");
        assert_eq!(vals(&s), vec!["merged", "z"]);
        assert_eq!(dot, Dot { actor: C, counter: 1 });
    }

    #[test]
    fn stale_context_keeps_the_newer_sibling() {
        let s = DvvSet::new();
        let (s, _) = s.update(&VersionVector::default(), A, "v1");
        let stale = s.join();
        let (s, _) = s.update(&stale, A, "v2");
        let (s, _) = s.update(&stale, A, "v3");
        assert_eq!(vals(&s), vec!["v2", "v3"]);
    }

    #[test]
    fn sync_of_diverged_replicas() {
        let base = DvvSet::new().update(&VersionVector::default(), A, "v1").0;
        let ctx = base.join();
        let left = base.update(&ctx, A, "left").0;
        let right = base.update(&ctx, B, "right").0;
        assert!(left.concurrent(&right));
        let m = left.sync(&right);
        assert_eq!(vals(&m), vec!["left", "right"]);
        assert!(left.less(&m) && right.less(&m));
        let resolved = m.update(&m.join(), C, "both").0;
        assert_eq!(vals(&resolved.sync(&left)), vec!["both"]);
        assert_eq!(vals(&right.sync(&resolved)), vec!["both"]);
    }

    #[test]
    fn dropped_values_stay_dropped_through_merges() {
        let none = VersionVector::default();
        let s = DvvSet::new().update(&none, A, 1).0.update(&none, A, 2).0.update(&none, A, 3).0;
        let s = s.update(&none, B, 10).0;
        let mut trimmed = s.clone();
        // Refusing 2 drops 2 and the older 1, keeps 3: the window stays contiguous.
        assert!(trimmed.retain_newest(|v| *v != 2 && *v != 10));
        let mut left: Vec<i32> = trimmed.values().copied().collect();
        left.sort_unstable();
        assert_eq!(left, vec![3]);
        assert_eq!(trimmed.join(), s.join());
        // A copy that still holds them loses them in a merge, in either order.
        assert_eq!(trimmed.sync(&s), trimmed);
        assert_eq!(s.sync(&trimmed), trimmed);
        assert!(!trimmed.clone().retain_newest(|v| *v != 2));
    }

    /// The entries and values held inline are stored as the vectors were (the data format is
    /// unchanged), and a length the input claims but does not hold is refused.
    #[test]
    fn inline_entries_keep_the_stored_form_and_refuse_a_claimed_length() {
        #[derive(Serialize)]
        struct OldEntry {
            actor: Actor,
            counter: u64,
            values: Vec<u8>,
        }
        let set = DvvSet {
            entries: smallvec![
                Entry { actor: A, counter: 3, values: smallvec![7, 8] },
                Entry { actor: B, counter: 1, values: smallvec![9] }
            ],
        };
        let old = vec![
            OldEntry { actor: A, counter: 3, values: vec![7, 8] },
            OldEntry { actor: B, counter: 1, values: vec![9] },
        ];
        let bytes = postcard::to_stdvec(&set).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&(old,)).unwrap());
        assert_eq!(postcard::from_bytes::<DvvSet<u8>>(&bytes), Ok(set));
        // One entry claiming 2^62 values, then 2^62 entries: refused at the input's end.
        let mut forged = postcard::to_stdvec(&(1u8, A, 3u64)).unwrap();
        forged.extend(postcard::to_stdvec(&(1u64 << 62)).unwrap());
        assert!(postcard::from_bytes::<DvvSet<u64>>(&forged).is_err());
        let forged_entries = postcard::to_stdvec(&(1u64 << 62)).unwrap();
        assert!(postcard::from_bytes::<DvvSet<u64>>(&forged_entries).is_err());
    }

    /// Found by fuzzing (`fuzz/`, target `sibling_set`): a stored set whose entry held more
    /// values than its counter had dots decoded, and a write over it panicked (the merge with
    /// the writer's context sliced past the values' end). Such entries, entries out of actor
    /// order and counters with no room for another write no longer decode.
    #[test]
    fn entries_a_merge_cannot_take_do_not_decode() {
        let decode = |s: &DvvSet<u8>| postcard::from_bytes::<DvvSet<u8>>(&postcard::to_stdvec(s).unwrap());
        let entry = |actor, counter, values: &[u8]| Entry { actor, counter, values: values.iter().copied().collect() };
        let good = DvvSet { entries: smallvec![entry(A, 2, &[1, 2]), entry(B, 5, &[3])] };
        assert_eq!(decode(&good), Ok(good));
        assert!(decode(&DvvSet { entries: smallvec![entry(A, 1, &[1, 2])] }).is_err());
        assert!(decode(&DvvSet { entries: smallvec![entry(B, 1, &[1]), entry(A, 1, &[2])] }).is_err());
        assert!(decode(&DvvSet { entries: smallvec![entry(A, 1, &[1]), entry(A, 2, &[2])] }).is_err());
        assert!(decode(&DvvSet { entries: smallvec![entry(A, MAX_COUNTER + 1, &[1])] }).is_err());
        // The fuzzer's input: a stored sibling set (of the legacy form) with such an entry.
        let found = [
            0x01, 0x05, 0x01, 0x05, 0x01, 0x02, 0x20, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x01, 0x01, 0x05, 0x01, 0xc4, 0x01, 0x01, 0x01, 0x01, 0x01, 0x07, 0x01, 0x05, 0x01, 0x01, 0x10,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x05,
            0x01, 0x02, 0x01, 0x66, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x74, 0x01, 0x01, 0x00, 0x00, 0x00,
            0x01, 0x05, 0x01, 0x9a, 0xab, 0x04, 0xd7, 0x6b, 0x06, 0x6e, 0x58, 0x01, 0x05, 0x02, 0x01, 0x01, 0x67, 0x01,
            0x05, 0x02, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x05, 0x01, 0x01, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00,
            0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x01, 0x00, 0x00, 0x01, 0xff, 0xcf, 0x95, 0xff, 0xbc, 0x31,
        ];
        if let Ok(set) = crate::version::SiblingSet::decode(&found) {
            // A write by a client that read it.
            let _ = set.clock().clone().map_values(|_| 0u8).update(&set.context(), A, 0);
        }
    }

    #[test]
    fn version_vector_normalises() {
        let vv = VersionVector::from_entries(vec![(B, 3), (A, 1), (B, 5), (C, 0)]);
        assert_eq!(vv.entries(), &[(A, 1), (B, 5)]);
        assert!(vv.covers(Dot { actor: B, counter: 4 }));
        assert!(!vv.covers(Dot { actor: C, counter: 1 }));
    }
}
