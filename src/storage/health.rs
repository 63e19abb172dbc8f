//! Disk trouble (issue 24, point 5): the one owner of "this node's storage is failing", set
//! by any failed storage write and by too little free space, and of the probe that clears it.
//!
//! While it is set, writes are refused unapplied ([`StorageError::Refused`]: clients get
//! `-MISCONF`, peers an error that makes their coordinator use a stand-in) and reads go on.
//! Two kinds of trouble:
//! - **low space**: the data dir's file system has less free space than the reserve
//!   (`--min-free-disk`; by default the smaller of 256 MiB and 5% of the file system),
//!   checked when the store opens and then once a second. Data and hint writes are refused
//!   *before* the engine fails (below); the small writes of the cluster state still go
//!   through, into the reserve. Writes resume by themselves once a quarter more than the
//!   reserve is free and a probe write passes.
//! - **a failed write**: the engine failed a write, a journal flush or an fsync (ENOSPC past
//!   the reserve, EIO). fjall 3 is then *poisoned*: every later write of this process fails
//!   (a flush or compaction worker that fails poisons it too) and nothing clears it. The probe
//!   waits until the disk takes writes again (a file written and synced in the data dir) and
//!   then tries a write through the engine: if it still fails, the node asks to be restarted
//!   ([`DiskHealth::restart_wanted`]): `main` exits with [`EXIT_RESTART`] for its supervisor,
//!   and the restart replays the journal, which holds every acknowledged write (each was
//!   handed to the OS before its reply, design.md section 6).
//!
//! A change of state is logged once, and a reminder at most once a minute while it lasts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::StorageError;
use crate::metrics as m;

/// The exit code of a node whose engine cannot take writes again in this process (EX_TEMPFAIL
/// of sysexits.h: "try again"): its supervisor restarts it on the same data dir.
pub const EXIT_RESTART: u8 = 75;

/// The reserve when `--min-free-disk` is not given: the smaller of this and
/// [`AUTO_RESERVE_PERCENT`] of the file system.
const AUTO_RESERVE_MAX: u64 = 256 << 20;
const AUTO_RESERVE_PERCENT: u64 = 5;

/// How often the disk thread checks the free space and, in trouble, probes.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How often a trouble that lasts is logged again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// The bytes the probe writes and syncs in the data dir.
const PROBE_BYTES: usize = 4096;

/// The probe's file, in the data dir (beside the engine's `db`).
const PROBE_FILE: &str = "disk-probe";

/// Why writes are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiskTrouble {
    /// Less free space than the reserve.
    #[error("No space left on device ({} free, below the {} this node keeps free: --min-free-disk)", human(*free), human(*reserve))]
    LowSpace { free: u64, reserve: u64 },
    /// A write of the engine failed (the text says which and why).
    #[error("{0}")]
    Failed(String),
}

impl DiskTrouble {
    /// The state's name in INFO.
    pub fn name(&self) -> &'static str {
        match self {
            DiskTrouble::LowSpace { .. } => "low_space",
            DiskTrouble::Failed(_) => "failed",
        }
    }
}

/// A trouble and how long it has lasted.
struct Current {
    trouble: DiskTrouble,
    since: Instant,
    reminded: Instant,
    /// A restart was asked for (logged once).
    restart: bool,
}

/// What INFO shows.
pub struct DiskStatus {
    pub trouble: Option<DiskTrouble>,
    /// Seconds the trouble has lasted.
    pub for_secs: u64,
    pub free: u64,
    pub reserve: u64,
    pub refused: u64,
    pub restart_wanted: bool,
}

/// See the module documentation.
pub struct DiskHealth {
    dir: PathBuf,
    /// Bytes kept free (0: not checked).
    reserve: u64,
    current: Mutex<Option<Current>>,
    /// No trouble (the writes' fast path reads only this).
    ok: AtomicBool,
    /// Writes refused so far.
    refused: AtomicU64,
    /// Free bytes at the last check.
    free: AtomicU64,
    restart: tokio::sync::watch::Sender<bool>,
}

impl DiskHealth {
    /// The health of the store in `dir`, keeping `min_free` bytes free (`None`: the default
    /// reserve of that file system; 0: no reserve).
    pub(super) fn new(dir: &Path, min_free: Option<u64>) -> DiskHealth {
        let space = space(dir).ok();
        let reserve = min_free.unwrap_or_else(|| {
            space.map_or(AUTO_RESERVE_MAX, |s| (s.size / 100 * AUTO_RESERVE_PERCENT).min(AUTO_RESERVE_MAX))
        });
        metrics::gauge!(m::DISK_OK).set(1.0);
        DiskHealth {
            dir: dir.to_path_buf(),
            reserve,
            current: Mutex::new(None),
            ok: AtomicBool::new(true),
            refused: AtomicU64::new(0),
            free: AtomicU64::new(space.map_or(0, |s| s.free)),
            restart: tokio::sync::watch::channel(false).0,
        }
    }

    /// The trouble refusing writes now, if any.
    pub fn trouble(&self) -> Option<DiskTrouble> {
        if self.ok.load(Ordering::Acquire) {
            return None;
        }
        self.current.lock().as_ref().map(|c| c.trouble.clone())
    }

    /// Lets a write of data or hints through, or refuses it (counted) while in trouble.
    ///
    /// # Errors
    /// The trouble.
    pub fn admit(&self) -> Result<(), DiskTrouble> {
        match self.trouble() {
            None => Ok(()),
            Some(t) => Err(self.refuse(t)),
        }
    }

    /// Lets a small write of the node's own state (the cluster state, the node id) through
    /// while space is low (the reserve is there for it); refuses it once the engine failed.
    ///
    /// # Errors
    /// The trouble.
    pub fn admit_state(&self) -> Result<(), DiskTrouble> {
        match self.trouble() {
            Some(t @ DiskTrouble::Failed(_)) => Err(self.refuse(t)),
            _ => Ok(()),
        }
    }

    /// Counts a write refused for `trouble` (by storage, or by the command layer before it
    /// reached storage) and returns the trouble.
    pub fn refuse(&self, trouble: DiskTrouble) -> DiskTrouble {
        self.refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::DISK_REFUSED_WRITES_TOTAL).increment(1);
        trouble
    }

    /// Records that the engine failed `what` (a write, a journal flush, an fsync) with `error`,
    /// and returns the trouble writes are now refused for (the first failure's: a poisoned
    /// engine answers every later write with `Poisoned`).
    pub(super) fn failed(&self, what: &str, error: &fjall::Error) -> DiskTrouble {
        let mut current = self.current.lock();
        if let Some(c @ Current { trouble: DiskTrouble::Failed(_), .. }) = current.as_ref() {
            return c.trouble.clone();
        }
        let trouble = DiskTrouble::Failed(format!("{what} failed: {}", describe(error)));
        tracing::error!(
            "{trouble}: refusing writes (MISCONF) and serving reads; the storage engine takes no write again in \
             this process, so the node exits with code {EXIT_RESTART} for a restart once the disk takes writes again"
        );
        self.set(&mut current, trouble.clone());
        trouble
    }

    /// Whether the engine failed: it takes no write again in this process, not even of the
    /// cluster state (the disk thread stops its fsyncs, the claimant its ring changes).
    pub fn engine_failed(&self) -> bool {
        matches!(self.trouble(), Some(DiskTrouble::Failed(_)))
    }

    fn set(&self, current: &mut Option<Current>, trouble: DiskTrouble) {
        let now = Instant::now();
        let since = current.as_ref().map_or(now, |c| c.since);
        *current = Some(Current { trouble, since, reminded: now, restart: false });
        self.ok.store(false, Ordering::Release);
        metrics::gauge!(m::DISK_OK).set(0.0);
    }

    /// Measures the free space (at open, and from the disk thread once a second): below the
    /// reserve, writes are refused from now on.
    pub(super) fn check_space(&self) {
        let Ok(free) = self.measure() else { return };
        if self.reserve == 0 || free >= self.reserve || !self.ok.load(Ordering::Acquire) {
            return;
        }
        let mut current = self.current.lock();
        if current.is_none() {
            let trouble = DiskTrouble::LowSpace { free, reserve: self.reserve };
            tracing::error!(
                "{trouble}: refusing writes (MISCONF) and serving reads until {} is free again",
                human(self.resume_at())
            );
            self.set(&mut current, trouble);
        }
    }

    /// One round of the disk thread: checks the free space and, in trouble, whether the disk
    /// takes writes again. When it does and `engine_probe` (a write through the engine)
    /// passes, writes are accepted again; when the engine still fails, a restart is asked for.
    pub(super) fn tick(&self, engine_probe: impl FnOnce() -> Result<(), fjall::Error>) {
        self.check_space();
        if self.ok.load(Ordering::Acquire) {
            return;
        }
        self.remind();
        let free = self.free.load(Ordering::Relaxed);
        if self.reserve > 0 && free < self.resume_at() {
            if let Some(Current { trouble: DiskTrouble::LowSpace { free: f, .. }, .. }) = self.current.lock().as_mut() {
                *f = free;
            }
            return;
        }
        if let Err(e) = self.probe_file() {
            tracing::debug!("the disk does not take writes yet: {e}");
            return;
        }
        match engine_probe() {
            Ok(()) => {
                let mut current = self.current.lock();
                if let Some(c) = current.take() {
                    tracing::info!(
                        after_secs = c.since.elapsed().as_secs(),
                        refused = self.refused.load(Ordering::Relaxed),
                        "the disk takes writes again ({} free): writes are accepted again",
                        human(free)
                    );
                }
                self.ok.store(true, Ordering::Release);
                metrics::gauge!(m::DISK_OK).set(1.0);
            }
            Err(e) => {
                let trouble = self.failed("a probe write of the storage engine", &e);
                let mut current = self.current.lock();
                if let Some(c) = current.as_mut().filter(|c| !c.restart) {
                    c.restart = true;
                    tracing::error!(
                        "the disk takes writes again, but the storage engine does not after its failure ({trouble}): \
                         exiting with code {EXIT_RESTART} for a restart on the same data dir"
                    );
                    self.restart.send_replace(true);
                }
            }
        }
    }

    /// Logs a trouble that lasts, at most once a minute.
    fn remind(&self) {
        let mut current = self.current.lock();
        let Some(c) = current.as_mut().filter(|c| c.reminded.elapsed() >= REMIND_EVERY) else { return };
        c.reminded = Instant::now();
        tracing::warn!(
            for_secs = c.since.elapsed().as_secs(),
            refused = self.refused.load(Ordering::Relaxed),
            "writes are still refused: {}",
            c.trouble
        );
    }

    /// The free bytes now (kept for INFO and the gauge).
    fn measure(&self) -> std::io::Result<u64> {
        let free = space(&self.dir)?.free;
        self.free.store(free, Ordering::Relaxed);
        metrics::gauge!(m::DISK_FREE_BYTES).set(free as f64);
        Ok(free)
    }

    /// The free space at which writes resume after low space: a quarter over the reserve, so
    /// that a node at the edge does not flap.
    fn resume_at(&self) -> u64 {
        self.reserve.saturating_add(self.reserve / 4)
    }

    /// Writes, syncs and removes a small file in the data dir.
    fn probe_file(&self) -> std::io::Result<()> {
        use std::io::Write;
        let path = self.dir.join(PROBE_FILE);
        let written = std::fs::File::create(&path).and_then(|mut f| {
            f.write_all(&[0u8; PROBE_BYTES])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&path);
        written
    }

    /// Turns true once the node should exit with [`EXIT_RESTART`].
    pub fn restart_wanted(&self) -> tokio::sync::watch::Receiver<bool> {
        self.restart.subscribe()
    }

    pub fn status(&self) -> DiskStatus {
        let current = self.current.lock();
        DiskStatus {
            trouble: current.as_ref().map(|c| c.trouble.clone()),
            for_secs: current.as_ref().map_or(0, |c| c.since.elapsed().as_secs()),
            free: self.free.load(Ordering::Relaxed),
            reserve: self.reserve,
            refused: self.refused.load(Ordering::Relaxed),
            restart_wanted: current.as_ref().is_some_and(|c| c.restart),
        }
    }
}

/// The size of a file system and its bytes free to this process.
#[derive(Clone, Copy)]
struct Space {
    size: u64,
    free: u64,
}

fn space(dir: &Path) -> std::io::Result<Space> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `path` is a valid C string and `st` a plain struct statvfs fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok(Space { size: (st.f_blocks as u64).saturating_mul(unit), free: (st.f_bavail as u64).saturating_mul(unit) })
}

/// An engine error as an operator reads it: the OS error when there is one ("No space left on
/// device (os error 28)").
fn describe(error: &fjall::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.to_string();
        }
        source = e.source();
    }
    match error {
        fjall::Error::Poisoned => {
            "the storage engine refuses writes after an earlier failure of its own (see the log)".into()
        }
        other => format!("{other:?}"),
    }
}

/// Bytes for people: `1.5 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl From<DiskTrouble> for StorageError {
    fn from(trouble: DiskTrouble) -> StorageError {
        StorageError::Refused(trouble)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(256 << 20), "256.0 MiB");
    }

    /// A reserve larger than the disk: low space from the first check; writes are refused
    /// (and counted), the state's small writes are not; a failure of the engine is kept with
    /// its first reason.
    #[test]
    fn low_space_refuses_data_writes_and_a_failure_keeps_its_first_reason() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let health = DiskHealth::new(dir.path(), Some(u64::MAX / 2));
        assert!(health.admit().is_ok());
        health.check_space();
        assert!(matches!(health.admit(), Err(DiskTrouble::LowSpace { .. })));
        assert!(health.admit_state().is_ok(), "the cluster state still goes into the reserve");
        assert_eq!(health.status().refused, 1);
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let first = health.failed("a journal flush", &fjall::Error::Io(io));
        assert_eq!(first.to_string(), "a journal flush failed: No space left on device (os error 28)");
        assert_eq!(health.failed("a write", &fjall::Error::Poisoned), first);
        assert!(health.admit_state().is_err());
        // The disk has room and takes a file, but the engine still fails: a restart.
        let mut restart = health.restart_wanted();
        let roomy = DiskHealth { reserve: 0, ..health };
        roomy.tick(|| Err(fjall::Error::Poisoned));
        assert!(*restart.borrow_and_update());
        assert!(roomy.status().restart_wanted);
    }

    /// Once the disk and the engine take writes again, the trouble is gone.
    #[test]
    fn a_probe_that_passes_clears_the_trouble() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let health = DiskHealth::new(dir.path(), Some(0));
        let io = std::io::Error::from_raw_os_error(libc::EIO);
        health.failed("a write", &fjall::Error::Io(io));
        assert!(health.admit().is_err());
        health.tick(|| Ok(()));
        assert!(health.admit().is_ok());
        assert!(health.status().trouble.is_none());
        assert!(!dir.path().join(PROBE_FILE).exists());
    }
}
