//! Changes of the membership: the operator's (`KURA JOIN/LEAVE/REMOVE`), a leaving node's
//! hints, finished transfers reported to the claimant; each saved and pushed to every member.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{Cluster, ClusterError};

/// How long a flush waits for every member to confirm its mark before it answers that it may
/// have been applied.
pub const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often it asks the members that have not confirmed yet.
const FLUSH_RETRY: std::time::Duration = std::time::Duration::from_millis(200);
use crate::membership::{ClusterState, Status};
use crate::peer::{Request, Response};
use crate::ring::NodeId;

impl Cluster {
    /// Applies `change` to the current state (if it makes one), saves it and pushes it to
    /// every member at once. Returns whether it changed anything.
    pub fn change(
        self: &Arc<Self>,
        change: impl FnOnce(&mut ClusterState) -> Result<bool, ClusterError>,
    ) -> Result<bool, ClusterError> {
        let next = {
            let _guard = self.changing.lock();
            let Some(mut state) = self.view.load().state.clone() else {
                return Err(ClusterError::NotReady);
            };
            if !change(&mut state)? {
                return Ok(false);
            }
            self.install(state.clone())?;
            state
        };
        self.push(next);
        Ok(true)
    }

    /// Sends `state` to every other member now (a change should not wait for gossip).
    pub(super) fn push(self: &Arc<Self>, state: ClusterState) {
        let me = self.clone();
        tokio::spawn(async move { me.announce(&state).await });
    }

    /// Sends `state` to every other member that is up and waits for their answers (or the
    /// request timeout). Returns how many took it.
    async fn announce(self: &Arc<Self>, state: &ClusterState) -> usize {
        let calls = self.others().into_iter().filter(|(id, _)| self.is_up(id)).map(|(_, addr)| async move {
            match self.call_addr(addr, Request::Gossip(Box::new(state.clone()))).await {
                Ok(Response::State(theirs)) => {
                    let _ = self.merge(&theirs);
                    true
                }
                _ => false,
            }
        });
        futures::future::join_all(calls).await.into_iter().filter(|&took| took).count()
    }

    /// `FLUSHDB` (`db`) or `FLUSHALL` (`None`): a flush mark at this node's clock, saved and
    /// in force here (its stored copies purged in the background), then taken to every other
    /// member; it returns once each of them holds the mark (issue 20, item 3). Until a node
    /// holds it, the writes that node decides may carry values from before the flush (read
    /// from nodes that have not heard of it either); they are stamped as not having seen it
    /// (`Sibling::flush_seen`) and the mark drops them wherever it meets them, as writes
    /// concurrent with the flush. Waiting for every member is what makes that safe: a write
    /// that begins after the flush answered is decided by a node that holds the mark. Redis
    /// Enterprise's Active-Active flush likewise needs every instance.
    ///
    /// # Errors
    /// This node has no cluster yet, or its storage failed; `Unconfirmed` when some
    /// member has not confirmed the mark within [`FLUSH_WAIT`] (the flush is in force where it
    /// arrived and reaches the rest by gossip: it may have been applied).
    pub async fn flush(self: &Arc<Self>, db: Option<u32>) -> Result<(), ClusterError> {
        let at = crate::clock::now_ms();
        let mark = |s: &mut ClusterState| {
            s.flushes.mark(db, at);
        };
        self.mark_everywhere("flush", mark, |theirs, ours| theirs.flushes.covers(&ours.flushes)).await?;
        // Writes this node coordinates after the reply are stamped after the mark.
        while crate::clock::now_ms() <= at {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// SCRIPT FLUSH (`functions` false) or a FUNCTION change that removes or replaces a
    /// library (`functions` true): moves the script mark every node's caches watch
    /// (`ScriptMarks`), and returns once every member holds it, as [`Cluster::flush`] does.
    ///
    /// # Errors
    /// As [`Cluster::flush`]: `Unconfirmed` when some member has not confirmed the mark within
    /// [`FLUSH_WAIT`].
    pub async fn mark_scripts(self: &Arc<Self>, functions: bool) -> Result<(), ClusterError> {
        let what = if functions { "function change" } else { "script flush" };
        self.mark_everywhere(
            what,
            |s| {
                let m = &mut s.scripting;
                if functions {
                    m.functions_changed = crate::flushes::ScriptMarks::next(m.functions_changed);
                } else {
                    m.scripts_flushed = crate::flushes::ScriptMarks::next(m.scripts_flushed);
                }
            },
            |theirs, ours| theirs.scripting.covers(&ours.scripting),
        )
        .await
    }

    /// Applies `change` to the state, saves it, and takes it to every other member until each
    /// confirms (`holds`: their state covers ours) or [`FLUSH_WAIT`] passes.
    async fn mark_everywhere(
        self: &Arc<Self>,
        what: &'static str,
        change: impl FnOnce(&mut ClusterState),
        holds: impl Fn(&ClusterState, &ClusterState) -> bool,
    ) -> Result<(), ClusterError> {
        let state = {
            let _guard = self.changing.lock();
            let Some(mut state) = self.view.load().state.clone() else {
                return Err(ClusterError::NotReady);
            };
            change(&mut state);
            self.install(state.clone())?;
            state
        };
        let deadline = tokio::time::Instant::now() + FLUSH_WAIT;
        let mut pending = self.others();
        let members = pending.len() + 1;
        loop {
            let calls = pending.iter().map(|&(_, addr)| {
                let (state, holds) = (&state, &holds);
                async move {
                    match self.call_addr(addr, Request::Gossip(Box::new(state.clone()))).await {
                        Ok(Response::State(theirs)) => {
                            let _ = self.merge(&theirs);
                            holds(&theirs, state)
                        }
                        _ => false,
                    }
                }
            });
            let confirmed = futures::future::join_all(calls).await;
            let mut confirmed = confirmed.into_iter();
            pending.retain(|_| !confirmed.next().unwrap_or(false));
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let missing = pending.into_iter().map(|(id, _)| id).collect();
                return Err(ClusterError::Unconfirmed { what, members, missing });
            }
            tokio::time::sleep(FLUSH_RETRY).await;
        }
    }

    /// `KURA LEAVE`: this node starts handing its partitions off.
    pub fn leave(self: &Arc<Self>) -> Result<bool, ClusterError> {
        let me = self.me().clone();
        let holds_hints = self.replica.storage().hint_count() > 0;
        self.change(|s| s.leave(&me, holds_hints).ok_or_else(|| ClusterError::UnknownMember(me.clone())))
    }

    /// Whether this node is on its way out of the cluster (leaving, exiting or removed).
    pub fn departing(&self) -> bool {
        let view = self.view();
        let status = view.state.as_ref().and_then(|s| s.members.get(self.me())).map(|m| m.status);
        matches!(status, Some(Status::Leaving | Status::Exiting | Status::Removed))
    }

    /// A departing node tells the cluster whether it still holds hints (the claimant keeps it
    /// until it has handed them on).
    pub fn announce_hints(self: &Arc<Self>, holds: bool) -> Result<(), ClusterError> {
        if !self.departing() {
            return Ok(());
        }
        let me = self.me().clone();
        self.change(|s| {
            let Some(m) = s.members.get_mut(&me) else { return Ok(false) };
            if m.holds_hints == holds {
                return Ok(false);
            }
            m.holds_hints = holds;
            m.version = m.version.saturating_add(1);
            Ok(true)
        })?;
        Ok(())
    }

    /// `KURA REMOVE id`: takes a (dead) member out; its partitions are rebuilt from the other
    /// replicas.
    pub fn remove(self: &Arc<Self>, id: &str) -> Result<bool, ClusterError> {
        self.change(|s| s.remove(id).ok_or_else(|| ClusterError::UnknownMember(id.to_owned())))
    }

    /// `KURA JOIN addr`: this node (alone in its own cluster, with no data) joins the cluster
    /// of the peer at `addr`.
    pub async fn join_cluster(self: &Arc<Self>, addr: SocketAddr) -> Result<(), ClusterError> {
        let body = self.call_addr(addr, Request::Join(self.settings.me.clone())).await?;
        let Response::State(theirs) = body else {
            return Err(match body {
                Response::Error(error) => ClusterError::Remote { peer: addr.to_string(), error },
                _ => ClusterError::Unexpected(addr.to_string()),
            });
        };
        {
            let _guard = self.changing.lock();
            tracing::info!(%addr, "joining another cluster: leaving this one-node cluster");
            self.install(*theirs)?;
        }
        Ok(())
    }

    /// At the claimant: a transfer finished. Returns the state that records it.
    pub fn on_transfer_done(self: &Arc<Self>, partition: u32, to: &NodeId) -> Result<ClusterState, ClusterError> {
        let n = self.settings.n;
        let is_claimant = self.view().state.as_ref().and_then(|s| s.claimant().cloned()).as_ref() == Some(self.me());
        if !is_claimant {
            return Err(ClusterError::NotClaimant);
        }
        self.change(|s| Ok(s.transfer_done(partition, to, n)))?;
        self.view().state.clone().ok_or(ClusterError::NotReady)
    }

    /// Tells the claimant that `partition` reached `to`.
    pub async fn report_transfer(self: &Arc<Self>, partition: u32, to: &NodeId) -> Result<(), ClusterError> {
        let claimant = self.view().state.as_ref().and_then(|s| s.claimant().cloned());
        match claimant {
            Some(c) if &c == self.me() => self.on_transfer_done(partition, to).map(|_| ()),
            Some(c) => {
                // The answer is the claimant's state with the transfer recorded: take it at once,
                // so this node does not start the same transfer again.
                if let Response::State(state) =
                    self.call(&c, Request::TransferDone { partition, to: to.clone() }).await?
                {
                    self.merge(&state)?;
                }
                Ok(())
            }
            None => Err(ClusterError::NotReady),
        }
    }
}
