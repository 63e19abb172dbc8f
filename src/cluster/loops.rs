//! The cluster's background work: joining through the seeds (and the bootstrap rule),
//! heartbeats, gossip with a random member, and the claimant's ring changes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Cluster, CLAIM_EVERY, GOSSIP_EVERY, HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT};
use crate::membership::ClusterState;
use crate::metrics as m;
use crate::peer::{RemoteError, Request, Response};
use crate::ring::NodeId;

impl Cluster {
    /// Starts the background work: joining through the seeds, heartbeats, gossip, and the
    /// claimant's ring changes. Ends when `shutdown` turns true.
    pub fn spawn(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        tokio::spawn(self.clone().join_loop(shutdown.clone()));
        tokio::spawn(self.clone().heartbeat_loop(shutdown.clone()));
        tokio::spawn(self.clone().gossip_loop(shutdown.clone()));
        tokio::spawn(self.clone().claim_loop(shutdown));
    }

    /// Joins through the seeds (a node with seeds and no saved state). A seed in a cluster
    /// admits this node. When every seed answers and none is in a cluster yet (all of them
    /// are waiting too: the first start of a cluster whose nodes all name each other), the node
    /// with the smallest cluster address among them founds it. A node never founds while a
    /// seed is unreachable: after a lost disk it waits for its cluster instead of becoming a
    /// second one.
    async fn join_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while self.view().state.is_none() {
            let mut waiting = 0;
            for seed in self.settings.seeds.clone() {
                match self.call_addr(seed, Request::Join(self.settings.me.clone())).await {
                    Ok(Response::State(state)) => {
                        if let Err(e) = self.merge(&state) {
                            tracing::error!("cannot save the joined state: {e}");
                        }
                        tracing::info!(%seed, "joined the cluster");
                        break;
                    }
                    Ok(Response::Error(RemoteError::NotReady)) => waiting += 1,
                    Ok(other) => tracing::warn!(%seed, "seed answered a join with {other:?}"),
                    Err(e) => tracing::warn!(%seed, "join through seed failed: {e}"),
                }
            }
            if self.view().state.is_some() {
                return;
            }
            let seeds = &self.settings.seeds;
            if waiting == seeds.len() && seeds.iter().all(|s| self.settings.me.addr < *s) {
                let _guard = self.changing.lock();
                if self.view().state.is_none() {
                    tracing::info!("every seed is waiting for a cluster: founding it");
                    let state = ClusterState::found(self.settings.me.clone(), self.settings.partitions);
                    if let Err(e) = self.install(state) {
                        tracing::error!("cannot save the founded state: {e}");
                    }
                }
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Other members to talk to (not removed, not this node).
    pub(super) fn others(&self) -> Vec<(NodeId, SocketAddr)> {
        self.view()
            .state
            .as_ref()
            .map(|s| s.others(self.me()).map(|m| (m.id.clone(), m.addr)).collect())
            .unwrap_or_default()
    }

    async fn heartbeat_loop(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        // A short timeout, so that a cut peer is down within about a second (`detector.rs`).
        let timeout = HEARTBEAT_TIMEOUT.min(self.settings.timeout);
        let mut rounds = crate::rounds::Rounds::every(HEARTBEAT_EVERY, shutdown);
        while rounds.next().await {
            for (id, _) in self.others() {
                let me = self.clone();
                tokio::spawn(async move {
                    let _ = me.call_within(&id, Request::Ping, timeout).await;
                });
            }
            let down = self.others().iter().filter(|(id, _)| !self.is_up(id)).count();
            metrics::gauge!(m::PEERS_DOWN).set(down as f64);
        }
    }

    async fn gossip_loop(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let mut rounds = crate::rounds::Rounds::every(GOSSIP_EVERY, shutdown);
        while rounds.next().await {
            let others = self.others();
            let Some((id, addr)) = crate::random::choose(&others).cloned() else { continue };
            match self.gossip_with(addr).await {
                Ok(()) => self.record(&id, true),
                Err(e) => tracing::debug!(node = %id, "gossip failed: {e}"),
            }
        }
    }

    /// The claimant's loop: when this node is the claimant and the ring does not fit the
    /// members, make the next ring and push it to everyone at once.
    async fn claim_loop(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let mut rounds = crate::rounds::Rounds::every(CLAIM_EVERY, shutdown);
        while rounds.next().await {
            let next = {
                let _guard = self.changing.lock();
                let view = self.view.load();
                let Some(state) = &view.state else { continue };
                // A claimant whose storage failed cannot save a new ring (until its restart).
                if state.claimant() != Some(self.me()) || self.replica.storage().health().engine_failed() {
                    continue;
                }
                let Some(next) = state.next(self.settings.n, &|id| self.is_up(id)) else { continue };
                tracing::info!(ring_version = next.ring.version, "claimant: new ring");
                if let Err(e) = self.install(next.clone()) {
                    tracing::error!("cannot save the new ring: {e}");
                    continue;
                }
                next
            };
            self.push(next);
        }
    }
}
