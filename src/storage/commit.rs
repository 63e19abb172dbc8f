//! Group commit: writes reach fjall's journal buffer; one flush (to the OS, or synced to the
//! disk as the [`FsyncPolicy`] says) makes every write before it durable, whichever connection
//! made it; under `everysec` a thread syncs the journal once a second.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fjall::PersistMode;

use super::{FsyncPolicy, Result, Storage};

impl Storage {
    /// A thread that fsyncs the journal once a second while the storage is alive.
    pub(super) fn spawn_syncer(storage: &Arc<Storage>) {
        let weak = Arc::downgrade(storage);
        std::thread::Builder::new()
            .name("kura-fsync".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                let Some(s) = weak.upgrade() else { return };
                if let Err(e) = s.db.persist(PersistMode::SyncData) {
                    tracing::error!("journal fsync failed: {e}");
                }
            })
            .expect("spawning the fsync thread");
    }

    pub(super) fn note_write(&self) {
        self.written.fetch_add(1, Ordering::Release);
    }

    /// A mark covering every write made so far; pass it to [`Storage::commit_upto`].
    pub fn write_mark(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Whether the writes up to `mark` are already durable as the policy says.
    pub fn is_committed(&self, mark: u64) -> bool {
        self.flushed.load(Ordering::Acquire) >= mark
    }

    /// Makes the writes up to `mark` durable as the policy says (flushed to the OS; with
    /// `always` also synced to disk) before their acknowledgements go out. Group commit: one
    /// flush covers every write that reached the journal buffer before it, whichever connection
    /// made it, so callers that find their mark already covered return at once.
    ///
    /// # Errors
    /// Engine failure: the writes must then not be acknowledged.
    pub fn commit_upto(&self, mark: u64) -> Result<()> {
        if self.is_committed(mark) {
            return Ok(());
        }
        let _one_flusher = self.commit_lock.lock();
        if self.is_committed(mark) {
            return Ok(());
        }
        let target = self.write_mark();
        let mode = if self.fsync == FsyncPolicy::Always { PersistMode::SyncData } else { PersistMode::Buffer };
        self.db.persist(mode)?;
        self.flushed.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Makes every write made so far durable (see [`Storage::commit_upto`]).
    ///
    /// # Errors
    /// Engine failure.
    pub fn commit(&self) -> Result<()> {
        self.commit_upto(self.write_mark())
    }

    /// Syncs the journal to disk (on shutdown, and for `--fsync always`).
    ///
    /// # Errors
    /// Engine failure.
    pub fn sync(&self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}
