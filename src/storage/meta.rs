//! The small keyspaces: `meta` (this node's identity) and `ring` (the cluster state, whose
//! meaning `cluster/` owns). Both are synced to disk at every write, also while space is low
//! (they are small: the reserve is there for them, `health.rs`).

use fjall::PersistMode;

use super::{Result, Storage};

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
