//! Durable state on the fjall LSM engine (design.md sections 1 and 6).
//!
//! One fjall database per node with one keyspace per concern:
//! - `data`: key -> encoded [`SiblingSet`]. Stored keys are prefixed with the first 8 bytes of
//!   the key's ring position, so a ring partition is a contiguous range of the keyspace;
//! - `members`: the members of a set or a hash stored in parts (`members.rs`): the key's
//!   `data` record is then a header, and an update writes the members it changed;
//! - `hints`: hinted writes held for other nodes (hinted handoff);
//! - `due`: the reap index (`expiry.rs`), keys by the time their stored set dies;
//! - `ring`: ring and membership state;
//! - `meta`: this node's identity (node id, incarnation epoch, context key).
//!
//! Writes are group-committed (`commit.rs`): they go to fjall's journal buffer, and
//! [`Storage::commit`] (which a reply acknowledging them waits for, through the replica's
//! ticket) flushes the journal to the OS, so an acknowledged write survives `kill -9`. The
//! [`FsyncPolicy`] decides when the journal is also synced to the disk. `hints.rs` keeps the
//! stand-in copies, `meta.rs` the small keyspaces, `scan.rs` the walks in ring order,
//! `health.rs` the disk's trouble: a failed write or too little free space refuses writes
//! ([`StorageError::Refused`]) until the disk takes them again.
//!
//! A write-through cache of decoded sibling sets sits in front of the data keyspace: reads of
//! hot keys (and the read half of every write's read-modify-write) skip the LSM lookup and the
//! decode. It is filled and updated only under the key's lock, so it never holds a stale set.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use parking_lot::Mutex;

use crate::flushes::FlushMarks;
use crate::version::SiblingSet;

mod commit;
mod expiry;
mod health;
mod hints;
mod members;
mod meta;
mod scan;

pub use expiry::{dead_at, ExpiryWatch};
pub use health::{DiskHealth, DiskStatus, DiskTrouble, EXIT_RESTART};
pub use members::Patch;
pub use scan::LiveKeys;

/// When the journal is fsynced, like Redis's `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before every write is acknowledged.
    Always,
    /// Once a second in the background (may lose up to a second on power loss).
    Everysec,
    /// Left to the operating system.
    Never,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    #[error("corrupt record for key {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("cannot open data directory {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("the data dir was written by a newer kura (data format {0}; this build reads up to {DATA_FORMAT}): run that build or a newer one")]
    Newer(u16),
    /// A write refused unapplied: the disk is in trouble (`health.rs`).
    #[error("{0}")]
    Refused(DiskTrouble),
    /// A write the engine failed: it may or may not have been taken (`health.rs`).
    #[error("{0}")]
    WriteFailed(DiskTrouble),
}

impl StorageError {
    /// The disk's trouble, when this is a write it refused or failed.
    pub fn disk_trouble(&self) -> Option<&DiskTrouble> {
        match self {
            StorageError::Refused(t) | StorageError::WriteFailed(t) => Some(t),
            _ => None,
        }
    }

    /// Whether this is a write refused unapplied for the disk's trouble (logged once by
    /// `health.rs`: callers that retry it keep quiet).
    pub fn is_refused(&self) -> bool {
        matches!(self, StorageError::Refused(_))
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Striped locks serialise read-modify-write of one key (two concurrent writes through one
/// coordinator must not both take the same next dot).
const LOCK_STRIPES: usize = 1024;

/// Approximate sizes of what this node stores.
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageStats {
    pub data_keys_approx: u64,
    pub disk_bytes: u64,
    pub journal_bytes: u64,
    /// Records of the `data` and `members` keyspaces written or removed so far (by this
    /// process), and their bytes (keys and values): what updates cost the engine.
    pub records_written: u64,
    pub bytes_written: u64,
    /// Writes (and journal flushes) made while the engine held writes back, off the runtime
    /// worker they were made on (see [`Storage::engine_write`]).
    pub held_writes: u64,
}

/// Runs `f`, which may block for long, so that it blocks only its caller: on a worker of the
/// multi-threaded runtime, the worker's other tasks are handed to another thread first
/// (`block_in_place`); elsewhere (a blocking thread, a plain thread, a test's single-threaded
/// runtime) it runs as it is.
pub(crate) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    let on_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    match on_worker {
        true => tokio::task::block_in_place(f),
        false => f(),
    }
}

/// Writes between two looks at whether fjall is near a write stall.
const STALL_CHECK_EVERY: u64 = 32;

/// Whether fjall may hold the next write back, given its sealed memtables and level 0's tables:
/// it does at 4 sealed memtables and at 20 runs in level 0. One memtable short of it (another
/// may be sealed before the write's insert) and level 0's tables (each run holds one or more).
fn stall_near(sealed_memtables: usize, l0_tables: usize) -> bool {
    sealed_memtables >= 3 || l0_tables >= 20
}

/// The cached state of one key: its set, or known to be missing.
#[derive(Clone)]
struct Cached {
    set: Option<Arc<SiblingSet>>,
    /// [`digest`] of the stored `data` record (0 when missing).
    digest: u64,
    /// Set when the key is stored in parts (`members.rs`).
    parts: Option<members::Parts>,
    weight: u32,
}

/// What a cached key costs in memory besides its key and its stored bytes: the cache's entry
/// (the key inline, this struct, the table's slot), the `Arc<SiblingSet>` (one allocation
/// since 2026-12-08: its first entry and that entry's first sibling are inline; `Sibling` is
/// 232 bytes, `Value` 160), each rounded up by the allocator. Measured after that change:
/// 200,000 SETs of 100 bytes, each a new key, then took 116 MB more than over 1,000 keys,
/// about 590 bytes per cached key with its key and value (665 before). Measured before it
/// (2026-12-07): 200,000 SETs of 100-byte values over 198,000 keys took 204 MB, the same SETs
/// over 1,000 keys 60 MB (the memtable's share): about 730 bytes per cached key, of which 136
/// are its key and stored bytes. The weight was 64 + key + stored bytes before: the cache's
/// 256 MiB then held about 3.6 times that, and a node's RSS stayed at 1.1 GB after a burst of
/// writes where the cache and the memtables account for 350 MB.
const ENTRY_BYTES: usize = 600;

impl Cached {
    /// The cached state of a set stored in `stored_len` bytes (its weight: no walk of the set).
    fn new(
        key: &[u8],
        set: Option<Arc<SiblingSet>>,
        digest: u64,
        parts: Option<members::Parts>,
        stored_len: usize,
    ) -> Cached {
        Cached { set, digest, parts, weight: (ENTRY_BYTES + key.len() + stored_len).min(u32::MAX as usize) as u32 }
    }
}

/// The digest of a stored sibling set (of its encoding): equal sets have equal digests on
/// every replica, since the encoding is canonical.
pub fn digest(encoded: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(encoded)
}

/// Told of every change of a stored key (anti-entropy keeps its Merkle leaves with it).
pub trait WriteObserver: Send + Sync {
    /// `key` (at ring position prefix `prefix`) changed from digest `old` to `new` (`None`:
    /// missing before / removed now).
    fn changed(&self, prefix: u64, key: &[u8], old: Option<u64>, new: Option<u64>);
}

#[derive(Clone)]
struct CacheWeight;

/// A key in the cache of small sets: held inline up to 32 bytes, so that the lookup's
/// comparison reads the table's entry, not one more allocation (a cache miss per GET).
type CacheKey = smallvec::SmallVec<[u8; 32]>;

impl quick_cache::Weighter<CacheKey, Cached> for CacheWeight {
    fn weight(&self, _key: &CacheKey, val: &Cached) -> u64 {
        u64::from(val.weight)
    }
}

/// A purge of stored copies after new flush marks ([`Storage::purge`]).
pub struct Purge {
    marks: FlushMarks,
    /// The databases flushed (`None`: all).
    dbs: Option<Vec<u32>>,
}

/// Name in `meta` of the flush marks this node has applied.
const FLUSHES_KEY: &str = "flushes";

/// The data dir's format, kept in `meta`: 1 is kura 0.1.0's, the first tagged version (its
/// keyspaces, its layout marker, its records' own format bytes, `version/sibling.rs`). A store
/// without the mark was written by an untagged build before 0.1.0, is of format 1 too, and is
/// marked so at open. A later build that changes how data is stored bumps this, still opens
/// every format since 1, and marks a store only once it has converted it; a build meeting a
/// newer mark refuses to open the store rather than misread it (`docs/upgrades.md`).
pub const DATA_FORMAT: u16 = 1;
/// The format of a store without a mark.
const UNMARKED_FORMAT: u16 = 1;
const FORMAT_KEY: &str = "format";

/// Name in `meta` of the layout marker, and its value: the store keeps the reap index in `due`
/// and holds nothing an older build left to move (sets and hashes stored whole, tagged keys at
/// their whole key's position). A store with it opens without walking its keys.
const LAYOUT_KEY: &str = "layout";
const LAYOUT: &[u8] = b"due-index";

/// Bytes of decoded sibling sets kept in memory.
const CACHE_BYTES: u64 = 256 << 20;

/// Shards of the cache of small sets (each holds `SMALL_BYTES / CACHE_SHARDS`).
const CACHE_SHARDS: usize = 16;

/// Bytes of the cache of large sets (within `CACHE_BYTES`: the small sets' cache gets the rest).
const LARGE_BYTES: u64 = CACHE_BYTES / 2;

/// Bytes of the cache of small sets.
const SMALL_BYTES: u64 = CACHE_BYTES - LARGE_BYTES;

/// A set weighing more than this is kept in the cache of large sets. `quick_cache` never admits
/// an item heavier than 97% of its shard (its "hot" share): a list or sorted set of a million
/// members was never cached and every command read all its records again. This is half a
/// shard of the small sets' cache, so every weight up to `LARGE_BYTES` has a cache that takes
/// it (it was half a shard of `CACHE_BYTES`, a whole small shard: a list of about 100,000
/// elements fell in the gap and every LPUSH read it whole).
const LARGE_ITEM: u64 = SMALL_BYTES / CACHE_SHARDS as u64 / 2;

/// The large sets cached: a use counter, and (key, state, last use) of each.
type LargeSets = (u64, Vec<(Vec<u8>, Cached, u64)>);

/// The write-through cache of decoded sibling sets: small ones in a sharded `quick_cache`,
/// large ones (a few, least recently used out first) beside it.
struct DecodedCache {
    small: quick_cache::sync::Cache<CacheKey, Cached, CacheWeight>,
    /// At most `LARGE_BYTES` of weight.
    large: Mutex<LargeSets>,
    /// How many sets `large` holds (changed under its lock): while none, reads and writes of
    /// small sets do not take that lock.
    large_len: AtomicUsize,
}

impl DecodedCache {
    fn new() -> DecodedCache {
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity((SMALL_BYTES / (ENTRY_BYTES as u64 + 128)) as usize)
            .weight_capacity(SMALL_BYTES)
            .shards(CACHE_SHARDS)
            .build()
            .expect("the cache's options are complete");
        DecodedCache {
            small: quick_cache::sync::Cache::with_options(options, CacheWeight, Default::default(), Default::default()),
            large: Mutex::new((0, Vec::new())),
            large_len: AtomicUsize::new(0),
        }
    }

    fn get(&self, key: &[u8]) -> Option<Cached> {
        if let Some(c) = self.small.get(key) {
            return Some(c);
        }
        if self.large_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut large = self.large.lock();
        let (tick, items) = &mut *large;
        *tick += 1;
        let item = items.iter_mut().find(|(k, _, _)| k == key)?;
        item.2 = *tick;
        Some(item.1.clone())
    }

    /// Caches `cached` as `key`'s state (the key's storage lock held: one writer per key).
    fn insert(&self, key: &[u8], cached: Cached) {
        let weight = u64::from(cached.weight);
        if weight <= LARGE_ITEM {
            if self.large_len.load(Ordering::Acquire) > 0 {
                self.remove_large(key);
            }
            self.small.insert(CacheKey::from_slice(key), cached);
            return;
        }
        let mut large = self.large.lock();
        let (tick, items) = &mut *large;
        items.retain(|(k, _, _)| k != key);
        self.small.remove(key);
        if weight <= LARGE_BYTES {
            while items.iter().map(|(_, c, _)| u64::from(c.weight)).sum::<u64>() + weight > LARGE_BYTES {
                let Some(oldest) = items.iter().enumerate().min_by_key(|(_, (_, _, t))| *t).map(|(i, _)| i) else {
                    break;
                };
                items.swap_remove(oldest);
            }
            *tick += 1;
            items.push((key.to_vec(), cached, *tick));
        }
        self.large_len.store(items.len(), Ordering::Release);
    }

    fn remove_large(&self, key: &[u8]) {
        let mut large = self.large.lock();
        large.1.retain(|(k, _, _)| k != key);
        self.large_len.store(large.1.len(), Ordering::Release);
    }

    fn remove(&self, key: &[u8]) {
        self.small.remove(key);
        if self.large_len.load(Ordering::Acquire) > 0 {
            self.remove_large(key);
        }
    }
}

pub struct Storage {
    db: Database,
    data: Keyspace,
    members: Keyspace,
    hints: Keyspace,
    ring: Keyspace,
    meta: Keyspace,
    locks: Box<[Mutex<()>]>,
    /// Per lock stripe: woken when a key of the stripe is written (a replicated patch waits on
    /// it for the version it applies to, `members.rs`).
    written_keys: Box<[tokio::sync::Notify]>,
    fsync: FsyncPolicy,
    cache: DecodedCache,
    /// Writes put into the journal buffer so far / covered by the last flush to the OS.
    written: AtomicU64,
    flushed: AtomicU64,
    /// See [`StorageStats::records_written`] and `bytes_written`.
    records: AtomicU64,
    record_bytes: AtomicU64,
    /// See [`StorageStats::held_writes`].
    held_writes: AtomicU64,
    /// Set while the disk thread syncs the journal (fjall holds the journal's lock meanwhile,
    /// and every write waits for it).
    journal_syncing: AtomicBool,
    /// Whether fjall was near a write stall at the last [`Storage::check_stall`].
    stall_near: AtomicBool,
    commit_lock: Mutex<()>,
    observer: std::sync::OnceLock<Arc<dyn WriteObserver>>,
    /// Keys by when they may become reapable (`expiry.rs`).
    due: expiry::DueIndex,
    /// Told of every stored write (keyspace notifications' expiries).
    /// Weak: the watch (the notifier) reaches the cluster, which holds this storage.
    expiry_watch: std::sync::OnceLock<std::sync::Weak<dyn ExpiryWatch>>,
    /// Hint records held now (kept exact: counted at open, then on every insert and removal).
    hint_count: AtomicU64,
    /// Removals of records (data or hint), for `replica::Actors`, which never continues a
    /// clock entry this node may have lost (see [`Storage::last_removal`]).
    removed: Removed,
    /// The flushes this node knows of (the cluster state's, installed by the cluster layer):
    /// applied to every set read, written or merged in here (`flushes.rs`).
    flushes: arc_swap::ArcSwap<FlushMarks>,
    /// Keys that `open` moved to their ring position (`relocate`), for the node to hand to
    /// their replicas if it is not one (`Replica::rehome`).
    relocated: Mutex<Vec<Bytes>>,
    /// Whether writes are refused for the disk's trouble (`health.rs`).
    health: DiskHealth,
}

/// Keys whose records were removed, by the hash of the key: the number of the last removal
/// (counted over all of this node's removals since it started). At most [`MAX_REMOVED`] keys
/// are remembered: past that the record is emptied and every key counts as removed then
/// (`floor`), so a key's clock gains an entry per that many removals of other keys, not per
/// removal. A key's number is dropped once a write after its removal shows it is no longer
/// needed ([`Storage::removal_outlived`]).
/// In shards by the key's hash, so that the writes of two runtime threads (each asks on every
/// write) rarely meet on one lock.
struct Removed {
    shards: Box<[Mutex<HashMap<u64, u64>>]>,
    count: AtomicU64,
    floor: AtomicU64,
}

/// Keys [`Removed`] remembers at most (over all its shards).
pub const MAX_REMOVED: usize = 1 << 19;

const REMOVED_SHARDS: usize = 64;

impl Default for Removed {
    fn default() -> Self {
        Removed {
            shards: (0..REMOVED_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            count: AtomicU64::new(0),
            floor: AtomicU64::new(0),
        }
    }
}

impl Removed {
    /// The key's hash and its shard.
    fn shard(&self, key: &[u8]) -> (u64, &Mutex<HashMap<u64, u64>>) {
        let hash = xxhash_rust::xxh3::xxh3_64(key);
        (hash, &self.shards[(hash % REMOVED_SHARDS as u64) as usize])
    }
}

impl Storage {
    /// Opens (or creates) the database in `dir`, keeping the default reserve of free space.
    ///
    /// # Errors
    /// When the directory cannot be created or the engine cannot recover it.
    pub fn open(dir: &Path, fsync: FsyncPolicy) -> Result<Arc<Storage>> {
        Self::open_keeping(dir, fsync, None)
    }

    /// Opens (or creates) the database in `dir`; writes are refused while less than `min_free`
    /// bytes are free on its file system (`None`: the default reserve, `health.rs`).
    ///
    /// # Errors
    /// When the directory cannot be created or the engine cannot recover it.
    pub fn open_keeping(dir: &Path, fsync: FsyncPolicy, min_free: Option<u64>) -> Result<Arc<Storage>> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Open { path: dir.to_path_buf(), source })?;
        let db = Database::builder(dir.join("db")).manual_journal_persist(true).open()?;
        // Every keyspace leaves journal flushes to `commit` (one write per batch, not per insert).
        let options = || KeyspaceCreateOptions::default().manual_journal_persist(true);
        // fjall's 64 MiB memtable. Smaller ones made pipelined SETs faster (16 MiB: +22% rps)
        // but every memtable rotation stalled writers for ~100 ms here: p99.9 went from 20 to
        // 90 ms (redis-benchmark -P 16, 1M writes over 100k keys), and p99.9 is the SLA.
        let data = db.keyspace("data", options)?;
        let members = db.keyspace("members", options)?;
        let hints = db.keyspace("hints", options)?;
        let ring = db.keyspace("ring", options)?;
        let meta = db.keyspace("meta", options)?;
        let due = expiry::DueIndex::new(db.keyspace("due", options)?);
        let locks = (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        let written_keys = (0..LOCK_STRIPES).map(|_| tokio::sync::Notify::new()).collect();
        let cache = DecodedCache::new();
        let storage = Arc::new(Storage {
            db,
            data,
            members,
            hints,
            ring,
            meta,
            locks,
            written_keys,
            fsync,
            cache,
            written: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            records: AtomicU64::new(0),
            record_bytes: AtomicU64::new(0),
            held_writes: AtomicU64::new(0),
            journal_syncing: AtomicBool::new(false),
            stall_near: AtomicBool::new(false),
            commit_lock: Mutex::new(()),
            observer: std::sync::OnceLock::new(),
            due,
            expiry_watch: std::sync::OnceLock::new(),
            hint_count: AtomicU64::new(0),
            removed: Removed::default(),
            flushes: arc_swap::ArcSwap::from_pointee(FlushMarks::default()),
            relocated: Mutex::new(Vec::new()),
            health: DiskHealth::new(dir, min_free),
        });
        // A disk already short of space refuses writes from the start (the walks below that
        // upgrade an older store then fail, and the node with them).
        storage.health.check_space();
        let marked = match storage.meta_get(FORMAT_KEY)? {
            Some(mark) => {
                let format = <[u8; 2]>::try_from(&mark[..]).map(u16::from_be_bytes).map_err(|_| {
                    StorageError::Corrupt { key: FORMAT_KEY.to_owned(), reason: format!("{} bytes", mark.len()) }
                })?;
                if format > DATA_FORMAT {
                    return Err(StorageError::Newer(format));
                }
                true
            }
            None => false,
        };
        // The flushes this node applied before it stopped (a purge is not done again).
        if let Some(bytes) = storage.meta_get(FLUSHES_KEY)? {
            let marks: FlushMarks = postcard::from_bytes(&bytes)
                .map_err(|e| StorageError::Corrupt { key: FLUSHES_KEY.to_owned(), reason: e.to_string() })?;
            storage.flushes.store(Arc::new(marks));
        }
        // The reap index is kept on disk: loading it reads the keys that will die, not every
        // key. A store an older build wrote is walked once instead.
        if storage.meta_get(LAYOUT_KEY)?.as_deref() == Some(LAYOUT) {
            storage.load_due()?;
        } else {
            storage.upgrade_layout()?;
        }
        // An unmarked store (new, or of a build before the mark) is of format 1, marked once
        // it is open. Best effort: on a full disk the mark waits for the next start, and the
        // store is read as format 1 meanwhile.
        if !marked {
            if let Err(e) = storage.meta_put(FORMAT_KEY, &UNMARKED_FORMAT.to_be_bytes()) {
                tracing::warn!("the data dir's format mark was not written: {e}");
            }
        }
        // Hints are few (writes held for nodes that are down): counting them is no walk of the
        // data.
        let hints_held = storage.hints.iter().count() as u64;
        storage.hint_count.store(hints_held, Ordering::Release);
        Storage::spawn_disk_thread(&storage);
        Ok(storage)
    }

    /// Brings a store without the layout marker (written by an older build, or new) to the
    /// layout: one walk of its keys builds the reap index on disk, and finds the sets and
    /// hashes an older build stored whole (to store them in parts) and the keys with a hash tag
    /// a build before tags stored at their whole key's position (to move them to their tag's).
    /// Then the marker is written, so later opens walk nothing. A crash before that walks
    /// again at the next open (every step can be done twice).
    ///
    /// # Errors
    /// Engine failure.
    fn upgrade_layout(&self) -> Result<()> {
        self.clear_due()?;
        let (mut whole, mut misplaced) = (Vec::new(), Vec::new());
        for guard in self.data.iter() {
            let (k, v) = guard.into_inner()?;
            let key = k.get(8..).unwrap_or_default();
            if crate::ring::hash_tag(key).is_some() && k.get(..8) != Self::data_key(key).get(..8) {
                misplaced.push(k.to_vec());
                continue;
            }
            // A sketch tells when the key dies (a large set's members are not read). The record
            // is at the time the set as stored dies (not as a flush mark makes it read): that is
            // where a later write of the key moves it from. (The marks read at open were purged
            // already, so the two agree.)
            let Ok(set) = self.decode_data_sketch(&k, &v) else { continue };
            if !members::is_header(&v) && set.collection().is_some() {
                whole.push(k.to_vec());
            }
            self.index_stored(key, &set)?;
        }
        self.store_in_parts(&whole)?;
        self.relocate(&misplaced)?;
        self.commit()?;
        // Synced with every write before it (one journal).
        self.meta_put(LAYOUT_KEY, LAYOUT)
    }

    /// Makes the store look as an older build left it: no layout marker, no reap index on
    /// disk (tests of the walk at open).
    #[cfg(test)]
    pub(crate) fn as_older_build(&self) {
        self.meta.remove(LAYOUT_KEY).expect("a removal");
        self.clear_due().expect("a clear");
        self.commit().expect("commit");
    }

    /// Moves records stored under another ring prefix than their key's (keys with a hash tag
    /// that a build before tags placed by the whole key) to their key's: the set (its members
    /// too) is merged in at the new place, then the old records go. A crash in between leaves
    /// both, and the next start moves it again (merging is idempotent). The keys moved are
    /// kept for [`Storage::take_relocated`].
    fn relocate(&self, stored_keys: &[Vec<u8>]) -> Result<()> {
        let mut moved = Vec::new();
        for old in stored_keys {
            let key = old.get(8..).unwrap_or_default();
            let Some(bytes) = self.data.get(old)? else { continue };
            let set = match self.decode_data(old, &bytes) {
                Ok((set, _)) => set,
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(key), "a tagged key to move does not decode: {e}");
                    continue;
                }
            };
            self.merge(key, &set)?;
            self.commit()?;
            self.health.admit()?;
            let mut batch = self.db.batch();
            self.remove_members(&mut batch, old, None)?;
            batch.remove(&self.data, old.clone());
            batch.commit().map_err(|e| self.write_failed("a move", &e))?;
            moved.push(Bytes::copy_from_slice(key));
        }
        if !moved.is_empty() {
            self.commit()?;
            tracing::info!(keys = moved.len(), "moved keys with a hash tag to their tag's ring position");
        }
        *self.relocated.lock() = moved;
        Ok(())
    }

    /// The keys `open` moved to their tag's position (once).
    pub fn take_relocated(&self) -> Vec<Bytes> {
        std::mem::take(&mut *self.relocated.lock())
    }

    /// Lists `key` as moved by `open` (tests of what the node does with such keys).
    #[cfg(test)]
    pub(crate) fn note_relocated(&self, key: &[u8]) {
        self.relocated.lock().push(Bytes::copy_from_slice(key));
    }

    fn data_key(key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + key.len());
        k.extend_from_slice(&crate::ring::position(key).to_be_bytes()[..8]);
        k.extend_from_slice(key);
        k
    }

    /// The number of the last removal of a record of `key` (0: none since this node started;
    /// the removals this node counted in all when it forgot which keys they were, if more).
    /// Counted before the removal, so whoever read a key's records and then sees the same
    /// number knows that what it read is all this node stored for the key since then.
    pub fn last_removal(&self, key: &[u8]) -> u64 {
        // No removal yet since this node started: nothing to look up.
        if self.removed.count.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let (hash, shard) = self.removed.shard(key);
        let own = shard.lock().get(&hash).copied().unwrap_or(0);
        own.max(self.removed.floor.load(Ordering::Acquire))
    }

    /// How many removals this node counted so far.
    pub fn removals(&self) -> u64 {
        self.removed.count.load(Ordering::Acquire)
    }

    /// How many keys' removals are remembered now.
    pub fn removed_keys(&self) -> usize {
        self.removed.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Forgets the removal numbered `n` of `key` (a write made after it no longer needs it),
    /// unless the key was removed again since.
    pub fn removal_outlived(&self, key: &[u8], n: u64) {
        // A number no higher than the floor is the floor's, not the key's own: nothing to drop
        // (after a shard was forgotten every write would otherwise take a lock here).
        if n <= self.removed.floor.load(Ordering::Acquire) {
            return;
        }
        let (hash, shard) = self.removed.shard(key);
        let mut keys = shard.lock();
        if keys.get(&hash) == Some(&n) {
            keys.remove(&hash);
        }
    }

    fn forget(&self, key: &[u8]) {
        let (hash, shard) = self.removed.shard(key);
        let mut keys = shard.lock();
        let n = self.removed.count.fetch_add(1, Ordering::AcqRel) + 1;
        if keys.len() >= MAX_REMOVED / REMOVED_SHARDS && !keys.contains_key(&hash) {
            // Forgotten: every key counts as removed now (the floor covers the other shards'
            // keys too, so it is conservative for them: one fresh epoch each, once).
            keys.clear();
            self.removed.floor.fetch_max(n, Ordering::AcqRel);
        }
        keys.insert(hash, n);
    }

    /// Whether writes are refused for the disk's trouble, and why (`health.rs`).
    pub fn health(&self) -> &DiskHealth {
        &self.health
    }

    /// The error of a write the engine failed (`what`, for the log and the reason): from now
    /// on writes are refused (`health.rs`).
    fn write_failed(&self, what: &str, error: &fjall::Error) -> StorageError {
        StorageError::WriteFailed(self.health.failed(what, error))
    }

    /// Installs the observer of every later change (once).
    pub fn observe(&self, observer: Arc<dyn WriteObserver>) {
        let _ = self.observer.set(observer);
    }

    /// Installs the observer of every later change (once) and returns a snapshot of the
    /// store at that moment: every change the snapshot misses reaches the observer, and none
    /// it holds does. Every key's lock is held meanwhile (a change is reported under its key's
    /// lock, after the engine took it), so no change is half way.
    pub fn observe_from_snapshot(&self, observer: Arc<dyn WriteObserver>) -> fjall::Snapshot {
        let _all: Vec<_> = self.locks.iter().map(|l| l.lock()).collect();
        self.observe(observer);
        self.db.snapshot()
    }

    /// About how many keys are stored (the engine's estimate, no walk).
    pub fn approximate_keys(&self) -> usize {
        self.data.approximate_len()
    }

    fn notify(&self, stored_key: &[u8], key: &[u8], old: Option<u64>, new: Option<u64>) {
        if let Some(o) = self.observer.get() {
            let prefix = u64::from_be_bytes(stored_key[..8].try_into().expect("stored keys start with 8 bytes"));
            o.changed(prefix, key, old, new);
        }
    }

    fn lock(&self, stored_key: &[u8]) -> parking_lot::MutexGuard<'_, ()> {
        self.locks[Self::stripe(stored_key)].lock()
    }

    fn stripe(stored_key: &[u8]) -> usize {
        xxhash_rust::xxh3::xxh3_64(stored_key) as usize % LOCK_STRIPES
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<SiblingSet> {
        SiblingSet::decode(bytes).map_err(|e| StorageError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
    }

    /// A stored hint as reads see it: decoded, without what a known flush dropped.
    fn decode_unflushed(&self, key: &[u8], bytes: &[u8]) -> Result<SiblingSet> {
        let set = Self::decode(key, bytes)?;
        Ok(self.flushes.load().apply(key, &set).unwrap_or(set))
    }

    /// A `data` record (stored under `stored_key`) as reads see it: with its members when it
    /// is a header (`members.rs`), without what a known flush dropped.
    fn decode_data_unflushed(&self, stored_key: &[u8], bytes: &[u8]) -> Result<SiblingSet> {
        Ok(self.without_flushed(stored_key, self.decode_data(stored_key, bytes)?.0))
    }

    /// [`Storage::decode_data_unflushed`] with at most one member of a set in parts (see
    /// [`Storage::decode_data_sketch`]): for walks that ask what a key is, not what it holds.
    fn decode_sketch_unflushed(&self, stored_key: &[u8], bytes: &[u8]) -> Result<SiblingSet> {
        Ok(self.without_flushed(stored_key, self.decode_data_sketch(stored_key, bytes)?))
    }

    /// `set` (of the key stored under `stored_key`) without what a known flush dropped.
    fn without_flushed(&self, stored_key: &[u8], set: SiblingSet) -> SiblingSet {
        let key = stored_key.get(8..).unwrap_or_default();
        self.flushes.load().apply(key, &set).unwrap_or(set)
    }

    /// The state of `key` under its lock: from the cache, else from disk (and then cached).
    fn load_locked(&self, key: &[u8], stored_key: &[u8]) -> Result<Cached> {
        if let Some(c) = self.cache.get(key) {
            return Ok(c);
        }
        let cached = match self.data.get(stored_key)? {
            Some(bytes) => {
                let (set, parts) = self.decode_data(stored_key, &bytes)?;
                let len = bytes.len() + parts.map_or(0, |p| p.bytes as usize);
                Cached::new(key, Some(Arc::new(set)), digest(&bytes), parts, len)
            }
            None => Cached::new(key, None, 0, None, 0),
        };
        self.cache.insert(key, cached.clone());
        Ok(cached)
    }

    /// The sibling set stored for `key`.
    ///
    /// # Errors
    /// Engine failure or a record that does not decode.
    pub fn get(&self, key: &[u8]) -> Result<Option<Arc<SiblingSet>>> {
        Ok(self.load(key)?.set.map(|s| self.unflushed(key, s)))
    }

    /// The state of `key`: from the cache, else from disk under the key's lock.
    fn load(&self, key: &[u8]) -> Result<Cached> {
        if let Some(c) = self.cache.get(key) {
            return Ok(c);
        }
        let stored_key = Self::data_key(key);
        let _guard = self.lock(&stored_key);
        self.load_locked(key, &stored_key)
    }

    /// The set stored for `key` as [`Storage::get`] reads it, with the digest of its stored
    /// record (0: missing) when that is what it reads as (no flush dropped part of it).
    ///
    /// # Errors
    /// Engine failure or a record that does not decode.
    pub fn get_with_digest(&self, key: &[u8]) -> Result<(Option<Arc<SiblingSet>>, Option<u64>)> {
        let cached = self.load(key)?;
        Ok(match cached.set {
            None => (None, Some(0)),
            Some(set) => match self.flushes.load().apply(key, &set) {
                Some(flushed) => (Some(Arc::new(flushed)), None),
                None => (Some(set), Some(cached.digest)),
            },
        })
    }

    /// `set` without what a flush this node knows of dropped (a stored copy may predate it
    /// until the purge rewrites it; a copy from a hint or a peer may too).
    pub fn unflushed(&self, key: &[u8], set: Arc<SiblingSet>) -> Arc<SiblingSet> {
        match self.flushes.load().apply(key, &set) {
            Some(flushed) => Arc::new(flushed),
            None => set,
        }
    }

    /// The time up to which the flushes this node knows of dropped `key`'s values (0: none).
    pub fn flush_cutoff(&self, key: &[u8]) -> u64 {
        self.flushes.load().cutoff(key)
    }

    /// Installs the cluster's flush marks (merged forward: they never move back). They are in
    /// force at once: every read, scan and write applies them. Returns the purge that rewrites
    /// this node's stored copies without what the new marks drop, when there is one to run.
    pub fn install_flush_marks(&self, incoming: &FlushMarks) -> Option<Purge> {
        let old = self.flushes.load_full();
        let mut marks = (*old).clone();
        if !marks.merge(incoming) {
            return None;
        }
        self.flushes.store(Arc::new(marks.clone()));
        let dbs = marks.newer_than(&old);
        Some(Purge { marks, dbs })
    }

    /// Runs a purge (a walk of the store, like Redis's FLUSHALL, on every node): every stored
    /// key of a flushed database is rewritten without what the flush dropped, then the marks
    /// are recorded as applied (a restart does not purge again). Returns how many keys it
    /// rewrote.
    ///
    /// # Errors
    /// Engine failure (the marks are in force anyway; the next install purges again).
    pub fn purge(&self, purge: Purge, mut pace: impl FnMut()) -> Result<u64> {
        let Purge { marks, dbs } = purge;
        let mut keys = Vec::new();
        self.for_each_digest(|_, key, _| {
            if dbs.as_ref().is_none_or(|dbs| dbs.contains(&crate::keyspace::db_of(key))) {
                keys.push(key.to_vec());
            }
        })?;
        let mut purged = 0;
        for (i, key) in keys.into_iter().enumerate() {
            if i % 256 == 0 {
                pace();
            }
            let stored_key = Self::data_key(&key);
            let current = {
                let _guard = self.lock(&stored_key);
                self.load_locked(&key, &stored_key)?.set
            };
            if current.is_some_and(|c| marks.apply(&key, &c).is_some()) {
                // `update` applies the marks to what it stores.
                self.update(&key, |c| Ok::<_, StorageError>(c.cloned().unwrap_or_default()))?;
                purged += 1;
            }
        }
        // Synced with every write before it.
        self.meta_put(FLUSHES_KEY, &postcard::to_stdvec(&marks).expect("serialising to a Vec cannot fail"))?;
        Ok(purged)
    }

    /// Read-modify-write of one key under its lock: `f` sees the stored set and returns the set
    /// to store (or an error, and nothing is written). Returns what `f` returned. The write is
    /// durable once [`Storage::commit`] returns.
    ///
    /// # Errors
    /// Engine failure, a corrupt stored record, or `f`'s error.
    pub fn update<E>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&SiblingSet>) -> std::result::Result<SiblingSet, E>,
    ) -> std::result::Result<Arc<SiblingSet>, E>
    where
        E: From<StorageError>,
    {
        Ok(self.update_patched(key, f)?.0)
    }

    /// [`Storage::update`], also returning the write as a patch when it changed a set or a
    /// hash stored in parts (what replication sends to replicas holding the same version).
    ///
    /// # Errors
    /// As [`Storage::update`].
    pub fn update_patched<E>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&SiblingSet>) -> std::result::Result<SiblingSet, E>,
    ) -> std::result::Result<(Arc<SiblingSet>, Option<Patch>), E>
    where
        E: From<StorageError>,
    {
        let stored_key = Self::data_key(key);
        let _guard = self.lock(&stored_key);
        let cached = self.load_locked(key, &stored_key)?;
        // `f` sees the copy as reads do (without what a flush dropped); what it returns is
        // stored that way too, and compared with what is stored, so a purge rewrites the key.
        let marks = self.flushes.load();
        let seen = cached.set.as_deref().map(|c| marks.apply(key, c).map_or(Cow::Borrowed(c), Cow::Owned));
        let next = f(seen.as_deref())?;
        drop(seen);
        Ok(self.write_locked(key, &stored_key, cached, next)?)
    }

    /// Stores `next` over `cached` (the key's state, its lock held), without what a known
    /// flush dropped; nothing when it is what is stored.
    fn write_locked(
        &self,
        key: &[u8],
        stored_key: &[u8],
        cached: Cached,
        mut next: SiblingSet,
    ) -> Result<(Arc<SiblingSet>, Option<Patch>)> {
        let Cached { set: current, digest: old_digest, parts: old_parts, .. } = cached;
        if let Some(flushed) = self.flushes.load().apply(key, &next) {
            next = flushed;
        }
        if let Some(current) = current.as_ref().filter(|c| ***c == next) {
            // Nothing new (a replica or repair sent what is here already): no write.
            return Ok((current.clone(), None));
        }
        self.health.admit()?;
        let next = Arc::new(next);
        let stored = self.engine_write(|| self.store(stored_key, current.as_deref(), old_digest, old_parts, &next));
        let stored = match stored {
            Ok(stored) => stored,
            Err(e) => {
                // The engine may or may not have taken it: forget the cached state, read again.
                // The reap index holds the key from when the first of the two would die (the
                // reaper reads what is stored and puts the key back at its time).
                self.cache.remove(key);
                self.note_either(key, current.as_deref(), &next);
                return Err(e);
            }
        };
        self.note_due(key, current.as_deref(), &next);
        self.note_stored(key, current.as_deref(), &next);
        self.note_write();
        self.records.fetch_add(stored.records, Ordering::Relaxed);
        self.record_bytes.fetch_add(stored.written, Ordering::Relaxed);
        self.cache.insert(key, Cached::new(key, Some(next.clone()), stored.digest, stored.parts, stored.bytes));
        self.notify(stored_key, key, current.is_some().then_some(old_digest), Some(stored.digest));
        if stored.parts.is_some() {
            // Only a version in parts can be a patch's base.
            self.written_keys[Self::stripe(stored_key)].notify_waiters();
        }
        Ok((next, stored.patch))
    }

    /// Runs `write`, a write to the `data` and `members` keyspaces, so that the engine holding
    /// writes back stalls only its caller, not every connection of the runtime worker it runs
    /// on. Writes are held back while the disk thread syncs the journal (fjall syncs under
    /// the journal's lock, which every write takes: hundreds of ms behind a large write-back
    /// here), and after their insert fjall makes a writer sleep while four sealed memtables
    /// wait for their flush (100 ms at a time), or spin and then sleep while level 0 has 20
    /// runs or more (`Keyspace::local_backpressure`). While either is near, the write goes
    /// [`off_worker`]; otherwise it runs as it is (two relaxed loads; the engine's figures are
    /// looked at every [`STALL_CHECK_EVERY`] writes, [`Storage::check_stall`]).
    pub(crate) fn engine_write<T>(&self, write: impl FnOnce() -> T) -> T {
        if !self.journal_syncing.load(Ordering::Relaxed) && !self.stall_near.load(Ordering::Relaxed) {
            return write();
        }
        self.held_writes.fetch_add(1, Ordering::Relaxed);
        off_worker(write)
    }

    /// Looks whether a stall is near (see [`Storage::engine_write`]): every
    /// [`STALL_CHECK_EVERY`] writes (the engine's figures take its locks; a stall builds up
    /// over many writes and lasts 100 ms or more).
    fn check_stall(&self) {
        let near = |k: &Keyspace| stall_near(k.sealed_memtable_count(), k.l0_table_count());
        self.stall_near.store(near(&self.data) || near(&self.members), Ordering::Relaxed);
    }

    /// Merges a set that another replica sent (replication, read repair, handoff) into the
    /// stored one; never overwrites. Returns the merged set.
    ///
    /// # Errors
    /// Engine failure or a corrupt stored record.
    pub fn merge(&self, key: &[u8], incoming: &SiblingSet) -> Result<Arc<SiblingSet>> {
        self.update(key, |current| Ok(current.map_or_else(|| incoming.clone(), |c| c.sync(incoming))))
    }

    /// Removes `key` if its stored set still satisfies `dead` (checked under the key's lock, so
    /// a write that raced the reaper is kept). Returns whether it was removed.
    ///
    /// # Errors
    /// Engine failure or a corrupt stored record.
    pub fn remove_if(&self, key: &[u8], dead: impl FnOnce(&SiblingSet) -> bool) -> Result<bool> {
        let stored_key = Self::data_key(key);
        let _guard = self.lock(&stored_key);
        let Cached { set: Some(set), digest: old_digest, parts, .. } = self.load_locked(key, &stored_key)? else {
            return Ok(false);
        };
        if !dead(&set) {
            return Ok(false);
        }
        self.health.admit()?;
        self.forget(key);
        let due = expiry::DueMove::new(Some(&set), None);
        let removed = self.engine_write(|| {
            if parts.is_some() || due.moves() {
                // Its member records and its reap index record go with it, in one batch.
                let mut batch = self.db.batch();
                let listed = match parts {
                    Some(_) => self.remove_members(&mut batch, &stored_key, None),
                    None => Ok(0),
                };
                batch.remove(&self.data, stored_key.clone());
                let records = batch.len() as u64;
                self.move_due(&mut batch, key, &due);
                listed.and_then(|bytes| {
                    batch.commit().map_err(|e| self.write_failed("a removal", &e))?;
                    Ok((records, bytes + stored_key.len() as u64))
                })
            } else {
                self.data
                    .remove(&stored_key)
                    .map(|()| (1, stored_key.len() as u64))
                    .map_err(|e| self.write_failed("a removal", &e))
            }
        });
        self.cache.remove(key);
        let (records, bytes) = removed?;
        self.note_removed(key);
        self.records.fetch_add(records, Ordering::Relaxed);
        self.record_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.note_write();
        self.notify(&stored_key, key, Some(old_digest), None);
        Ok(true)
    }

    /// Whether no key is stored.
    ///
    /// # Errors
    /// Engine failure.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.data.is_empty()?)
    }

    pub fn stats(&self) -> StorageStats {
        StorageStats {
            data_keys_approx: self.data.approximate_len() as u64,
            disk_bytes: self.db.disk_space().unwrap_or(0),
            journal_bytes: self.db.journal_disk_space().unwrap_or(0),
            records_written: self.records.load(Ordering::Relaxed),
            bytes_written: self.record_bytes.load(Ordering::Relaxed),
            held_writes: self.held_writes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::version::{Actor, Sibling, VersionVector};

    fn write(s: &Storage, key: &[u8], v: &str) -> Arc<SiblingSet> {
        s.update::<StorageError>(key, |cur| {
            let cur = cur.cloned().unwrap_or_default();
            let sib = Sibling {
                value: Some(Bytes::from(v.to_owned()).into()),
                written_ms: 1,
                origin: Actor(1),
                expires_ms: None,
                resets: Vec::new(),
                flush_seen: None,
            };
            Ok(cur.update(&VersionVector::default(), sib).0)
        })
        .unwrap()
    }

    /// A set heavier than a shard of the small sets' cache is cached (beside it): a list or
    /// sorted set of a million members was never cached and every command read it whole.
    #[test]
    fn large_sets_are_cached_too_and_the_least_recent_goes_first() {
        let cache = DecodedCache::new();
        let big = |n: usize| Cached::new(b"k", None, n as u64, None, n);
        let third = (LARGE_BYTES / 3) as usize;
        cache.insert(b"a", big(third));
        cache.insert(b"b", big(third));
        assert!(cache.get(b"a").is_some(), "a large set is cached");
        cache.insert(b"c", big(third));
        assert!(cache.get(b"b").is_none(), "the least recently used went out");
        assert!(cache.get(b"a").is_some() && cache.get(b"c").is_some());
        // A key that shrinks moves to the small sets' cache; a removal removes it everywhere.
        cache.insert(b"a", big(10));
        assert_eq!(cache.get(b"a").map(|c| c.digest), Some(10));
        assert_eq!(cache.large.lock().1.len(), 1);
        cache.remove(b"a");
        cache.remove(b"c");
        assert!(cache.get(b"a").is_none() && cache.get(b"c").is_none());
        // Larger than the whole large cache: not cached.
        cache.insert(b"huge", big(LARGE_BYTES as usize + 1));
        assert!(cache.get(b"huge").is_none());
    }

    /// A cached key weighs at least what its decoded state takes in memory (its table entry,
    /// the shared set, the set's entry and sibling, the value's bytes), so the cache's bytes
    /// bound the memory it holds (it weighed a 100-byte string at about 200 bytes, a quarter
    /// of what it took).
    #[test]
    fn a_cached_keys_weight_covers_its_memory() {
        use std::mem::size_of;
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), FsyncPolicy::Everysec).unwrap();
        let set = write(&s, b"k", &"v".repeat(100));
        let cached = s.cache.get(b"k").expect("a write is cached");
        // The set holds its one entry (actor, counter, siblings) and that entry's one sibling
        // inline: one allocation with the `Arc`'s two counts.
        assert!(size_of::<SiblingSet>() > size_of::<Sibling>(), "the sibling is inline");
        let least = size_of::<CacheKey>() + size_of::<Cached>() + 16 + size_of::<SiblingSet>() + 100;
        assert_eq!(set.siblings().count(), 1);
        assert!(cached.weight as usize >= least, "weight {} < {least} bytes in memory", cached.weight);
    }

    /// Every weight up to the large sets' cache is cached by one of the two caches: a set just
    /// under `LARGE_ITEM` used to be too heavy for a small shard's hot share and too light for
    /// the large cache, so it was never cached (every LPUSH of a 100,000-element list read the
    /// list whole).
    #[test]
    fn every_weight_up_to_the_large_cache_is_cached() {
        let cache = DecodedCache::new();
        let shard = SMALL_BYTES / CACHE_SHARDS as u64;
        let weights = [
            1 << 10,
            1 << 20,
            LARGE_ITEM - 1,
            LARGE_ITEM,
            LARGE_ITEM + 1,
            shard * 97 / 100,
            shard - 100,
            shard,
            shard + 1,
            LARGE_BYTES - 100,
        ];
        for (i, w) in weights.into_iter().enumerate() {
            let key = format!("key{i}");
            // The weight counts the key and the entry's own bytes.
            let stored = (w - (ENTRY_BYTES + key.len()) as u64) as usize;
            cache.insert(key.as_bytes(), Cached::new(key.as_bytes(), None, w, None, stored));
            assert_eq!(cache.get(key.as_bytes()).map(|c| c.digest), Some(w), "a set weighing {w} is cached");
            cache.remove(key.as_bytes());
        }
    }

    /// A store is marked with its data format when it is created; a store a newer build
    /// marked is refused by name, not misread; an unmarked one (before 0.1.0) opens and is marked.
    #[test]
    fn a_store_of_a_newer_format_is_refused_and_an_unmarked_one_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
            assert_eq!(s.meta_get(FORMAT_KEY).unwrap(), Some(DATA_FORMAT.to_be_bytes().to_vec()));
            write(&s, b"k", "a");
            s.commit().unwrap();
            s.meta.remove(FORMAT_KEY).unwrap();
        }
        {
            let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
            assert_eq!(s.meta_get(FORMAT_KEY).unwrap(), Some(DATA_FORMAT.to_be_bytes().to_vec()));
            assert!(s.get(b"k").unwrap().is_some());
            s.meta_put(FORMAT_KEY, &(DATA_FORMAT + 1).to_be_bytes()).unwrap();
        }
        let refused = Storage::open(dir.path(), FsyncPolicy::Never).err().expect("a newer store is refused");
        assert!(matches!(refused, StorageError::Newer(f) if f == DATA_FORMAT + 1));
        assert!(refused.to_string().contains("written by a newer kura"), "{refused}");
    }

    #[test]
    fn data_survives_reopen_and_merge_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
            write(&s, b"k", "a");
            write(&s, b"k", "b");
            s.commit().unwrap();
            s.meta_put("node_id", b"n1").unwrap();
        }
        let s = Storage::open(dir.path(), FsyncPolicy::Always).unwrap();
        let set = s.get(b"k").unwrap().unwrap();
        assert!(s.get(b"missing").unwrap().is_none());
        assert_eq!(set.len(), 2);
        assert_eq!(s.meta_get("node_id").unwrap().as_deref(), Some(&b"n1"[..]));
        // An older replica's copy merges in without losing anything.
        let older = SiblingSet::new();
        assert_eq!(s.merge(b"k", &older).unwrap().len(), 2);
        let mut seen = Vec::new();
        s.for_each(|k, set| seen.push((k.to_vec(), set.unwrap().len()))).unwrap();
        assert_eq!(seen, vec![(b"k".to_vec(), 2)]);
        assert!(s.remove_if(b"k", |_| true).unwrap());
        assert!(s.get(b"k").unwrap().is_none());
    }

    #[test]
    fn partitions_scan_in_batches_and_are_removed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), FsyncPolicy::Never).unwrap();
        let q = 8;
        let keys: Vec<String> = (0..200).map(|i| format!("key{i}")).collect();
        for k in &keys {
            write(&s, k.as_bytes(), "v");
        }
        let mut total = 0;
        for p in 0..q {
            let mut after: Option<Bytes> = None;
            let mut seen = Vec::new();
            loop {
                let batch = s.scan_partition(p, q, after.as_deref(), 7, usize::MAX).unwrap();
                let Some((last, _)) = batch.last() else { break };
                after = Some(last.clone());
                seen.extend(batch.into_iter().map(|(k, _)| k));
            }
            let expected = keys.iter().filter(|k| crate::ring::partition_of_key(k.as_bytes(), q) == p).count();
            assert_eq!(seen.len(), expected, "partition {p}");
            total += seen.len();
        }
        assert_eq!(total, 200);
        let p7 = keys.iter().filter(|k| crate::ring::partition_of_key(k.as_bytes(), q) == 7).count() as u64;
        assert_eq!(s.remove_partition(7, q).unwrap(), p7);
        assert!(s.scan_partition(7, q, None, 10, usize::MAX).unwrap().is_empty());
        assert!(!s.scan_partition(6, q, None, 10, usize::MAX).unwrap().is_empty());
    }

    #[test]
    fn a_stall_is_near_one_memtable_before_fjalls_and_at_its_level_0_runs() {
        assert!(!stall_near(0, 0));
        assert!(!stall_near(2, 19));
        assert!(stall_near(3, 0), "fjall stalls at 4 sealed memtables; one may be sealed meanwhile");
        assert!(stall_near(0, 20), "fjall stalls at 20 runs in level 0, each one table or more");
    }

    /// Runs `hold` (which blocks until this test's other task answers it) as a task on a
    /// runtime of one worker, beside that other task. Returns whether both finished: they do
    /// only if `hold` left the worker to the other task while it blocked.
    fn other_tasks_run_while(hold: impl FnOnce(std::sync::mpsc::Receiver<()>) + Send + 'static) -> bool {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            hold(rx);
            let _ = done_tx.send(());
        });
        // Spawned after: with one worker, it runs only when `hold`'s task yields the worker.
        rt.spawn(async move {
            let _ = tx.send(());
        });
        // A bound on the failure (the worker held forever), not a wait for success.
        let finished = done_rx.recv_timeout(std::time::Duration::from_secs(20)).is_ok();
        rt.shutdown_background();
        finished
    }

    #[test]
    fn a_write_held_back_by_the_journals_sync_leaves_the_worker_to_other_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), FsyncPolicy::Everysec).unwrap();
        // While the disk thread syncs the journal, a write blocks (here: until the other task
        // answers). It must not hold the runtime's worker meanwhile.
        s.journal_syncing.store(true, Ordering::Relaxed);
        let storage = s.clone();
        assert!(other_tasks_run_while(move |rx| storage.engine_write(|| rx.recv().unwrap())));
        assert_eq!(s.stats().held_writes, 1);
        // Otherwise a write runs where it is: nothing is counted.
        s.journal_syncing.store(false, Ordering::Relaxed);
        s.engine_write(|| ());
        assert_eq!(s.stats().held_writes, 1);
        // On a thread outside any runtime (the disk thread, a blocking pool's), `off_worker`
        // just runs it.
        assert_eq!(off_worker(|| 7), 7);
    }
}
