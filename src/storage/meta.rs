//! The small keyspaces: `meta` (this node's identity) and `ring` (the cluster state, whose
//! meaning `cluster/` owns). Both are synced to disk at every write, also while space is low
//! (they are small: the reserve is there for them, `health.rs`).

use fjall::PersistMode;

use super::{Result, Storage};

/// The `meta` key of the data dir's key placement.
const PLACEMENT_KEY: &str = "placement";

impl Storage {
    /// A value of this node's own bookkeeping (identity, epoch, keys).
    ///
    /// # Errors
    /// Engine failure.
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(name)?.map(|v| v.to_vec()))
    }

    /// Stores a bookkeeping value and syncs it to disk at once.
    ///
    /// # Errors
    /// Engine failure.
    pub fn meta_put(&self, name: &str, value: &[u8]) -> Result<()> {
        self.health.admit_state()?;
        self.meta.insert(name, value).map_err(|e| self.write_failed("a write of the node's state", &e))?;
        self.db.persist(PersistMode::SyncAll).map_err(|e| self.write_failed("a journal fsync", &e))?;
        Ok(())
    }

    /// The data dir's key placement (`--placement`): the one it is marked with, whatever
    /// `asked` is (keys are stored in ring order, so a store is read with the placement it was
    /// written with; like `--partitions`, the flag counts when a cluster is founded). A store
    /// without the mark that holds a cluster state was written before the mark, by MD5; a new
    /// store is marked with `asked`.
    ///
    /// # Errors
    /// A mark this build does not know, or engine failure.
    pub fn placement(&self, asked: crate::ring::Placement) -> Result<crate::ring::Placement> {
        use crate::ring::Placement;
        let stored = match self.meta_get(PLACEMENT_KEY)?.as_deref() {
            Some(b"md5") => Placement::Md5,
            Some(b"slots") => Placement::Slots,
            Some(other) => {
                return Err(super::StorageError::Corrupt {
                    key: PLACEMENT_KEY.to_owned(),
                    reason: format!("unknown placement {:?}", String::from_utf8_lossy(other)),
                })
            }
            None if self.ring.iter().next().is_some() => Placement::Md5,
            None => {
                self.mark_placement(asked)?;
                return Ok(asked);
            }
        };
        if stored != asked {
            tracing::warn!(
                "the data dir's keys are placed by {}: --placement {} counts only when a cluster is founded",
                stored.name(),
                asked.name()
            );
        }
        Ok(stored)
    }

    /// Marks the data dir's key placement (a new store, or an empty one that joins a cluster of
    /// the other placement).
    ///
    /// # Errors
    /// Engine failure.
    pub fn mark_placement(&self, placement: crate::ring::Placement) -> Result<()> {
        self.meta_put(PLACEMENT_KEY, placement.name().as_bytes())
    }

    /// A value of the ring and membership state (used by `cluster/`).
    ///
    /// # Errors
    /// Engine failure.
    pub fn ring_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.ring.get(name)?.map(|v| v.to_vec()))
    }

    /// Stores a value of the ring and membership state and syncs it to disk at once.
    ///
    /// # Errors
    /// Engine failure.
    pub fn ring_put(&self, name: &str, value: &[u8]) -> Result<()> {
        self.health.admit_state()?;
        self.ring.insert(name, value).map_err(|e| self.write_failed("a write of the cluster state", &e))?;
        self.db.persist(PersistMode::SyncAll).map_err(|e| self.write_failed("a journal fsync", &e))?;
        Ok(())
    }

    /// A write through the engine, synced (the disk thread's probe, `health.rs`).
    ///
    /// # Errors
    /// Engine failure.
    pub(super) fn probe_engine(&self) -> std::result::Result<(), fjall::Error> {
        self.meta.insert("disk_probe", crate::clock::now_ms().to_be_bytes())?;
        self.db.persist(PersistMode::SyncAll)
    }
}
