//! Sets and hashes that converge: an observed-remove map without tombstones (riak_dt's ORSWOT
//! and map; Bieniusa et al. 2012, "An optimized conflict-free replicated set").
//!
//! The state is a clock (every write whose effects it has seen) and, per member, the dots of
//! the writes that added it, each with the value that write gave it (a set's members carry
//! `()`; a hash's fields carry a [`Field`]). A write adds its members under its own dot (the
//! DVV dot of the write, unique by the actor rule: `version::Actor`) and drops the dots they had
//! before; a removal drops a member's dots and keeps them in the clock. Two replicas merge
//! per member: a dot both hold stays; a dot only one holds stays unless the other's clock has
//! seen it (then the other removed it). So a removal removes what it observed and a
//! concurrent add wins. No tombstone is kept: a removed member costs nothing.
//!
//! A member's value is the join of the values under its surviving dots: removed dots take their
//! values with them.

use std::marker::PhantomData;

use bytes::Bytes;
use imbl::ordmap::DiffItem;
use imbl::OrdMap;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::{Actor, Counter, Dot, VersionVector};

/// What a member's value must do: merge with a concurrent one.
pub trait Join: Clone + PartialEq {
    fn join(&self, other: &Self) -> Self;
}

impl Join for () {
    fn join(&self, _: &()) {}
}

/// The order of last-write-wins inside a hash: write time, the writing actor, the dot.
pub type Stamp = (u64, Actor, u64);

/// One hash field: the string HSET wrote (last write wins) and the counter HINCRBY keeps
/// (concurrent increments add up), each with the stamp of its last write; the newer of the two
/// is the field's value. Both parts merge on their own, so the merge is a join.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    text: Option<(Stamp, Bytes)>,
    count: Option<(Stamp, Counter)>,
}

impl Join for Field {
    fn join(&self, other: &Field) -> Field {
        let text = match (&self.text, &other.text) {
            // Stamps hold the write's dot, so two differ unless they are one write; the value
            // breaks a tie anyway, so the join commutes whatever it is given.
            (Some(a), Some(b)) => Some(if (b.0, &b.1) > (a.0, &a.1) { b.clone() } else { a.clone() }),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let count = match (&self.count, &other.count) {
            (Some((sa, a)), Some((sb, b))) => Some(((*sa).max(*sb), a.join(b))),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        Field { text, count }
    }
}

/// What a field reads as.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Text(&'a Bytes),
    Count(&'a Counter),
}

impl Field {
    /// A field HSET wrote.
    pub fn text(stamp: Stamp, value: Bytes) -> Field {
        Field { text: Some((stamp, value)), count: None }
    }

    /// This field with its string replaced by `value` as of `stamp` (HSET).
    pub fn with_text(&self, stamp: Stamp, value: Bytes) -> Field {
        Field { text: Some((stamp, value)), count: self.count.clone() }
    }

    /// This field with its counter replaced by `counter` as of `stamp` (HINCRBY).
    pub fn with_count(&self, stamp: Stamp, counter: Counter) -> Field {
        Field { text: self.text.clone(), count: Some((stamp, counter)) }
    }

    /// The newer of the string and the counter.
    pub fn value(&self) -> Option<FieldValue<'_>> {
        match (&self.text, &self.count) {
            (Some((st, t)), Some((sc, c))) => Some(if sc > st { FieldValue::Count(c) } else { FieldValue::Text(t) }),
            (Some((_, t)), None) => Some(FieldValue::Text(t)),
            (None, Some((_, c))) => Some(FieldValue::Count(c)),
            (None, None) => None,
        }
    }

    /// The counter part (what an HINCRBY over a string must observe).
    pub fn counter(&self) -> Counter {
        self.count.as_ref().map(|(_, c)| c.clone()).unwrap_or_default()
    }

    /// The stamp of the string part.
    pub fn text_stamp(&self) -> Option<Stamp> {
        self.text.as_ref().map(|(s, _)| *s)
    }

    /// The bytes HGET answers.
    pub fn bytes(&self) -> Bytes {
        match self.value() {
            Some(FieldValue::Text(t)) => t.clone(),
            Some(FieldValue::Count(c)) => {
                Bytes::copy_from_slice(itoa::Buffer::new().format(c.value().unwrap_or(0)).as_bytes())
            }
            None => Bytes::new(),
        }
    }

    fn size(&self) -> usize {
        self.text.as_ref().map_or(0, |(_, t)| t.len() + 24) + self.count.as_ref().map_or(0, |(_, c)| c.size())
    }
}

/// The state of a set (`OrMap<()>`) or a hash (`OrMap<Field>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize + Clone", deserialize = "V: Deserialize<'de> + Clone"))]
pub struct OrMap<V: Clone> {
    clock: VersionVector,
    /// Per member (sorted, so every replica lists them in one order): its dots and values
    /// (one, unless concurrent writes added it: kept inline). A persistent B-tree: a copy
    /// shares every node with the original and an update copies one path, so an update of a
    /// large set costs O(log n), and two versions of a set compare (and store, `storage`)
    /// by the members that differ. Encoded as a map, the same bytes as a `BTreeMap`.
    #[serde(deserialize_with = "members_with_dots")]
    entries: OrdMap<Bytes, Dots<V>>,
}

/// A map's members as stored or received, built as they arrive: never sized by the count the
/// input claims (imbl's and smallvec's own deserializers reserve that up front, so a corrupt
/// or hostile count aborted the process), and one without dots (no state has one: a removal
/// drops the member) is refused, as its record is ([`OrMap::with_records`]), so that a state
/// that decodes is one storage can keep in parts and read back.
fn members_with_dots<'de, D, V>(d: D) -> Result<OrdMap<Bytes, Dots<V>>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de> + Clone,
{
    struct Members<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de> + Clone> Visitor<'de> for Members<V> {
        type Value = OrdMap<Bytes, Dots<V>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of members to their dots")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = OrdMap::new();
            while let Some((member, DotsIn(dots))) = map.next_entry::<Bytes, DotsIn<V>>()? {
                if dots.is_empty() {
                    return Err(serde::de::Error::custom("a member without dots"));
                }
                entries.insert(member, dots);
            }
            Ok(entries)
        }
    }
    d.deserialize_map(Members(PhantomData))
}

/// A member's dots as stored or received, built as they arrive (see [`members_with_dots`]).
struct DotsIn<V>(Dots<V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for DotsIn<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DotsIn<V>, D::Error> {
        struct Each<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Each<V> {
            type Value = DotsIn<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member's dots")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DotsIn<V>, A::Error> {
                let mut dots = Dots::new();
                while let Some(dot) = seq.next_element()? {
                    dots.push(dot);
                }
                Ok(DotsIn(dots))
            }
        }
        d.deserialize_seq(Each(PhantomData))
    }
}

impl<V: Clone> Default for OrMap<V> {
    fn default() -> Self {
        OrMap { clock: VersionVector::default(), entries: OrdMap::new() }
    }
}

type Dots<V> = SmallVec<[(Dot, V); 1]>;

pub type OrSet = OrMap<()>;
pub type OrHash = OrMap<Field>;

impl<V: Join> OrMap<V> {
    /// The merge of two replicas' states: commutative, associative, idempotent. Members both
    /// hold alike are kept as they are (without visiting the nodes the two states share).
    pub fn join(&self, other: &OrMap<V>) -> OrMap<V> {
        let survivors = |mine: &[(Dot, V)], theirs: Option<&Dots<V>>, their_clock: &VersionVector| {
            mine.iter()
                .filter(|(d, _)| theirs.is_some_and(|t| t.iter().any(|(e, _)| e == d)) || !their_clock.covers(*d))
                .cloned()
                .collect::<Dots<V>>()
        };
        let mut entries = self.entries.clone();
        for change in self.entries.diff(&other.entries) {
            let (member, keep) = match change {
                // Only this side holds it: gone unless the other side never saw its dots.
                DiffItem::Remove(member, mine) => (member, survivors(mine, None, &other.clock)),
                DiffItem::Add(member, theirs) => (member, survivors(theirs, None, &self.clock)),
                DiffItem::Update { old: (member, mine), new: (_, theirs) } => {
                    let mut keep = survivors(mine, Some(theirs), &other.clock);
                    for (d, v) in survivors(theirs, Some(mine), &self.clock) {
                        if !keep.iter().any(|(e, _)| *e == d) {
                            keep.push((d, v));
                        }
                    }
                    keep.sort_by_key(|(d, _)| *d);
                    (member, keep)
                }
            };
            if keep.is_empty() {
                entries.remove(member);
            } else {
                entries.insert(member.clone(), keep);
            }
        }
        OrMap { clock: self.clock.join(&other.clock), entries }
    }

    /// The join of many states (the siblings of a key).
    pub fn join_all<'a>(states: impl Iterator<Item = &'a OrMap<V>>) -> OrMap<V>
    where
        V: 'a,
    {
        let mut states = states.peekable();
        let Some(first) = states.next() else { return OrMap::default() };
        // One sibling (the usual case): its state as it is.
        states.fold(first.clone(), |acc, s| acc.join(s))
    }

    /// A member's value: the join of the values under its dots.
    pub fn get(&self, member: &[u8]) -> Option<V> {
        let dots = self.entries.get(member)?;
        let mut it = dots.iter().map(|(_, v)| v);
        let first = it.next()?.clone();
        Some(it.fold(first, |acc, v| acc.join(v)))
    }

    /// The dots `member` is held under.
    pub fn dots_of(&self, member: &[u8]) -> impl Iterator<Item = Dot> + '_ {
        self.entries.get(member).into_iter().flat_map(|d| d.iter().map(|(dot, _)| *dot))
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.entries.contains_key(member)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The members in their (sorted) order.
    pub fn members(&self) -> impl DoubleEndedIterator<Item = &Bytes> {
        self.entries.keys()
    }

    /// The members with their values.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, V)> + '_ {
        self.entries.keys().filter_map(|m| Some((m, self.get(m)?)))
    }

    /// The members within `range` with their values, in order.
    pub fn range<R: std::ops::RangeBounds<Bytes>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = (&Bytes, V)> + '_ {
        self.entries.range(range).filter_map(|(m, _)| Some((m, self.get(m)?)))
    }

    /// The write `dot` sets `member` to `value`: what it had before is superseded.
    pub fn insert(&mut self, member: Bytes, dot: Dot, value: V) {
        self.clock.add(dot);
        self.entries.insert(member, smallvec::smallvec![(dot, value)]);
    }

    /// Removes `member` (its dots stay in the clock: a replica that still has them drops them
    /// in a merge). Whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.entries.remove(member).is_some()
    }

    /// The members that differ between this state and `other`, without visiting what the two
    /// share (their dots and values; see `imbl::OrdMap::diff`).
    pub fn entries_diff<'a>(
        &'a self,
        other: &'a OrMap<V>,
    ) -> impl Iterator<Item = DiffItem<'a, 'a, Bytes, Dots<V>>> + 'a {
        self.entries.diff(&other.entries)
    }

    /// Every write whose effects this state has seen.
    pub fn clock(&self) -> &VersionVector {
        &self.clock
    }

    /// Records that the write of this state observed `seen` (the key's context where it was
    /// written): members under those dots that this state lacks were removed by it. A write's
    /// context covers every dot whose member it holds or whose member a write it saw removed
    /// (element dots are the key's DVV dots), so a state written after a DEL, a SET of a
    /// string or a flush does not let a stale replica's old members back in.
    pub fn witness(&mut self, seen: &VersionVector) {
        self.clock.join_from(seen);
    }

    /// Every member removed: what a DEL over the set leaves (the clock of what it observed).
    pub fn cleared(&self) -> OrMap<V> {
        OrMap { clock: self.clock.clone(), entries: OrdMap::new() }
    }

    /// A state holding `members` (a copy's: RENAME, COPY, SUNIONSTORE ...), all under `dot`.
    pub fn from_members(members: impl IntoIterator<Item = (Bytes, V)>, dot: Dot) -> OrMap<V> {
        let mut out = OrMap::default();
        out.clock.add(dot);
        out.entries = members.into_iter().map(|(m, v)| (m, smallvec::smallvec![(dot, v)])).collect();
        out
    }

    /// Bytes it takes, roughly.
    pub fn size(&self, value_size: impl Fn(&V) -> usize) -> usize {
        16 + 24 * self.clock.entries().len()
            + self
                .entries
                .iter()
                .map(|(m, d)| m.len() + 16 + d.iter().map(|(_, v)| 24 + value_size(v)).sum::<usize>())
                .sum::<usize>()
    }
}

/// A change of one member's record between two versions of a state: the member, its record
/// before (`None`: it was not there) and after (`None`: it is gone).
pub type RecordChange<'a> = (&'a Bytes, Option<Vec<u8>>, Option<Vec<u8>>);

impl<V: Join + Serialize + serde::de::DeserializeOwned> OrMap<V> {
    /// The record storage keeps for one member (its dots and their values).
    fn record(dots: &Dots<V>) -> Vec<u8> {
        postcard::to_stdvec(dots).expect("serialising to a Vec cannot fail")
    }

    /// Every member with its record (see [`OrMap::record`]), in member order.
    pub fn records(&self) -> impl Iterator<Item = (&Bytes, Vec<u8>)> + '_ {
        self.entries.iter().map(|(m, d)| (m, Self::record(d)))
    }

    /// The members whose records differ between `older` and this state, found without
    /// visiting what the two share (an update of a large set touches a few members).
    pub fn changed_records<'a>(&'a self, older: &'a OrMap<V>) -> impl Iterator<Item = RecordChange<'a>> + 'a {
        older.entries.diff(&self.entries).map(|change| match change {
            DiffItem::Add(m, new) => (m, None, Some(Self::record(new))),
            DiffItem::Remove(m, old) => (m, Some(Self::record(old)), None),
            DiffItem::Update { old: (m, old), new: (_, new) } => (m, Some(Self::record(old)), Some(Self::record(new))),
        })
    }

    /// This state with the members of `records` (as [`OrMap::records`] gave them) put in.
    ///
    /// # Errors
    /// A record that does not decode.
    pub fn with_records<'r>(
        mut self,
        records: impl IntoIterator<Item = (Bytes, &'r [u8])>,
    ) -> Result<OrMap<V>, postcard::Error> {
        self.apply_records(records.into_iter().map(|(m, r)| (m, Some(r))))?;
        Ok(self)
    }

    /// This state's clock with `base`'s members changed by `changes` (a member's new record,
    /// or `None`: removed): the version a patch of `base` makes, `self` being its header.
    ///
    /// # Errors
    /// A record that does not decode.
    pub fn patched<'r>(
        &self,
        base: &OrMap<V>,
        changes: impl IntoIterator<Item = (Bytes, Option<&'r [u8]>)>,
    ) -> Result<OrMap<V>, postcard::Error> {
        let mut out = OrMap { clock: self.clock.clone(), entries: base.entries.clone() };
        out.apply_records(changes)?;
        Ok(out)
    }

    fn apply_records<'r>(
        &mut self,
        changes: impl IntoIterator<Item = (Bytes, Option<&'r [u8]>)>,
    ) -> Result<(), postcard::Error> {
        for (member, record) in changes {
            match record {
                Some(record) => {
                    let DotsIn(dots) = postcard::from_bytes(record)?;
                    if dots.is_empty() {
                        return Err(postcard::Error::DeserializeUnexpectedEnd);
                    }
                    self.entries.insert(member, dots);
                }
                None => {
                    self.entries.remove(&member);
                }
            }
        }
        Ok(())
    }
}

impl OrHash {
    /// Bytes the hash takes, roughly.
    pub fn hash_size(&self) -> usize {
        self.size(Field::size)
    }
}

impl OrSet {
    pub fn set_size(&self) -> usize {
        self.size(|_| 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot(a: u64, n: u64) -> Dot {
        Dot { actor: Actor(a), counter: n }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_removal_removes_what_it_saw_and_a_concurrent_add_wins() {
        let mut base = OrSet::default();
        base.insert(b("x"), dot(1, 1), ());
        base.insert(b("y"), dot(1, 2), ());
        // One side removes x; the other adds x again (concurrently) and z.
        let mut left = base.clone();
        left.remove(b"x");
        left.remove(b"y");
        let mut right = base.clone();
        right.insert(b("x"), dot(2, 1), ());
        right.insert(b("z"), dot(2, 2), ());
        let merged = left.join(&right);
        let members: Vec<_> = merged.members().cloned().collect();
        assert_eq!(members, vec![b("x"), b("z")], "y removed; x re-added concurrently wins");
        assert_eq!(merged, right.join(&left));
        // A replica that never saw the removal does not bring y back.
        assert!(!merged.join(&base).contains(b"y"));
    }

    /// Found by fuzzing (`fuzz/`, target `sibling_set`): a list with a member without dots
    /// decoded whole, but not from the records storage keeps it in (a record without dots is
    /// refused), so the key stored in parts read back as corrupt. Such a member no longer
    /// decodes at all.
    #[test]
    fn a_member_without_dots_does_not_decode() {
        let mut set = OrSet::default();
        set.insert(b("a"), dot(1, 1), ());
        let encoded = postcard::to_stdvec(&set).unwrap();
        assert_eq!(postcard::from_bytes::<OrSet>(&encoded), Ok(set.clone()));
        set.entries.insert(b("b"), Dots::new());
        assert!(postcard::from_bytes::<OrSet>(&postcard::to_stdvec(&set).unwrap()).is_err());
        // The fuzzer's input: a sibling set whose one value is such a list.
        let found = [
            0xc4, 0x01, 0x01, 0x01, 0x01, 0x01, 0x05, 0x01, 0x05, 0x01, 0x02, 0x20, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x05, 0x01, 0x80, 0xd0, 0x95, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x01, 0x01, 0x05, 0x01, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x05, 0x01, 0x01, 0x65, 0x80, 0xd0,
            0x95, 0xff, 0xbc, 0x31, 0x01, 0x00, 0x00, 0x01, 0xff, 0xcf, 0x95, 0xff, 0xbc, 0x31, 0xd0, 0x95, 0xff, 0xbc,
            0x31, 0x01, 0x00, 0x00, 0x01, 0xff, 0xcf, 0x95, 0xff, 0xff, 0xbc, 0x31, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x01,
            0x00, 0x00, 0x01, 0xff, 0xcf, 0x95, 0xff, 0xbc, 0x31,
        ];
        if let Ok(set) = crate::version::SiblingSet::decode(&found) {
            if let Some(collection) = set.collection() {
                let records = collection.records().unwrap_or_default();
                let parts = set.without_members().with_members(records.iter().map(|(m, r)| (m.clone(), &r[..])));
                assert_eq!(parts, Ok(set), "stored in parts, the set reads back");
            }
        }
    }

    /// Found by fuzzing (`fuzz/`, target `sibling_set`): a set claiming 2^40 members (or a
    /// member claiming 2^40 dots) had that much memory reserved before anything was read, and
    /// the allocation failure aborted the process. Both are errors now, whatever they claim.
    #[test]
    fn a_claimed_count_reserves_nothing() {
        let huge = 1u64 << 40;
        let claim = postcard::to_stdvec(&(VersionVector::default(), huge)).unwrap();
        assert!(postcard::from_bytes::<OrSet>(&claim).is_err());
        assert!(postcard::from_bytes::<OrHash>(&claim).is_err());
        let record = postcard::to_stdvec(&huge).unwrap();
        assert!(OrSet::default().with_records([(b("a"), &record[..])]).is_err());
        let mut set = OrSet::default();
        set.insert(b("a"), dot(1, 1), ());
        let records: Vec<_> = set.records().map(|(m, r)| (m.clone(), r)).collect();
        let back = set.cleared().with_records(records.iter().map(|(m, r)| (m.clone(), &r[..])));
        assert_eq!(back, Ok(set));
    }

    #[test]
    fn a_cleared_set_removes_only_what_it_observed() {
        let mut base = OrSet::default();
        base.insert(b("a"), dot(1, 1), ());
        let deleted = base.cleared();
        let mut concurrent = base.clone();
        concurrent.insert(b("b"), dot(2, 1), ());
        let merged = deleted.join(&concurrent);
        assert_eq!(merged.members().cloned().collect::<Vec<_>>(), vec![b("b")]);
    }

    #[test]
    fn hash_fields_read_the_newer_part_and_counters_add_up() {
        let a = Actor(1);
        let mut h = OrHash::default();
        h.insert(b("f"), dot(1, 1), Field::text((10, a, 1), b("5")));
        assert_eq!(h.get(b"f").map(|f| f.bytes()), Some(b("5")));
        // Two sides HINCRBY concurrently from the string's 5.
        let start = Counter::default().reset(Some(5), 10, a);
        let (mut l, mut r) = (start.clone(), start);
        l.add(dot(1, 2), 2);
        r.add(dot(2, 1), 3);
        let field = h.get(b"f").unwrap_or_default();
        let mut left = h.clone();
        left.insert(b("f"), dot(1, 2), field.with_count((20, Actor(1), 2), l));
        let mut right = h.clone();
        right.insert(b("f"), dot(2, 1), field.with_count((21, Actor(2), 1), r));
        let merged = left.join(&right);
        assert_eq!(merged.get(b"f").map(|f| f.bytes()), Some(b("10")));
        // A later HSET wins over the counter.
        let mut later = merged.clone();
        let f = later.get(b"f").unwrap_or_default();
        let newer = Field { text: Some(((30, a, 3), b("x"))), count: f.count.clone() };
        later.insert(b("f"), dot(1, 3), newer);
        assert_eq!(later.join(&merged).get(b"f").map(|f| f.bytes()), Some(b("x")));
    }

    /// A state built by random adds and removes of up to three actors on one replica.
    fn history(actor: u64, ops: &[(bool, u8)], start: &OrSet, first: u64) -> OrSet {
        let mut s = start.clone();
        for (i, &(add, m)) in ops.iter().enumerate() {
            let member = Bytes::from(vec![b'a' + m % 6]);
            if add {
                s.insert(member, dot(actor, first + i as u64), ());
            } else {
                s.remove(&member);
            }
        }
        s
    }

    fn arb_ops() -> impl Strategy<Value = Vec<(bool, u8)>> {
        proptest::collection::vec((any::<bool>(), any::<u8>()), 0..12)
    }

    /// A hash built by random HSETs, HINCRBYs and HDELs of one actor on a replica (the field's
    /// value as the operations in `rmw::collections` make it).
    fn hash_history(actor: u64, ops: &[(u8, u8)], start: &OrHash, first: u64) -> OrHash {
        let mut h = start.clone();
        for (i, &(kind, f)) in ops.iter().enumerate() {
            let field = Bytes::from(vec![b'f', b'0' + f % 4]);
            let d = dot(actor, first + i as u64);
            let stamp = ((i as u64) * 7 % 5, Actor(actor), d.counter);
            let old = h.get(&field).unwrap_or_default();
            match kind % 3 {
                0 => h.insert(field, d, old.with_text(stamp, Bytes::from(vec![b'0' + kind % 10]))),
                1 => {
                    let mut c = old.counter();
                    c.add(d, i64::from(kind));
                    h.insert(field, d, old.with_count(stamp, c));
                }
                _ => {
                    h.remove(&field);
                }
            }
        }
        h
    }

    proptest! {
        #[test]
        fn hash_join_is_a_semilattice(base in arb_ops(), x in arb_ops(), y in arb_ops(), z in arb_ops()) {
            let ops = |v: &Vec<(bool, u8)>| v.iter().map(|&(a, m)| (m.wrapping_add(u8::from(a)), m / 3)).collect::<Vec<_>>();
            let start = hash_history(9, &ops(&base), &OrHash::default(), 1);
            let a = hash_history(1, &ops(&x), &start, 1);
            let b2 = hash_history(2, &ops(&y), &start, 1);
            let c = hash_history(3, &ops(&z), &start, 1);
            prop_assert_eq!(a.join(&b2), b2.join(&a));
            prop_assert_eq!(a.join(&b2).join(&c), a.join(&b2.join(&c)));
            prop_assert_eq!(a.join(&a), a.clone());
            // Every field's value reads the same whichever way the replicas met.
            let (ab, ba) = (a.join(&b2), b2.join(&a));
            for (f, v) in ab.iter() {
                prop_assert_eq!(Some(v.bytes()), ba.get(f).map(|x| x.bytes()));
            }
        }

        #[test]
        fn join_is_a_semilattice(base in arb_ops(), x in arb_ops(), y in arb_ops(), z in arb_ops()) {
            let start = history(9, &base, &OrSet::default(), 1);
            let (a, b2, c) = (history(1, &x, &start, 1), history(2, &y, &start, 1), history(3, &z, &start, 1));
            prop_assert_eq!(a.join(&b2), b2.join(&a));
            prop_assert_eq!(a.join(&b2).join(&c), a.join(&b2.join(&c)));
            prop_assert_eq!(a.join(&a), a.clone());
        }

        /// No acknowledged add is lost: a member a side added last (not removed after) is in
        /// the merge; a member neither side has is not.
        #[test]
        fn adds_survive_concurrent_removes(base in arb_ops(), x in arb_ops(), y in arb_ops()) {
            let start = history(9, &base, &OrSet::default(), 1);
            let (a, b2) = (history(1, &x, &start, 1), history(2, &y, &start, 1));
            let merged = a.join(&b2);
            let last_adds = |ops: &Vec<(bool, u8)>| {
                let mut last = std::collections::BTreeMap::new();
                for &(add, m) in ops { last.insert(b'a' + m % 6, add); }
                last.into_iter().filter(|&(_, add)| add).map(|(m, _)| m).collect::<Vec<_>>()
            };
            for m in last_adds(&x).into_iter().chain(last_adds(&y)) {
                prop_assert!(merged.contains(&[m]), "lost {}", m as char);
            }
            for m in merged.members() {
                prop_assert!(a.contains(m) || b2.contains(m));
            }
        }
    }
}
