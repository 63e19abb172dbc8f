//! The reap index: stored keys by the time they may become reapable (every sibling deleted or
//! expired), like Redis's dictionary of volatile keys. The reaper takes only the keys that are
//! due, so purging costs what dies, not what is stored. Built by one walk when the storage
//! opens, then kept by every write of the data keyspace: a key has at most one entry, the time
//! its stored set dies (a write moves it, a write that never dies or a removal drops it), so
//! the index holds one entry per key that will die, whatever the key's history. An entry may
//! still be stale for a moment (the reaper took it and puts it back): whoever takes it checks
//! the key.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::Storage;
use crate::version::SiblingSet;

/// Told of every stored write of a key (with its lock held), to notice keys that expire
/// (keyspace notifications): it must be quick, and take no lock a writer may hold.
pub trait ExpiryWatch: Send + Sync {
    fn stored(&self, key: &[u8], old: Option<&SiblingSet>, next: &SiblingSet);
}

#[derive(Default)]
pub(super) struct DueIndex(Mutex<Due>);

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
    /// Records when `key`, now stored as `next` (over `old`, what was stored before), may
    /// become reapable: the key's one entry moves there, or goes when `next` never dies. A
    /// write that never dies over one that never died has no entry to drop (the index lock
    /// is not taken: plain writes do not contend on it).
    pub(super) fn note_due(&self, key: &[u8], old: Option<&SiblingSet>, next: &SiblingSet) {
        let at = dead_at(next);
        if at.is_none() && old.is_none_or(|o| dead_at(o).is_none()) {
            return;
        }
        self.due.0.lock().set(key, at);
    }

    /// A write of `key` failed: either `old` or `next` may be stored. Its entry is set to the
    /// earlier time one of them dies (the reaper checks what is stored when it takes it).
    pub(super) fn note_either(&self, key: &[u8], old: Option<&SiblingSet>, next: &SiblingSet) {
        let at = match (old.and_then(dead_at), dead_at(next)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if at.is_some() {
            self.due.0.lock().set(key, at);
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
        let due = self.due.0.lock();
        let from = (after.saturating_add(1), Arc::<[u8]>::from(&b""[..]));
        due.by_time.range(from..).take_while(|(at, _)| *at <= until).map(|(at, k)| (*at, k.to_vec())).collect()
    }

    /// `key` is no longer stored: its entry goes.
    pub(super) fn note_removed(&self, key: &[u8]) {
        self.due.0.lock().set(key, None);
    }

    /// Takes out up to `limit` keys that became dead at or before `until`, oldest first.
    pub fn take_due(&self, until: u64, limit: usize) -> Vec<Vec<u8>> {
        let mut due = self.due.0.lock();
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
        let mut due = self.due.0.lock();
        if !due.by_key.contains_key(key) {
            due.set(key, Some(at));
        }
    }

    /// Keys in the index: those whose stored set will die (has an expiry, or is a tombstone),
    /// one entry each.
    pub fn due_len(&self) -> usize {
        self.due.0.lock().by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::storage::FsyncPolicy;
    use crate::version::{Actor, Sibling};

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
        assert_eq!(s.due_len(), 3, "rebuilt by the walk at open");
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
}
