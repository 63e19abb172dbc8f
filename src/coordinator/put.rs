//! **put** (paper 4.5, 4.6): coordinated by an owner that is up (else forwarded, else by a
//! stand-in), made and journaled here first, then sent to the other targets and, during a ring
//! transition, to the replicas the key is gaining, until [`WriteQuorum`] is met.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use super::gather::{self, gather};
use super::quorum::{Quorum, Target, WriteQuorum};
use super::{CoordError, Coordinator, Result, Write, WriteContext};
use crate::cluster::ClusterError;
use crate::metrics as m;
use crate::peer::{RemoteError, Request, Response};
use crate::storage::Patch;
use crate::version::SiblingSet;

impl Coordinator {
    /// Writes `write` to `key` superseding what `context` covers, at quorum W. Returns the
    /// sibling set after the write at the coordinating replica.
    ///
    /// # Errors
    /// A W out of range, storage failure, or fewer than W acknowledgements in time (the write
    /// may still have landed on fewer replicas).
    pub async fn put(
        &self,
        key: &[u8],
        context: WriteContext,
        write: Write,
        w: Option<usize>,
    ) -> Result<Arc<SiblingSet>> {
        let deadline = tokio::time::Instant::now() + self.cluster.settings().timeout;
        self.put_as(key, context, write, w, false, deadline).await
    }

    /// A put another node forwarded here: coordinate it even if this node's view differs,
    /// within `budget` (what is left of the client's request there).
    pub async fn put_forwarded(
        &self,
        key: &[u8],
        context: WriteContext,
        write: Write,
        w: Option<usize>,
        budget: Duration,
    ) -> Result<Arc<SiblingSet>> {
        let deadline = tokio::time::Instant::now() + budget.min(self.cluster.settings().timeout);
        self.put_as(key, context, write, w, true, deadline).await
    }

    async fn put_as(
        &self,
        key: &[u8],
        context: WriteContext,
        write: Write,
        w: Option<usize>,
        forwarded: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<SiblingSet>> {
        if self.cluster.view().single(self.me()) {
            Quorum::resolve(self.quorum, 1, None, w)?;
            return Ok(self.replica.write(key, &context, write, None)?);
        }
        let (prefs, targets) = self.targets(key);
        if prefs.is_empty() {
            return Err(CoordError::NotReady);
        }
        let q = Quorum::resolve(self.quorum, prefs.len(), None, w)?;
        // Who coordinates: an owner that is up (it holds the key's whole history), this node
        // if it is one; else a stand-in, this node if it is one (always writable).
        let mine = targets.iter().find(|t| t.node == self.me()).cloned();
        let here = || Target {
            node: self.me().to_owned(),
            hint_for: (!prefs.iter().any(|p| p == self.me())).then(|| prefs[0].clone()),
        };
        let role = match mine {
            Some(t) if t.hint_for.is_none() => t,
            Some(t) if forwarded || !targets.iter().any(|o| o.hint_for.is_none()) => t,
            None if forwarded => here(),
            mine => match self.forward(key, &context, &write, w, &targets, deadline).await {
                Some(answer) => return answer,
                None => {
                    metrics::counter!(m::FORWARD_FALLBACKS_TOTAL).increment(1);
                    mine.unwrap_or_else(here)
                }
            },
        };
        let started = Instant::now();
        let written = self.replica.write(key, &context, write, role.hint_for.as_deref())?;
        self.replicate(key, written, None, false, role, &prefs, &targets, q.w, started, deadline).await
    }

    /// Sends `written`, the version just made here as `role`, to the key's other targets (and
    /// to the replicas it is gaining during a transition) and returns once [`WriteQuorum`] is
    /// met; the rest are finished in the background. With `patch` (the write as a change of
    /// the version before, see `storage::Patch`), owners get the patch first and the whole
    /// set only when they do not hold that version. A `decided` write (a read-modify-write's
    /// decider's) goes out at once and unbatched (see `Coordinator::direct`); a put's waits
    /// one turn of the runtime for the others made meanwhile, to share their journal flush
    /// here and their batches to each peer.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn replicate(
        &self,
        key: &[u8],
        written: Arc<SiblingSet>,
        patch: Option<Arc<Patch>>,
        decided: bool,
        role: Target,
        prefs: &[crate::ring::NodeId],
        targets: &[Target],
        w: usize,
        started: Instant,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<SiblingSet>> {
        if role.hint_for.is_some() {
            metrics::counter!(m::HINTED_WRITES_TOTAL).increment(1);
        }
        let key = Bytes::copy_from_slice(key);
        let view = self.cluster.view();
        let walk = view.walk(&key);
        // During a ring transition the replicas a key is gaining get every write too, and it
        // needs W copies among the future replicas as well (hinted for those that are silent),
        // since the old owners drop theirs after the flip.
        let future = view.future_preference_list(&key);
        let gaining = view.joining_replicas(&key);
        drop(view);
        let keeps_data = gaining.as_ref().is_some_and(|g| g.iter().any(|n| n == self.me())) && role.hint_for.is_some();
        if keeps_data {
            // This node coordinates as a stand-in but is also gaining the key: keep it as data.
            self.replica.merge(&key, &written, None)?;
        }
        let mut first: Vec<Target> = targets.iter().filter(|t| t.node != self.me()).cloned().collect();
        for node in gaining.iter().flat_map(|g| g.iter()) {
            if node != self.me() && !first.iter().any(|t| &t.node == node) {
                first.push(Target { node: node.clone(), hint_for: None });
            }
        }
        let quorum = WriteQuorum { w, owners: prefs, future: future.as_deref() };
        let kept_as_data = keeps_data.then_some(self.me());
        // The copies kept here. A coordinator whose copy does not count for the future owners
        // (it is losing the key) also keeps a hint for a replica the key is gaining: a durable
        // future copy even if that replica cannot be reached now.
        let mut here = vec![role.clone()];
        let counts_later = |t: &Target| {
            future.as_ref().is_none_or(|f| f.iter().any(|n| n == t.owner()) || kept_as_data == Some(t.node.as_str()))
        };
        if !counts_later(&role) {
            if let Some(g) = gaining.as_ref().and_then(|g| g.iter().find(|n| *n != self.me())) {
                self.replica.merge(&key, &written, Some(g))?;
                here.push(Target { node: self.me().to_owned(), hint_for: Some(g.clone()) });
            }
        }
        // Every copy kept here is in this node's journal (handed to the OS) before any replica
        // can hold the write: a crash of this process then never leaves a replica with a
        // version its coordinator lacks, so the next plain SET here supersedes everything
        // acknowledged before (with `--fsync everysec` a power loss still can; the new
        // incarnation keeps that safe). Group commit: a put's flush waits one turn of the
        // runtime, so that a pipeline's wave (and any connection ready meanwhile) shares it. A
        // decider's write goes out at once: waiting would let the patches of later writes of
        // the key overtake its own, and a patch that arrives before its base costs the whole
        // set (and a hot key's decisions are serial anyway: there is little to share).
        if decided {
            self.replica.commit()?;
        } else {
            self.commit(self.replica.write_mark()).await?;
        }
        let enough = |acks: &[(Target, ())]| quorum.met(here.iter().chain(acks.iter().map(|(t, ())| t)), kept_as_data);
        let used: Vec<&str> = first.iter().map(|t| t.node.as_str()).chain(std::iter::once(self.me())).collect();
        let mut spares = gather::Spares::new(&walk, &used, &|n| self.peers.is_up(n));
        let peers = if decided { self.direct.clone() } else { self.peers.clone() };
        let replicate = |target: Target| -> gather::Call<()> {
            let (peers, set, key) = (peers.clone(), written.clone(), key.clone());
            // A patch goes to owners only: a stand-in keeps a whole hint, and a replica the key
            // is gaining during a transition is not at any version of this owner's yet.
            let patch = patch.clone().filter(|_| target.hint_for.is_none() && prefs.contains(&target.node));
            Box::pin(async move {
                if let Some(patch) = patch {
                    let req = Request::Patch { key: key.clone(), patch: (*patch).clone() };
                    match peers.call(&target.node, req).await {
                        Ok(Response::Ack) => {
                            metrics::counter!(m::REPLICATION_PATCHES_TOTAL, "outcome" => "applied").increment(1);
                            return (target, Some(()));
                        }
                        // Not the version the patch is of: the whole set.
                        Ok(Response::Stale) => {
                            metrics::counter!(m::REPLICATION_PATCHES_TOTAL, "outcome" => "stale").increment(1);
                        }
                        _ => return (target, None),
                    }
                }
                let req = Request::Replicate { key, set: (*set).clone(), hint_for: target.hint_for.clone() };
                let ok = matches!(peers.call(&target.node, req).await, Ok(Response::Ack));
                (target, ok.then_some(()))
            })
        };
        let sloppy_after = self.cluster.settings().sloppy_after;
        let g = gather(first, deadline, sloppy_after, |t| spares.next(t), replicate, enough).await;
        metrics::histogram!(m::QUORUM_DURATION, "op" => "put", "phase" => "quorum")
            .record(started.elapsed().as_secs_f64());
        let stand_ins = g.answers.iter().filter(|(t, ())| t.hint_for.is_some()).count();
        if stand_ins > 0 && role.hint_for.is_none() {
            metrics::counter!(m::HINTED_WRITES_TOTAL).increment(stand_ins as u64);
        }
        let mut rest = g.pending;
        if !rest.is_empty() {
            // The replicas not heard from yet still get the write.
            tokio::spawn(async move {
                while tokio::time::timeout_at(deadline, rest.next()).await.is_ok_and(|a| a.is_some()) {}
            });
        }
        if g.met {
            Ok(written)
        } else {
            let got = quorum.now(here.iter().chain(g.answers.iter().map(|(t, ())| t)));
            Err(CoordError::NoQuorum { op: "write", needed: w, got })
        }
    }

    /// Sends a put to a replica to coordinate (paper 4.5: a node that is not among the top N
    /// forwards): owners that are up first, then stand-ins, a new one whenever the last has
    /// been silent for `--sloppy-after-ms` or failed. `None` when none answered while enough
    /// of the request's time is left: then this node coordinates the write itself (as a
    /// stand-in), so a cut-off owner never makes the client wait past its deadline.
    async fn forward(
        &self,
        key: &[u8],
        context: &WriteContext,
        write: &Write,
        w: Option<usize>,
        targets: &[Target],
        deadline: tokio::time::Instant,
    ) -> Option<Result<Arc<SiblingSet>>> {
        metrics::counter!(m::FORWARDED_TOTAL).increment(1);
        let mut order: Vec<&Target> = targets.iter().filter(|t| t.node != self.me()).collect();
        order.sort_by_key(|t| t.hint_for.is_some());
        let mut order = order.into_iter();
        let key = Bytes::copy_from_slice(key);
        let sloppy_after = self.cluster.settings().sloppy_after;
        // Coordinating here needs time to replace silent replicas too.
        let here_at = deadline.checked_sub(sloppy_after * 2).unwrap_or(deadline);
        let mut calls = FuturesUnordered::new();
        let mut next_at = tokio::time::Instant::now();
        loop {
            let now = tokio::time::Instant::now();
            if now >= next_at {
                match order.next() {
                    Some(target) => {
                        // Valid until this node may coordinate the write itself: one held up
                        // (a partition, then TCP delivers it after the heal) and arriving later
                        // would apply the write again, newer than what the client wrote next.
                        let deadline_ms = crate::peer::deadline_ms(here_at);
                        let (context, write) = (context.clone(), write.clone());
                        let req = Request::Put { key: key.clone(), context, write, w, deadline_ms };
                        let (peers, node) = (self.peers.clone(), target.node.clone());
                        calls.push(async move { (node.clone(), peers.call(&node, req).await) });
                        next_at = now + sloppy_after;
                    }
                    None if calls.is_empty() => break,
                    None => next_at = here_at,
                }
            }
            tokio::select! {
                Some((node, answer)) = calls.next() => match answer {
                    Ok(Response::Written(set)) => return Some(Ok(Arc::new(set))),
                    // An owner refused it for its siblings: so would the others.
                    Err(ClusterError::Remote { error: RemoteError::TooManySiblings { kept, max }, .. }) => {
                        return Some(Err(CoordError::TooManySiblings { kept, max }));
                    }
                    other => {
                        tracing::debug!(node = %node, "forwarding a put failed: {other:?}");
                        next_at = tokio::time::Instant::now();
                    }
                },
                () = tokio::time::sleep_until(next_at) => {}
                () = tokio::time::sleep_until(here_at) => break,
            }
        }
        // Every target failed, or the time left is only enough to coordinate here.
        None
    }
}
