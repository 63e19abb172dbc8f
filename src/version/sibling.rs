//! What a key holds: a DVV set of [`Sibling`]s, each a value or a tombstone with its write time.
//!
//! How a set of siblings reads ([`SiblingSet::resolve`]): the newest sibling (last write wins:
//! write time, then actor, then dot) decides. A string (or a tombstone) that is newest is the
//! answer, as Dynamo's plain GET has always been. When the newest is a convergent type (a
//! counter), or a tombstone while siblings of such a type exist, the states of every sibling
//! of that type are joined: increments a concurrent DEL did not see survive it. So between
//! concurrent writes of different types the newest write's type wins.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Actor, Counter, Dot, DvvSet, Hll, Join, Kind, OrMap, Stream, Value, VersionVector, ZSet};

/// A state that merges with others of its kind: a collection's.
trait Lattice: Clone {
    fn join(&self, other: &Self) -> Self;
}

impl<V: Join> Lattice for OrMap<V> {
    fn join(&self, other: &Self) -> Self {
        OrMap::join(self, other)
    }
}

impl Lattice for Stream {
    fn join(&self, other: &Self) -> Self {
        Stream::join(self, other)
    }
}

impl Lattice for ZSet {
    fn join(&self, other: &Self) -> Self {
        ZSet::join(self, other)
    }
}

/// One write of a key: a value (or a tombstone), when it was written and by which actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// `None` is a tombstone: a delete is a write, so it supersedes what its context saw.
    pub value: Option<Value>,
    /// Wall-clock write time at the coordinator, ms since the Unix epoch (for plain GET's LWW).
    pub written_ms: u64,
    /// The coordinating actor: breaks ties between equal write times deterministically.
    pub origin: Actor,
    /// Absolute expiry, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
    /// What this write observed of convergent states of other kinds than its own value's
    /// (a string written over a counter, a set or a hash): their reset (a counter's floors,
    /// a set's or a hash's clock with no members). A concurrent sibling that still carries
    /// what this write observed (another decider's INCR on the old counter) never counts it
    /// again when the two meet ([`SiblingSet::counter`], [`SiblingSet::observed_set`]).
    pub resets: Vec<Value>,
    /// The flush cutoff of the key that the writing node had applied when it wrote (`None`:
    /// written before writes recorded it, read as having seen every flush). A write made
    /// after a flush's time by a node that had not heard of it may carry what the flush
    /// dropped (its quorum read reached only nodes that had not heard either): the flush
    /// drops it too ([`SiblingSet::flushed`]), as a write concurrent with the flush.
    pub flush_seen: Option<u64>,
}

impl Sibling {
    /// Whether this sibling reads as a value at `now_ms` (not a tombstone or a deleted
    /// counter, not expired).
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.value.as_ref().is_some_and(Value::exists) && self.expires_ms.is_none_or(|t| t > now_ms)
    }
}

/// What a key reads as: its value (the join of its siblings for a convergent type) and expiry.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub value: Value,
    pub expires_ms: Option<u64>,
    /// When and by whom the sibling that decided was written (a string's own stamp is the
    /// base of a counter made from it).
    pub stamp: (u64, Actor),
}

/// The stored form before siblings had resets ([`FORMAT_BEFORE_RESETS`]): still decoded.
#[derive(Clone, Deserialize)]
struct SiblingBeforeResets {
    value: Option<Value>,
    written_ms: u64,
    origin: Actor,
    expires_ms: Option<u64>,
}

/// The stored form before values had types (a value was bytes): still decoded.
#[derive(Clone, Deserialize)]
struct LegacySibling {
    value: Option<Bytes>,
    written_ms: u64,
    origin: Actor,
    expires_ms: Option<u64>,
}

/// The first byte of the stored form with typed values and resets.
const FORMAT: u8 = 0xC4;

/// The first byte of the stored form with typed values, before siblings had resets.
const FORMAT_BEFORE_RESETS: u8 = 0xC2;

/// The order of last-write-wins: write time, then the coordinating actor, then the dot's
/// counter (a later write of the same actor in the same millisecond is the newer one). The
/// same on every replica, since dots are.
fn lww_key(dot: Dot, s: &Sibling) -> (u64, Actor, u64) {
    (s.written_ms, s.origin, dot.counter)
}

/// The sibling set of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiblingSet(DvvSet<Sibling>);

impl SiblingSet {
    pub fn new() -> SiblingSet {
        SiblingSet::default()
    }

    pub fn clock(&self) -> &DvvSet<Sibling> {
        &self.0
    }

    /// The causal context a client gets with a read.
    pub fn context(&self) -> VersionVector {
        self.0.join()
    }

    /// Per actor, the number of its events this set has seen.
    pub fn counters(&self) -> impl Iterator<Item = (Actor, u64)> + '_ {
        self.0.counters()
    }

    /// Every sibling, tombstones and expired ones included.
    pub fn siblings(&self) -> impl Iterator<Item = &Sibling> {
        self.0.values()
    }

    pub fn dotted(&self) -> impl Iterator<Item = (Dot, &Sibling)> {
        self.0.dotted_values()
    }

    /// The siblings a write with `context` leaves in place (those it did not see): how many,
    /// and their values' bytes.
    pub fn kept_by(&self, context: &VersionVector) -> (usize, usize) {
        self.dotted()
            .filter(|(dot, _)| !context.covers(*dot))
            .fold((0, 0), |(n, bytes), (_, s)| (n + 1, bytes + s.value.as_ref().map_or(0, Value::size)))
    }

    /// The values a DGET shows: live siblings only, in a deterministic order (newest first);
    /// a counter sibling shows its own state's value.
    pub fn live_values(&self, now_ms: u64) -> Vec<Bytes> {
        let mut live: Vec<(Dot, &Sibling)> = self.0.dotted_values().filter(|(_, s)| s.is_live(now_ms)).collect();
        live.sort_by_key(|&(d, s)| std::cmp::Reverse(lww_key(d, s)));
        live.into_iter().filter_map(|(_, s)| s.value.as_ref().map(|v| v.bytes().into_owned())).collect()
    }

    /// What the key reads as at `now_ms` (see the module's text); `None`: missing.
    pub fn resolve(&self, now_ms: u64) -> Option<Resolved> {
        let winner = self.winner()?;
        let resolved = match &winner.value {
            Some(Value::Bytes(b)) => Resolved {
                value: Value::Bytes(b.clone()),
                expires_ms: winner.expires_ms,
                stamp: (winner.written_ms, winner.origin),
            },
            // A convergent type newest, or a tombstone: the newest sibling of a convergent
            // type gives the kind and the expiry, every sibling of that kind that has not
            // expired its state. An expired state never counts again, whichever replicas have
            // reaped it: expiry is an absolute time, the same on every replica (a counter
            // made anew after its key expired, on a node that reaped it, meets the expired
            // one's state on a node that has not yet).
            _ => {
                let unexpired = |s: &&Sibling| s.expires_ms.is_none_or(|t| t > now_ms);
                let newest = self
                    .0
                    .dotted_values()
                    .filter(|(_, s)| s.value.as_ref().is_some_and(|v| v.kind() != Kind::Bytes))
                    .max_by_key(|&(d, s)| lww_key(d, s))
                    .map(|(_, s)| s)?;
                let value = match newest.value.as_ref().map(Value::kind) {
                    Some(Kind::Hll) => {
                        Value::Hll(self.0.values().filter(unexpired).fold(Hll::default(), |acc, s| match &s.value {
                            Some(Value::Hll(h)) => acc.join(h),
                            _ => acc,
                        }))
                    }
                    Some(Kind::Set) => Value::Set(self.joined(Value::as_set, unexpired).unwrap_or_default()),
                    Some(Kind::Hash) => Value::Hash(self.joined(Value::as_hash, unexpired).unwrap_or_default()),
                    Some(Kind::List) => Value::List(self.joined(Value::as_list, unexpired).unwrap_or_default()),
                    Some(Kind::ZSet) => Value::ZSet(self.joined(Value::as_zset, unexpired).unwrap_or_default()),
                    Some(Kind::Stream) => Value::Stream(self.joined(Value::as_stream, unexpired).unwrap_or_default()),
                    _ => Value::Counter(self.counter_of(unexpired)),
                };
                Resolved { value, expires_ms: newest.expires_ms, stamp: (newest.written_ms, newest.origin) }
            }
        };
        (resolved.value.exists() && resolved.expires_ms.is_none_or(|t| t > now_ms)).then_some(resolved)
    }

    /// The join of the collection states the siblings hold (sets; with none, hashes; then
    /// lists; then sorted sets): what a DEL over the key observed of it. `None` when no
    /// sibling holds one.
    pub fn observed_set(&self) -> Option<Value> {
        let all = |_: &&Sibling| true;
        self.joined(Value::as_set, all)
            .map(Value::Set)
            .or_else(|| self.joined(Value::as_hash, all).map(Value::Hash))
            .or_else(|| self.joined(Value::as_list, all).map(Value::List))
            .or_else(|| self.joined(Value::as_zset, all).map(Value::ZSet))
            .or_else(|| self.joined(Value::as_stream, all).map(Value::Stream))
    }

    /// The join of the states `pick` finds in the siblings `keep` keeps (their sets, or their
    /// hashes); `None` when no such sibling holds one.
    /// With every sibling's resets of that kind (what a write of another kind observed of
    /// such a state: whether or not that write has expired, it observed it).
    fn joined<S: Lattice>(&self, pick: impl Fn(&Value) -> Option<&S>, keep: impl Fn(&&Sibling) -> bool) -> Option<S> {
        let values = self.0.values().filter(keep).filter_map(|s| s.value.as_ref().and_then(&pick));
        let resets = self.0.values().flat_map(|s| s.resets.iter().filter_map(&pick));
        let mut states = values.chain(resets).peekable();
        states.peek()?;
        let first = states.next()?.clone();
        Some(states.fold(first, |acc, s| acc.join(s)))
    }

    /// Whether any sibling is a counter, or observed one (its resets).
    pub fn holds_counter(&self) -> bool {
        self.0.values().any(|s| {
            matches!(s.value, Some(Value::Counter(_))) || s.resets.iter().any(|r| matches!(r, Value::Counter(_)))
        })
    }

    /// The join of the counter states of the siblings: a counter's own, a tombstone's reset
    /// of the base ([`Counter::deleted_at`]); strings have none.
    pub fn counter(&self) -> Counter {
        self.counter_of(|_| true)
    }

    /// [`SiblingSet::counter`] of the siblings `keep` keeps, with every sibling's counter
    /// resets (what a string written over a counter observed never counts again).
    fn counter_of(&self, keep: impl Fn(&&Sibling) -> bool) -> Counter {
        let kept = self.0.values().filter(keep).fold(Counter::default(), |acc, s| match &s.value {
            Some(Value::Counter(c)) => acc.join(c),
            None => acc.join(&Counter::deleted_at(s.written_ms, s.origin)),
            Some(_) => acc,
        });
        self.0.values().flat_map(|s| &s.resets).fold(kept, |acc, r| match r {
            Value::Counter(c) => acc.join(c),
            _ => acc,
        })
    }

    /// What a write of a value of kind `kind` (`None`: a tombstone) over this set observed of
    /// the convergent states of other kinds its siblings hold or observed: their resets, as
    /// of `now` by `actor` (see [`Sibling::resets`]).
    pub fn resets_for(&self, kind: Option<Kind>, now: u64, actor: Actor) -> Vec<Value> {
        let mut resets = Vec::new();
        if kind != Some(Kind::Counter) && self.holds_counter() {
            let observed = self.counter();
            if observed != Counter::default() {
                resets.push(Value::Counter(observed.reset(None, now, actor)));
            }
        }
        let all = |_: &&Sibling| true;
        if kind != Some(Kind::Set) {
            resets.extend(self.joined(Value::as_set, all).map(|s| Value::Set(s.cleared())));
        }
        if kind != Some(Kind::Hash) {
            resets.extend(self.joined(Value::as_hash, all).map(|h| Value::Hash(h.cleared())));
        }
        if kind != Some(Kind::List) {
            resets.extend(self.joined(Value::as_list, all).map(|l| Value::List(l.cleared())));
        }
        if kind != Some(Kind::ZSet) {
            resets.extend(self.joined(Value::as_zset, all).map(|z| Value::ZSet(z.cleared())));
        }
        if kind != Some(Kind::Stream) {
            resets.extend(self.joined(Value::as_stream, all).map(|s| Value::Stream(s.cleared())));
        }
        resets
    }

    /// Last-write-wins choice for plain GET: the newest sibling (ties: larger origin, then the
    /// later event); a tombstone or an expired value as the newest reads as missing.
    pub fn winner(&self) -> Option<&Sibling> {
        self.0.dotted_values().max_by_key(|&(d, s)| lww_key(d, s)).map(|(_, s)| s)
    }

    /// The value plain GET returns at `now_ms`.
    pub fn get(&self, now_ms: u64) -> Option<Bytes> {
        self.resolve(now_ms).map(|r| r.value.bytes().into_owned())
    }

    /// Whether nothing in the set reads as a value any more (only tombstones or expired values):
    /// such a set may be reaped once every replica has it.
    pub fn is_dead(&self, now_ms: u64) -> bool {
        !self.0.values().any(|s| s.is_live(now_ms))
    }

    /// Number of siblings, tombstones included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Merges a replica's set into this one (see [`DvvSet::sync`]).
    pub fn sync(&self, other: &SiblingSet) -> SiblingSet {
        SiblingSet(self.0.sync(&other.0))
    }

    /// A write coordinated by `sibling.origin` with `context` (see [`DvvSet::update`]).
    pub fn update(&self, context: &VersionVector, sibling: Sibling) -> (SiblingSet, Dot) {
        let origin = sibling.origin;
        let (set, dot) = self.0.update(context, origin, sibling);
        (SiblingSet(set), dot)
    }

    /// Whether `other` has seen everything this set has and more.
    pub fn less(&self, other: &SiblingSet) -> bool {
        self.0.less(&other.0)
    }

    /// This set after a flush at `cutoff_ms` (FLUSHDB/FLUSHALL): the siblings written at or
    /// before it, or by a node that had not applied it ([`Sibling::flush_seen`]), are dropped,
    /// their dots kept as seen, so no merge brings them back (see [`DvvSet::retain_newest`]).
    /// `None` when the flush drops nothing from this set.
    pub fn flushed(&self, cutoff_ms: u64) -> Option<SiblingSet> {
        let after = |s: &Sibling| s.written_ms > cutoff_ms && s.flush_seen.is_none_or(|seen| seen >= cutoff_ms);
        if cutoff_ms == 0 || self.siblings().all(after) {
            return None;
        }
        let mut out = self.clone();
        out.0.retain_newest(after);
        Some(out)
    }

    /// The one sibling's value that is a set or a hash, when exactly one sibling holds one:
    /// storage keeps such a value's members as records of their own (issue 13, item 6), so an
    /// update writes the members it changed, not the whole set.
    pub fn collection(&self) -> Option<&Value> {
        let mut found = self.siblings().filter_map(|s| s.value.as_ref().filter(|v| !v.is_string()));
        let one = found.next()?;
        found.next().is_none().then_some(one)
    }

    /// This set with the members of its [`SiblingSet::collection`] taken out (their clock
    /// stays): what storage keeps in the key's own record.
    pub fn without_members(&self) -> SiblingSet {
        SiblingSet(self.0.clone().map_values(|mut s| {
            if let Some(cleared) = s.value.as_ref().and_then(Value::header) {
                s.value = Some(cleared);
            }
            s
        }))
    }

    /// The inverse of [`SiblingSet::without_members`]: the members of `records` put back into
    /// the set's or hash's sibling.
    ///
    /// # Errors
    /// A record that does not decode.
    pub fn with_members<'r>(
        self,
        records: impl IntoIterator<Item = (Bytes, &'r [u8])>,
    ) -> Result<SiblingSet, postcard::Error> {
        let Some(header) = self.collection() else { return Ok(self) };
        let value = header.clone().with_records(records)?;
        Ok(self.with_collection(value))
    }

    /// This set with the value of its [`SiblingSet::collection`] sibling replaced by `value`.
    fn with_collection(&self, value: Value) -> SiblingSet {
        let mut value = Some(value);
        SiblingSet(self.0.clone().map_values(|mut s| {
            if s.value.as_ref().is_some_and(|v| !v.is_string()) {
                s.value = value.take().or(s.value);
            }
            s
        }))
    }

    /// The version a patch of this one makes: `header` (the new version without its
    /// collection's members, see [`SiblingSet::without_members`]) with this version's members
    /// changed by `changes`. `None` when the two do not both hold one set (or one hash).
    ///
    /// # Errors
    /// A record that does not decode.
    pub fn patched<'r>(
        &self,
        header: &SiblingSet,
        changes: impl IntoIterator<Item = (Bytes, Option<&'r [u8]>)>,
    ) -> Result<Option<SiblingSet>, postcard::Error> {
        let (Some(base), Some(new)) = (self.collection(), header.collection()) else { return Ok(None) };
        let Some(value) = new.patched(base, changes)? else { return Ok(None) };
        Ok(Some(header.with_collection(value)))
    }

    /// Compact binary form for storage and the wire: a format byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        // Sized up front: postcard would otherwise grow the Vec a few bytes at a time.
        let values: usize = self.siblings().map(|s| s.value.as_ref().map_or(0, Value::size_hint)).sum();
        let estimate = 17 + values + 40 * self.len() + 20 * self.counters().count();
        let mut out = Vec::with_capacity(estimate);
        out.push(FORMAT);
        postcard::to_extend(self, out).expect("serialising to a Vec cannot fail")
    }

    /// # Errors
    /// When `bytes` is not a set this version (or the one before typed values) wrote: a
    /// corrupt record.
    pub fn decode(bytes: &[u8]) -> Result<SiblingSet, postcard::Error> {
        if let Some(rest) = bytes.strip_prefix(&[FORMAT]) {
            if let Ok(set) = postcard::from_bytes(rest) {
                return Ok(set);
            }
        }
        if let Some(rest) = bytes.strip_prefix(&[FORMAT_BEFORE_RESETS]) {
            if let Ok(set) = postcard::from_bytes::<DvvSet<SiblingBeforeResets>>(rest) {
                return Ok(SiblingSet(set.map_values(|s| Sibling {
                    value: s.value,
                    written_ms: s.written_ms,
                    origin: s.origin,
                    expires_ms: s.expires_ms,
                    resets: Vec::new(),
                    flush_seen: None,
                })));
            }
        }
        let legacy: DvvSet<LegacySibling> = postcard::from_bytes(bytes)?;
        Ok(SiblingSet(legacy.map_values(|s| Sibling {
            value: s.value.map(Value::Bytes),
            written_ms: s.written_ms,
            origin: s.origin,
            expires_ms: s.expires_ms,
            resets: Vec::new(),
            flush_seen: None,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sib(v: Option<&str>, t: u64, origin: u64) -> Sibling {
        Sibling {
            value: v.map(|s| Value::Bytes(Bytes::copy_from_slice(s.as_bytes()))),
            written_ms: t,
            origin: Actor(origin),
            expires_ms: None,
            resets: Vec::new(),
            flush_seen: None,
        }
    }

    fn counter(c: Counter, t: u64, origin: u64) -> Sibling {
        Sibling {
            value: Some(Value::Counter(c)),
            written_ms: t,
            origin: Actor(origin),
            expires_ms: None,
            resets: Vec::new(),
            flush_seen: None,
        }
    }

    #[test]
    fn a_write_keeps_the_siblings_its_context_did_not_see() {
        let none = VersionVector::default();
        let (one, _) = SiblingSet::new().update(&none, sib(Some("milk"), 1, 1));
        let seen = one.context();
        let (two, _) = one.update(&none, sib(Some("eggs!"), 2, 1));
        assert_eq!(two.kept_by(&none), (2, 9), "a blind write keeps both");
        assert_eq!(two.kept_by(&seen), (1, 5), "it saw milk");
        assert_eq!(two.kept_by(&two.context()), (0, 0), "a merge keeps none");
    }

    #[test]
    fn counter_siblings_join_and_survive_a_concurrent_delete() {
        let none = VersionVector::default();
        let mut base = Counter::default();
        base.add(Dot { actor: Actor(1), counter: 1 }, 10);
        let (s, _) = SiblingSet::new().update(&none, counter(base.clone(), 10, 1));
        let seen = s.context();
        // Two coordinators add concurrently, each from the state it saw.
        let (mut a, mut b) = (base.clone(), base.clone());
        a.add(Dot { actor: Actor(1), counter: 2 }, 1);
        b.add(Dot { actor: Actor(2), counter: 1 }, 5);
        let (s, _) = s.update(&seen, counter(a, 11, 1));
        let (s, _) = s.update(&seen, counter(b, 12, 2));
        assert_eq!(s.get(0), Some(Bytes::from("16")));
        // A DEL that saw none of them, newer: the increments survive it.
        let (s2, _) = s.update(&none, sib(None, 20, 3));
        assert_eq!(s2.get(0), Some(Bytes::from("16")));
        // A string written after them all wins: the newest write's type.
        let (s3, _) = s.update(&none, sib(Some("text"), 30, 3));
        assert_eq!(s3.get(0), Some(Bytes::from("text")));
        assert_eq!(s3.resolve(0).map(|r| r.value.kind()), Some(Kind::Bytes));
    }

    /// The nemesis's re-created counter (stop 20's CI failure): `SET k abc GET` observed an
    /// actor's increments on one side while the decider of the other side, which had not seen
    /// the string, added one more to the same counter. The string's resets keep what it
    /// observed from counting again when the two meet, through the string and a later DEL.
    #[test]
    fn what_a_string_observed_of_a_counter_never_counts_again() {
        let none = VersionVector::default();
        let mut c = Counter::default();
        c.add(Dot { actor: Actor(1), counter: 1 }, 10);
        let (base, _) = SiblingSet::new().update(&none, counter(c.clone(), 10, 1));
        let seen = base.context();
        // One side: the string over it, with what it observed.
        let mut string = sib(Some("abc"), 20, 3);
        string.resets = base.resets_for(Some(Kind::Bytes), 20, Actor(3));
        let (left, _) = base.update(&seen, string);
        // The other side continues the same actor's entry.
        let mut went_on = c.clone();
        went_on.add(Dot { actor: Actor(1), counter: 2 }, 5);
        let (right, _) = base.update(&seen, counter(went_on, 15, 1));
        for merged in [left.sync(&right), right.sync(&left)] {
            assert_eq!(merged.get(30), Some(Bytes::from("abc")));
            // A DEL of the string on a copy that has not seen the increment's sibling.
            let mut del = sib(None, 40, 3);
            del.resets = left.resets_for(None, 40, Actor(3));
            let (deleted, _) = left.update(&left.context(), del);
            for after in [deleted.sync(&merged), merged.sync(&deleted)] {
                assert_eq!(after.get(50), Some(Bytes::from("5")), "only the increment the string did not see");
            }
        }
        // Without resets the observed 10 would count again (what the nemesis found).
        let (bare, _) = base.update(&seen, sib(Some("abc"), 20, 3));
        let (deleted, _) = bare.update(&bare.context(), sib(None, 40, 3));
        assert_eq!(deleted.sync(&right).get(50), Some(Bytes::from("15")));
    }

    /// The same for a set: members a string observed do not come back with a concurrent
    /// SADD's copy of the set; the member that SADD added does.
    #[test]
    fn what_a_string_observed_of_a_set_never_comes_back() {
        let none = VersionVector::default();
        let d = |a, n| Dot { actor: Actor(a), counter: n };
        let (base, _) = SiblingSet::new().update(&none, set_sibling(set_of(&["a", "b"], d(1, 1)), 10, 1));
        let seen = base.context();
        let mut string = sib(Some("abc"), 20, 3);
        string.resets = base.resets_for(Some(Kind::Bytes), 20, Actor(3));
        let (left, _) = base.update(&seen, string);
        let Some(Value::Set(mut s)) = base.resolve(0).map(|r| r.value) else { panic!("a set") };
        s.insert(Bytes::from("c"), d(2, 1), ());
        let (right, _) = base.update(&seen, set_sibling(Value::Set(s), 15, 2));
        let mut del = sib(None, 40, 3);
        del.resets = left.resets_for(None, 40, Actor(3));
        let (deleted, _) = left.update(&left.context(), del);
        for after in [deleted.sync(&right), right.sync(&deleted)] {
            let Some(Value::Set(s)) = after.resolve(50).map(|r| r.value) else { panic!("a set") };
            assert_eq!(s.members().cloned().collect::<Vec<_>>(), vec![Bytes::from("c")]);
        }
    }

    /// The stored form before siblings had resets still decodes.
    #[test]
    fn the_form_before_resets_decodes() {
        #[derive(Clone, Serialize)]
        struct Before {
            value: Option<Value>,
            written_ms: u64,
            origin: Actor,
            expires_ms: Option<u64>,
        }
        let before: DvvSet<Before> = DvvSet::default()
            .update(
                &VersionVector::default(),
                Actor(1),
                Before { value: Some(Value::from("v")), written_ms: 5, origin: Actor(1), expires_ms: Some(9) },
            )
            .0;
        let mut bytes = vec![FORMAT_BEFORE_RESETS];
        bytes.extend(postcard::to_stdvec(&before).unwrap());
        let set = SiblingSet::decode(&bytes).unwrap();
        assert_eq!(set.get(6), Some(Bytes::from("v")));
        assert_eq!(set.siblings().next().map(|s| (s.expires_ms, s.resets.len())), Some((Some(9), 0)));
        assert_eq!(SiblingSet::decode(&set.encode()).unwrap(), set);
    }

    fn set_of(members: &[&str], dot: Dot) -> Value {
        Value::Set(super::super::OrSet::from_members(
            members.iter().map(|m| (Bytes::copy_from_slice(m.as_bytes()), ())),
            dot,
        ))
    }

    fn set_sibling(value: Value, t: u64, origin: u64) -> Sibling {
        Sibling {
            value: Some(value),
            written_ms: t,
            origin: Actor(origin),
            expires_ms: None,
            resets: Vec::new(),
            flush_seen: None,
        }
    }

    #[test]
    fn concurrent_writes_of_different_types_resolve_to_the_newest_writes_type() {
        let none = VersionVector::default();
        let d = |a, n| Dot { actor: Actor(a), counter: n };
        // A set on one side, a string on the other, concurrent: the newer decides, on every
        // replica whatever the order of the merge.
        let (left, _) = SiblingSet::new().update(&none, set_sibling(set_of(&["a"], d(1, 1)), 10, 1));
        let (right, _) = SiblingSet::new().update(&none, sib(Some("text"), 20, 2));
        for merged in [left.sync(&right), right.sync(&left)] {
            assert_eq!(merged.resolve(0).map(|r| r.value.type_name()), Some("string"));
        }
        let (later, _) = SiblingSet::new().update(&none, set_sibling(set_of(&["b"], d(3, 1)), 30, 3));
        let merged = left.sync(&right).sync(&later);
        let Some(Value::Set(s)) = merged.resolve(0).map(|r| r.value) else { panic!("a set") };
        // Both set siblings join: the string between them does not cut the older set.
        assert_eq!(s.members().cloned().collect::<Vec<_>>(), vec![Bytes::from("a"), Bytes::from("b")]);
    }

    #[test]
    fn a_del_over_a_set_keeps_only_what_was_added_concurrently() {
        let none = VersionVector::default();
        let d = |a, n| Dot { actor: Actor(a), counter: n };
        let (base, _) = SiblingSet::new().update(&none, set_sibling(set_of(&["a", "b"], d(1, 1)), 10, 1));
        let seen = base.context();
        // One side deletes (the empty set with what it observed, see `rmw::written_over`).
        let cleared = match base.resolve(0).map(|r| r.value) {
            Some(v) => v.cleared(),
            None => None,
        };
        let (deleted, _) = base.update(
            &seen,
            Sibling {
                value: cleared,
                written_ms: 20,
                origin: Actor(1),
                expires_ms: None,
                resets: Vec::new(),
                flush_seen: None,
            },
        );
        assert!(deleted.resolve(0).is_none(), "an emptied set reads as missing");
        // The other side adds c concurrently, from the same base.
        let Some(Value::Set(mut s)) = base.resolve(0).map(|r| r.value) else { panic!("a set") };
        s.insert(Bytes::from("c"), d(2, 1), ());
        let (added, _) = base.update(&seen, set_sibling(Value::Set(s), 15, 2));
        for merged in [deleted.sync(&added), added.sync(&deleted)] {
            let Some(Value::Set(s)) = merged.resolve(0).map(|r| r.value) else { panic!("a set") };
            assert_eq!(s.members().cloned().collect::<Vec<_>>(), vec![Bytes::from("c")]);
        }
    }

    #[test]
    fn the_stored_form_before_typed_values_still_decodes() {
        #[derive(Clone, Serialize)]
        struct Old {
            value: Option<Bytes>,
            written_ms: u64,
            origin: Actor,
            expires_ms: Option<u64>,
        }
        let old = DvvSet::new()
            .update(
                &VersionVector::default(),
                Actor(7),
                Old { value: Some("v".into()), written_ms: 5, origin: Actor(7), expires_ms: Some(9) },
            )
            .0;
        let bytes = postcard::to_stdvec(&old).unwrap();
        let set = SiblingSet::decode(&bytes).expect("legacy form");
        assert_eq!(set.get(0), Some(Bytes::from("v")));
        assert_eq!(set.resolve(0).and_then(|r| r.expires_ms), Some(9));
    }

    #[test]
    fn lww_picks_newest_then_larger_origin() {
        let none = VersionVector::default();
        let s = SiblingSet::new();
        let (s, _) = s.update(&none, sib(Some("old"), 10, 9));
        let (s, _) = s.update(&none, sib(Some("a"), 20, 1));
        let (s, _) = s.update(&none, sib(Some("b"), 20, 2));
        assert_eq!(s.get(0), Some(Bytes::from("b")));
        assert_eq!(s.live_values(0).len(), 3);
        // Same time, same actor: the later event wins.
        let (s, _) = SiblingSet::new().update(&none, sib(Some("first"), 30, 1));
        let (s, _) = s.update(&none, sib(Some("second"), 30, 1));
        assert_eq!(s.get(0), Some(Bytes::from("second")));
        assert_eq!(s.live_values(0)[0], Bytes::from("second"));
    }

    #[test]
    fn tombstone_newest_reads_missing_and_expiry() {
        let none = VersionVector::default();
        let (s, _) = SiblingSet::new().update(&none, sib(Some("a"), 10, 1));
        let (s, _) = s.update(&s.context(), sib(None, 11, 1));
        assert_eq!(s.get(0), None);
        assert!(s.is_dead(0));
        let mut e = sib(Some("x"), 12, 1);
        e.expires_ms = Some(100);
        let (s, _) = s.update(&none, e);
        assert!(s.get(99).is_some());
        assert!(s.get(100).is_none());
        assert!(s.is_dead(100));
    }

    #[test]
    fn a_flush_drops_what_was_written_up_to_it() {
        let none = VersionVector::default();
        let (s, _) = SiblingSet::new().update(&none, sib(Some("old"), 10, 1));
        let (s, _) = s.update(&none, sib(Some("new"), 21, 2));
        assert_eq!(s.flushed(9), None);
        assert_eq!(s.flushed(0), None);
        let f = s.flushed(20).expect("drops the old one");
        assert_eq!(f.live_values(0), vec![Bytes::from("new")]);
        assert_eq!(f.context(), s.context());
        let gone = s.flushed(21).expect("drops both");
        assert!(gone.is_empty() && gone.is_dead(0) && gone.get(0).is_none());
        // A replica that has not heard of the flush gives the values back in no merge order.
        assert_eq!(gone.sync(&s), gone);
        assert_eq!(s.sync(&gone), gone);
    }

    #[test]
    fn encode_roundtrip_and_corrupt() {
        let (s, _) = SiblingSet::new().update(&VersionVector::default(), sib(Some("v"), 1, 7));
        assert_eq!(SiblingSet::decode(&s.encode()).ok(), Some(s.clone()));
        assert!(SiblingSet::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
