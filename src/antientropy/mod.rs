//! Anti-entropy (paper 4.7): replicas of a partition compare Merkle trees and exchange only the
//! keys under the leaves that differ, so replicas converge even when hints were lost with the
//! node that held them, or a disk died.
//!
//! The leaves ([`tree::Leaves`]) are kept by every write through the storage observer, and
//! rebuilt from storage when the node starts (a scan of digests, no decoding). Every
//! `--aae-interval` seconds (or at once on `KURA AAE`) the node walks the partitions it
//! replicates and, for each other replica that is up, compares roots; only where they differ
//! does it ask for the inner hashes, then the leaves of differing groups, then the keys and
//! digests of differing leaves; the sets that differ are fetched and pushed, and both sides
//! merge (never overwrite). Exchanges run one at a time with a pause between partitions, so
//! that the foreground's latency does not notice; replicas that agree cost one root each.

pub mod tree;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::cluster::{Cluster, ClusterError};
use crate::metrics as m;
use crate::peer::{Request, Response};
use crate::replica::Replica;
use crate::ring::NodeId;
use crate::storage::{Storage, StorageError, WriteObserver};
use crate::version::SiblingSet;
use tree::Leaves;

/// Pause between two partitions' exchanges.
const PACE: Duration = Duration::from_millis(5);

/// What anti-entropy did, for INFO and metrics.
#[derive(Default)]
pub struct Stats {
    pub exchanges: AtomicU64,
    pub keys_repaired: AtomicU64,
    pub bytes: AtomicU64,
    /// Unix seconds of the last finished round (0: none yet).
    pub last_round: AtomicU64,
}

struct Observer(Arc<Leaves>);

impl WriteObserver for Observer {
    fn changed(&self, prefix: u64, key: &[u8], old: Option<u64>, new: Option<u64>) {
        self.0.change(prefix, key, old, new);
    }
}

pub struct AntiEntropy {
    /// Reads and scans.
    storage: Arc<Storage>,
    /// Repairs are merged through this node's replica.
    replica: Arc<Replica>,
    cluster: Arc<Cluster>,
    leaves: Arc<Leaves>,
    /// True once the leaves cover every stored key (built at open, or by the walk in the
    /// background for a large store).
    built: watch::Sender<bool>,
    pub stats: Stats,
    trigger: Notify,
    interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AaeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("unexpected answer from {0}")]
    Unexpected(NodeId),
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Leaves kept up to date with every change from now on, and the walk (of a snapshot taken
/// now) that adds what is stored already: once it has run, they cover every key, whatever was
/// written meanwhile.
fn observed_leaves(storage: &Arc<Storage>) -> (Arc<Leaves>, impl FnOnce() -> Result<(), StorageError>) {
    let leaves = Arc::new(Leaves::default());
    let snapshot = storage.observe_from_snapshot(Arc::new(Observer(leaves.clone())));
    let (storage, walked) = (storage.clone(), leaves.clone());
    let walk =
        move || storage.for_each_digest_in(&snapshot, |prefix, key, d| walked.change(prefix, key, None, Some(d)));
    (leaves, walk)
}

impl AntiEntropy {
    /// Builds the leaves from what `storage` holds and keeps them up to date from now on. The
    /// leaves are the XOR of every key's mixed digest, so the walk of a snapshot and the
    /// changes made after it (which the observer applies meanwhile) add up in any order. A
    /// store of more than `walk_at_open_keys` keys (the engine's estimate,
    /// `--aae-walk-at-open-keys`) is walked on a thread of its own, so that a restart does not
    /// wait for a walk of every key: rounds and peers' questions wait for it. A smaller one is
    /// walked here (tens of milliseconds), so that a new node's first round never waits.
    ///
    /// # Errors
    /// Storage failure while scanning (a small store's walk).
    pub fn open(
        replica: Arc<Replica>,
        cluster: Arc<Cluster>,
        interval: Duration,
        walk_at_open_keys: usize,
    ) -> Result<Arc<AntiEntropy>, StorageError> {
        let storage = replica.storage().clone();
        let (leaves, walk) = observed_leaves(&storage);
        let large = storage.approximate_keys() > walk_at_open_keys;
        let (built, _) = watch::channel(false);
        let aae = Arc::new(AntiEntropy {
            storage,
            replica,
            cluster,
            leaves,
            built,
            stats: Stats::default(),
            trigger: Notify::new(),
            interval,
        });
        if !large {
            walk()?;
            aae.built.send_replace(true);
            return Ok(aae);
        }
        let weak = Arc::downgrade(&aae);
        std::thread::Builder::new()
            .name("kura-aae-leaves".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                match walk() {
                    Ok(()) => {
                        tracing::info!("anti-entropy leaves built in {:?}", started.elapsed());
                        if let Some(aae) = weak.upgrade() {
                            aae.built.send_replace(true);
                        }
                    }
                    Err(e) => {
                        tracing::error!("building the anti-entropy leaves failed (no exchanges until a restart): {e}")
                    }
                }
            })
            .map_err(|source| StorageError::Open { path: "anti-entropy leaves".into(), source })?;
        Ok(aae)
    }

    /// Waits until the leaves cover every stored key.
    pub async fn built(&self) {
        let _ = self.built.subscribe().wait_for(|b| *b).await;
    }

    /// Starts a round now (`KURA AAE`).
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }

    /// Runs rounds every interval (and when triggered) until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let forced = tokio::select! {
                _ = tokio::time::sleep(self.interval) => false,
                _ = self.trigger.notified() => true,
                _ = shutdown.changed() => return,
            };
            if let Err(e) = self.round(forced).await {
                tracing::warn!("anti-entropy round failed: {e}");
            }
        }
    }

    /// One pass over the partitions this node replicates. Each pair of replicas is exchanged
    /// by the one with the smaller id, unless `all` (then by this node for every pair).
    async fn round(&self, all: bool) -> Result<(), AaeError> {
        self.built().await;
        // An exchange repairs this node's copy too: not while its disk refuses writes.
        if self.replica.storage().health().trouble().is_some() {
            return Ok(());
        }
        let view = self.cluster.view();
        let Some(state) = view.state.as_ref() else { return Ok(()) };
        if state.ring.in_transition() {
            return Ok(());
        }
        let q = state.ring.size();
        let me = self.cluster.me().clone();
        let work: Vec<(u32, Vec<NodeId>)> = (0..q)
            .filter_map(|p| {
                let prefs = view.partition_replicas(p);
                prefs.iter().any(|r| r == &me).then(|| {
                    let peers = prefs.iter().filter(|r| **r != me && (all || me < **r)).cloned().collect();
                    (p, peers)
                })
            })
            .collect();
        drop(view);
        let mut gate = self.replica.admission().gate();
        for (p, peers) in work {
            // Each partition's exchanges after the foreground, when it is slow (paper 6.5).
            if !peers.is_empty() {
                gate.admit().await;
            }
            let mut synced = true;
            for peer in peers {
                if !self.cluster.is_up(&peer) {
                    synced = false;
                    continue;
                }
                if let Err(e) = self.exchange(p, q, &peer).await {
                    synced = false;
                    tracing::debug!(partition = p, peer = %peer, "exchange failed: {e}");
                }
            }
            if synced {
                metrics::gauge!(m::AAE_LAST_SYNC, "partition" => p.to_string()).set(unix_now() as f64);
            }
            tokio::time::sleep(PACE).await;
        }
        self.stats.last_round.store(unix_now(), Ordering::Relaxed);
        Ok(())
    }

    fn count_bytes(&self, n: usize) {
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!(m::AAE_BYTES_TOTAL).increment(n as u64);
    }

    /// Compares partition `p` with `peer` top-down and repairs the keys that differ, both
    /// ways. Returns how many keys were repaired.
    pub async fn exchange(&self, p: u32, q: u32, peer: &str) -> Result<u64, AaeError> {
        self.stats.exchanges.fetch_add(1, Ordering::Relaxed);
        let theirs = self.hashes(peer, Request::AaeRoot { partition: p, q }).await?;
        if theirs.first() == Some(&self.leaves.root(p, q)) {
            metrics::counter!(m::AAE_EXCHANGES_TOTAL, "result" => "in_sync").increment(1);
            return Ok(0);
        }
        let (mine, theirs) = (self.leaves.inner(p, q), self.hashes(peer, Request::AaeInner { partition: p, q }).await?);
        let mut leaves = Vec::new();
        for g in (0..mine.len()).filter(|&g| mine.get(g) != theirs.get(g)) {
            let Response::Leaves(their_leaves) =
                self.ask(peer, Request::AaeGroup { partition: p, q, group: g as u32 }).await?
            else {
                return Err(AaeError::Unexpected(peer.to_owned()));
            };
            self.count_bytes(their_leaves.len() * 12);
            let their: HashMap<u32, u64> = their_leaves.into_iter().collect();
            for (leaf, hash) in self.leaves.group(p, q, g) {
                if their.get(&(leaf as u32)) != Some(&hash) {
                    leaves.push(leaf);
                }
            }
        }
        let mut repaired = 0;
        for leaf in leaves {
            repaired += self.repair_leaf(peer, leaf).await?;
        }
        metrics::counter!(m::AAE_EXCHANGES_TOTAL, "result" => "repaired").increment(1);
        Ok(repaired)
    }

    async fn ask(&self, peer: &str, req: Request) -> Result<Response, AaeError> {
        self.count_bytes(16);
        Ok(self.cluster.call(peer, req).await?)
    }

    async fn hashes(&self, peer: &str, req: Request) -> Result<Vec<u64>, AaeError> {
        match self.ask(peer, req).await? {
            Response::Hashes(h) => {
                self.count_bytes(h.len() * 8);
                Ok(h)
            }
            _ => Err(AaeError::Unexpected(peer.to_owned())),
        }
    }

    /// Exchanges the keys of one leaf that differ between here and `peer`.
    async fn repair_leaf(&self, peer: &str, leaf: usize) -> Result<u64, AaeError> {
        let Response::Digests(theirs) = self.ask(peer, Request::AaeKeys { leaf: leaf as u32 }).await? else {
            return Err(AaeError::Unexpected(peer.to_owned()));
        };
        self.count_bytes(theirs.iter().map(|(k, _)| k.len() + 8).sum());
        let (lo, hi) = tree::leaf_range(leaf);
        let mine: HashMap<Bytes, u64> = self.storage.digests_in(lo, hi)?.into_iter().collect();
        let theirs: HashMap<Bytes, u64> = theirs.into_iter().collect();
        let fetch: Vec<Bytes> =
            theirs.iter().filter(|(k, d)| mine.get(*k) != Some(d)).map(|(k, _)| k.clone()).collect();
        let push: Vec<Bytes> = mine.iter().filter(|(k, d)| theirs.get(*k) != Some(d)).map(|(k, _)| k.clone()).collect();
        let mut repaired = 0;
        if !fetch.is_empty() {
            let Response::Sets(sets) = self.ask(peer, Request::AaeFetch { keys: fetch }).await? else {
                return Err(AaeError::Unexpected(peer.to_owned()));
            };
            for (key, set) in sets.into_iter().filter_map(|(k, s)| s.map(|s| (k, s))) {
                self.count_bytes(key.len() + set.encode().len());
                let before = self.storage.get(&key)?;
                self.replica.merge(&key, &set, None)?;
                if before != self.storage.get(&key)? {
                    repaired += 1;
                }
            }
            self.replica.commit()?;
        }
        if !push.is_empty() {
            let mut entries: Vec<(Bytes, SiblingSet)> = Vec::with_capacity(push.len());
            for key in push {
                if let Some(set) = self.storage.get(&key)? {
                    self.count_bytes(key.len() + set.encode().len());
                    entries.push((key, (*set).clone()));
                }
            }
            let pushed = entries.len() as u64;
            match self.ask(peer, Request::AaePush { entries }).await? {
                Response::Ack => repaired += pushed,
                _ => return Err(AaeError::Unexpected(peer.to_owned())),
            }
        }
        metrics::counter!(m::AAE_KEYS_REPAIRED_TOTAL).increment(repaired);
        self.stats.keys_repaired.fetch_add(repaired, Ordering::Relaxed);
        Ok(repaired)
    }

    /// Answers a peer's anti-entropy request (the `Aae*` requests).
    pub fn answer(&self, req: Request) -> Response {
        let result: Result<Response, StorageError> = match req {
            Request::AaeRoot { partition, q } => Ok(Response::Hashes(vec![self.leaves.root(partition, q)])),
            Request::AaeInner { partition, q } => Ok(Response::Hashes(self.leaves.inner(partition, q))),
            Request::AaeGroup { partition, q, group } => Ok(Response::Leaves(
                self.leaves.group(partition, q, group as usize).into_iter().map(|(l, h)| (l as u32, h)).collect(),
            )),
            Request::AaeKeys { leaf } => {
                let (lo, hi) = tree::leaf_range(leaf as usize);
                self.storage.digests_in(lo, hi).map(Response::Digests)
            }
            Request::AaeFetch { keys } => keys
                .into_iter()
                .map(|k| self.storage.get(&k).map(|s| (k, s.map(|s| (*s).clone()))))
                .collect::<Result<Vec<_>, _>>()
                .map(Response::Sets),
            _ => Ok(Response::Error(crate::peer::RemoteError::Failed("not an anti-entropy request".into()))),
        };
        result.unwrap_or_else(|e| Response::Error(crate::peer::RemoteError::Failed(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsyncPolicy;
    use crate::version::{Actor, Sibling};

    fn put(s: &Storage, key: &str, value: &str) {
        let sib = Sibling {
            value: Some(Bytes::from(value.to_owned()).into()),
            written_ms: 1,
            origin: Actor(1),
            expires_ms: None,
            resets: Vec::new(),
            flush_seen: None,
        };
        s.update::<StorageError>(key.as_bytes(), |cur| {
            let cur = cur.cloned().unwrap_or_default();
            Ok(cur.update(&cur.context(), sib).0)
        })
        .expect("a write");
    }

    /// Leaves built by a walk that runs after keys were written and removed (as the background
    /// walk of a large store does) equal leaves built by a walk of the final store: no change is
    /// counted twice or missed.
    #[test]
    fn leaves_walked_while_keys_change_cover_every_key_once() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let s = Storage::open(dir.path(), FsyncPolicy::Never).expect("a store");
        for i in 0..3000 {
            put(&s, &format!("k{i}"), "before");
        }
        let (leaves, walk) = observed_leaves(&s);
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in (0..3000).step_by(3) {
                    put(&s, &format!("k{i}"), "after");
                    put(&s, &format!("new{i}"), "added");
                    assert!(s.remove_if(format!("k{}", i + 1).as_bytes(), |_| true).expect("a removal"));
                }
            })
        };
        // The writes land between the snapshot and the walk (the walk of a large store runs
        // after the node serves): a walk of the live store would count them twice.
        writer.join().expect("the writer");
        walk().expect("the walk");
        let fresh = Leaves::default();
        s.for_each_digest(|prefix, key, d| fresh.change(prefix, key, None, Some(d))).expect("a walk");
        let differing = (0..tree::LEAVES).filter(|&l| leaves.leaf(l) != fresh.leaf(l)).count();
        assert_eq!(differing, 0, "leaves that differ from a walk of the final store");
        assert_ne!((0..tree::LEAVES).filter(|&l| fresh.leaf(l) != 0).count(), 0);
    }
}
