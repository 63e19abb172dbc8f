//! This node's copy of the data: the one owner of the `data` and `hints` keyspaces' writes and
//! of the actors new versions are made by (design.md section 1, issue 11).
//!
//! Every path that changes the local copy comes through here: a write coordinated here
//! ([`Replica::write`], a new dot under the key's lock), a set that arrived (replication, read
//! repair, a hint, a transfer, anti-entropy: [`Replica::merge`], one merge for all), a hint
//! handed on, a partition handed off, a tombstone reaped. Writes become durable at
//! [`Replica::commit`] (a journal flush shared by everything written meanwhile), which is
//! what a reply that acknowledges them waits for. Reads and scans go to [`Replica::storage`].

mod actors;

pub use actors::{Actors, Copy};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::admission::Admission;
use crate::clock::now_ms;
use crate::rmw::{self, Outcome, Rmw, RmwError};
use crate::storage::{Patch, Storage, StorageError};
use crate::version::{Actor, Counter, Dot, Sibling, SiblingSet, Value, Write, WriteContext};
use crate::wakeups::Wakeups;

type Result<T> = std::result::Result<T, StorageError>;

/// Riak's `max_siblings`: the default of `--max-siblings`.
pub const MAX_SIBLINGS: usize = 100;

/// The most bytes of values a write made here may leave a key's siblings with: three quarters
/// of a peer frame (`--max-frame-bytes`), the rest for their clocks.
pub fn max_sibling_bytes() -> usize {
    crate::rpc::max_frame() / 4 * 3
}

/// A write refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The write would leave more siblings (or bytes of them) than allowed.
    #[error("too many siblings: the key holds {kept} values this write did not see (at most {max} siblings); read them with DGET and write their merge with DPUT and its context")]
    Siblings { kept: usize, max: usize },
}

/// Why a read-modify-write wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ModifyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Rmw(#[from] RmwError),
}

/// What a read-modify-write did: the set after it when it wrote (with the write as a patch
/// of the version before, when it changed a set or a hash stored in parts), and the reply's
/// material.
pub struct Modified {
    pub written: Option<Arc<SiblingSet>>,
    pub patch: Option<Patch>,
    pub outcome: Outcome,
}

/// Inside [`Replica::write_with`]: the decision not to write, or its error.
enum Decided<E> {
    Nothing,
    Failed(E),
}

impl<E: From<StorageError>> From<StorageError> for Decided<E> {
    fn from(e: StorageError) -> Self {
        Decided::Failed(E::from(e))
    }
}

/// What [`Replica::modify_many`] did: the set after its operations and the patch of their
/// write, when one of them wrote; each operation's outcome, in order.
pub struct Batch {
    pub written: Option<Arc<SiblingSet>>,
    pub patch: Option<Patch>,
    pub outcomes: Vec<std::result::Result<Outcome, ModifyError>>,
}

/// What a decision inside [`Replica::write_with`] makes its writes with: the actor of a write
/// over a copy, and the set after it.
struct Writer<'a> {
    replica: &'a Replica,
    key: &'a [u8],
    context: &'a WriteContext,
    kind: Copy,
    flush_seen: Option<u64>,
}

impl Writer<'_> {
    /// The actor a write over `current` (this copy as the write sees it) is an event of.
    fn actor(&self, current: Option<&SiblingSet>) -> Actor {
        self.replica.actors.for_write(&self.replica.storage, self.key, current, self.kind)
    }

    /// The set after `write`, made by `origin`, over `current`.
    fn after(&self, current: Option<&SiblingSet>, origin: Actor, write: Write) -> SiblingSet {
        let now = now_ms();
        let empty = SiblingSet::new();
        let current = current.unwrap_or(&empty);
        let (ctx, value) = match self.context {
            WriteContext::Given(vv) => (vv.clone(), write.value),
            // A write over everything this copy holds: over a counter, a DEL or an integer
            // resets it (the increments it saw stop counting; `rmw::written_over`).
            WriteContext::Everything => (current.context(), rmw::written_over(write.value, current, now, origin)),
        };
        // A set or a hash records what its write observed (`OrMap::witness`).
        let mut value = value;
        if let Some(v) = value.as_mut() {
            v.witness(&ctx);
        }
        // And of the convergent states of other kinds it superseded, their resets (a string
        // over a counter: what it observed never counts again).
        let resets = match self.context {
            WriteContext::Everything => current.resets_for(value.as_ref().map(Value::kind), now, origin),
            WriteContext::Given(_) => Vec::new(),
        };
        let sibling = Sibling {
            value,
            written_ms: now,
            origin,
            expires_ms: write.expires_ms,
            resets,
            flush_seen: self.flush_seen,
        };
        current.update(&ctx, sibling).0
    }
}

pub struct Replica {
    storage: Arc<Storage>,
    /// This node's id (a hint "for" it is its own data).
    me: String,
    /// The actors this node's writes are events of.
    actors: Actors,
    /// Serialises hinted writes (see [`Replica::write`]).
    hinted_writes: Mutex<()>,
    /// Told of every write stored here (clients blocked on a key wait there).
    wakeups: Arc<Wakeups>,
    /// The foreground's latency, and the gate background work passes before each batch it
    /// reads or writes here (paper 6.5).
    admission: Arc<Admission>,
    /// The most siblings a write made here may leave a key with (`--max-siblings`).
    max_siblings: AtomicUsize,
}

/// The join of the counter states `set`'s siblings hold (what a write over it observed); none
/// when no sibling is a counter (a string key's tombstones make no counter).
fn observed_counters(set: Option<&SiblingSet>) -> Counter {
    set.filter(|s| s.holds_counter()).map(SiblingSet::counter).unwrap_or_default()
}

/// The merge of every set in `sets`.
pub fn merge_all<'a>(sets: impl Iterator<Item = &'a SiblingSet>) -> SiblingSet {
    let mut merged: Option<SiblingSet> = None;
    for set in sets {
        merged = Some(match merged {
            None => set.clone(),
            Some(m) => m.sync(set),
        });
    }
    merged.unwrap_or_default()
}

impl Replica {
    /// This node's copy in `storage`, written by a new incarnation of node `me`.
    pub fn new(storage: Arc<Storage>, me: &str) -> Replica {
        Replica {
            storage,
            me: me.to_owned(),
            actors: Actors::new(me),
            hinted_writes: Mutex::new(()),
            wakeups: Arc::new(Wakeups::new()),
            admission: Arc::new(Admission::new(crate::admission::DEFAULT_TARGET)),
            max_siblings: AtomicUsize::new(MAX_SIBLINGS),
        }
    }

    /// Sets the most siblings a write made here may leave a key with.
    pub fn set_max_siblings(&self, max: usize) {
        self.max_siblings.store(max.max(1), Ordering::Relaxed);
    }

    /// The admission control of background work on this node's store.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// Who waits for the writes stored here.
    pub fn wakeups(&self) -> &Arc<Wakeups> {
        &self.wakeups
    }

    /// This node's id: `given`, or the one kept in `storage`, or a new one from `generate`
    /// (kept from now on).
    ///
    /// # Errors
    /// Storage failure.
    pub fn node_id(storage: &Storage, given: Option<&str>, generate: impl FnOnce() -> String) -> Result<String> {
        let stored = storage.meta_get("node_id")?;
        let id = match (given, stored.as_deref()) {
            (Some(id), Some(s)) if s == id.as_bytes() => return Ok(id.to_owned()),
            (Some(id), _) => id.to_owned(),
            (None, Some(s)) => return Ok(String::from_utf8_lossy(s).into_owned()),
            (None, None) => generate(),
        };
        storage.meta_put("node_id", id.as_bytes())?;
        Ok(id)
    }

    /// Keeps a value of the cluster's state (`cluster/` owns its meaning), synced at once.
    ///
    /// # Errors
    /// Storage failure.
    pub fn save_ring_state(&self, name: &str, value: &[u8]) -> Result<()> {
        self.storage.ring_put(name, value)
    }

    /// Reads and scans (writes go through the methods below).
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// This node's data for `key`.
    ///
    /// # Errors
    /// Storage failure.
    pub fn get(&self, key: &[u8]) -> Result<Option<Arc<SiblingSet>>> {
        self.storage.get(key)
    }

    /// This node's own copy of `key`: its data merged with any hinted copies it holds.
    ///
    /// # Errors
    /// Storage failure.
    pub fn local(&self, key: &[u8]) -> Result<Option<Arc<SiblingSet>>> {
        let data = self.storage.get(key)?;
        let hints = self.storage.hints_of(key)?;
        if hints.is_empty() {
            return Ok(data);
        }
        let merged = merge_all(data.as_deref().into_iter().chain(hints.iter().map(|(_, s)| s)));
        Ok(Some(self.storage.unflushed(key, Arc::new(merged))))
    }

    /// A new version of `key` made here, under the key's lock: as data, or (for a stand-in)
    /// as a hint for the owner `hint_for` it replaces. Returns the set after it.
    ///
    /// A write with a context that would leave the key with more than `--max-siblings`
    /// siblings, or with siblings of more than [`max_sibling_bytes`] in all, is refused: the
    /// client is to read the siblings and write back their merge (Riak's `max_siblings`). So a
    /// client's blind writes cannot grow a key without bound, and every key fits a peer frame
    /// (transfers, hints and anti-entropy move it whole). Writes over everything this copy
    /// holds (SET and the like) leave one sibling and are never refused.
    ///
    /// # Errors
    /// Storage failure, or too many siblings (nothing is written).
    pub fn write(
        &self,
        key: &[u8],
        context: &WriteContext,
        write: Write,
        hint_for: Option<&str>,
    ) -> std::result::Result<Arc<SiblingSet>, WriteError> {
        let max = self.max_siblings.load(Ordering::Relaxed);
        let written = self.write_with(key, context, hint_for, |current, w| {
            if let (Some(current), WriteContext::Given(seen)) = (current, context) {
                let (kept, bytes) = current.kept_by(seen);
                let adds = write.value.as_ref().map_or(0, Value::size);
                if kept + 1 > max || bytes + adds > max_sibling_bytes() {
                    return Err(WriteError::Siblings { kept, max });
                }
            }
            let origin = w.actor(current);
            Ok(Some(w.after(current, origin, write)))
        })?;
        self.wakeups.touched(key);
        Ok(written.0.unwrap_or_default())
    }

    /// A read-modify-write of `key` under its lock (atomic with every other write made here):
    /// `op` sees this copy's live value and decides (see [`Modified`]).
    ///
    /// # Errors
    /// Storage failure, or the operation's own error (nothing is written then).
    pub fn modify(&self, key: &[u8], op: &Rmw, hint_for: Option<&str>) -> std::result::Result<Modified, ModifyError> {
        let Batch { written, patch, outcomes } = self.modify_many(key, std::slice::from_ref(op), hint_for)?;
        let outcome = match outcomes.into_iter().next() {
            Some(outcome) => outcome?,
            None => Outcome::default(),
        };
        Ok(Modified { written, patch, outcome })
    }

    /// Read-modify-writes of `key` made one after another under its lock, each as it would be
    /// alone (it sees the ones before it and is an event of its own, with its own dot), and
    /// stored once: one store, one patch and one replication for them all. An operation's
    /// error writes nothing of it and is its own outcome; the others go on.
    ///
    /// # Errors
    /// Storage failure (nothing is written).
    pub fn modify_many(&self, key: &[u8], ops: &[Rmw], hint_for: Option<&str>) -> Result<Batch> {
        let mut outcomes = Vec::with_capacity(ops.len());
        let (written, patch) =
            self.write_with::<StorageError>(key, &WriteContext::Everything, hint_for, |current, w| {
                let mut next: Option<SiblingSet> = None;
                for op in ops {
                    let now = now_ms();
                    let before = next.as_ref().or(current);
                    let origin = w.actor(before);
                    let found = before.and_then(|s| s.resolve(now));
                    let observed = observed_counters(before);
                    // The dot this write gets (`DvvSet::update` over this copy's own context).
                    let seen = before.and_then(|s| s.counters().find(|&(a, _)| a == origin)).map_or(0, |(_, n)| n);
                    let dot = Dot { actor: origin, counter: seen + 1 };
                    match rmw::apply(op, found, &observed, now, dot) {
                        Ok((new, outcome)) => {
                            outcomes.push(Ok(outcome));
                            if let Some(n) = new {
                                let after = w.after(before, origin, Write { value: n.value, expires_ms: n.expires_ms });
                                next = Some(after);
                            }
                        }
                        Err(e) => outcomes.push(Err(ModifyError::Rmw(e))),
                    }
                }
                Ok(next)
            })?;
        if written.is_some() {
            self.wakeups.touched(key);
        }
        Ok(Batch { written, patch, outcomes })
    }

    /// Stores the set `decide` makes of this copy of `key` under the key's lock (nothing when
    /// it returns `None`): as data, or (for a stand-in) as a hint for the owner `hint_for` it
    /// replaces. `decide` makes its writes with the [`Writer`] it is given. Returns the set
    /// after it, and the write as a patch when storage made one.
    fn write_with<E: From<StorageError>>(
        &self,
        key: &[u8],
        context: &WriteContext,
        hint_for: Option<&str>,
        decide: impl FnOnce(Option<&SiblingSet>, &Writer<'_>) -> std::result::Result<Option<SiblingSet>, E>,
    ) -> std::result::Result<(Option<Arc<SiblingSet>>, Option<Patch>), E> {
        // The flushes this write has seen: read before the copy it supersedes is (whatever
        // storage applies to that copy is at least this).
        let flush_seen = Some(self.storage.flush_cutoff(key));
        let writer = |kind| Writer { replica: self, key, context, kind, flush_seen };
        let decided = |d: std::result::Result<Option<SiblingSet>, E>| match d {
            Ok(Some(set)) => Ok(set),
            Ok(None) => Err(Decided::Nothing),
            Err(e) => Err(Decided::Failed(e)),
        };
        match hint_for {
            None => {
                let w = writer(Copy::Data);
                let set = self.storage.update_patched::<Decided<E>>(key, |current| decided(decide(current, &w)));
                match set {
                    Ok((set, patch)) => Ok((Some(set), patch)),
                    Err(Decided::Nothing) => Ok((None, None)),
                    Err(Decided::Failed(e)) => Err(e),
                }
            }
            Some(owner) => {
                // A stand-in's copy of the key: every hint it holds for it. Hinted writes are
                // made one at a time, so two of them never continue the same entry at once.
                let _one_at_a_time = self.hinted_writes.lock();
                let others: Vec<SiblingSet> =
                    self.storage.hints_of(key)?.into_iter().filter(|(o, _)| o != owner).map(|(_, s)| s).collect();
                let w = writer(Copy::Hint);
                let set = self.storage.hint_update::<Decided<E>>(owner, key, |current| {
                    let known = merge_all(current.into_iter().chain(others.iter()));
                    let known = (!known.is_empty() || current.is_some()).then_some(&known);
                    decided(decide(known, &w))
                });
                match set {
                    Ok(set) => Ok((Some(Arc::new(set)), None)),
                    Err(Decided::Nothing) => Ok((None, None)),
                    Err(Decided::Failed(e)) => Err(e),
                }
            }
        }
    }

    /// Merges a set that arrived (replication, read repair, hinted handoff, a transfer,
    /// anti-entropy) into this node's data, or into its hint for `hint_for` when it stands in
    /// for that owner. The one merge of every path (a merge that changes nothing writes
    /// nothing).
    ///
    /// # Errors
    /// Storage failure.
    pub fn merge(&self, key: &[u8], set: &SiblingSet, hint_for: Option<&str>) -> Result<()> {
        match hint_for {
            Some(owner) if owner != self.me => {
                self.storage.hint_update::<StorageError>(owner, key, |cur| {
                    Ok(cur.map_or_else(|| set.clone(), |c| c.sync(set)))
                })?;
            }
            _ => {
                self.storage.merge(key, set)?;
            }
        }
        self.wakeups.touched(key);
        Ok(())
    }

    /// Applies a write another node made as a patch of the version it replaced (see
    /// [`Patch`]) when this node's data holds that version, waiting until `deadline` for it
    /// (see `Storage::apply_patch_when_based`); `false` when it did not come (the sender then
    /// sends the whole set to [`Replica::merge`]).
    ///
    /// # Errors
    /// Storage failure.
    pub async fn apply_patch_when_based(
        &self,
        key: &[u8],
        patch: &Patch,
        deadline: tokio::time::Instant,
    ) -> Result<bool> {
        let applied = self.storage.apply_patch_when_based(key, patch, deadline).await?;
        if applied {
            self.wakeups.touched(key);
        }
        Ok(applied)
    }

    /// This node's own copy of `key` for a reader holding the version with `digest` that has
    /// seen the events `seen` and applied the flushes up to `flushed_to`: `None` when the copy
    /// holds nothing new to it (the same version, or one whose events it has all seen, which a
    /// merge would not change), else the copy. A copy that a flush the reader has not applied
    /// dropped values from is always new to it: the merge drops them at the reader too.
    /// `exact`: only the same version is nothing new (a plain read repairs an older copy).
    ///
    /// # Errors
    /// Storage failure.
    pub fn unless_same(
        &self,
        key: &[u8],
        digest: u64,
        seen: &crate::version::VersionVector,
        flushed_to: u64,
        exact: bool,
    ) -> Result<Option<Option<Arc<SiblingSet>>>> {
        let (set, d) = self.local_with_digest(key)?;
        let flushed_here = self.storage.flush_cutoff(key) > flushed_to;
        let older = || !exact && seen.descends(&set.as_deref().map(SiblingSet::context).unwrap_or_default());
        let known = !flushed_here && (d == Some(digest) || older());
        Ok((!known).then_some(set))
    }

    /// This node's own copy of `key` (as [`Replica::local`]) and, when that is its stored
    /// data as it is (no hint merged in, nothing a flush dropped), the data's digest: what a
    /// replica compares to answer a read with "the same as yours".
    ///
    /// # Errors
    /// Storage failure.
    pub fn local_with_digest(&self, key: &[u8]) -> Result<(Option<Arc<SiblingSet>>, Option<u64>)> {
        if self.storage.has_hints_of(key)? {
            return Ok((self.local(key)?, None));
        }
        self.storage.get_with_digest(key)
    }

    /// Removes `key`'s data if it still satisfies `dead` (checked under the key's lock).
    ///
    /// # Errors
    /// Storage failure.
    pub fn remove_if(&self, key: &[u8], dead: impl FnOnce(&SiblingSet) -> bool) -> Result<bool> {
        self.storage.remove_if(key, dead)
    }

    /// Drops the hint for `owner` of `key` if it is still `delivered` (a later hinted write
    /// keeps it).
    ///
    /// # Errors
    /// Storage failure.
    pub fn remove_hint_if(&self, owner: &str, key: &[u8], delivered: impl FnOnce(&SiblingSet) -> bool) -> Result<bool> {
        self.storage.remove_hint_if(owner, key, delivered)
    }

    /// Hands the keys storage moved to their hash tag's position at startup
    /// (`Storage::take_relocated`), when this node is not one of their replicas now
    /// (`replicas_of`: the replicas of a key, empty when unknown), to those replicas: kept as
    /// hints for each of them (hinted handoff delivers them) and dropped from this node's
    /// data, before the cleanup of partitions it does not replicate would drop them. Returns
    /// how many it handed on.
    ///
    /// # Errors
    /// Storage failure.
    pub fn rehome(&self, replicas_of: impl Fn(&[u8]) -> Vec<String>) -> Result<usize> {
        let mut handed = 0;
        for key in self.storage.take_relocated() {
            let replicas = replicas_of(&key);
            if replicas.is_empty() || replicas.contains(&self.me) {
                continue;
            }
            let Some(set) = self.storage.get(&key)? else { continue };
            for owner in &replicas {
                self.storage.hint_update::<StorageError>(owner, &key, |cur| {
                    Ok(cur.map_or_else(|| (*set).clone(), |c| c.sync(&set)))
                })?;
            }
            self.storage.commit()?;
            self.storage.remove_if(&key, |_| true)?;
            handed += 1;
        }
        if handed > 0 {
            self.storage.commit()?;
            tracing::info!(keys = handed, "handed keys moved by their hash tag to their replicas (as hints)");
        }
        Ok(handed)
    }

    /// Drops every key of partition `p` of `q` (handed off to its new replicas).
    ///
    /// # Errors
    /// Storage failure.
    pub fn drop_partition(&self, p: u32, q: u32) -> Result<u64> {
        self.storage.remove_partition(p, q)
    }

    /// A mark covering every write made so far.
    pub fn write_mark(&self) -> u64 {
        self.storage.write_mark()
    }

    pub fn is_committed(&self, mark: u64) -> bool {
        self.storage.is_committed(mark)
    }

    /// Makes the writes up to `mark` durable (one journal flush for all written meanwhile).
    ///
    /// # Errors
    /// Storage failure: those writes must not be acknowledged.
    pub fn commit_upto(&self, mark: u64) -> Result<()> {
        self.storage.commit_upto(mark)
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    /// Storage failure.
    pub fn commit(&self) -> Result<()> {
        self.storage.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rmw::Rmw;
    use crate::version::Value;

    /// Issue 22: a key storage moved to its hash tag's position in a partition this node does
    /// not replicate goes to that partition's replicas as hints (handoff delivers them), and
    /// leaves the data; one this node replicates stays.
    #[test]
    fn keys_moved_by_their_tag_go_to_their_replicas() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let replica =
            Replica::new(Storage::open(dir.path(), crate::storage::FsyncPolicy::Never).expect("storage"), "n1");
        let set = |k: &[u8]| replica.modify(k, &Rmw::SAdd { members: vec![bytes::Bytes::from("m")] }, None);
        set(b"{a}x").expect("SADD");
        set(b"{b}x").expect("SADD");
        replica.storage().note_relocated(b"{a}x");
        replica.storage().note_relocated(b"{b}x");
        let handed = replica
            .rehome(|k| if k == b"{a}x" { vec!["n2".into(), "n3".into()] } else { vec!["n3".into(), "n1".into()] })
            .expect("rehome");
        assert_eq!(handed, 1);
        assert!(replica.storage().get(b"{a}x").expect("read").is_none(), "left the data");
        let hints = replica.storage().hints_of(b"{a}x").expect("hints");
        assert_eq!(hints.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(), vec!["n2", "n3"]);
        assert!(replica.storage().get(b"{b}x").expect("read").is_some(), "a replica keeps its key");
    }

    /// A reader ahead of this copy (it has seen all of its events) or at its version gets
    /// "nothing new"; one behind, or concurrent, gets the copy.
    #[test]
    fn a_copy_is_nothing_new_to_a_reader_that_has_seen_all_of_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let replica =
            Replica::new(Storage::open(dir.path(), crate::storage::FsyncPolicy::Never).expect("storage"), "n1");
        let sadd = |m: &str| Rmw::SAdd { members: vec![bytes::Bytes::copy_from_slice(m.as_bytes())] };
        let old = replica.modify(b"s", &sadd("a"), None).expect("SADD").written.expect("a write");
        let (_, old_digest) = replica.local_with_digest(b"s").expect("read");
        let now = replica.modify(b"s", &sadd("b"), None).expect("SADD").written.expect("a write");
        let (_, digest) = replica.local_with_digest(b"s").expect("read");
        let digest = digest.expect("a digest");
        // The same version.
        assert!(replica.unless_same(b"s", digest, &now.context(), 0, false).expect("read").is_none());
        // A reader ahead: another replica made a later version of this one.
        let ahead = Replica::new(
            Storage::open(&dir.path().join("ahead"), crate::storage::FsyncPolicy::Never).expect("storage"),
            "n2",
        );
        ahead.merge(b"s", &now, None).expect("merge");
        let later = ahead.modify(b"s", &sadd("c"), None).expect("SADD").written.expect("a write");
        assert!(replica.unless_same(b"s", 0xdead, &later.context(), 0, false).expect("read").is_none());
        // A plain read (exact) takes the same version only: an older copy is sent to be repaired.
        assert!(replica.unless_same(b"s", 0xdead, &later.context(), 0, true).expect("read").is_some());
        // A reader behind (the old version) or concurrent gets this copy.
        let behind = replica.unless_same(b"s", old_digest.expect("a digest"), &old.context(), 0, false).expect("read");
        assert_eq!(behind.flatten().as_deref(), Some(&*now));
        let other = Replica::new(
            Storage::open(&dir.path().join("other"), crate::storage::FsyncPolicy::Never).expect("storage"),
            "n3",
        );
        let concurrent = other.modify(b"s", &sadd("z"), None).expect("SADD").written.expect("a write");
        assert!(replica.unless_same(b"s", 0xdead, &concurrent.context(), 0, false).expect("read").is_some());
    }

    /// Issue 20, item 3: a replica that applied a flush keeps the key's clock and drops its
    /// values; to a reader that has not applied the flush that copy is never "the same",
    /// whatever its clock (the reader merges it and so drops the flushed values too).
    #[test]
    fn a_copy_a_flush_emptied_is_new_to_a_reader_that_missed_the_flush() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let replica =
            Replica::new(Storage::open(dir.path(), crate::storage::FsyncPolicy::Never).expect("storage"), "n1");
        let sadd = |m: &str| Rmw::SAdd { members: vec![bytes::Bytes::copy_from_slice(m.as_bytes())] };
        let written = replica.modify(b"s", &sadd("a"), None).expect("SADD").written.expect("a write");
        let (_, digest) = replica.local_with_digest(b"s").expect("read");
        let digest = digest.expect("a digest");
        assert!(replica.unless_same(b"s", digest, &written.context(), 0, false).expect("read").is_none());
        let mut marks = crate::flushes::FlushMarks::default();
        marks.mark(None, now_ms() + 1);
        let cutoff = replica.storage().flush_cutoff(b"s");
        assert_eq!(cutoff, 0);
        if let Some(purge) = replica.storage().install_flush_marks(&marks) {
            replica.storage().purge(purge, || {}).expect("purge");
        }
        let answer = replica.unless_same(b"s", digest, &written.context(), 0, false).expect("read");
        let copy = answer.expect("not 'same' to a reader that missed the flush").expect("the clock is kept");
        assert_eq!(copy.get(now_ms()), None);
        // Merged into the reader's copy, the flushed copy drops what the flush dropped.
        assert_eq!(written.sync(&copy).resolve(now_ms()), None);
        // A reader that applied the flush too gets "same" again.
        let flushed_to = replica.storage().flush_cutoff(b"s");
        assert!(replica.unless_same(b"s", 0xdead, &copy.context(), flushed_to, false).expect("read").is_none());
    }

    /// Issue 20, item 7: an expired state never counts again, whichever replica reaped it. A
    /// replica that reaped the key (nothing left) makes a counter and a set anew; another
    /// replica still holds the expired ones; their merge reads only the new ones.
    #[test]
    fn an_expired_state_never_counts_again_after_a_merge() {
        use crate::version::{Actor, Counter, OrSet, Sibling, VersionVector};
        let dir = tempfile::tempdir().expect("a temp dir");
        let replica =
            Replica::new(Storage::open(dir.path(), crate::storage::FsyncPolicy::Never).expect("storage"), "n1");
        let expired = |value: Value| {
            // Written at 1 ms, expired at 2 ms (since the Unix epoch): long gone, not reaped.
            let sib = Sibling {
                value: Some(value),
                written_ms: 1,
                origin: Actor(77 << 24),
                expires_ms: Some(2),
                resets: Vec::new(),
                flush_seen: None,
            };
            SiblingSet::new().update(&VersionVector::default(), sib).0
        };
        let old = Dot { actor: Actor(77 << 24), counter: 1 };
        let mut count = Counter::default();
        count.add(old, 5);
        replica.modify(b"limit", &Rmw::IncrBy { by: 1 }, None).expect("INCR");
        replica.merge(b"limit", &expired(Value::Counter(count)), None).expect("merge");
        let read = replica.get(b"limit").expect("read").expect("a copy");
        assert_eq!(read.get(now_ms()), Some(bytes::Bytes::from("1")));
        let mut set = OrSet::default();
        set.insert(bytes::Bytes::from("old"), old, ());
        replica.modify(b"s", &Rmw::SAdd { members: vec![bytes::Bytes::from("new")] }, None).expect("SADD");
        replica.merge(b"s", &expired(Value::Set(set)), None).expect("merge");
        let read = replica.get(b"s").expect("read").expect("a copy");
        let Some(Value::Set(members)) = read.resolve(now_ms()).map(|r| r.value) else { panic!("a set") };
        assert_eq!(members.members().cloned().collect::<Vec<_>>(), vec![bytes::Bytes::from("new")]);
    }

    /// Issue 23: read-modify-writes decided together (`modify_many`) are each what they would
    /// be alone, in order: each sees the ones before it and is an event of its own (a member
    /// added, removed and added again is there, under a new dot), an operation's error is
    /// its own, and the batch is one store.
    #[test]
    fn operations_decided_together_are_each_as_alone() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let storage = Storage::open(dir.path(), crate::storage::FsyncPolicy::Never).expect("storage");
        let replica = Replica::new(storage, "n1");
        let m = |s: &str| bytes::Bytes::copy_from_slice(s.as_bytes());
        let ops = [
            Rmw::SAdd { members: vec![m("x")] },
            Rmw::SRem { members: vec![m("x")] },
            Rmw::SAdd { members: vec![m("x"), m("y")] },
            Rmw::IncrBy { by: 1 },
            Rmw::SAdd { members: vec![m("y"), m("z")] },
        ];
        let before = replica.write_mark();
        let batch = replica.modify_many(b"s", &ops, None).expect("the batch");
        assert_eq!(replica.write_mark() - before, 1, "one store for the batch");
        let ints: Vec<_> =
            batch.outcomes.iter().map(|o| o.as_ref().map(|o| o.int).map_err(|e| e.to_string())).collect();
        assert_eq!(ints[..3], [Ok(1), Ok(1), Ok(2)]);
        assert!(matches!(batch.outcomes[3], Err(ModifyError::Rmw(crate::rmw::RmwError::WrongType))), "{ints:?}");
        assert_eq!(ints[4], Ok(1));
        let written = batch.written.expect("a write");
        assert_eq!(replica.get(b"s").expect("read").as_deref(), Some(&*written));
        let Some(Value::Set(members)) = written.resolve(now_ms()).map(|r| r.value) else { panic!("a set") };
        let mut names: Vec<_> = members.members().cloned().collect();
        names.sort();
        assert_eq!(names, [m("x"), m("y"), m("z")]);
        // Four writes, four events of this node's actor.
        let (_, events) = written.counters().next().expect("one actor");
        assert_eq!(events, 4);
        // Alone, one after another, the same outcomes.
        for (op, together) in ops.iter().zip(&batch.outcomes) {
            let alone = replica.modify(b"t", op, None).map(|m| m.outcome);
            assert_eq!(alone.as_ref().map_err(ToString::to_string), together.as_ref().map_err(ToString::to_string));
        }
    }

    /// The dot a set's members get is the dot the DVV gives the write (what makes element dots
    /// unique), for a first write, a later one, and one over a copy a merge brought in.
    #[test]
    fn members_get_the_dot_of_their_write() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let storage = Storage::open(dir.path(), crate::storage::FsyncPolicy::Never).expect("storage");
        let replica = Replica::new(storage, "n1");
        let check = |member: &str| {
            let op = Rmw::SAdd { members: vec![bytes::Bytes::copy_from_slice(member.as_bytes())] };
            let set = replica.modify(b"s", &op, None).expect("SADD").written.expect("a write");
            let (dot, sibling) = set.dotted().max_by_key(|(d, _)| d.counter).expect("a sibling");
            let Some(Value::Set(s)) = &sibling.value else { panic!("a set") };
            let dots: Vec<Dot> = s.dots_of(member.as_bytes()).collect();
            assert_eq!(dots, vec![dot], "{member}");
        };
        check("a");
        check("b");
        // Another node's version merged in: the next write still gets the DVV's dot.
        let other = Replica::new(
            Storage::open(&dir.path().join("other"), crate::storage::FsyncPolicy::Never).expect("storage"),
            "n2",
        );
        let op = Rmw::SAdd { members: vec![bytes::Bytes::from_static(b"x")] };
        let theirs = other.modify(b"s", &op, None).expect("SADD").written;
        replica.merge(b"s", &theirs.expect("a write"), None).expect("merge");
        check("c");
    }
}
