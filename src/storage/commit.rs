//! Group commit: writes reach fjall's journal buffer; one flush (to the OS, or synced to the
//! disk as the [`FsyncPolicy`] says) makes every write before it durable, whichever connection
//! made it; under `everysec` the disk thread syncs the journal once a second (it also checks
//! the disk's health then, `health.rs`). A flush or sync that fails refuses every later write.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use fjall::PersistMode;

use super::{FsyncPolicy, Result, Storage};

impl Storage {
    /// The disk thread, while the storage is alive: once a second it fsyncs the journal
    /// (`everysec`) and checks the disk's health (free space; in trouble, whether the disk and
    /// the engine take writes again).
    pub(super) fn spawn_disk_thread(storage: &Arc<Storage>) {
        let weak = Arc::downgrade(storage);
        std::thread::Builder::new()
            .name("kura-disk".into())
            .spawn(move || loop {
                std::thread::sleep(super::health::PROBE_EVERY);
                let Some(s) = weak.upgrade() else { return };
                // A failed engine fails every sync too: the failure is logged once, not each second.
                if s.fsync == FsyncPolicy::Everysec && !s.health.engine_failed() {
                    // Writes that come meanwhile wait off their runtime workers (`engine_write`).
                    s.journal_syncing.store(true, Ordering::Relaxed);
                    let synced = s.db.persist(PersistMode::SyncData);
                    s.journal_syncing.store(false, Ordering::Relaxed);
                    if let Err(e) = synced {
                        s.health.failed("a journal fsync", &e);
                    }
                }
                s.health.tick(|| s.probe_engine());
            })
            .expect("spawning the disk thread");
    }

    pub(super) fn note_write(&self) {
        let n = self.written.fetch_add(1, Ordering::Release);
        if n.is_multiple_of(super::STALL_CHECK_EVERY) {
            self.check_stall();
        }
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
        let flush = || {
            let _one_flusher = self.commit_lock.lock();
            if self.is_committed(mark) {
                return Ok(());
            }
            let target = self.write_mark();
            let mode = if self.fsync == FsyncPolicy::Always { PersistMode::SyncData } else { PersistMode::Buffer };
            self.db.persist(mode).map_err(|e| self.write_failed("a journal flush", &e))?;
            self.flushed.fetch_max(target, Ordering::AcqRel);
            Ok(())
        };
        // The flush takes the journal's lock, which the disk thread holds while it syncs; with
        // `always` it syncs itself. Then it blocks, and so do the flushes queued behind it on
        // `commit_lock`: off their runtime workers.
        match self.fsync {
            FsyncPolicy::Always => super::off_worker(flush),
            _ => self.engine_write(flush),
        }
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
        self.db.persist(PersistMode::SyncAll).map_err(|e| self.write_failed("a journal fsync", &e))?;
        Ok(())
    }
}
