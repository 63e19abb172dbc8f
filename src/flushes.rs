//! Flush marks: FLUSHDB and FLUSHALL as writes of their own. A mark says "every value of this
//! database (or of all of them) written at or before this time is gone". Gossip carries the
//! marks with the membership (merged by maximum, so in any order and any number of times), and
//! every node applies them to every set it stores, reads or merges in (see
//! [`SiblingSet::flushed`]): a copy written before the flush and held back by a hint, a replica
//! that was down, a transfer or anti-entropy is dropped when it arrives, on whichever node.
//! So is a write made after the mark's time by a node that had not applied it (it records the
//! cutoff it had, `Sibling::flush_seen`): it may carry what the flush dropped. A flush answers
//! once every member holds its mark (`Cluster::flush`), so only writes concurrent with it go.
//!
//! The time is the flushing node's clock: a write coordinated by a node whose clock is behind
//! by `d` within `d` after the flush is dropped by it too (the same limit as last-write-wins).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keyspace::db_of;
use crate::version::SiblingSet;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushMarks {
    /// The last FLUSHALL, ms since the Unix epoch (0: none).
    all: u64,
    /// The last FLUSHDB of each database.
    dbs: BTreeMap<u32, u64>,
}

impl FlushMarks {
    /// Records a flush of database `db` (`None`: all of them) at `at_ms`. Returns whether it
    /// is newer than what was known.
    pub fn mark(&mut self, db: Option<u32>, at_ms: u64) -> bool {
        let slot = match db {
            None => &mut self.all,
            Some(db) => self.dbs.entry(db).or_default(),
        };
        let newer = at_ms > *slot;
        *slot = (*slot).max(at_ms);
        newer
    }

    /// Takes in another node's marks. Returns whether any of ours moved.
    pub fn merge(&mut self, other: &FlushMarks) -> bool {
        let mut changed = self.mark(None, other.all);
        for (&db, &at) in &other.dbs {
            changed |= self.mark(Some(db), at);
        }
        changed
    }

    /// Whether every mark of `other` is in these (as late or later).
    pub fn covers(&self, other: &FlushMarks) -> bool {
        self.all >= other.all && other.dbs.iter().all(|(db, &at)| self.dbs.get(db).is_some_and(|&mine| mine >= at))
    }

    pub fn is_empty(&self) -> bool {
        self.all == 0 && self.dbs.is_empty()
    }

    /// The time up to which `key`'s values are flushed (0: none).
    pub fn cutoff(&self, key: &[u8]) -> u64 {
        if self.is_empty() || crate::keyspace::is_reserved(key) {
            return 0;
        }
        self.all.max(self.dbs.get(&db_of(key)).copied().unwrap_or(0))
    }

    /// `set` as the marks leave it, when they drop something from it.
    pub fn apply(&self, key: &[u8], set: &SiblingSet) -> Option<SiblingSet> {
        set.flushed(self.cutoff(key))
    }

    /// The databases a change from `old` to `self` flushed (`None`: all of them), to purge.
    pub fn newer_than(&self, old: &FlushMarks) -> Option<Vec<u32>> {
        if self.all > old.all {
            return None;
        }
        Some(self.dbs.iter().filter(|&(db, at)| old.dbs.get(db).is_none_or(|o| at > o)).map(|(&db, _)| db).collect())
    }
}

/// Marks of changes to the cluster's scripts and functions that every node's caches must
/// see: a node keeps compiled scripts and the function libraries it read (`script/`), and
/// drops them when a mark moves past the one it built them under. Merged by maximum, carried
/// by gossip with the flush marks; SCRIPT FLUSH and the FUNCTION changes that remove or
/// replace a library (`command/functions.rs`) move a mark and answer once every member holds
/// it, as a flush does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptMarks {
    /// The last SCRIPT FLUSH (a counter: each flush moves it past every value seen).
    pub scripts_flushed: u64,
    /// The last FUNCTION DELETE, FLUSH, LOAD REPLACE or RESTORE.
    pub functions_changed: u64,
}

impl ScriptMarks {
    /// Takes in another node's marks. Returns whether ours moved.
    pub fn merge(&mut self, other: &ScriptMarks) -> bool {
        let before = self.clone();
        self.scripts_flushed = self.scripts_flushed.max(other.scripts_flushed);
        self.functions_changed = self.functions_changed.max(other.functions_changed);
        *self != before
    }

    /// Whether every mark of `other` is in these.
    pub fn covers(&self, other: &ScriptMarks) -> bool {
        self.scripts_flushed >= other.scripts_flushed && self.functions_changed >= other.functions_changed
    }

    /// The next value of a mark: the time, or one past it when a mark is ahead of this clock.
    pub fn next(current: u64) -> u64 {
        crate::clock::now_ms().max(current + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::internal;
    use crate::version::{Actor, Sibling, VersionVector};

    fn set_at(ms: u64) -> SiblingSet {
        let sib = Sibling {
            value: Some("v".into()),
            written_ms: ms,
            origin: Actor(1),
            expires_ms: None,
            resets: Vec::new(),
            flush_seen: None,
        };
        SiblingSet::new().update(&VersionVector::default(), sib).0
    }

    #[test]
    fn script_marks_merge_by_maximum() {
        let mut a = ScriptMarks { scripts_flushed: 5, functions_changed: 1 };
        let b = ScriptMarks { scripts_flushed: 2, functions_changed: 9 };
        assert!(!a.covers(&b));
        assert!(a.merge(&b));
        assert_eq!(a, ScriptMarks { scripts_flushed: 5, functions_changed: 9 });
        assert!(a.covers(&b));
        assert!(!a.merge(&b));
        assert!(ScriptMarks::next(u64::MAX - 1) == u64::MAX);
    }

    #[test]
    fn marks_merge_by_maximum_in_any_order() {
        let mut a = FlushMarks::default();
        assert!(a.mark(Some(1), 50));
        assert!(!a.mark(Some(1), 40));
        let mut b = FlushMarks::default();
        b.mark(None, 30);
        b.mark(Some(2), 70);
        let (mut ab, mut ba) = (a.clone(), b.clone());
        assert!(ab.merge(&b));
        assert!(ba.merge(&a));
        assert_eq!(ab, ba);
        assert!(!ab.clone().merge(&ab));
        assert_eq!(ab.cutoff(&internal(1, b"k")), 50);
        assert_eq!(ab.cutoff(&internal(2, b"k")), 70);
        assert_eq!(ab.cutoff(b"k"), 30);
        assert_eq!(FlushMarks::default().cutoff(b"k"), 0);
    }

    #[test]
    fn a_flush_of_one_database_leaves_the_others() {
        let mut m = FlushMarks::default();
        m.mark(Some(3), 100);
        assert!(m.apply(&internal(3, b"k"), &set_at(100)).is_some_and(|s| s.get(0).is_none()));
        assert!(m.apply(&internal(3, b"k"), &set_at(101)).is_none());
        assert!(m.apply(b"k", &set_at(5)).is_none());
        assert!(m.apply(&internal(4, b"k"), &set_at(5)).is_none());
    }

    /// Issue 20, item 3: a write made after the flush's time by a node that had not applied
    /// it (stamped with an older cutoff) is dropped with what the flush covers; one made by a
    /// node that had, or stored before writes were stamped, stays.
    #[test]
    fn a_write_by_a_node_that_had_not_applied_the_flush_goes_with_it() {
        let mut m = FlushMarks::default();
        m.mark(None, 100);
        let stamped = |seen: Option<u64>| {
            let sib = Sibling {
                value: Some("v".into()),
                written_ms: 150,
                origin: Actor(1),
                expires_ms: None,
                resets: Vec::new(),
                flush_seen: seen,
            };
            SiblingSet::new().update(&VersionVector::default(), sib).0
        };
        assert!(m
            .apply(b"k", &stamped(Some(40)))
            .is_some_and(|s| s.get(0).is_none() && s.context() != VersionVector::default()));
        assert!(m.apply(b"k", &stamped(Some(100))).is_none());
        assert!(m.apply(b"k", &stamped(None)).is_none());
    }

    #[test]
    fn marks_cover_marks_as_late_or_later() {
        let mut a = FlushMarks::default();
        a.mark(Some(1), 50);
        let mut b = a.clone();
        assert!(b.covers(&a) && a.covers(&b));
        b.mark(Some(2), 10);
        assert!(b.covers(&a) && !a.covers(&b));
        a.mark(None, 60);
        assert!(!b.covers(&a));
        assert!(FlushMarks::default().covers(&FlushMarks::default()));
    }

    #[test]
    fn what_to_purge() {
        let mut old = FlushMarks::default();
        old.mark(Some(1), 10);
        let mut new = old.clone();
        new.mark(Some(2), 20);
        assert_eq!(new.newer_than(&old), Some(vec![2]));
        assert_eq!(old.newer_than(&old), Some(vec![]));
        new.mark(None, 30);
        assert_eq!(new.newer_than(&old), None);
    }
}
