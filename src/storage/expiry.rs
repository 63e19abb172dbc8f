//! The reap index: stored keys by the time they may become reapable (every sibling deleted or
//! expired), like Redis's dictionary of volatile keys. The reaper takes only the keys that are
//! due, so purging costs what dies, not what is stored.
//!
//! It is kept on disk, in the `due` keyspace: `dead_at (u64 big-endian) | key -> ()`, one
//! record per stored key whose set dies, at the time it dies ([`dead_at`] of the stored set).
//! Every write of the data keyspace that moves that time puts the move into its own batch (the
//! old record's time is `dead_at` of the set it replaces, so no by-key lookup is needed), and a
//! removal removes the record in its batch: a crash never leaves the index behind the data. A
//! write where neither the old set nor the new one dies (a SET without expiry) touches no
//! record and stays one insert. Opening the store loads the records into memory (what the
//! reaper and the expiry notifications read): the cost is the keys that will die, not the
//! keys stored. A store an older build wrote has no index: opening it walks it once to build
//! one (`Storage::open`).
//!
//! In memory a key has at most one entry (a write moves it, a write that never dies or a
//! removal drops it), so the index holds one entry per key that will die, whatever the key's
//! history. An entry may still be stale for a moment (the reaper took it and puts it back):
//! whoever takes it checks the key. What the reaper takes or puts back changes the memory
//! only: the record stays at the time the stored set dies, where a restart finds it again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use fjall::{Keyspace, OwnedWriteBatch as WriteBatch};
use parking_lot::Mutex;

use super::{Result, Storage};
use crate::version::SiblingSet;

/// Told of every stored write of a key (with its lock held), to notice keys that expire
/// (keyspace notifications): it must be quick, and take no lock a writer may hold.
pub trait ExpiryWatch: Send + Sync {
    fn stored(&self, key: &[u8], old: Option<&SiblingSet>, next: &SiblingSet);
}

pub(super) struct DueIndex {
    /// The `due` keyspace: the index on disk.
    records: Keyspace,
    /// The same entries in memory, as the reaper has left them.
    mem: Mutex<Due>,
}

impl DueIndex {
    /// The index kept in `records` (empty in memory until [`Storage::load_due`] or
    /// [`Storage::index_stored`] fill it at open).
    pub(super) fn new(records: Keyspace) -> DueIndex {
        DueIndex { records, mem: Mutex::default() }
    }
}

/// The `due` record of `key` dying at `at`: big-endian, so records sort by time.
fn record_key(at: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// How a write of a key (from `old` to `next`; `None`: not stored) moves its `due` record.
pub(super) struct DueMove {
    from: Option<u64>,
    to: Option<u64>,
}

impl DueMove {
    pub(super) fn new(old: Option<&SiblingSet>, next: Option<&SiblingSet>) -> DueMove {
        DueMove { from: old.and_then(dead_at), to: next.and_then(dead_at) }
    }

    /// Whether the record moves: the write then needs a batch to move it with the data. Most
    /// writes (neither set dies) do not.
    pub(super) fn moves(&self) -> bool {
        self.from != self.to
    }
}

/// The entries by time (what the reaper takes first) and by key (so a write finds the key's
/// entry to move or drop).
#[derive(Default)]
struct Due {
    by_time: BTreeSet<(u64, Arc<[u8]>)>,
    by_key: HashMap<Arc<[u8]>, u64>,
}

impl Due {
    /// Sets `key`'s entry to `at` (none: drops it).
    fn set(&mut self, key: &[u8], at: Option<u64>) {
        let old = self.by_key.get_key_value(key).map(|(k, at)| (k.clone(), *at));
        match (old, at) {
            (Some((_, old)), Some(at)) if old == at => {}
            (Some((k, old)), Some(at)) => {
                self.by_time.remove(&(old, k.clone()));
                self.by_time.insert((at, k.clone()));
                self.by_key.insert(k, at);
            }
            (Some((k, old)), None) => {
                self.by_time.remove(&(old, k.clone()));
                self.by_key.remove(&k);
            }
            (None, Some(at)) => {
                let k: Arc<[u8]> = Arc::from(key);
                self.by_time.insert((at, k.clone()));
                self.by_key.insert(k, at);
            }
            (None, None) => {}
        }
    }
}

/// When every sibling of `set` is dead: a tombstone since it was written, a value once it
/// expires. `None` while it holds a value that never expires.
pub fn dead_at(set: &SiblingSet) -> Option<u64> {
    let mut latest = 0;
    for s in set.siblings() {
        let at = match (&s.value, s.expires_ms) {
            (None, _) => s.written_ms,
            // A counter a reset left with nothing: dead as a tombstone is.
            (Some(v), _) if !v.exists() => s.written_ms,
            (Some(_), Some(expires)) => expires,
            (Some(_), None) => return None,
        };
        latest = latest.max(at);
    }
    Some(latest)
}

impl Storage {
    /// Puts `key`'s record's move into `batch`, the batch of the write (or removal) it comes
    /// from: the record and the data are written together or not at all.
    pub(super) fn move_due(&self, batch: &mut WriteBatch, key: &[u8], due: &DueMove) {
        if !due.moves() {
            return;
        }
        if let Some(at) = due.from {
            batch.remove(&self.due.records, record_key(at, key));
        }
        if let Some(at) = due.to {
            batch.insert(&self.due.records, record_key(at, key), &b""[..]);
        }
    }

    /// Loads the index on disk into memory (at open, when the store keeps it): a read of the
    /// keys that will die, in time order. A record too short to hold a time is skipped.
    ///
    /// # Errors
    /// Engine failure.
    pub(super) fn load_due(&self) -> Result<()> {
        let mut due = self.due.mem.lock();
        for guard in self.due.records.iter() {
            let record = guard.key()?;
            let Some((at, key)) = record.split_at_checked(8) else {
                tracing::warn!("skipping a reap index record of {} bytes", record.len());
                continue;
            };
            let at = u64::from_be_bytes(at.try_into().unwrap_or_default());
            due.set(key, Some(at));
        }
        Ok(())
    }

    /// Empties the index, on disk and in memory (at open, before a walk builds it anew: what
    /// an interrupted walk left may be stale).
    ///
    /// # Errors
    /// Engine failure.
    pub(super) fn clear_due(&self) -> Result<()> {
        self.health.admit()?;
        self.due.records.clear().map_err(|e| self.write_failed("a write of the reap index", &e))?;
        *self.due.mem.lock() = Due::default();
        Ok(())
    }

    /// Indexes `key`, found stored as `set` by the walk at open of a store without the index.
    ///
    /// # Errors
    /// Engine failure.
    pub(super) fn index_stored(&self, key: &[u8], set: &SiblingSet) -> Result<()> {
        if let Some(at) = dead_at(set) {
            self.health.admit()?;
            self.due
                .records
                .insert(record_key(at, key), &b""[..])
                .map_err(|e| self.write_failed("a write of the reap index", &e))?;
            self.due.mem.lock().set(key, Some(at));
        }
        Ok(())
    }

    /// Records in memory when `key`, now stored as `next` (over `old`, what was stored
    /// before; the write's batch moved the record on disk), may become reapable: the key's
    /// one entry moves there, or goes when `next` never dies. A
    /// write that never dies over one that never died has no entry to drop (the index lock
    /// is not taken: plain writes do not contend on it).
    pub(super) fn note_due(&self, key: &[u8], old: Option<&SiblingSet>, next: &SiblingSet) {
        let at = dead_at(next);
        if at.is_none() && old.is_none_or(|o| dead_at(o).is_none()) {
            return;
        }
        self.due.mem.lock().set(key, at);
    }

    /// A write of `key` failed: either `old` or `next` may be stored (with its record: one
    /// batch). Its entry is set to the earlier time one of them dies (the reaper checks what
    /// is stored when it takes it).
    pub(super) fn note_either(&self, key: &[u8], old: Option<&SiblingSet>, next: &SiblingSet) {
        let at = match (old.and_then(dead_at), dead_at(next)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if at.is_some() {
            self.due.mem.lock().set(key, at);
        }
    }

    /// Tells the expiry watch (keyspace notifications, `notify/expiry.rs`), if one is
    /// installed, that `key` is now stored as `next` over `old` (the key's lock held).
    pub(super) fn note_stored(&self, key: &[u8], old: Option<&SiblingSet>, next: &SiblingSet) {
        if let Some(watch) = self.expiry_watch.get().and_then(std::sync::Weak::upgrade) {
            watch.stored(key, old, next);
        }
    }

    /// Installs the expiry watch (once). The storage keeps a weak reference: the watch's owner
    /// (the node) keeps it alive, and a strong one would be a cycle through the cluster that
    /// keeps a closed node's store (and fjall's worker threads) alive.
    pub fn watch_expiries(&self, watch: &Arc<dyn ExpiryWatch>) {
        let _ = self.expiry_watch.set(Arc::downgrade(watch));
    }

    /// The keys whose stored set died after `after` and at or before `until` (oldest first),
    /// with that time; the index keeps them (the reaper takes them later).
    pub fn dying(&self, after: u64, until: u64) -> Vec<(u64, Vec<u8>)> {
        if until <= after {
            return Vec::new();
        }
        let due = self.due.mem.lock();
        let from = (after.saturating_add(1), Arc::<[u8]>::from(&b""[..]));
        due.by_time.range(from..).take_while(|(at, _)| *at <= until).map(|(at, k)| (*at, k.to_vec())).collect()
    }

    /// `key` is no longer stored (its record went in the removal's batch): its entry goes.
    pub(super) fn note_removed(&self, key: &[u8]) {
        self.due.mem.lock().set(key, None);
    }

    /// Takes out up to `limit` keys that became dead at or before `until`, oldest first.
    pub fn take_due(&self, until: u64, limit: usize) -> Vec<Vec<u8>> {
        let mut due = self.due.mem.lock();
        let mut out = Vec::new();
        while out.len() < limit {
            match due.by_time.first() {
                Some((at, _)) if *at <= until => {
                    if let Some((_, key)) = due.by_time.pop_first() {
                        due.by_key.remove(&key);
                        out.push(key.to_vec());
                    }
                }
                _ => break,
            }
        }
        out
    }

    /// Puts `key` back to be taken again once `at` has passed (its reaping had to wait),
    /// unless a write indexed it meanwhile (that entry is the newer one).
    pub fn due_again(&self, key: &[u8], at: u64) {
        let mut due = self.due.mem.lock();
        if !due.by_key.contains_key(key) {
            due.set(key, Some(at));
        }
    }

    /// Keys in the index: those whose stored set will die (has an expiry, or is a tombstone),
    /// one entry each.
    pub fn due_len(&self) -> usize {
        self.due.mem.lock().by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::storage::{FsyncPolicy, LAYOUT, LAYOUT_KEY};
    use crate::version::{Actor, Dot, OrSet, Sibling, Value};

    fn sibling(value: Option<&str>, written_ms: u64, expires_ms: Option<u64>) -> Sibling {
        Sibling {
            value: value.map(|v| Bytes::from(v.to_owned()).into()),
            written_ms,
            origin: Actor(1),
            expires_ms,
            resets: Vec::new(),
            flush_seen: None,
        }
    }

    fn put(s: &Storage, key: &str, sib: Sibling) {
        s.update::<crate::storage::StorageError>(key.as_bytes(), |cur| {
            let cur = cur.cloned().unwrap_or_default();
            Ok(cur.update(&cur.context(), sib).0)
        })
        .unwrap();
    }

    #[test]
    fn only_keys_that_die_are_due_and_the_index_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        for i in 0..1000 {
            put(&s, &format!("plain{i}"), sibling(Some("v"), 1, None));
        }
        put(&s, "short", sibling(Some("v"), 1, Some(50)));
        put(&s, "long", sibling(Some("v"), 1, Some(500)));
        put(&s, "deleted", sibling(None, 70, None));
        assert_eq!(s.due_len(), 3, "the 1000 keys without expiry are not in the index");
        assert_eq!(s.take_due(60, 100), vec![b"short".to_vec()]);
        assert_eq!(s.take_due(100, 100), vec![b"deleted".to_vec()]);
        assert!(s.take_due(499, 100).is_empty());
        drop(s);
        let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(s.due_len(), 3, "kept on disk: loaded at open (the taken entries too)");
        assert_eq!(s.take_due(1000, 2), vec![b"short".to_vec(), b"deleted".to_vec()]);
    }

    #[test]
    fn a_key_holds_one_entry_whatever_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        for i in 0..1000 {
            put(&s, "k", sibling(Some("v"), i, Some(10_000 + i)));
        }
        assert_eq!(s.due_len(), 1, "1000 writes with an expiry");
        assert!(s.take_due(10_998, 100).is_empty(), "the older expiries are gone");
        put(&s, "k", sibling(Some("v"), 2000, None));
        assert_eq!(s.due_len(), 0, "a write without expiry drops the entry");
        put(&s, "k", sibling(Some("v"), 2001, Some(500)));
        assert_eq!(s.due_len(), 1);
        assert!(s.remove_if(b"k", |_| true).unwrap());
        assert_eq!(s.due_len(), 0, "a removed key has none");
        // The reaper puts back a key it took only if no write indexed it meanwhile.
        put(&s, "k", sibling(Some("v"), 2002, Some(100)));
        assert_eq!(s.take_due(100, 10), vec![b"k".to_vec()]);
        put(&s, "k", sibling(Some("v"), 2003, Some(900)));
        s.due_again(b"k", 100);
        assert!(s.take_due(500, 10).is_empty(), "the write's entry stays");
        assert_eq!(s.take_due(900, 10), vec![b"k".to_vec()]);
        s.due_again(b"k", 900);
        assert_eq!(s.due_len(), 1, "put back when nothing else indexed it");
    }

    /// A set of `n` members (stored in parts), expiring at `expires_ms`.
    fn set_sibling(n: u64, written_ms: u64, expires_ms: Option<u64>) -> Sibling {
        let mut set = OrSet::default();
        for i in 0..n {
            set.insert(Bytes::from(format!("m{i}")), Dot { actor: Actor(1), counter: written_ms }, ());
        }
        Sibling { value: Some(Value::Set(set)), ..sibling(Some("unused"), written_ms, expires_ms) }
    }

    /// The index on disk, in time order.
    fn records(s: &Storage) -> Vec<(u64, Vec<u8>)> {
        s.due
            .records
            .iter()
            .map(|g| {
                let k = g.key().expect("a record");
                let (at, key) = k.split_at(8);
                (u64::from_be_bytes(at.try_into().expect("8 bytes")), key.to_vec())
            })
            .collect()
    }

    /// What the index must hold for what is stored: every key whose set dies, at that time.
    fn dying_keys(s: &Storage) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        s.for_each(|k, set| {
            if let Some(at) = dead_at(&set.expect("decodes")) {
                out.push((at, k.to_vec()));
            }
        })
        .expect("a walk");
        out.sort();
        out
    }

    /// The index on disk and in memory is exactly what the stored keys make it.
    fn assert_index_matches_store(s: &Storage, when: &str) {
        let expected = dying_keys(s);
        assert_eq!(records(s), expected, "on disk, {when}");
        assert_eq!(s.dying(0, u64::MAX), expected, "in memory, {when}");
        assert_eq!(s.due_len(), expected.len(), "{when}");
    }

    /// A store with the layout marker opens without walking its keys: a record planted in
    /// `data` behind the index's back (a key that expires, one that does not decode) is not
    /// seen at open, while the index written with the data is loaded whole.
    #[test]
    fn a_store_with_the_marker_opens_without_walking_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
            assert_eq!(s.meta_get(LAYOUT_KEY).unwrap().as_deref(), Some(LAYOUT), "a new store is marked at once");
            for i in 0..100 {
                put(&s, &format!("plain{i}"), sibling(Some("v"), 1, None));
            }
            put(&s, "short", sibling(Some("v"), 1, Some(50)));
            put(&s, "deleted", sibling(None, 70, None));
            let planted = SiblingSet::new().update(&Default::default(), sibling(Some("v"), 1, Some(60))).0;
            s.data.insert(Storage::data_key(b"planted"), planted.encode()).unwrap();
            s.data.insert(Storage::data_key(b"garbage"), &b"\xffnot a sibling set"[..]).unwrap();
            s.commit().unwrap();
        }
        let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert!(s.get(b"planted").unwrap().is_some(), "the planted key is stored");
        assert_eq!(
            s.dying(0, u64::MAX),
            vec![(50, b"short".to_vec()), (70, b"deleted".to_vec())],
            "only what the writes indexed: the data was not walked"
        );
        assert_eq!(s.take_due(100, 10), vec![b"short".to_vec(), b"deleted".to_vec()]);
    }

    /// A store an older build wrote (data, no layout marker, no `due` keyspace) is walked once
    /// at open: the index is built on disk (sets in parts included, read as a sketch) and the
    /// marker written; the next open loads it.
    #[test]
    fn a_store_without_the_marker_gets_its_index_built_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
            for i in 0..100 {
                put(&s, &format!("plain{i}"), sibling(Some("v"), 1, None));
            }
            put(&s, "short", sibling(Some("v"), 1, Some(50)));
            put(&s, "deleted", sibling(None, 70, None));
            put(&s, "bigset", set_sibling(100, 2, Some(80)));
            put(&s, "plainset", set_sibling(100, 3, None));
            s.data.insert(Storage::data_key(b"garbage"), &b"\xffnot a sibling set"[..]).unwrap();
            // As an older build left it.
            s.meta.remove(LAYOUT_KEY).unwrap();
            s.db.delete_keyspace(s.due.records.clone()).unwrap();
            assert!(!s.db.keyspace_exists("due"));
            s.sync().unwrap();
        }
        let expected = vec![(50, b"short".to_vec()), (70, b"deleted".to_vec()), (80, b"bigset".to_vec())];
        let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(s.meta_get(LAYOUT_KEY).unwrap().as_deref(), Some(LAYOUT), "marked once walked");
        assert_eq!(records(&s), expected, "built on disk; the record that does not decode is skipped");
        assert_eq!(s.dying(0, u64::MAX), expected);
        drop(s);
        let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(s.dying(0, u64::MAX), expected, "loaded from disk");
        assert_eq!(s.take_due(100, 10), vec![b"short".to_vec(), b"deleted".to_vec(), b"bigset".to_vec()]);
    }

    /// A key's reap index record is written in the batch of the write that makes it die (and
    /// moved or removed in the batch of the write or removal that changes that): after any
    /// sequence of writes the index on disk is exactly what the stored keys make it, and a
    /// crash (a copy of the data directory taken while the store runs, as `kill -9` leaves
    /// it) reopens with every key that dies indexed. A write where neither set dies stays one
    /// record.
    #[test]
    fn a_crash_leaves_no_dying_key_unindexed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(&dir.path().join("live"), FsyncPolicy::Never).unwrap();
        for i in 0..200u64 {
            let key = format!("k{i}");
            match i % 5 {
                0 => put(&s, &key, sibling(Some("v"), i, Some(1000 + i))),
                1 => put(&s, &key, sibling(None, i, None)),
                2 => put(&s, &key, set_sibling(20, i + 1, Some(2000 + i))),
                3 => put(&s, &key, set_sibling(20, i + 1, None)),
                _ => put(&s, &key, sibling(Some("v"), i, None)),
            }
        }
        assert_index_matches_store(&s, "after first writes");
        // Expiries moved, dropped and added; keys removed; layouts changed.
        for i in 0..200u64 {
            let key = format!("k{i}");
            match i % 7 {
                0 => put(&s, &key, sibling(Some("w"), 500 + i, Some(3000 + i))),
                1 => put(&s, &key, sibling(Some("w"), 500 + i, None)),
                2 => put(&s, &key, set_sibling(5, 500 + i, Some(4000 + i))),
                3 => assert!(s.remove_if(key.as_bytes(), |_| true).unwrap()),
                4 => put(&s, &key, sibling(None, 500 + i, None)),
                _ => {}
            }
        }
        assert_index_matches_store(&s, "after rewrites and removals");
        // A write where neither the old set nor the new one dies: one record, no index record.
        let (before, index) = (s.stats().records_written, records(&s));
        put(&s, "k19", sibling(Some("x"), 900, None));
        assert_eq!(s.stats().records_written - before, 1);
        assert_eq!(records(&s), index);
        // The reaper taking entries changes the memory only: the records stay for a restart.
        let taken = s.take_due(u64::MAX, 10);
        assert_eq!(taken.len(), 10);
        assert_eq!(records(&s), dying_keys(&s));
        s.commit().unwrap();
        let crashed = dir.path().join("crashed");
        copy_dir(&dir.path().join("live"), &crashed);
        let c = Storage::open(&crashed, FsyncPolicy::Never).unwrap();
        assert_index_matches_store(&c, "after the crash");
        assert!(!dying_keys(&c).is_empty());
    }

    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}
