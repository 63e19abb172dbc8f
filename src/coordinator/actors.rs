//! Which actor a write coordinated here is an event of (design.md section 2, riak_kv#679).
//!
//! A write continues this incarnation's entry in the key's clock when the local copy has one:
//! the local copy holds every dot this node issued for the key since it last had none, so the
//! next counter is fresh. When the local copy has no entry of this incarnation (a new key, or
//! one this node handed off, delivered as a hint, or reaped) the node cannot know the counters
//! it used before, so it writes under a fresh key epoch. Key epochs are leased from the data
//! directory in blocks, so a restart never reuses one; when an incarnation runs out of key
//! epochs the node starts a new incarnation.

use std::sync::Arc;

use parking_lot::Mutex;
use rand::RngCore;

use crate::storage::{Storage, StorageError};
use crate::version::{Actor, SiblingSet};

/// Key epochs leased per write to the data directory.
const LEASE: u32 = 1 << 16;
/// Key epochs an incarnation has (epoch 0 is the incarnation's own actor).
const MAX_KEY_EPOCH: u32 = (1 << Actor::KEY_EPOCH_BITS) - 1;

struct State {
    base: Actor,
    next: u32,
    lease_end: u32,
}

pub struct Actors {
    storage: Arc<Storage>,
    node_id: String,
    state: Mutex<State>,
}

fn read_u64(storage: &Storage, name: &str) -> Result<Option<u64>, StorageError> {
    Ok(storage.meta_get(name)?.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()).map(u64::from_be_bytes))
}

impl Actors {
    /// The actors of this node: its incarnation (the epoch kept beside the data, created with
    /// a new data directory) and the key epochs leased so far.
    ///
    /// # Errors
    /// Storage failure.
    pub fn open(storage: Arc<Storage>, node_id: &str) -> Result<Actors, StorageError> {
        let epoch = match read_u64(&storage, "epoch")? {
            Some(e) => e,
            None => Self::new_epoch(&storage)?,
        };
        let leased = read_u64(&storage, "key_epoch_lease")?.unwrap_or(1).min(u64::from(MAX_KEY_EPOCH)) as u32;
        let actors = Actors {
            storage,
            node_id: node_id.to_owned(),
            state: Mutex::new(State { base: Actor::new(node_id, epoch), next: leased, lease_end: leased }),
        };
        Ok(actors)
    }

    fn new_epoch(storage: &Storage) -> Result<u64, StorageError> {
        let e = rand::thread_rng().next_u64();
        storage.meta_put("key_epoch_lease", &1u64.to_be_bytes())?;
        storage.meta_put("epoch", &e.to_be_bytes())?;
        Ok(e)
    }

    /// This incarnation's own actor (key epoch 0).
    pub fn base(&self) -> Actor {
        self.state.lock().base
    }

    /// The actor for a write over `current`, the local copy of the key.
    ///
    /// # Errors
    /// Storage failure while leasing key epochs.
    pub fn for_write(&self, current: Option<&SiblingSet>) -> Result<Actor, StorageError> {
        let base = self.base();
        if let Some(set) = current {
            let mine = set.counters().filter(|(a, _)| a.same_incarnation(base)).max_by_key(|&(a, c)| (c, a));
            if let Some((actor, _)) = mine {
                return Ok(actor);
            }
        }
        self.mint()
    }

    /// A key epoch never used before.
    fn mint(&self) -> Result<Actor, StorageError> {
        let mut s = self.state.lock();
        if s.next >= s.lease_end {
            if s.lease_end >= MAX_KEY_EPOCH {
                let epoch = Self::new_epoch(&self.storage)?;
                tracing::info!("key epochs of this incarnation used up: new incarnation");
                *s = State { base: Actor::new(&self.node_id, epoch), next: 1, lease_end: 1 };
            }
            let end = s.lease_end.saturating_add(LEASE).min(MAX_KEY_EPOCH);
            self.storage.meta_put("key_epoch_lease", &u64::from(end).to_be_bytes())?;
            s.lease_end = end;
        }
        let e = s.next;
        s.next += 1;
        Ok(s.base.keyed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsyncPolicy;
    use crate::version::{Sibling, VersionVector};

    #[test]
    fn fresh_key_epochs_survive_restarts_and_writes_continue_their_entry() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        let actors = Actors::open(storage.clone(), "n1").unwrap();
        let a1 = actors.for_write(None).unwrap();
        let a2 = actors.for_write(Some(&SiblingSet::new())).unwrap();
        assert_ne!(a1, a2);
        assert!(a1.same_incarnation(actors.base()));
        // A key whose copy holds this incarnation's entry continues it.
        let sib = Sibling { value: None, written_ms: 1, origin: a1, expires_ms: None };
        let (set, _) = SiblingSet::new().update(&VersionVector::default(), sib);
        assert_eq!(actors.for_write(Some(&set)).unwrap(), a1);
        drop(actors);
        let again = Actors::open(storage.clone(), "n1").unwrap();
        let a3 = again.for_write(None).unwrap();
        assert!(a3 != a1 && a3 != a2 && a3.same_incarnation(a1), "a restart never reuses a key epoch");
        // A new data directory is a new incarnation.
        let other = tempfile::tempdir().unwrap();
        let fresh = Actors::open(Storage::open(other.path(), FsyncPolicy::Never).unwrap(), "n1").unwrap();
        assert!(!fresh.base().same_incarnation(a1));
    }
}
