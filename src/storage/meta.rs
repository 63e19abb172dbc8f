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

    /// Checks the data dir's key placement (`--placement`) against `placement`, and marks a
    /// new store with it: keys are stored in ring order, so a store is read with the placement
    /// it was written with or not at all. A store without the mark that holds a cluster state
    /// was written before the mark, under MD5 placement.
    ///
    /// # Errors
    /// Another placement than the store's, or engine failure.
    pub fn check_placement(&self, placement: crate::ring::Placement) -> Result<()> {
        let stored = match self.meta_get(PLACEMENT_KEY)? {
            Some(mark) => String::from_utf8_lossy(&mark).into_owned(),
            None if self.ring.iter().next().is_some() => crate::ring::Placement::Md5.name().to_owned(),
            None => {
                if let Err(e) = self.meta_put(PLACEMENT_KEY, placement.name().as_bytes()) {
                    tracing::warn!("the data dir's placement mark was not written: {e}");
                }
                return Ok(());
            }
        };
        if stored != placement.name() {
            return Err(super::StorageError::Placement { stored, asked: placement.name() });
        }
        Ok(())
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
