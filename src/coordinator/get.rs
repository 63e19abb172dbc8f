//! **get** (paper 4.5, 4.7): read the targets, answer after R with the merge, and keep
//! listening in the background: every replica whose copy differs from the merge of all
//! answers gets it back (read repair). Unlike the paper's coordinator, which asks all N, a read
//! asks the replicas R needs and hedges (`hedge.rs`): one more when an answer fails or is late,
//! and every replica on one read in `hedge::FULL_READ_EVERY`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use super::gather::{self, gather};
use super::quorum::{Quorum, Target};
use super::{CoordError, Coordinator, Peers, Result};
use crate::metrics as m;
use crate::peer::{Request, Response};
use crate::replica::Replica;
use crate::ring::NodeId;
use crate::version::SiblingSet;

impl Coordinator {
    /// Reads `key` at quorum R (the configured one unless `r` overrides it) and returns the
    /// merged sibling set of the replicas that answered (empty if the key is missing).
    ///
    /// # Errors
    /// An R out of range, storage failure, or fewer than R answers in time.
    pub async fn get(&self, key: &[u8], r: Option<usize>) -> Result<Arc<SiblingSet>> {
        let deadline = tokio::time::Instant::now() + self.cluster.settings().timeout;
        self.get_as(key, r, None, deadline, Reader::Client).await
    }

    /// A read whose answer at least W replicas hold when it returns (WATCH's version, which
    /// the client's next reads must not go back behind). A quorum read can see a write that
    /// is still under way at one replica and the next read miss it (paper 4.5: quorums make
    /// a read see every *acknowledged* write, nothing more). A WATCH that saw it and a GET
    /// that did not would let EXEC's check pass (the key is at the watched version) with a
    /// value computed from the one before: a lost check-and-set. So this read asks max(R, W)
    /// replicas and, when their answers differ, repairs them before it returns: the version
    /// is then at W replicas, which every later quorum read meets (R + W > N).
    ///
    /// # Errors
    /// As [`Coordinator::get`]; and fewer than W replicas holding the version after the repair.
    pub async fn get_settled(&self, key: &[u8]) -> Result<Arc<SiblingSet>> {
        let deadline = tokio::time::Instant::now() + self.cluster.settings().timeout;
        self.get_as(key, None, None, deadline, Reader::Watch).await
    }

    /// [`Coordinator::get`] by a reader that holds `mine` (its copy of the key and that
    /// copy's digest): replicas holding the same version answer `Same` instead of sending it
    /// (a read-modify-write of a large set reads it without moving it). Gives up at
    /// `deadline` (a forwarded read-modify-write's is its sender's). A plain read (not a
    /// decider's) by an owner of the key compares by its own copy's digest too, so a large
    /// list or set is not sent back on every read, and repairs the replicas that differ.
    pub(super) async fn get_as(
        &self,
        key: &[u8],
        r: Option<usize>,
        mut mine: Option<(Option<Arc<SiblingSet>>, u64)>,
        deadline: tokio::time::Instant,
        reader: Reader,
    ) -> Result<Arc<SiblingSet>> {
        let plain = reader != Reader::Decider;
        if self.cluster.view().single(self.me()) {
            Quorum::resolve(self.quorum, 1, r, None)?;
            return Ok(self.replica.storage().get(key)?.unwrap_or_default());
        }
        let (prefs, targets) = self.targets(key);
        if prefs.is_empty() {
            return Err(CoordError::NotReady);
        }
        let mut q = Quorum::resolve(self.quorum, prefs.len(), r, None)?;
        if reader == Reader::Watch {
            q.r = q.r.max(q.w);
        }
        let started = Instant::now();
        let key = Bytes::copy_from_slice(key);
        // Answers are shared, not copied: most replicas agree, and then the merge is one of them.
        let mut replies: Replies = Vec::with_capacity(targets.len());
        let mut remote = Vec::with_capacity(targets.len());
        for target in targets {
            if target.node != self.me() {
                remote.push(target);
                continue;
            }
            // The reader's own copy as it compared it (a write made here since is not what the
            // others answered "same" to: mixing the two would repair them with whole sets).
            if let (Some((set, _)), None) = (&mine, &target.hint_for) {
                replies.push((target, set.clone()));
                continue;
            }
            if plain && target.hint_for.is_none() {
                match self.replica.local_with_digest(&key) {
                    Ok((set, Some(digest))) => {
                        replies.push((target, set.clone()));
                        mine = Some((set, digest));
                    }
                    Ok((set, None)) => replies.push((target, set)),
                    Err(e) => tracing::warn!("local read failed: {e}"),
                }
                continue;
            }
            match self.local(&key) {
                Ok(set) => replies.push((target, set)),
                Err(e) => tracing::warn!("local read failed: {e}"),
            }
        }
        let local_answers = replies.len();
        // Hedged (`hedge.rs`): the remote replicas R still needs are asked now, the next when
        // one fails or is later than recent answers' 99th percentile; one read in
        // `FULL_READ_EVERY` asks them all, for read repair. The key's own replicas come before
        // stand-ins (which may hold no hint for it), and among them an order fixed for this
        // node: the reads made here together go to one peer in one batch (`batch.rs`), not one
        // to each; other nodes' orders differ, which spreads the reads over the replicas.
        if remote.len() > 1 {
            let seed = xxhash_rust::xxh3::xxh3_64(self.me().as_bytes());
            remote.sort_by_cached_key(|t| (t.hint_for.is_some(), peer_rank(seed, &t.node)));
        }
        let mut spares = if self.hedge.full_read() {
            Vec::new()
        } else {
            remote.split_off(q.r.saturating_sub(local_answers).min(remote.len()))
        };
        spares.reverse(); // popped from the back
        metrics::counter!(m::READ_REQUESTS_TOTAL, "asked" => "first").increment(remote.len() as u64);
        let flushed_to = self.replica.storage().flush_cutoff(&key);
        let peers = if plain { self.peers.clone() } else { self.direct.clone() };
        let read = |target: Target| -> gather::Call<Option<Arc<SiblingSet>>> {
            let (peers, key, mine, hedge) = (peers.clone(), key.clone(), mine.clone(), self.hedge.clone());
            Box::pin(async move {
                let req = match &mine {
                    Some((set, digest)) => Request::ReadUnlessSame {
                        key,
                        digest: *digest,
                        seen: set.as_deref().map(SiblingSet::context).unwrap_or_default(),
                        flushed_to,
                        exact: plain,
                    },
                    None => Request::Read { key },
                };
                let asked = Instant::now();
                let answer = peers.call(&target.node, req).await;
                hedge.observe(asked.elapsed());
                let reply = match answer {
                    Ok(Response::Value(v)) => Some(v.map(Arc::new)),
                    Ok(Response::Same) => mine.map(|(set, _)| set),
                    _ => None,
                };
                (target, reply)
            })
        };
        // A read is not answered by a stand-in that was not asked from the start: one that holds
        // no hint would count an empty answer toward R. A replica not asked yet is asked instead.
        let mut g = gather(
            remote,
            deadline,
            self.hedge.after(self.cluster.settings().sloppy_after),
            |_| {
                let next = spares.pop();
                if next.is_some() {
                    metrics::counter!(m::READ_REQUESTS_TOTAL, "asked" => "hedge").increment(1);
                }
                next
            },
            read,
            |a| a.len() + local_answers >= q.r,
        )
        .await;
        replies.append(&mut g.answers);
        if !g.met {
            return Err(CoordError::NoQuorum { op: "read", needed: q.r, got: replies.len() });
        }
        // Without what a flush dropped: a replica that missed it may still hold such values.
        let merged =
            self.replica.storage().unflushed(&key, merge_shared(replies.iter().filter_map(|(_, s)| s.as_ref())));
        metrics::histogram!(m::QUORUM_DURATION, "op" => "get", "phase" => "quorum")
            .record(started.elapsed().as_secs_f64());
        // A read-modify-write's decider (`mine`) repairs nothing: its write, which usually
        // follows, sends every replica the next version (as a patch, or whole to one that is
        // not at its base); under concurrent writes of a hot key a repair would send whole
        // sets to replicas that are only a patch behind. A decision that writes nothing leaves
        // a differing replica to the next plain read or to anti-entropy.
        if !plain {
            return Ok(merged);
        }
        // The rest of the answers arrive in the background; then every stale replica is repaired.
        let rest = g.pending;
        let agrees = |s: &Option<Arc<SiblingSet>>| match s {
            Some(s) => holds(s, &merged),
            None => merged.is_empty(),
        };
        if rest.is_empty() && replies.iter().all(|(_, s)| agrees(s)) {
            // Every replica asked holds the version read (the usual case): nothing to repair.
            return Ok(merged);
        }
        let coordinator = self.background();
        if reader == Reader::Watch {
            // The answers so far are repaired now, before the version is answered.
            let (all, after) = coordinator.read_repair(key.clone(), std::mem::take(&mut replies)).await;
            replies = after;
            let holders = replies.iter().filter(|(_, s)| s.as_ref().is_some_and(|s| holds(s, &all))).count();
            if holders < q.w && !all.is_empty() {
                // The answers still to come are repaired in the background all the same.
                tokio::spawn(coordinator.repair_late(key, replies, rest, deadline, started));
                return Err(CoordError::NoQuorum { op: "read", needed: q.w, got: holders });
            }
        }
        tokio::spawn(coordinator.repair_late(key, replies, rest, deadline, started));
        Ok(merged)
    }

    /// What a background task needs of the coordinator.
    fn background(&self) -> Background {
        Background { replica: self.replica.clone(), peers: self.peers.clone(), me: self.me().to_owned() }
    }
}

/// Who reads, which decides what a read does once it has its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reader {
    /// A client's read: replicas whose copies differ are repaired in the background.
    Client,
    /// A read-modify-write's decider: repairs nothing (its write, which follows, does).
    Decider,
    /// WATCH's read ([`Coordinator::get_settled`]): the answers are repaired before it returns.
    Watch,
}

/// Where `node` comes in the order of the peers a node's reads go to first (`seed`: the
/// hash of that node's id).
fn peer_rank(seed: u64, node: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(node.as_bytes(), seed)
}

/// The merge of the answers of a read: one of them, shared, when they all hold the same
/// version (the usual case: no copy, no merge), else their merge.
fn merge_shared<'a>(sets: impl Iterator<Item = &'a Arc<SiblingSet>>) -> Arc<SiblingSet> {
    let mut merged: Option<Arc<SiblingSet>> = None;
    for set in sets {
        merged = Some(match merged {
            None => set.clone(),
            Some(m) if holds(set, &m) => m,
            Some(m) => Arc::new(m.sync(set)),
        });
    }
    merged.unwrap_or_default()
}

/// The part of a coordinator a background task carries: read repair after a get returned.
struct Background {
    replica: Arc<Replica>,
    peers: Arc<dyn Peers>,
    me: NodeId,
}

impl Background {
    /// The rest of a read's answers arrive (until `deadline`); then every stale replica is
    /// repaired.
    async fn repair_late(
        self,
        key: Bytes,
        mut replies: Replies,
        mut rest: FuturesUnordered<gather::Call<Option<Arc<SiblingSet>>>>,
        deadline: tokio::time::Instant,
        started: Instant,
    ) {
        while let Ok(Some((target, reply))) = tokio::time::timeout_at(deadline, rest.next()).await {
            if let Some(set) = reply {
                replies.push((target, set));
            }
        }
        metrics::histogram!(m::QUORUM_DURATION, "op" => "get", "phase" => "all")
            .record(started.elapsed().as_secs_f64());
        self.read_repair(key, replies).await;
    }

    /// Sends the merge of every answer to each replica whose copy differs from it (a
    /// stand-in gets it as a hint for the owner it replaces), to all of them at once. Returns
    /// the merge and the answers as they stand after the repair (a replica repaired now
    /// holds the merge; one whose repair failed keeps what it answered).
    async fn read_repair(&self, key: Bytes, replies: Replies) -> (Arc<SiblingSet>, Replies) {
        let merged = merge_shared(replies.iter().filter_map(|(_, s)| s.as_ref()));
        if merged.is_empty() {
            return (merged, replies);
        }
        let repairs = replies.into_iter().map(|(target, set)| {
            let (key, merged) = (&key, &merged);
            async move {
                if set.as_ref().is_some_and(|s| holds(s, merged)) {
                    return (target, set);
                }
                let repaired = self.repair(key, merged, &target).await;
                (target, if repaired { Some(merged.clone()) } else { set })
            }
        });
        let after = futures::future::join_all(repairs).await;
        (merged, after)
    }

    /// Sends `merged` to one replica (a stand-in keeps it as a hint): whether it holds it now.
    async fn repair(&self, key: &Bytes, merged: &Arc<SiblingSet>, target: &Target) -> bool {
        metrics::counter!(m::READ_REPAIRS_TOTAL).increment(1);
        if target.node == self.me {
            let stored = self.replica.merge(key, merged, target.hint_for.as_deref());
            return match stored.and_then(|()| self.replica.commit()) {
                // The disk refuses writes (logged by storage): the repair waits for it.
                Err(e) if e.is_refused() => {
                    tracing::debug!("local read repair failed: {e}");
                    false
                }
                Err(e) => {
                    tracing::warn!("local read repair failed: {e}");
                    false
                }
                Ok(()) => true,
            };
        }
        let req = Request::Replicate { key: key.clone(), set: (**merged).clone(), hint_for: target.hint_for.clone() };
        match self.peers.call(&target.node, req).await {
            Ok(Response::Ack) => true,
            Ok(other) => {
                tracing::debug!(node = %target.node, "read repair answered {other:?}");
                false
            }
            Err(e) => {
                tracing::debug!(node = %target.node, "read repair failed: {e}");
                false
            }
        }
    }
}

/// The answers of a read: each replica asked, and its copy (`None`: it did not answer).
type Replies = Vec<(Target, Option<Arc<SiblingSet>>)>;

/// Whether `set` is `merged` (the same version).
fn holds(set: &Arc<SiblingSet>, merged: &Arc<SiblingSet>) -> bool {
    Arc::ptr_eq(set, merged) || **set == **merged
}
