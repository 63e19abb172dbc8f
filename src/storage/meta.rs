//! The small keyspaces: `meta` (this node's identity) and `ring` (the cluster state, whose
//! meaning `cluster/` owns). Both are synced to disk at every write.

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
        self.meta.insert(name, value)?;
        self.db.persist(PersistMode::SyncAll)?;
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
        self.ring.insert(name, value)?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}
