//! What a key holds: a DVV set of [`Sibling`]s, each a value or a tombstone with its write time.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Actor, Dot, DvvSet, VersionVector};

/// One write of a key: a value (or a tombstone), when it was written and by which actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// `None` is a tombstone: a delete is a write, so it supersedes what its context saw.
    pub value: Option<Bytes>,
    /// Wall-clock write time at the coordinator, ms since the Unix epoch (for plain GET's LWW).
    pub written_ms: u64,
    /// The coordinating actor: breaks ties between equal write times deterministically.
    pub origin: Actor,
    /// Absolute expiry, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
}

impl Sibling {
    /// Whether this sibling reads as a value at `now_ms` (not a tombstone, not expired).
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.value.is_some() && self.expires_ms.is_none_or(|t| t > now_ms)
    }

    /// The live value at `now_ms`.
    pub fn live_value(&self, now_ms: u64) -> Option<&Bytes> {
        if self.is_live(now_ms) {
            self.value.as_ref()
        } else {
            None
        }
    }
}

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

    /// The values a DGET shows: live siblings only, in a deterministic order (newest first).
    pub fn live_values(&self, now_ms: u64) -> Vec<Bytes> {
        let mut live: Vec<(Dot, &Sibling)> = self.0.dotted_values().filter(|(_, s)| s.is_live(now_ms)).collect();
        live.sort_by_key(|&(d, s)| std::cmp::Reverse(lww_key(d, s)));
        live.into_iter().filter_map(|(_, s)| s.value.clone()).collect()
    }

    /// Last-write-wins choice for plain GET: the newest sibling (ties: larger origin, then the
    /// later event); a tombstone or an expired value as the newest reads as missing.
    pub fn winner(&self) -> Option<&Sibling> {
        self.0.dotted_values().max_by_key(|&(d, s)| lww_key(d, s)).map(|(_, s)| s)
    }

    /// The value plain GET returns at `now_ms`.
    pub fn get(&self, now_ms: u64) -> Option<&Bytes> {
        self.winner().and_then(|s| s.live_value(now_ms))
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
    /// before it are dropped, their dots kept as seen, so no merge brings them back (see
    /// [`DvvSet::retain_newest`]). `None` when the flush drops nothing from this set.
    pub fn flushed(&self, cutoff_ms: u64) -> Option<SiblingSet> {
        if cutoff_ms == 0 || self.siblings().all(|s| s.written_ms > cutoff_ms) {
            return None;
        }
        let mut out = self.clone();
        out.0.retain_newest(|s| s.written_ms > cutoff_ms);
        Some(out)
    }

    /// Compact binary form for storage and the wire.
    pub fn encode(&self) -> Vec<u8> {
        // Sized up front: postcard would otherwise grow the Vec a few bytes at a time.
        let values: usize = self.siblings().map(|s| s.value.as_ref().map_or(0, Bytes::len)).sum();
        let estimate = 16 + values + 40 * self.len() + 20 * self.counters().count();
        postcard::to_extend(self, Vec::with_capacity(estimate)).expect("serialising to a Vec cannot fail")
    }

    /// # Errors
    /// When `bytes` is not a set this version wrote (a corrupt record).
    pub fn decode(bytes: &[u8]) -> Result<SiblingSet, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sib(v: Option<&str>, t: u64, origin: u64) -> Sibling {
        Sibling {
            value: v.map(|s| Bytes::copy_from_slice(s.as_bytes())),
            written_ms: t,
            origin: Actor(origin),
            expires_ms: None,
        }
    }

    #[test]
    fn lww_picks_newest_then_larger_origin() {
        let none = VersionVector::default();
        let s = SiblingSet::new();
        let (s, _) = s.update(&none, sib(Some("old"), 10, 9));
        let (s, _) = s.update(&none, sib(Some("a"), 20, 1));
        let (s, _) = s.update(&none, sib(Some("b"), 20, 2));
        assert_eq!(s.get(0).map(|b| &b[..]), Some(&b"b"[..]));
        assert_eq!(s.live_values(0).len(), 3);
        // Same time, same actor: the later event wins.
        let (s, _) = SiblingSet::new().update(&none, sib(Some("first"), 30, 1));
        let (s, _) = s.update(&none, sib(Some("second"), 30, 1));
        assert_eq!(s.get(0).map(|b| &b[..]), Some(&b"second"[..]));
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
