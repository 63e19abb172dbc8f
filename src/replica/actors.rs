//! Which actor a write coordinated here is an event of (design.md section 2, riak_kv#679).
//!
//! The rule: a node never issues a dot it may have issued before. A dot is `(actor, counter)`,
//! and a write continues the counter of an actor's entry found in the local copy of the key.
//! That is safe only while the local copy is known to hold the last dot this node issued under
//! that actor, so an entry is continued only when all of these hold:
//!
//! - **the same process issued it**: every start is a new *incarnation* (a random one, never
//!   read from disk). A restarted node's local copy may be older than what its replicas got
//!   (its journal is flushed after the replicas acknowledged; `--fsync everysec` loses up to a
//!   second on power loss; a disk may be wiped), so nothing before the restart is continued;
//! - **it was issued into the same kind of copy**: data writes and hinted writes (a stand-in's
//!   copy for an owner) use key epochs of different parity, so a data write never continues an
//!   entry that a hint, or a set merged in from elsewhere, carries at an older counter;
//! - **no record of the key was removed since the entry's key epoch was made** (a partition
//!   handed off, a hint delivered, a tombstone reaped): the copy that comes back later, from
//!   another replica, may lag. [`Storage::last_removal`] numbers the removals per key.
//!
//! Otherwise the write takes a fresh key epoch: a new actor with no history, so its first dot
//! cannot collide. Of the entries that may be continued, the one of the latest key epoch is
//! (an older one came back with a copy that was removed). Clocks grow by one entry per key per
//! such event (a restart, a removal of that key), never per write, and not with other keys'
//! removals (issue 20, item 5), except once per [`crate::storage::MAX_REMOVED`] removals of
//! keys not written since, when storage forgets which keys they were.

use parking_lot::Mutex;

use crate::storage::Storage;
use crate::version::{Actor, SiblingSet};

/// Key epochs an incarnation has (epoch 0 is the incarnation's own actor).
const MAX_KEY_EPOCH: u32 = (1 << Actor::KEY_EPOCH_BITS) - 1;

/// Checkpoints [`State::checkpoints`] keeps at most (more are thinned out).
const MAX_CHECKPOINTS: usize = 4096;

/// Which copy of a key a write is made in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    /// This node's data (it is a replica of the key).
    Data,
    /// A stand-in's hinted copy for an owner (paper 4.6).
    Hint,
}

impl Copy {
    /// Key epochs of data writes are even, those of hinted writes odd.
    fn parity(self) -> u32 {
        match self {
            Copy::Data => 0,
            Copy::Hint => 1,
        }
    }
}

struct State {
    base: Actor,
    next: u32,
    /// `(n, e)`: every key epoch from `e` on was made after this node had counted `n`
    /// removals (both grow along the list). A key last removed by the removal numbered `r`
    /// may continue the epochs from the first checkpoint with `n >= r` on. Thinning the list
    /// out only raises that floor for some keys (a fresh epoch where one was not needed).
    checkpoints: Vec<(u64, u32)>,
}

impl State {
    /// The first key epoch made after the removal numbered `r` (0: none) was counted.
    fn floor(&mut self, r: u64, removals: u64) -> u32 {
        if r == 0 {
            return 0;
        }
        let i = self.checkpoints.partition_point(|&(n, _)| n < r);
        if let Some(&(_, e)) = self.checkpoints.get(i) {
            return e;
        }
        if self.checkpoints.len() >= MAX_CHECKPOINTS {
            let mut keep = false;
            self.checkpoints.retain(|_| {
                keep = !keep;
                !keep
            });
        }
        self.checkpoints.push((removals, self.next));
        self.next
    }
}

pub struct Actors {
    node_id: String,
    state: Mutex<State>,
}

fn incarnation(node_id: &str) -> Actor {
    Actor::new(node_id, crate::random::u64())
}

impl Actors {
    /// The actors of this process: a new incarnation of node `node_id`.
    pub fn new(node_id: &str) -> Actors {
        Actors {
            node_id: node_id.to_owned(),
            state: Mutex::new(State { base: incarnation(node_id), next: 1, checkpoints: Vec::new() }),
        }
    }

    /// This incarnation's own actor (key epoch 0).
    pub fn base(&self) -> Actor {
        self.state.lock().base
    }

    /// The actor for a write of `key` over `current`, the local copy of `kind` it is made in,
    /// read before this call (under the key's lock for data). `storage` tells of removals.
    pub fn for_write(&self, storage: &Storage, key: &[u8], current: Option<&SiblingSet>, kind: Copy) -> Actor {
        // Read after `current`: a removal that `current` missed was counted before it happened.
        let removal = storage.last_removal(key);
        let removals = storage.removals();
        let mut s = self.state.lock();
        let (base, floor) = (s.base, s.floor(removal, removals));
        let continued = current.and_then(|set| {
            set.counters()
                .map(|(a, _)| a)
                .filter(|a| {
                    let e = a.key_epoch();
                    a.same_incarnation(base) && e >= floor && e % 2 == kind.parity()
                })
                .max_by_key(|a| a.key_epoch())
        });
        match continued {
            Some(actor) => {
                drop(s);
                // This copy holds an entry made after the removal: the epochs before it are
                // never continued now (a later one is), so the removal need not be kept.
                if removal > 0 {
                    storage.removal_outlived(key, removal);
                }
                actor
            }
            None => self.mint(&mut s, kind),
        }
    }

    /// A key epoch of `kind`'s parity never used before.
    fn mint(&self, s: &mut State, kind: Copy) -> Actor {
        let mut e = s.next + (s.next % 2 != kind.parity()) as u32;
        if e > MAX_KEY_EPOCH {
            tracing::info!("key epochs of this incarnation used up: new incarnation");
            s.base = incarnation(&self.node_id);
            s.checkpoints.clear();
            e = 1 + (kind.parity() == 0) as u32;
        }
        s.next = e + 1;
        s.base.keyed(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsyncPolicy;
    use crate::version::Sibling;

    fn write(set: &SiblingSet, origin: Actor, v: &str) -> SiblingSet {
        let sib = Sibling {
            value: Some(v.as_bytes().to_vec().into()),
            written_ms: 1,
            origin,
            expires_ms: None,
            resets: Vec::new(),
            flush_seen: None,
        };
        set.update(&set.context(), sib).0
    }

    #[test]
    fn writes_continue_their_own_entry_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        let actors = Actors::new("n1");
        let k = b"k".as_slice();
        let a1 = actors.for_write(&storage, k, None, Copy::Data);
        let a2 = actors.for_write(&storage, k, Some(&SiblingSet::new()), Copy::Data);
        assert_ne!(a1, a2);
        assert!(a1.same_incarnation(actors.base()));
        // A key whose data holds this incarnation's data entry continues it.
        let set = write(&SiblingSet::new(), a1, "x");
        assert_eq!(actors.for_write(&storage, k, Some(&set), Copy::Data), a1);
        // A hinted write over the same set does not: data and hint epochs never mix.
        let h = actors.for_write(&storage, k, Some(&set), Copy::Hint);
        assert!(h != a1 && h.same_incarnation(a1));
        let hinted = write(&set, h, "y");
        assert_eq!(actors.for_write(&storage, k, Some(&hinted), Copy::Hint), h);
        assert_eq!(actors.for_write(&storage, k, Some(&hinted), Copy::Data), a1);
        // Another process (a restart, a wiped disk) is another incarnation: nothing continues.
        let again = Actors::new("n1");
        let a3 = again.for_write(&storage, k, Some(&set), Copy::Data);
        assert!(!a3.same_incarnation(a1));
    }

    /// Issue 20, item 5: removals of other keys never give a key a new actor (a clock entry
    /// more on its next write). With removals counted per bucket of 4,096 keys, 10,000 of
    /// them reached every bucket.
    #[test]
    fn other_keys_removals_leave_a_keys_actor_alone() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        let actors = Actors::new("n1");
        let store = |k: &[u8]| {
            storage
                .update::<crate::storage::StorageError>(k, |cur| {
                    Ok(write(cur.unwrap_or(&SiblingSet::new()), actors.for_write(&storage, k, cur, Copy::Data), "v"))
                })
                .unwrap()
        };
        let counter = store(b"counter");
        let (a, _) = counter.counters().next().unwrap();
        for i in 0..10_000u32 {
            let k = format!("ttl:{i}");
            store(k.as_bytes());
            assert!(storage.remove_if(k.as_bytes(), |_| true).unwrap());
        }
        assert_eq!(actors.for_write(&storage, b"counter", Some(&counter), Copy::Data), a);
        // A key's removal is kept until a write after it continues a new epoch (its first
        // write after the removal takes one).
        assert_eq!(storage.removed_keys(), 10_000);
        store(b"ttl:7");
        assert_eq!(storage.removed_keys(), 10_000);
        store(b"ttl:7");
        assert_eq!(storage.removed_keys(), 9_999);
    }

    #[test]
    fn a_removed_record_is_never_continued() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        let actors = Actors::new("n1");
        let k = b"k".as_slice();
        let stored = storage
            .update::<crate::storage::StorageError>(k, |cur| {
                Ok(write(&SiblingSet::new(), actors.for_write(&storage, k, cur, Copy::Data), "v"))
            })
            .unwrap();
        let (a, _) = stored.counters().next().unwrap();
        assert_eq!(actors.for_write(&storage, k, Some(&stored), Copy::Data), a);
        // The key is dropped (handed off, reaped) and an older copy of it comes back later.
        assert!(storage.remove_if(k, |_| true).unwrap());
        let older = SiblingSet::new().sync(&stored);
        let b = actors.for_write(&storage, k, Some(&older), Copy::Data);
        assert_ne!(b, a, "a copy that was removed may lag: a fresh key epoch");
        // Entries made after the removal continue as usual.
        let newer = write(&older, b, "w");
        assert_eq!(actors.for_write(&storage, k, Some(&newer), Copy::Data), b);
    }
}
