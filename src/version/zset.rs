//! Sorted sets that converge: an observed-remove map ([`OrMap`]) of members to [`Score`]s,
//! with the members in score order beside it.
//!
//! Members are an observed-remove set: an add or an update wins over a concurrent removal,
//! and a removal leaves no tombstone. A member's score is a register ZADD sets (the later
//! write wins) with a counter ZINCRBY adds to (concurrent increments add up). Every write of a
//! score (ZADD or ZINCRBY) records it whole, computed as Redis computes it (the old score plus
//! the increment, in one floating-point addition), together with the increments each actor
//! had made by then (its *floors*); the score reads as that register plus the increments it
//! did not observe. So on one node, or while writes see each other, a score is exactly
//! Redis's; two ZINCRBYs on the two sides of a partition both count; a ZADD concurrent with a
//! ZINCRBY keeps the increment when the ZADD is the later write (Redis Enterprise's meaning:
//! the ZADD's score, plus the increment it did not see).
//!
//! The score order is derived, never stored or sent: [`ZSet`] keeps a persistent ordered set
//! that counts ([`Ranked`]) of (score, member) beside the map, updated by what each write or
//! merge changed, so ZRANGE by score or rank, ZPOPMIN, ZRANK and ZCOUNT cost O(log n + k).

use bytes::Bytes;
use imbl::ordmap::DiffItem;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ormap::{Join, OrMap, RecordChange, Stamp};
use super::ranked::{Iter, Ranked};
use super::{Actor, Dot, VersionVector};

/// One actor's increments of a member's score in one generation (the dot it began with, its
/// latest dot, the totals up and down: non-negative floats, as bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    start: u64,
    dot: u64,
    inc: u64,
    dec: u64,
}

impl Tally {
    fn later(self, other: Tally) -> Tally {
        match (self.dot, self.start).cmp(&(other.dot, other.start)) {
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
            // Non-negative floats order as their bits do.
            std::cmp::Ordering::Equal => Tally { inc: self.inc.max(other.inc), dec: self.dec.max(other.dec), ..self },
        }
    }
}

/// A member's score: the last register write, the tallies it observed, and every actor's
/// tally (see the module's text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    stamp: Stamp,
    base: u64,
    floors: Vec<(Actor, Tally)>,
    tallies: Vec<(Actor, Tally)>,
}

impl Join for Score {
    fn join(&self, other: &Score) -> Score {
        let (reg, _) = if (other.stamp, other.base) > (self.stamp, self.base) { (other, self) } else { (self, other) };
        let mut tallies = self.tallies.clone();
        for &(actor, t) in &other.tallies {
            match tallies.binary_search_by_key(&actor, |(a, _)| *a) {
                Ok(i) => tallies[i].1 = tallies[i].1.later(t),
                Err(i) => tallies.insert(i, (actor, t)),
            }
        }
        Score { stamp: reg.stamp, base: reg.base, floors: reg.floors.clone(), tallies }
    }
}

impl Score {
    /// A score ZADD set.
    pub fn new(stamp: Stamp, score: f64) -> Score {
        Score { stamp, base: score.to_bits(), floors: Vec::new(), tallies: Vec::new() }
    }

    /// What the score reads as.
    pub fn value(&self) -> f64 {
        let mut v = f64::from_bits(self.base);
        for (actor, t) in &self.tallies {
            let floor = self
                .floors
                .binary_search_by_key(actor, |(a, _)| *a)
                .ok()
                .map(|i| self.floors[i].1)
                .filter(|f| f.start == t.start);
            // What the tally adds above its floor (nothing when they are equal: an infinite
            // tally minus itself would be NaN).
            let above = |total: u64, floor: Option<u64>| match floor {
                Some(f) if f == total => 0.0,
                Some(f) => f64::from_bits(total) - f64::from_bits(f),
                None => f64::from_bits(total),
            };
            let (inc, dec) = (above(t.inc, floor.map(|f| f.inc)), above(t.dec, floor.map(|f| f.dec)));
            if inc != 0.0 {
                v += inc;
            }
            if dec != 0.0 {
                v -= dec;
            }
        }
        v
    }

    /// This score set to `score` by a write stamped `stamp` (ZADD of an existing member).
    pub fn set(&self, stamp: Stamp, score: f64) -> Score {
        Score { stamp, base: score.to_bits(), floors: self.tallies.clone(), tallies: self.tallies.clone() }
    }

    /// This score plus `by`, written by `dot` stamped `stamp` (ZINCRBY): the new score, or
    /// `None` when it is not a number.
    pub fn incremented(&self, dot: Dot, stamp: Stamp, by: f64) -> Option<Score> {
        let new = self.value() + by;
        if new.is_nan() {
            return None;
        }
        let mut tallies = self.tallies.clone();
        let i = match tallies.binary_search_by_key(&dot.actor, |(a, _)| *a) {
            Ok(i) => i,
            Err(i) => {
                tallies.insert(i, (dot.actor, Tally { start: dot.counter, dot: dot.counter, inc: 0, dec: 0 }));
                i
            }
        };
        let t = &mut tallies[i].1;
        t.dot = dot.counter;
        if by > 0.0 {
            t.inc = (f64::from_bits(t.inc) + by).to_bits();
        } else if by < 0.0 {
            t.dec = (f64::from_bits(t.dec) - by).to_bits();
        }
        Some(Score { stamp, base: new.to_bits(), floors: tallies.clone(), tallies })
    }

    fn size(&self) -> usize {
        48 + 40 * (self.floors.len() + self.tallies.len())
    }
}

/// A score as a key that sorts as Redis sorts scores (-0 and 0 are one).
fn order_key(score: f64) -> u64 {
    let bits = if score == 0.0 { 0f64.to_bits() } else { score.to_bits() };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

/// The state of a sorted set: the map, and its members in score order.
#[derive(Clone, Debug, Default)]
pub struct ZSet {
    map: OrMap<Score>,
    order: Ranked<(u64, Bytes)>,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &ZSet) -> bool {
        self.map == other.map
    }
}

impl Eq for ZSet {}

impl Serialize for ZSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ZSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ZSet, D::Error> {
        Ok(ZSet::indexed(OrMap::deserialize(d)?))
    }
}

impl ZSet {
    fn indexed(map: OrMap<Score>) -> ZSet {
        let order = map.iter().map(|(m, s)| (order_key(s.value()), m.clone())).collect();
        ZSet { map, order }
    }

    /// `map` with the order of `self` changed where `map` differs from `self.map`.
    fn reindexed(&self, map: OrMap<Score>) -> ZSet {
        let mut order = self.order.clone();
        for change in self.map.entries_diff(&map) {
            match change {
                DiffItem::Add(m, _) => {
                    order.insert((order_key(map.get(m).map_or(0.0, |s| s.value())), m.clone()));
                }
                DiffItem::Remove(m, _) => {
                    order.remove(&(order_key(self.score(m).unwrap_or(0.0)), m.clone()));
                }
                DiffItem::Update { old: (m, _), .. } => {
                    order.remove(&(order_key(self.score(m).unwrap_or(0.0)), m.clone()));
                    order.insert((order_key(map.get(m).map_or(0.0, |s| s.value())), m.clone()));
                }
            }
        }
        ZSet { map, order }
    }

    pub fn join(&self, other: &ZSet) -> ZSet {
        let map = self.map.join(&other.map);
        if map.len() < self.map.len() / 2 {
            ZSet::indexed(map)
        } else {
            self.reindexed(map)
        }
    }

    pub fn map(&self) -> &OrMap<Score> {
        &self.map
    }

    pub fn get(&self, member: &[u8]) -> Option<Score> {
        self.map.get(member)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.map.get(member).map(|s| s.value())
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.map.contains(member)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clock(&self) -> &VersionVector {
        self.map.clock()
    }

    pub fn witness(&mut self, seen: &VersionVector) {
        self.map.witness(seen);
    }

    pub fn cleared(&self) -> ZSet {
        ZSet { map: self.map.cleared(), order: Ranked::new() }
    }

    /// The write `dot` sets `member`'s score to `score`.
    pub fn insert(&mut self, member: Bytes, dot: Dot, score: Score) {
        if let Some(old) = self.score(&member) {
            self.order.remove(&(order_key(old), member.clone()));
        }
        self.order.insert((order_key(score.value()), member.clone()));
        self.map.insert(member, dot, score);
    }

    /// Removes `member`; whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.score(member) {
            Some(old) => {
                self.order.remove(&(order_key(old), Bytes::copy_from_slice(member)));
                self.map.remove(member)
            }
            None => false,
        }
    }

    /// The members in score order (ties: by member), with their scores.
    pub fn by_score(&self) -> Scored<'_> {
        self.from_rank(0)
    }

    /// The members in reverse score order.
    pub fn by_score_rev(&self) -> Scored<'_> {
        Scored(self.order.iter_down_from(usize::MAX))
    }

    /// The members from rank `rank` (0: the lowest score) up.
    pub fn from_rank(&self, rank: usize) -> Scored<'_> {
        Scored(self.order.iter_from(rank))
    }

    /// The members from reverse rank `rank` (0: the highest score) down.
    pub fn down_from_rank(&self, rank: usize) -> Scored<'_> {
        match self.len().checked_sub(rank + 1) {
            Some(i) => Scored(self.order.iter_down_from(i)),
            None => Scored(self.order.iter_from(usize::MAX)),
        }
    }

    /// The members from position `i` (a rank, as [`ZSet::position`] gives) down; from the
    /// last when `i` is past it.
    pub fn down_from_position(&self, i: usize) -> Scored<'_> {
        Scored(self.order.iter_down_from(i))
    }

    /// The member at rank `rank`, with its score.
    pub fn at_rank(&self, rank: usize) -> Option<(f64, &Bytes)> {
        self.order.get(rank).map(|(k, m)| (from_order_key(*k), m))
    }

    /// A member's rank (0: the lowest score).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        self.order.rank(&(order_key(score), Bytes::copy_from_slice(member))).ok()
    }

    /// How many members score below `score` (`inclusive`: at most `score`).
    pub fn count_below(&self, score: f64, inclusive: bool) -> usize {
        let key = order_key(score);
        match (inclusive, key.checked_add(1)) {
            (false, _) => self.order.rank(&(key, Bytes::new())).unwrap_or_else(|i| i),
            (true, Some(next)) => self.order.rank(&(next, Bytes::new())).unwrap_or_else(|i| i),
            (true, None) => self.len(),
        }
    }

    /// The members from the first whose score is at least `min`, in score order.
    pub fn from_score(&self, min: f64) -> Scored<'_> {
        self.from_rank(self.count_below(min, false))
    }

    /// The members down from the last whose score is at most `max`, in reverse score order.
    pub fn down_from_score(&self, max: f64) -> Scored<'_> {
        match self.count_below(max, true).checked_sub(1) {
            Some(i) => Scored(self.order.iter_down_from(i)),
            None => Scored(self.order.iter_from(usize::MAX)),
        }
    }

    /// The rank of (`score`, `member`) in the order, whether or not it is there: how many
    /// members sort before it.
    pub fn position(&self, score: f64, member: &[u8]) -> usize {
        self.order.rank(&(order_key(score), Bytes::copy_from_slice(member))).unwrap_or_else(|i| i)
    }

    /// A state holding `members`, all under `dot` (RENAME, COPY, the STORE commands).
    pub fn from_members(members: impl IntoIterator<Item = (Bytes, f64)>, dot: Dot, stamp: Stamp) -> ZSet {
        ZSet::indexed(OrMap::from_members(members.into_iter().map(|(m, s)| (m, Score::new(stamp, s))), dot))
    }

    pub fn size(&self) -> usize {
        self.map.size(Score::size) + 24 * self.order.len()
    }
}

/// Members with their scores, in score order or its reverse ([`ZSet::by_score`] and others).
pub struct Scored<'a>(Iter<'a, (u64, Bytes)>);

impl<'a> Iterator for Scored<'a> {
    type Item = (f64, &'a Bytes);

    fn next(&mut self) -> Option<(f64, &'a Bytes)> {
        self.0.next().map(|(k, m)| (from_order_key(*k), m))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ZSet {
    pub fn records(&self) -> impl Iterator<Item = (&Bytes, Vec<u8>)> + '_ {
        self.map.records()
    }

    pub fn changed_records<'a>(&'a self, older: &'a ZSet) -> impl Iterator<Item = RecordChange<'a>> + 'a {
        self.map.changed_records(&older.map)
    }

    /// # Errors
    /// A record that does not decode.
    pub fn with_records<'r>(
        self,
        records: impl IntoIterator<Item = (Bytes, &'r [u8])>,
    ) -> Result<ZSet, postcard::Error> {
        Ok(ZSet::indexed(self.map.with_records(records)?))
    }

    /// # Errors
    /// A record that does not decode.
    pub fn patched<'r>(
        &self,
        base: &ZSet,
        changes: impl IntoIterator<Item = (Bytes, Option<&'r [u8]>)>,
    ) -> Result<ZSet, postcard::Error> {
        let map = self.map.patched(&base.map, changes)?;
        Ok(base.reindexed(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot(a: u64, n: u64) -> Dot {
        Dot { actor: Actor(a), counter: n }
    }

    fn st(t: u64, d: Dot) -> Stamp {
        (t, d.actor, d.counter)
    }

    #[test]
    fn scores_sort_as_numbers() {
        let xs = [f64::NEG_INFINITY, -1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, f64::INFINITY];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) <= order_key(w[1]), "{} {}", w[0], w[1]);
            assert_eq!(from_order_key(order_key(w[1])), w[1]);
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
    }

    #[test]
    fn one_writer_scores_exactly_as_redis_adds() {
        let mut s = Score::new(st(1, dot(1, 1)), 1.0);
        let mut redis = 1.0f64;
        for (i, by) in [0.1, 0.2, -0.7, 1e-9].into_iter().enumerate() {
            let d = dot(1, i as u64 + 2);
            s = s.incremented(d, st(i as u64 + 2, d), by).unwrap();
            redis += by;
            assert_eq!(s.value().to_bits(), redis.to_bits());
        }
        assert!(Score::new(st(1, dot(1, 1)), f64::INFINITY)
            .incremented(dot(1, 2), st(2, dot(1, 2)), f64::NEG_INFINITY)
            .is_none());
        let inf = Score::new(st(1, dot(1, 1)), 0.0).incremented(dot(1, 2), st(2, dot(1, 2)), f64::INFINITY).unwrap();
        assert_eq!(inf.value(), f64::INFINITY, "an infinite tally at its floor adds nothing");
    }

    #[test]
    fn concurrent_increments_add_up_and_a_later_zadd_keeps_unseen_ones() {
        let start = Score::new(st(1, dot(9, 1)), 10.0);
        let a = start.incremented(dot(1, 1), st(5, dot(1, 1)), 2.0).unwrap();
        let b = start.incremented(dot(2, 1), st(6, dot(2, 1)), 3.0).unwrap();
        assert_eq!(a.join(&b).value(), 15.0);
        assert_eq!(a.join(&b), b.join(&a));
        // A ZADD after a's increment, concurrent with b's: b's +3 counts on top of it.
        let set = a.set(st(7, dot(1, 2)), 100.0);
        assert_eq!(set.join(&b).value(), 103.0);
    }

    #[test]
    fn the_order_follows_every_write_and_merge() {
        let mut z = ZSet::default();
        z.insert(Bytes::from("a"), dot(1, 1), Score::new(st(1, dot(1, 1)), 3.0));
        z.insert(Bytes::from("b"), dot(1, 2), Score::new(st(2, dot(1, 2)), 1.0));
        let mut other = z.clone();
        other.insert(Bytes::from("c"), dot(2, 1), Score::new(st(3, dot(2, 1)), 2.0));
        let s = z.get(b"a").unwrap().set(st(4, dot(1, 3)), 0.5);
        z.insert(Bytes::from("a"), dot(1, 3), s);
        let names = |z: &ZSet| z.by_score().map(|(_, m)| m.clone()).collect::<Vec<_>>();
        let merged = z.join(&other);
        assert_eq!(names(&merged), [Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]);
        assert_eq!(merged.from_score(1.0).map(|(s, _)| s).collect::<Vec<_>>(), [1.0, 2.0]);
        assert_eq!(merged.down_from_score(1.0).map(|(s, _)| s).collect::<Vec<_>>(), [1.0, 0.5]);
        assert_eq!(names(&ZSet::indexed(merged.map.clone())), names(&merged));
    }

    fn history(actor: u64, ops: &[(u8, u8, i8)], start: &ZSet) -> ZSet {
        let mut z = start.clone();
        for (i, &(kind, m, by)) in ops.iter().enumerate() {
            let member = Bytes::from(vec![b'a' + m % 4]);
            let d = dot(actor, 100 + i as u64);
            let stamp = st((i as u64 * 7) % 5, d);
            match kind % 3 {
                0 => {
                    let s = z.get(&member).map_or(Score::new(stamp, f64::from(by)), |s| s.set(stamp, f64::from(by)));
                    z.insert(member, d, s);
                }
                1 => {
                    let s = z.get(&member).unwrap_or(Score::new(stamp, 0.0));
                    z.insert(member, d, s.incremented(d, stamp, f64::from(by)).unwrap());
                }
                _ => {
                    z.remove(&member);
                }
            }
        }
        z
    }

    fn arb() -> impl Strategy<Value = Vec<(u8, u8, i8)>> {
        proptest::collection::vec((any::<u8>(), any::<u8>(), any::<i8>()), 0..12)
    }

    proptest! {
        #[test]
        fn zset_join_is_a_semilattice_and_keeps_its_order(base in arb(), x in arb(), y in arb(), z in arb()) {
            let start = history(9, &base, &ZSet::default());
            let (a, b, c) = (history(1, &x, &start), history(2, &y, &start), history(3, &z, &start));
            prop_assert_eq!(a.join(&b), b.join(&a));
            prop_assert_eq!(a.join(&b).join(&c), a.join(&b.join(&c)));
            prop_assert_eq!(a.join(&a), a.clone());
            let all = a.join(&b).join(&c);
            let fresh = ZSet::indexed(all.map.clone());
            prop_assert_eq!(all.order.clone(), fresh.order);
            for (m, s) in all.map.iter() {
                prop_assert_eq!(Some(s.value()), b.join(&c).join(&a).score(m));
            }
        }

        /// Integer increments on three replicas from one start all count.
        #[test]
        fn no_increment_is_lost(incs in proptest::collection::vec((0u64..3, -50i8..50), 0..30)) {
            let start = Score::new(st(1, dot(9, 1)), 7.0);
            let mut reps = [start.clone(), start.clone(), start];
            let mut total = 7.0;
            for (i, (r, by)) in incs.iter().enumerate() {
                let d = dot(r + 1, i as u64 + 1);
                reps[*r as usize] = reps[*r as usize].incremented(d, st(i as u64 + 2, d), f64::from(*by)).unwrap();
                total += f64::from(*by);
            }
            let merged = reps[0].join(&reps[1]).join(&reps[2]);
            prop_assert_eq!(merged.value(), total);
        }
    }
}
