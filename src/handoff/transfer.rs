//! Partition transfers (paper 4.9): when the ring is in transition, every replica that the
//! future ring adds to a partition's preference list gets that partition's data from a current
//! replica, streamed in bounded batches, each acknowledged (and journaled) by the receiver
//! before the next is sent. The receiver merges, never overwrites, so a transfer that is
//! interrupted (either side killed) is simply done again after the restart. When a transfer
//! finished the sender tells the claimant, which flips the ring once all have; afterwards each
//! node drops the partitions it no longer replicates. At most `--transfer-limit` transfers run
//! from one node at a time (like Riak's `transfer_limit`), each at most `--transfer-rate`
//! bytes a second.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::admission::Gate;
use crate::cluster::Cluster;
use crate::metrics as m;
use crate::peer::{Request, Response};
use crate::replica::Replica;
use crate::ring::Transfer;
use crate::storage::Storage;

/// How often the transfer loop looks for transfers to start.
pub const EVERY: Duration = Duration::from_millis(500);
const BATCH_KEYS: usize = 512;
/// A batch carries at most this many bytes of encoded sets (members included), and at most a
/// quarter of a frame (`--max-frame-bytes`); a single larger set goes alone, as several frames.
const BATCH_BYTES: usize = 1 << 20;

/// What this node has moved, for KURA TRANSFERS, INFO and metrics.
#[derive(Default)]
pub struct Transfers {
    running: Mutex<HashSet<Transfer>>,
    pub keys_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub keys_received: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    /// When this node's current transition work began, and what it had sent then.
    started: Mutex<Option<(Instant, u64, u64)>>,
    /// Wakes the loop when a transfer ends, so the next one starts at once.
    ended: tokio::sync::Notify,
}

impl Transfers {
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }

    pub fn received(&self, keys: u64) {
        self.keys_received.fetch_add(keys, Ordering::Relaxed);
    }

    /// Bytes per second sent since the current transition's work began here, and the
    /// transfers completed since then.
    pub fn rate(&self) -> Option<(f64, u64)> {
        let (since, bytes0, done0) = (*self.started.lock())?;
        let secs = since.elapsed().as_secs_f64().max(0.001);
        let bytes = self.bytes_sent.load(Ordering::Relaxed) - bytes0;
        Some((bytes as f64 / secs, self.completed.load(Ordering::Relaxed) - done0))
    }

    /// Seconds per completed transfer so far in this transition.
    pub fn seconds_per_transfer(&self) -> Option<f64> {
        let (since, _, done0) = (*self.started.lock())?;
        let done = self.completed.load(Ordering::Relaxed) - done0;
        (done > 0).then(|| since.elapsed().as_secs_f64() / done as f64)
    }
}

/// Runs transfers and cleanup until `shutdown` turns true.
pub async fn run(
    replica: Arc<Replica>,
    cluster: Arc<Cluster>,
    transfers: Arc<Transfers>,
    limit: usize,
    rate: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(EVERY);
    let mut cleaned_at = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = transfers.ended.notified() => {}
            _ = shutdown.changed() => return,
        }
        let view = cluster.view();
        let Some(state) = view.state.clone() else { continue };
        let n = cluster.settings().n;
        let me = cluster.me().clone();
        if !state.ring.in_transition() {
            *transfers.started.lock() = None;
            metrics::gauge!(m::TRANSFERS_PENDING).set(0.0);
            // Drop what this node no longer replicates, once per ring (the new replicas
            // confirmed every transfer before the ring flipped).
            if cleaned_at != state.ring.version {
                let q = state.ring.size();
                let gone: Vec<u32> = (0..q).filter(|&p| !view.replicates(p, &me)).collect();
                drop(view);
                // A walk and a delete of every key of those partitions: on a blocking thread,
                // a partition at a time after the foreground when it is slow. Each partition is
                // checked again just before (the gate may have waited while the ring moved on
                // and made this node a replica of it again), and the drops stop at shutdown.
                let version = state.ring.version;
                let (replica, cluster, me, stop) = (replica.clone(), cluster.clone(), me.clone(), shutdown.clone());
                let mut gate = replica.admission().gate();
                let drop_all = move || {
                    let mut dropped = 0;
                    let mut paced = false;
                    for p in gone {
                        if paced {
                            gate.admit_blocking();
                        }
                        let view = cluster.view();
                        let same = view.state.as_ref().is_some_and(|s| s.ring.version == version);
                        if !same || view.replicates(p, &me) || *stop.borrow() {
                            break;
                        }
                        drop(view);
                        match replica.drop_partition(p, q) {
                            Ok(k) => {
                                dropped += k;
                                paced = k > 0; // an empty partition costs nothing to drop
                            }
                            Err(e) => tracing::warn!(partition = p, "dropping a handed-off partition failed: {e}"),
                        }
                    }
                    if dropped > 0 {
                        tracing::info!(keys = dropped, "dropped keys of partitions handed off");
                        let _ = replica.commit();
                    }
                };
                // The simulation runs every node on one thread, in an order its seed fixes:
                // there the drop runs inline, where a thread of its own would race the rest.
                let runtime = tokio::runtime::Handle::current().runtime_flavor();
                if runtime == tokio::runtime::RuntimeFlavor::CurrentThread {
                    drop_all();
                } else if let Err(e) = tokio::task::spawn_blocking(drop_all).await {
                    tracing::warn!("dropping handed-off partitions failed: {e}");
                }
                cleaned_at = state.ring.version;
            }
            continue;
        }
        let pending = state.pending_transfers(n);
        metrics::gauge!(m::TRANSFERS_PENDING).set(pending.len() as f64);
        {
            let mut started = transfers.started.lock();
            if started.is_none() {
                *started = Some((
                    Instant::now(),
                    transfers.bytes_sent.load(Ordering::Relaxed),
                    transfers.completed.load(Ordering::Relaxed),
                ));
            }
        }
        let start = {
            let running = transfers.running.lock().clone();
            state.transfers_to_start(&pending, n, &me, &running, limit, &|id| cluster.is_up(id))
        };
        for t in start {
            if !transfers.running.lock().insert(t.clone()) {
                continue;
            }
            let (replica, cluster, transfers, q) =
                (replica.clone(), cluster.clone(), transfers.clone(), state.ring.size());
            tokio::spawn(async move {
                let mut gate = replica.admission().gate();
                let result = stream(replica.storage(), &cluster, &transfers, &t, q, rate, &mut gate).await;
                match result {
                    Ok(keys) => {
                        transfers.completed.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::TRANSFER_PARTITIONS_TOTAL).increment(1);
                        tracing::info!(partition = t.partition, to = %t.to, keys, "transfer finished");
                    }
                    Err(e) => {
                        transfers.failed.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::TRANSFER_FAILURES_TOTAL).increment(1);
                        // A receiver whose disk refuses writes says so in its own log.
                        if matches!(&e, TransferError::Cluster(c) if c.is_disk_refused()) {
                            tracing::debug!(partition = t.partition, to = %t.to, "transfer failed, will retry: {e}");
                        } else {
                            tracing::warn!(partition = t.partition, to = %t.to, "transfer failed, will retry: {e}");
                        }
                    }
                }
                transfers.running.lock().remove(&t);
                transfers.ended.notify_one();
            });
        }
        metrics::gauge!(m::TRANSFERS_RUNNING).set(transfers.running() as f64);
    }
}

/// Why a transfer stopped (it is tried again).
#[derive(Debug, thiserror::Error)]
enum TransferError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("the receiver answered {0}")]
    Refused(String),
}

/// Sends partition `t.partition` to `t.to` batch by batch, each after `gate` lets it (the
/// foreground comes first), then reports it to the claimant.
async fn stream(
    storage: &Storage,
    cluster: &Arc<Cluster>,
    transfers: &Transfers,
    t: &Transfer,
    q: u32,
    rate: u64,
    gate: &mut Gate,
) -> Result<u64, TransferError> {
    let mut after: Option<Bytes> = None;
    let mut keys = 0u64;
    let (started, mut sent) = (Instant::now(), 0u64);
    loop {
        gate.admit().await;
        let max_bytes = BATCH_BYTES.min(crate::rpc::max_frame() / 4);
        let (batch, bytes) = storage.scan_partition_sized(t.partition, q, after.as_deref(), BATCH_KEYS, max_bytes)?;
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        let count = batch.len() as u64;
        match cluster.call(&t.to, Request::TransferBatch { partition: t.partition, entries: batch }).await? {
            Response::Ack => {}
            other => return Err(TransferError::Refused(format!("{other:?}"))),
        }
        keys += count;
        transfers.keys_sent.fetch_add(count, Ordering::Relaxed);
        transfers.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        metrics::counter!(m::TRANSFER_KEYS_TOTAL).increment(count);
        metrics::counter!(m::TRANSFER_BYTES_TOTAL).increment(bytes as u64);
        sent += bytes as u64;
        if rate > 0 {
            // Throttle (--transfer-rate): no faster than `rate` bytes a second on average.
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    cluster.report_transfer(t.partition, &t.to).await?;
    Ok(keys)
}
