//! Streams that converge: entries in an observed-remove map keyed by their IDs ([`OrMap`]),
//! with the stream's own metadata and its consumer groups beside them.
//!
//! An entry's member is its ID as 16 big-endian bytes (milliseconds, then sequence), so the
//! map's member order is the stream's order and storage keeps the entries as records in that
//! order (`storage::members`): XRANGE of 10 entries visits 10 records, XADD writes one.
//! Entries are never changed after XADD; XDEL and XTRIM remove the entries they observed (an
//! entry added concurrently survives), DEL removes every entry it observed and the metadata.
//!
//! **IDs** (the rule is in [`next_id`]): the key's home (the first node of its preference
//! list) gives Redis's IDs, `ms-seq` with `seq` counting within a millisecond. When another
//! node decides an XADD (the home is down or cut off), it gives an ID whose sequence carries
//! its own *writer tag* (bit 63 set, a 15-bit tag of the node, a 48-bit count), so two sides
//! of a partition never give two entries one ID, and every decider's IDs increase past the
//! last ID it has seen. After a heal the stream holds every entry of both sides in ID order;
//! a reader that read past an ID may find entries below it that arrived with the heal (as in
//! Redis Enterprise's Active-Active streams). An ID given explicitly is the client's: two
//! sides given the same explicit ID keep one entry for it (the larger by content).
//!
//! **Metadata**: the last ID given and the largest ID deleted only grow (their join is the
//! maximum); entries-added is a grow-only counter per writing actor (each side's XADDs count
//! once); a stream exists, even empty, until a DEL (an XADD concurrent with the DEL keeps it).
//!
//! **Consumer groups** are an observed-remove map of groups (XGROUP DESTROY removes what it
//! saw; a concurrent update of the group keeps it). A group's last-delivered ID (with its
//! entries-read) is last-write-wins, so XGROUP SETID can move it back; its pending entries and
//! consumers are observed-remove maps (XACK removes the delivery it saw). XREADGROUP is a
//! read-modify-write at the key's deciding node, so while that node is reachable each entry is
//! delivered to one consumer; across a partition both sides may deliver it (at least once, as
//! any consumer of a Redis stream must already handle after a failover).

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ormap::{Join, OrMap, RecordChange, Stamp};
use super::{Actor, Dot, VersionVector};

/// An entry ID: milliseconds and a sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The member bytes of this ID (sorting as IDs do).
    pub fn key(self) -> Bytes {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        Bytes::copy_from_slice(&out)
    }

    /// The ID whose member bytes these are.
    pub fn from_key(key: &[u8]) -> Option<StreamId> {
        let ms = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
        (key.len() == 16).then_some(StreamId { ms, seq })
    }

    /// The next ID (`None` past the last one).
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId { ms: self.ms, seq: self.seq + 1 })
        } else if self.ms < u64::MAX {
            Some(StreamId { ms: self.ms + 1, seq: 0 })
        } else {
            None
        }
    }

    /// The ID before (`None` before 0-0).
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId { ms: self.ms, seq: self.seq - 1 })
        } else if self.ms > 0 {
            Some(StreamId { ms: self.ms - 1, seq: u64::MAX })
        } else {
            None
        }
    }

    /// Parses `ms-seq` or `ms` (the sequence then `missing_seq`), as Redis's
    /// `streamGenericParseIDOrReply` with strict off; `None` for anything else.
    pub fn parse(text: &[u8], missing_seq: u64) -> Option<StreamId> {
        let text = std::str::from_utf8(text).ok()?;
        if text.len() > 127 {
            return None;
        }
        let number = |s: &str| -> Option<u64> {
            // strtoull as Redis's string2ull takes it: digits only.
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        };
        match text.split_once('-') {
            Some((ms, seq)) => Some(StreamId { ms: number(ms)?, seq: number(seq)? }),
            None => Some(StreamId { ms: number(text)?, seq: missing_seq }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Bits of a stand-in's sequence numbers: the marker bit, then the writer tag, then a count.
const STAND_IN: u64 = 1 << 63;
const TAG_SHIFT: u32 = 48;
const COUNT_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// The writer tag of a node that decides XADDs as a stand-in: 1 to 32767, from its name.
pub fn writer_tag(node_id: &str) -> u16 {
    (xxhash_rust::xxh3::xxh3_64(node_id.as_bytes()) % 32767) as u16 + 1
}

/// Whether `seq` is a stand-in's (see the module's text) and whose.
fn tag_of(seq: u64) -> Option<u16> {
    (seq & STAND_IN != 0).then_some(((seq & !STAND_IN) >> TAG_SHIFT) as u16)
}

/// The ID an XADD with `*` (or `ms-*`: `at` is `Some(ms)`) gets after `last`, decided at time
/// `now` by the key's home (`writer` 0) or by a stand-in with writer tag `writer`; `None` when
/// none is left (or `ms-*` names a millisecond before `last`'s with no room).
pub fn next_id(last: StreamId, now: u64, at: Option<u64>, writer: u16) -> Option<StreamId> {
    let ms = at.unwrap_or_else(|| now.max(last.ms));
    if writer == 0 {
        // Redis's rule, kept in the home's own (unmarked) sequences.
        if ms > last.ms {
            return Some(StreamId { ms, seq: 0 });
        }
        if ms < last.ms {
            return None;
        }
        if last.seq & STAND_IN != 0 {
            // The last one is a stand-in's: the home goes on from the next millisecond.
            return if at.is_some() { None } else { Some(StreamId { ms: ms.checked_add(1)?, seq: 0 }) };
        }
        return match last.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms, seq }),
            None if at.is_none() => Some(StreamId { ms: ms.checked_add(1)?, seq: 0 }),
            None => None,
        };
    }
    let base = STAND_IN | (u64::from(writer & 0x7fff) << TAG_SHIFT);
    if ms > last.ms {
        return Some(StreamId { ms, seq: base });
    }
    if ms < last.ms {
        return None;
    }
    if tag_of(last.seq) == Some(writer & 0x7fff) && last.seq & COUNT_MASK < COUNT_MASK {
        return Some(StreamId { ms, seq: last.seq + 1 });
    }
    if base > last.seq {
        return Some(StreamId { ms, seq: base });
    }
    if at.is_some() {
        return None;
    }
    Some(StreamId { ms: ms.checked_add(1)?, seq: base })
}

/// An entry's field-value pairs, in XADD's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry(pub Vec<Bytes>);

impl Join for Entry {
    /// Two entries under one ID are one write's (or two explicit IDs that collided): the larger
    /// keeps it, the same on every replica.
    fn join(&self, other: &Entry) -> Entry {
        if other.0 > self.0 {
            other.clone()
        } else {
            self.clone()
        }
    }
}

/// One delivery awaiting XACK: to which consumer, when, how many times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub stamp: Stamp,
    pub consumer: Bytes,
    pub delivered_ms: u64,
    pub count: u64,
}

impl Join for Pending {
    fn join(&self, other: &Pending) -> Pending {
        if (other.stamp, &other.consumer) > (self.stamp, &self.consumer) {
            other.clone()
        } else {
            self.clone()
        }
    }
}

/// A consumer of a group: when it was last seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub seen_ms: u64,
}

impl Join for Consumer {
    fn join(&self, other: &Consumer) -> Consumer {
        Consumer { seen_ms: self.seen_ms.max(other.seen_ms) }
    }
}

/// Where a group stands: its last-delivered ID and entries-read (`None`: unknown), as of a
/// write's stamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub stamp: Stamp,
    pub last_id: StreamId,
    pub entries_read: Option<u64>,
}

/// A consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub cursor: Cursor,
    /// Pending deliveries by entry ID (member bytes as the stream's).
    pub pel: OrMap<Pending>,
    pub consumers: OrMap<Consumer>,
}

impl Join for Group {
    fn join(&self, other: &Group) -> Group {
        let cursor = if (other.cursor.stamp, other.cursor.last_id) > (self.cursor.stamp, self.cursor.last_id) {
            other.cursor.clone()
        } else {
            self.cursor.clone()
        };
        Group { cursor, pel: self.pel.join(&other.pel), consumers: self.consumers.join(&other.consumers) }
    }
}

impl Group {
    pub fn new(cursor: Cursor) -> Group {
        Group { cursor, pel: OrMap::default(), consumers: OrMap::default() }
    }

    /// The pending deliveries of `consumer` (all: `None`), in ID order.
    pub fn pending_of<'a>(&'a self, consumer: Option<&'a [u8]>) -> impl Iterator<Item = (StreamId, Pending)> + 'a {
        self.pel
            .iter()
            .filter_map(|(m, p)| Some((StreamId::from_key(m)?, p)))
            .filter(move |(_, p)| consumer.is_none_or(|c| p.consumer == c))
    }
}

/// What a stream keeps beside its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Whether the stream exists (an empty one does, until DEL).
    pub live: bool,
    pub last_id: StreamId,
    pub max_deleted: StreamId,
    /// Entries added, per writing actor (a grow-only counter).
    pub added: BTreeMap<Actor, u64>,
    pub groups: OrMap<Group>,
}

impl Meta {
    fn join(&self, other: &Meta) -> Meta {
        let mut added = self.added.clone();
        for (a, n) in &other.added {
            let mine = added.entry(*a).or_insert(0);
            *mine = (*mine).max(*n);
        }
        Meta {
            live: self.live || other.live,
            last_id: self.last_id.max(other.last_id),
            max_deleted: self.max_deleted.max(other.max_deleted),
            added,
            groups: self.groups.join(&other.groups),
        }
    }
}

/// The state of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    map: OrMap<Entry>,
    meta: Meta,
}

impl Stream {
    pub fn join(&self, other: &Stream) -> Stream {
        Stream { map: self.map.join(&other.map), meta: self.meta.join(&other.meta) }
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Whether it exists (an empty stream does, until DEL).
    pub fn exists(&self) -> bool {
        self.meta.live || !self.map.is_empty()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn last_id(&self) -> StreamId {
        self.meta.last_id
    }

    /// Entries added over the stream's life (XINFO's entries-added): past u64's range (only
    /// a stored or received state gets there) it saturates.
    pub fn entries_added(&self) -> u64 {
        self.meta.added.values().fold(0, |sum, &n| sum.saturating_add(n))
    }

    pub fn clock(&self) -> &VersionVector {
        self.map.clock()
    }

    pub fn witness(&mut self, seen: &VersionVector) {
        self.map.witness(seen);
        self.meta.groups.witness(seen);
    }

    /// What a DEL leaves: no entry, no group, no metadata (the clocks of what it observed).
    pub fn cleared(&self) -> Stream {
        Stream { map: self.map.cleared(), meta: Meta { groups: self.meta.groups.cleared(), ..Meta::default() } }
    }

    /// The stream without its entries (what storage keeps in the key's own record).
    pub fn header(&self) -> Stream {
        Stream { map: self.map.cleared(), meta: self.meta.clone() }
    }

    pub fn get(&self, id: StreamId) -> Option<Entry> {
        self.map.get(&id.key())
    }

    /// The entries from `start` to `end` (both included), in order, `rev`: from the end.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> Box<dyn Iterator<Item = (StreamId, Entry)> + '_> {
        let (lo, hi) = (start.key(), end.key());
        let it = self.map.range(lo..=hi).filter_map(|(m, e)| Some((StreamId::from_key(m)?, e)));
        if rev {
            Box::new(it.rev())
        } else {
            Box::new(it)
        }
    }

    pub fn first(&self) -> Option<(StreamId, Entry)> {
        self.range(StreamId::MIN, StreamId::MAX, false).next()
    }

    pub fn last(&self) -> Option<(StreamId, Entry)> {
        self.range(StreamId::MIN, StreamId::MAX, true).next()
    }

    /// Adds an entry under `id` as the write `dot` (the caller checked the ID).
    pub fn add(&mut self, id: StreamId, fields: Vec<Bytes>, dot: Dot) {
        self.map.insert(id.key(), dot, Entry(fields));
        self.meta.live = true;
        self.meta.last_id = self.meta.last_id.max(id);
        let added = self.meta.added.entry(dot.actor).or_insert(0);
        *added = added.saturating_add(1);
    }

    /// Removes the entry `id`; whether it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let removed = self.map.remove(&id.key());
        if removed {
            self.meta.max_deleted = self.meta.max_deleted.max(id);
        }
        removed
    }

    /// Removes the entry `id` as trimming does (not a deletion in Redis's count of
    /// tombstones: max-deleted-entry-id stays); whether it was there.
    pub fn trim_off(&mut self, id: StreamId) -> bool {
        self.map.remove(&id.key())
    }

    /// Marks the stream as existing (XGROUP CREATE MKSTREAM, XSETID ...).
    pub fn touch(&mut self) {
        self.meta.live = true;
    }

    /// XSETID: the last ID, and entries-added and the largest deleted ID when given. (A
    /// count set here replaces the per-writer counts: a concurrent XADD's count adds to it.)
    pub fn set_last(&mut self, last: StreamId, added: Option<u64>, max_deleted: Option<StreamId>) {
        self.meta.live = true;
        self.meta.last_id = last;
        if let Some(n) = added {
            self.meta.added.clear();
            self.meta.added.insert(Actor(0), n);
        }
        if let Some(id) = max_deleted {
            self.meta.max_deleted = id;
        }
    }

    pub fn groups(&self) -> impl Iterator<Item = (&Bytes, Group)> + '_ {
        self.meta.groups.iter()
    }

    pub fn group(&self, name: &[u8]) -> Option<Group> {
        self.meta.groups.get(name)
    }

    pub fn put_group(&mut self, name: Bytes, dot: Dot, group: Group) {
        self.meta.live = true;
        self.meta.groups.insert(name, dot, group);
    }

    pub fn remove_group(&mut self, name: &[u8]) -> bool {
        self.meta.groups.remove(name)
    }

    /// A copy's state (RENAME, COPY, RESTORE): every entry and group under `dot`.
    pub fn copied(&self, dot: Dot) -> Stream {
        let map = OrMap::from_members(self.map.iter().map(|(m, e)| (m.clone(), e)), dot);
        let redotted = |g: Group| Group {
            cursor: g.cursor,
            pel: OrMap::from_members(g.pel.iter().map(|(m, p)| (m.clone(), p)), dot),
            consumers: OrMap::from_members(g.consumers.iter().map(|(m, c)| (m.clone(), c)), dot),
        };
        let groups = OrMap::from_members(self.meta.groups.iter().map(|(m, g)| (m.clone(), redotted(g))), dot);
        Stream { map, meta: Meta { groups, ..self.meta.clone() } }
    }

    /// Bytes it takes, roughly.
    pub fn size(&self) -> usize {
        64 + self.map.size(|e| e.0.iter().map(|b| b.len() + 8).sum())
    }

    pub fn records(&self) -> impl Iterator<Item = (&Bytes, Vec<u8>)> + '_ {
        self.map.records()
    }

    pub fn changed_records<'a>(&'a self, older: &'a Stream) -> impl Iterator<Item = RecordChange<'a>> + 'a {
        self.map.changed_records(&older.map)
    }

    /// # Errors
    /// A record that does not decode.
    pub fn with_records<'r>(
        self,
        records: impl IntoIterator<Item = (Bytes, &'r [u8])>,
    ) -> Result<Stream, postcard::Error> {
        Ok(Stream { map: self.map.with_records(records)?, meta: self.meta })
    }

    /// # Errors
    /// A record that does not decode.
    pub fn patched<'r>(
        &self,
        base: &Stream,
        changes: impl IntoIterator<Item = (Bytes, Option<&'r [u8]>)>,
    ) -> Result<Stream, postcard::Error> {
        Ok(Stream { map: self.map.patched(&base.map, changes)?, meta: self.meta.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot(a: u64, n: u64) -> Dot {
        Dot { actor: Actor(a), counter: n }
    }

    /// Found by fuzzing (`fuzz/`, target `sibling_set`): a stored stream whose actors' counts
    /// of entries added summed past u64's range overflowed XINFO's entries-added (a panic
    /// where overflow is checked, elsewhere a small count). It saturates.
    #[test]
    fn entries_added_past_u64_saturate() {
        let mut s = Stream::default();
        s.meta.added.insert(Actor(1), u64::MAX - 1);
        s.meta.added.insert(Actor(2), 5);
        assert_eq!(s.entries_added(), u64::MAX);
        s.add(StreamId::new(1, 0), vec![Bytes::from("f"), Bytes::from("v")], dot(1, 1));
        s.add(StreamId::new(2, 0), vec![Bytes::from("f"), Bytes::from("v")], dot(1, 2));
        assert_eq!(s.meta.added[&Actor(1)], u64::MAX);
        // The fuzzer's input: a stored sibling set holding such a stream.
        let found = [
            0xc4, 0x01, 0x01, 0x01, 0x01, 0x01, 0x07, 0x01, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0xd0, 0x95, 0xff,
            0xbc, 0x35, 0x05, 0x3a, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x01,
            0x01, 0x01, 0xfe, 0x3f, 0x00, 0x00, 0x01, 0x04, 0x01, 0x01, 0x01, 0x01, 0x01, 0x23, 0x04, 0x01, 0x05, 0x01,
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00,
        ];
        if let Ok(set) = crate::version::SiblingSet::decode(&found) {
            for value in set.siblings().filter_map(|s| s.value.as_ref()) {
                if let crate::version::Value::Stream(s) = value {
                    let _ = s.entries_added();
                }
            }
        }
    }

    #[test]
    fn ids_parse_and_order_as_redis() {
        assert_eq!(StreamId::parse(b"5-3", 0), Some(StreamId::new(5, 3)));
        assert_eq!(StreamId::parse(b"5", 7), Some(StreamId::new(5, 7)));
        assert_eq!(StreamId::parse(b"18446744073709551615-18446744073709551615", 0), Some(StreamId::MAX));
        for bad in [&b""[..], b"-", b"5-", b"-5", b"a-1", b"1-b", b"18446744073709551616", b" 1", b"+1"] {
            assert_eq!(StreamId::parse(bad, 0), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(StreamId::new(1, 9).key() < StreamId::new(2, 0).key());
        assert_eq!(StreamId::from_key(&StreamId::new(7, 8).key()), Some(StreamId::new(7, 8)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::new(2, 0).prev(), Some(StreamId::new(1, u64::MAX)));
    }

    #[test]
    fn the_home_gives_redis_ids() {
        let last = StreamId::new(100, 4);
        assert_eq!(next_id(last, 200, None, 0), Some(StreamId::new(200, 0)));
        assert_eq!(next_id(last, 50, None, 0), Some(StreamId::new(100, 5)), "the clock went back");
        assert_eq!(next_id(last, 100, Some(100), 0), Some(StreamId::new(100, 5)));
        assert_eq!(next_id(last, 100, Some(99), 0), None);
        assert_eq!(next_id(StreamId::new(100, u64::MAX), 0, Some(100), 0), None);
        assert_eq!(next_id(StreamId::new(100, u64::MAX), 0, None, 0), Some(StreamId::new(101, 0)));
        assert_eq!(next_id(StreamId::MAX, 0, None, 0), None);
    }

    proptest! {
        /// Two deciders on two sides of a partition (the home and a stand-in, or two stand-ins)
        /// never give one ID twice, and each gives increasing IDs past what it saw.
        #[test]
        fn two_sides_never_share_an_id(
            start in (0u64..1000, 0u64..4),
            steps in proptest::collection::vec((0usize..2, 0u64..3, any::<bool>()), 1..200),
            writers in (0u16..3, 1u16..5),
        ) {
            let (w0, w1) = (writers.0, writers.0 + writers.1);
            let mut last = [StreamId::new(start.0, start.1); 2];
            let mut now = start.0;
            let mut seen = std::collections::BTreeSet::new();
            for (side, tick, heal) in steps {
                now += tick;
                let writer = if side == 0 { w0 } else { w1 };
                let id = next_id(last[side], now, None, writer).unwrap();
                prop_assert!(id > last[side]);
                prop_assert!(seen.insert(id), "{id} given twice");
                last[side] = id;
                if heal {
                    let top = last[0].max(last[1]);
                    last = [top, top];
                }
            }
        }

        /// Merges commute and keep every entry either side added.
        #[test]
        fn joins_keep_every_entry(
            a in proptest::collection::vec(0u64..50, 0..20),
            b in proptest::collection::vec(0u64..50, 0..20),
            deleted in proptest::collection::vec(0u64..50, 0..10),
        ) {
            let mut base = Stream::default();
            let mut n = 0;
            for id in &deleted {
                n += 1;
                base.add(StreamId::new(*id, 0), vec![Bytes::from("f")], dot(9, n));
            }
            let mut left = base.clone();
            let mut right = base.clone();
            for (i, id) in a.iter().enumerate() {
                left.add(StreamId::new(1000 + id, 0), vec![Bytes::from("l")], dot(1, i as u64 + 1));
            }
            for (i, id) in b.iter().enumerate() {
                right.add(StreamId::new(1000 + id, 1), vec![Bytes::from("r")], dot(2, i as u64 + 1));
            }
            for id in &deleted {
                left.delete(StreamId::new(*id, 0));
            }
            let lr = left.join(&right);
            prop_assert_eq!(&lr, &right.join(&left));
            prop_assert_eq!(&lr.join(&lr), &lr);
            for id in &a {
                prop_assert!(lr.get(StreamId::new(1000 + id, 0)).is_some());
            }
            for id in &b {
                prop_assert!(lr.get(StreamId::new(1000 + id, 1)).is_some());
            }
            for id in &deleted {
                prop_assert!(lr.get(StreamId::new(*id, 0)).is_none(), "a deleted entry came back");
            }
            let distinct: std::collections::BTreeSet<_> = a.iter().collect();
            let distinct_b: std::collections::BTreeSet<_> = b.iter().collect();
            prop_assert_eq!(lr.len(), distinct.len() + distinct_b.len());
        }
    }

    #[test]
    fn a_del_concurrent_with_an_xadd_keeps_the_added_entry_and_the_stream() {
        let mut base = Stream::default();
        base.add(StreamId::new(1, 0), vec![Bytes::from("a")], dot(1, 1));
        let deleted = base.cleared();
        let mut added = base.clone();
        added.add(StreamId::new(2, 0), vec![Bytes::from("b")], dot(2, 1));
        let merged = deleted.join(&added);
        assert!(merged.exists());
        assert_eq!(
            merged.range(StreamId::MIN, StreamId::MAX, false).map(|(id, _)| id).collect::<Vec<_>>(),
            [StreamId::new(2, 0)]
        );
        assert!(!deleted.exists());
    }

    #[test]
    fn an_ack_on_one_side_and_a_delivery_on_the_other_both_hold() {
        let cursor = Cursor { stamp: (1, Actor(1), 1), last_id: StreamId::MIN, entries_read: Some(0) };
        let mut g = Group::new(cursor);
        let pending = |c: &str| Pending {
            stamp: (1, Actor(1), 1),
            consumer: Bytes::copy_from_slice(c.as_bytes()),
            delivered_ms: 1,
            count: 1,
        };
        g.pel.insert(StreamId::new(1, 0).key(), dot(1, 1), pending("a"));
        let mut acked = g.clone();
        acked.pel.remove(&StreamId::new(1, 0).key());
        let mut delivered = g.clone();
        delivered.pel.insert(StreamId::new(2, 0).key(), dot(2, 1), pending("b"));
        let merged = acked.join(&delivered);
        let ids: Vec<_> = merged.pending_of(None).map(|(id, _)| id).collect();
        assert_eq!(ids, [StreamId::new(2, 0)]);
    }
}
