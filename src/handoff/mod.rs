//! Handing data to the nodes it belongs to: hinted copies back to their owners (below) and
//! partitions to their new replicas when the ring changes ([`transfer`]).
//!
//! Hinted handoff (paper 4.6): delivering the hinted copies this node holds as a stand-in to
//! the owners they were meant for, once those owners are reachable again.
//!
//! Every second, if there are hints, the loop walks them (a bounded batch at a time), groups
//! them by owner, and sends each owner that this node sees `up` its hinted sets as plain
//! replicas (the owner merges, never overwrites). A hint is deleted only after the owner
//! acknowledged it, and only if it did not change meanwhile (a newer hinted write keeps it for
//! the next round). Deliveries run a few at a time; an owner that fails is retried with an
//! exponential backoff. Hints live in their own fjall keyspace, durable like data, so a
//! stand-in that restarts still holds them.

pub mod transfer;

pub use transfer::Transfers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use tokio::sync::{watch, Semaphore};

use crate::cluster::{Cluster, Status};
use crate::metrics as m;
use crate::peer::{Request, Response};
use crate::replica::Replica;
use crate::ring::NodeId;
use crate::version::SiblingSet;

const EVERY: Duration = Duration::from_secs(1);
/// Hints read per round.
const BATCH: usize = 512;
/// Deliveries in flight at once.
const CONCURRENCY: usize = 16;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Per owner: when to try again, and how long to wait after the next failure.
#[derive(Clone, Copy)]
struct Backoff {
    until: Instant,
    next: Duration,
}

/// Runs hint delivery until `shutdown` turns true.
pub async fn run(replica: Arc<Replica>, cluster: Arc<Cluster>, shutdown: watch::Receiver<bool>) {
    let storage = replica.storage().clone();
    let mut backoff: HashMap<NodeId, Backoff> = HashMap::new();
    let mut rounds = crate::rounds::Rounds::every(EVERY, shutdown);
    let mut gate = replica.admission().gate();
    while rounds.next().await {
        metrics::gauge!(m::HINTS_PENDING).set(storage.hint_count() as f64);
        if let Err(e) = cluster.announce_hints(storage.hint_count() > 0) {
            tracing::warn!("announcing this leaving node's hints failed: {e}");
        }
        // A delivered hint is dropped, a write: none while the disk refuses writes.
        if storage.hint_count() == 0 || storage.health().trouble().is_some() {
            continue;
        }
        // A round delivers a batch of hints: after the foreground, when it is slow.
        gate.admit().await;
        let now = Instant::now();
        let view = cluster.view();
        let departing = cluster.departing();
        // A hint whose owner was removed, or is no longer a replica of the key (the ring moved
        // on while the hint waited), goes to the key's current replicas instead; so does one
        // whose owner is down when this node is leaving (it must hand its hints on to go).
        let gone = |owner: &str, key: &[u8]| {
            let removed =
                view.state.as_ref().is_some_and(|s| s.members.get(owner).is_none_or(|m| m.status == Status::Removed));
            let settled = view.state.as_ref().is_some_and(|s| !s.ring.in_transition());
            removed
                || (settled && !view.preference_list(key).iter().any(|r| r == owner))
                || (departing && !cluster.is_up(owner))
        };
        let ready = |owner: &str| {
            owner != cluster.me() && cluster.is_up(owner) && backoff.get(owner).is_none_or(|b| b.until <= now)
        };
        let mut orphans: Vec<(NodeId, Bytes, SiblingSet)> = Vec::new();
        let mut batch: Vec<(NodeId, Bytes, SiblingSet)> = Vec::new();
        let mut mine: Vec<(Bytes, SiblingSet)> = Vec::new();
        let walked = storage.for_each_hint(|owner, key, set| {
            let Ok(set) = set else { return true };
            if gone(owner, key) {
                orphans.push((owner.to_owned(), Bytes::copy_from_slice(key), set));
            } else if owner == cluster.me() {
                // A hint for this very node (it was thought down): it is its own data.
                mine.push((Bytes::copy_from_slice(key), set));
            } else if ready(owner) {
                batch.push((owner.to_owned(), Bytes::copy_from_slice(key), set));
            }
            batch.len() + mine.len() + orphans.len() < BATCH
        });
        if let Err(e) = walked {
            tracing::warn!("reading hints failed: {e}");
            continue;
        }
        drop(view);
        let me = cluster.me().clone();
        for (owner, key, set) in orphans {
            let replicas = cluster.view().preference_list(&key);
            if replicas.iter().any(|r| r != &me && !cluster.is_up(r)) {
                continue;
            }
            let mut all = true;
            for r in replicas.iter() {
                let ok = if r == &me {
                    replica.merge(&key, &set, None).and_then(|()| replica.commit()).is_ok()
                } else {
                    let req = Request::Replicate { key: key.clone(), set: set.clone(), hint_for: None };
                    matches!(cluster.call(r, req).await, Ok(Response::Ack))
                };
                all &= ok;
            }
            if all && replica.remove_hint_if(&owner, &key, |now| *now == set).is_ok() {
                metrics::counter!(m::HANDOFF_DELIVERED_TOTAL).increment(1);
            }
        }
        for (key, set) in mine {
            if replica.merge(&key, &set, None).and_then(|()| replica.commit()).is_ok() {
                let _ = replica.remove_hint_if(&me, &key, |now| *now == set);
            }
        }
        if batch.is_empty() {
            continue;
        }
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for (owner, key, set) in batch {
            let Ok(permit) = slots.clone().acquire_owned().await else { break };
            let (replica, cluster) = (replica.clone(), cluster.clone());
            tasks.spawn(async move {
                let _permit = permit;
                let req = Request::Replicate { key: key.clone(), set: set.clone(), hint_for: None };
                let delivered = matches!(cluster.call(&owner, req).await, Ok(Response::Ack));
                if delivered {
                    match replica.remove_hint_if(&owner, &key, |now| *now == set).and_then(|_| replica.commit()) {
                        Ok(()) => metrics::counter!(m::HANDOFF_DELIVERED_TOTAL).increment(1),
                        Err(e) => tracing::warn!("dropping a delivered hint failed: {e}"),
                    }
                } else {
                    metrics::counter!(m::HANDOFF_FAILURES_TOTAL).increment(1);
                }
                (owner, delivered)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let Ok((owner, delivered)) = done else { continue };
            if delivered {
                backoff.remove(&owner);
            } else {
                let b = backoff.entry(owner).or_insert(Backoff { until: now, next: EVERY });
                b.until = Instant::now() + b.next;
                b.next = (b.next * 2).min(MAX_BACKOFF);
            }
        }
        metrics::gauge!(m::HINTS_PENDING).set(storage.hint_count() as f64);
    }
}
