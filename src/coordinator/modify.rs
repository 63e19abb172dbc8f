//! **modify**: a read-modify-write (SET NX/XX/GET, GETDEL, APPEND, EXPIRE ...; see `rmw.rs`)
//! evaluated under the key's lock at ONE node: the key's first owner that is up. On a single
//! node that makes it exactly as atomic as Redis. In a cluster every such operation on a key
//! meets at that owner while it is up; it first merges a quorum read into its copy (so it
//! sees what other coordinators wrote), decides, and replicates the result like a put.
//! A forward is sent once, never hedged or re-sent elsewhere: it may have been applied.
//! When no owner is up the first node of the ring walk that is up (a stand-in) decides.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::quorum::{Quorum, Target};
use super::{CoordError, Coordinator, Result};
use crate::peer::{Request, Response};
use crate::replica::Modified;
use crate::rmw::{Outcome, Rmw};

impl Coordinator {
    /// Runs `op` on `key` at the key's first reachable owner; returns what its reply is made
    /// of once the write (if it made one) has W copies.
    ///
    /// # Errors
    /// The operation's own error, storage failure, or fewer than R answers to the read or W
    /// to the write in time (`NoQuorum`: the operation may have been applied).
    pub async fn modify(&self, key: &[u8], op: Rmw) -> Result<Outcome> {
        let deadline = tokio::time::Instant::now() + self.cluster.settings().timeout;
        self.modify_as(key, op, false, deadline).await
    }

    /// A read-modify-write another node forwarded here: run it here, within `budget`.
    pub async fn modify_forwarded(&self, key: &[u8], op: Rmw, budget: Duration) -> Result<Outcome> {
        let deadline = tokio::time::Instant::now() + budget.min(self.cluster.settings().timeout);
        self.modify_as(key, op, true, deadline).await
    }

    async fn modify_as(&self, key: &[u8], op: Rmw, forwarded: bool, deadline: tokio::time::Instant) -> Result<Outcome> {
        if self.cluster.view().single(self.me()) {
            return Ok(self.replica.modify(key, &op, None)?.outcome);
        }
        let (prefs, targets) = self.targets(key);
        if prefs.is_empty() {
            return Err(CoordError::NotReady);
        }
        let q = Quorum::resolve(self.quorum, prefs.len(), None, None)?;
        // The decider: the first owner that is up, else the first stand-in.
        let decider = targets.iter().find(|t| t.hint_for.is_none()).or_else(|| targets.first()).cloned();
        let role = match decider {
            Some(t) if t.node != self.me() && !forwarded => {
                let deadline_ms = crate::peer::deadline_ms(deadline);
                let req = Request::Modify { key: bytes::Bytes::copy_from_slice(key), op, deadline_ms };
                return match tokio::time::timeout_at(deadline, self.peers.call(&t.node, req)).await {
                    Ok(Ok(Response::Modified(outcome))) => Ok(outcome),
                    Ok(Ok(other)) => {
                        Err(CoordError::Cluster(crate::cluster::ClusterError::Unexpected(format!("{other:?}"))))
                    }
                    Ok(Err(crate::cluster::ClusterError::Remote {
                        error: crate::peer::RemoteError::Rmw(e), ..
                    })) => Err(CoordError::Rmw(e)),
                    Ok(Err(e)) => Err(CoordError::Cluster(e)),
                    Err(_) => Err(CoordError::NoQuorum { op: "write", needed: q.w, got: 0 }),
                };
            }
            Some(t) if t.node == self.me() => t,
            _ => Target {
                node: self.me().to_owned(),
                hint_for: (!prefs.iter().any(|p| p == self.me())).then(|| prefs[0].clone()),
            },
        };
        // See what the other coordinators wrote: a quorum read merged into this copy. Replicas
        // holding the version this owner holds answer so by its digest (no set moves).
        let mine = match role.hint_for {
            None => {
                let (set, digest) = self.replica.local_with_digest(key)?;
                digest.map(|d| (set, d))
            }
            Some(_) => None,
        };
        let read = self.get_as(key, None, mine).await?;
        self.replica.merge(key, &read, role.hint_for.as_deref())?;
        let started = Instant::now();
        let Modified { written, patch, outcome } = self.replica.modify(key, &op, role.hint_for.as_deref())?;
        if let Some(written) = written {
            let patch = patch.map(Arc::new);
            self.replicate(key, written, patch, role, &prefs, &targets, q.w, started, deadline).await?;
        }
        Ok(outcome)
    }
}
