//! The reap index: stored keys by the time they may become reapable (every sibling deleted or
//! expired), like Redis's dictionary of volatile keys. The reaper takes only the keys that are
//! due, so purging costs what dies, not what is stored. Built by one walk when the storage
//! opens, then kept by every write of the data keyspace. An entry may be stale (the key was
//! rewritten or removed since): whoever takes it checks the key.

use std::collections::BTreeSet;

use parking_lot::Mutex;

use super::Storage;
use crate::version::SiblingSet;

#[derive(Default)]
pub(super) struct DueIndex(Mutex<BTreeSet<(u64, Vec<u8>)>>);

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
    /// Records when `key`, now holding `set`, may become reapable.
    pub(super) fn note_due(&self, key: &[u8], set: &SiblingSet) {
        if let Some(at) = dead_at(set) {
            self.due.0.lock().insert((at, key.to_vec()));
        }
    }

    /// Takes out up to `limit` keys that became dead at or before `until`, oldest first.
    pub fn take_due(&self, until: u64, limit: usize) -> Vec<Vec<u8>> {
        let mut due = self.due.0.lock();
        let mut out = Vec::new();
        while out.len() < limit {
            match due.first() {
                Some((at, _)) if *at <= until => {
                    if let Some((_, key)) = due.pop_first() {
                        out.push(key);
                    }
                }
                _ => break,
            }
        }
        out
    }

    /// Puts `key` back to be taken again once `at` has passed (its reaping had to wait).
    pub fn due_again(&self, key: &[u8], at: u64) {
        self.due.0.lock().insert((at, key.to_vec()));
    }

    /// Keys in the index (those with an expiry or a tombstone, and stale entries).
    pub fn due_len(&self) -> usize {
        self.due.0.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::storage::FsyncPolicy;
    use crate::version::{Actor, Sibling};

    fn sibling(value: Option<&str>, written_ms: u64, expires_ms: Option<u64>) -> Sibling {
        Sibling { value: value.map(|v| Bytes::from(v.to_owned()).into()), written_ms, origin: Actor(1), expires_ms }
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
}
