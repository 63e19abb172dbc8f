//! The coordinator: the only path from commands to storage (paper sections 4.5 and 4.6).
//!
//! A **get** asks the N nodes of the key's preference list, answers after R of them with the
//! syntactic merge of their sibling sets, and keeps listening after that: every replica whose
//! set differs from the merge of all answers gets the merge back (read repair, paper 4.7's
//! cheaper cousin). A **put** is coordinated by a node of the preference list: it makes the new
//! version there (a new dot of its actor, under the key's lock), stores it, sends the resulting
//! set to the other N-1 and answers after W acknowledgements (its own included). A node outside
//! the preference list forwards the put to one inside it. Fewer than R or W answers within the
//! request timeout is a `NoQuorum` error, never a hang.
//!
//! In a cluster of one the preference list is this node alone and both paths stay local.

pub mod gather;
pub mod quorum;

pub use crate::peer::{Write, WriteContext};

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::cluster::{Cluster, ClusterError};
use crate::metrics as m;
use crate::peer::{RemoteError, Request, Response};
pub use crate::replica::now_ms;
use crate::replica::{merge_all, Replica};
use crate::ring::NodeId;
use crate::storage::{Storage, StorageError};
use crate::version::{Context, ContextError, ContextKey, SiblingSet, VersionVector};
use gather::gather;
use quorum::{Quorum, QuorumError, Target, WriteQuorum};

#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Fewer than R (or W) replicas answered in time.
    #[error("{op} needed {needed} replicas, {got} answered")]
    NoQuorum { op: &'static str, needed: usize, got: usize },
    #[error("this node has not joined its cluster yet")]
    NotReady,
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

pub type Result<T> = std::result::Result<T, CoordError>;

impl CoordError {
    /// The form a peer reports this error in.
    pub fn to_remote(&self) -> RemoteError {
        match self {
            CoordError::NoQuorum { op, needed, got } => {
                RemoteError::NoQuorum { op: (*op).to_owned(), needed: *needed, got: *got }
            }
            CoordError::NotReady => RemoteError::NotReady,
            other => RemoteError::Failed(other.to_string()),
        }
    }
}

/// How the coordinator talks to other nodes: a request to a node, answered within the
/// peer timeout (or failed), and whether the failure detector thinks a node is up.
/// [`Cluster`] is the real one ([`ClusterPeers`]); tests use a simulated network.
pub trait Peers: Send + Sync + 'static {
    fn call<'a>(&'a self, node: &'a str, req: Request) -> BoxFuture<'a, std::result::Result<Response, ClusterError>>;
    fn is_up(&self, node: &str) -> bool;
}

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The real network: peer connections through the cluster (which also feed its detector).
pub struct ClusterPeers(pub Arc<Cluster>);

impl Peers for ClusterPeers {
    fn call<'a>(&'a self, node: &'a str, req: Request) -> BoxFuture<'a, std::result::Result<Response, ClusterError>> {
        Box::pin(self.0.call(node, req))
    }

    fn is_up(&self, node: &str) -> bool {
        self.0.is_up(node)
    }
}

/// Who this node is.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    pub node_id: String,
}

pub struct Coordinator {
    /// This node's copy of the data.
    replica: Arc<Replica>,
    identity: NodeIdentity,
    /// Signs contexts when a cluster secret is set; otherwise the cluster state's key does.
    secret_key: Option<ContextKey>,
    quorum: Quorum,
    /// Placement (the ring view) and settings.
    cluster: Arc<Cluster>,
    /// Requests to other nodes.
    peers: Arc<dyn Peers>,
}

impl Coordinator {
    pub fn new(
        replica: Arc<Replica>,
        identity: NodeIdentity,
        secret_key: Option<ContextKey>,
        quorum: Quorum,
        cluster: Arc<Cluster>,
        peers: Arc<dyn Peers>,
    ) -> Self {
        Coordinator { replica, identity, secret_key, quorum, cluster, peers }
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// Reads and scans of this node's store.
    pub fn storage(&self) -> &Arc<Storage> {
        self.replica.storage()
    }

    /// This node's copy of the data (every local write goes through it).
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn configured_quorum(&self) -> Quorum {
        self.quorum
    }

    fn me(&self) -> &str {
        &self.identity.node_id
    }

    /// The key contexts are signed with: the same on every node of the cluster.
    fn context_key(&self) -> Result<ContextKey> {
        if let Some(k) = &self.secret_key {
            return Ok(k.clone());
        }
        let view = self.cluster.view();
        let state = view.state.as_ref().ok_or(CoordError::NotReady)?;
        Ok(ContextKey::new(state.context_seed))
    }

    /// Encodes a version vector as a client context.
    ///
    /// # Errors
    /// Before the node has joined its cluster (there is no key to sign with yet).
    pub fn encode_context(&self, vv: &VersionVector) -> Result<String> {
        Ok(Context::encode(vv, &self.context_key()?))
    }

    /// Parses a client context.
    ///
    /// # Errors
    /// A context that is corrupt, forged or from another cluster.
    pub fn decode_context(&self, text: &[u8]) -> Result<VersionVector> {
        Ok(Context::decode(text, &self.context_key()?)?)
    }

    /// This node's own copy of `key` (no quorum, no repair): its data merged with any hinted
    /// copies it holds for other nodes.
    ///
    /// # Errors
    /// Storage failure.
    pub fn local(&self, key: &[u8]) -> Result<Option<Arc<SiblingSet>>> {
        Ok(self.replica.local(key)?)
    }

    /// Whether this node is a replica of `key` in its current ring, or one the key is gaining.
    pub fn replicates(&self, key: &[u8]) -> bool {
        let view = self.cluster.view();
        let me = self.me();
        view.preference_list(key).iter().any(|r| r == me)
            || view.joining_replicas(key).is_some_and(|g| g.iter().any(|r| r == me))
    }

    /// The replicas of `key` for a request now: the sloppy quorum's targets (paper 4.6).
    fn targets(&self, key: &[u8]) -> (Arc<[NodeId]>, Vec<Target>) {
        let view = self.cluster.view();
        let prefs = view.preference_list(key);
        let walk = view.walk(key);
        drop(view);
        let targets = quorum::sloppy_targets(&prefs, &walk, &|n| self.peers.is_up(n));
        (prefs, targets)
    }

    /// Reads `key` at quorum R (the configured one unless `r` overrides it) and returns the
    /// merged sibling set of the replicas that answered (empty if the key is missing).
    ///
    /// # Errors
    /// An R out of range, storage failure, or fewer than R answers in time.
    pub async fn get(&self, key: &[u8], r: Option<usize>) -> Result<Arc<SiblingSet>> {
        if self.cluster.view().single(self.me()) {
            Quorum::resolve(self.quorum, 1, r, None)?;
            return Ok(self.replica.storage().get(key)?.unwrap_or_default());
        }
        let (prefs, targets) = self.targets(key);
        if prefs.is_empty() {
            return Err(CoordError::NotReady);
        }
        let q = Quorum::resolve(self.quorum, prefs.len(), r, None)?;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.cluster.settings().timeout;
        let key = Bytes::copy_from_slice(key);
        let mut replies: Vec<(Target, Option<SiblingSet>)> = Vec::with_capacity(targets.len());
        let mut remote = Vec::with_capacity(targets.len());
        for target in targets {
            if target.node != self.me() {
                remote.push(target);
                continue;
            }
            match self.local(&key) {
                Ok(set) => replies.push((target, set.map(|s| (*s).clone()))),
                Err(e) => tracing::warn!("local read failed: {e}"),
            }
        }
        let local_answers = replies.len();
        let peers = self.peers.clone();
        let read = |target: Target| -> gather::Call<Option<SiblingSet>> {
            let (peers, key) = (peers.clone(), key.clone());
            Box::pin(async move {
                let reply = match peers.call(&target.node, Request::Read { key }).await {
                    Ok(Response::Value(v)) => Some(v),
                    _ => None,
                };
                (target, reply)
            })
        };
        // A read is not answered by a stand-in that was not asked from the start: one that holds
        // no hint would count an empty answer toward R.
        let mut g = gather(
            remote,
            deadline,
            self.cluster.settings().sloppy_after,
            |_| None,
            read,
            |a| a.len() + local_answers >= q.r,
        )
        .await;
        replies.append(&mut g.answers);
        if !g.met {
            return Err(CoordError::NoQuorum { op: "read", needed: q.r, got: replies.len() });
        }
        let merged = merge_all(replies.iter().filter_map(|(_, s)| s.as_ref()));
        metrics::histogram!(m::QUORUM_DURATION, "op" => "get", "phase" => "quorum")
            .record(started.elapsed().as_secs_f64());
        // The rest of the answers arrive in the background; then every stale replica is repaired.
        let coordinator = self.background();
        let mut rest = g.pending;
        tokio::spawn(async move {
            while let Ok(Some((target, reply))) = tokio::time::timeout_at(deadline, rest.next()).await {
                if let Some(set) = reply {
                    replies.push((target, set));
                }
            }
            metrics::histogram!(m::QUORUM_DURATION, "op" => "get", "phase" => "all")
                .record(started.elapsed().as_secs_f64());
            coordinator.read_repair(key, replies).await;
        });
        Ok(Arc::new(merged))
    }

    /// What a background task needs of the coordinator.
    fn background(&self) -> Background {
        Background { replica: self.replica.clone(), peers: self.peers.clone(), me: self.me().to_owned() }
    }

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
                Some(set) => return Ok(set),
                None => {
                    metrics::counter!(m::FORWARD_FALLBACKS_TOTAL).increment(1);
                    mine.unwrap_or_else(here)
                }
            },
        };
        let started = Instant::now();
        let written = self.replica.write(key, &context, write, role.hint_for.as_deref())?;
        // In this node's journal (handed to the OS) before any replica can hold it: a crash
        // of this process then never leaves a replica with a version its coordinator lacks,
        // so the next plain SET here supersedes everything acknowledged before (with
        // `--fsync everysec` a power loss still can; the new incarnation keeps that safe).
        self.replica.commit()?;
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
            self.replica.commit()?;
        }
        let mut first: Vec<Target> = targets.iter().filter(|t| t.node != self.me()).cloned().collect();
        for node in gaining.iter().flat_map(|g| g.iter()) {
            if node != self.me() && !first.iter().any(|t| &t.node == node) {
                first.push(Target { node: node.clone(), hint_for: None });
            }
        }
        let quorum = WriteQuorum { w: q.w, owners: &prefs, future: future.as_deref() };
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
                self.merge_replica(&key, &written, Some(g))?;
                self.replica.commit()?;
                here.push(Target { node: self.me().to_owned(), hint_for: Some(g.clone()) });
            }
        }
        let enough = |acks: &[(Target, ())]| quorum.met(here.iter().chain(acks.iter().map(|(t, ())| t)), kept_as_data);
        let used: Vec<&str> = first.iter().map(|t| t.node.as_str()).chain(std::iter::once(self.me())).collect();
        let mut spares = gather::Spares::new(&walk, &used, &|n| self.peers.is_up(n));
        let peers = self.peers.clone();
        let replicate = |target: Target| -> gather::Call<()> {
            let (peers, set) = (peers.clone(), (*written).clone());
            let req = Request::Replicate { key: key.clone(), set, hint_for: target.hint_for.clone() };
            Box::pin(async move {
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
            Err(CoordError::NoQuorum { op: "write", needed: q.w, got })
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
    ) -> Option<Arc<SiblingSet>> {
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
                        let budget_ms = deadline.saturating_duration_since(now).as_millis() as u64;
                        let (context, write) = (context.clone(), write.clone());
                        let req = Request::Put { key: key.clone(), context, write, w, budget_ms };
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
                    Ok(Response::Written(set)) => return Some(Arc::new(set)),
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

    /// Merges a set another node sent (replication, read repair, hinted handoff) into this
    /// node's data, or into its hint for `hint_for` when it is a stand-in for that owner.
    ///
    /// # Errors
    /// Storage failure.
    pub fn merge_replica(&self, key: &[u8], set: &SiblingSet, hint_for: Option<&str>) -> Result<()> {
        Ok(self.replica.merge(key, set, hint_for)?)
    }

    /// A mark covering every write made so far (see [`Storage::write_mark`]).
    pub fn write_mark(&self) -> u64 {
        self.replica.write_mark()
    }

    /// Makes the writes up to `mark` durable; the server calls it before it sends the replies
    /// that acknowledge them. Lets other connections add their writes to the same flush first.
    ///
    /// # Errors
    /// Storage failure: the batch's writes must not be acknowledged.
    pub async fn commit(&self, mark: u64) -> Result<()> {
        if self.replica.is_committed(mark) {
            return Ok(());
        }
        // Like Redis's beforeSleep: every connection that is ready runs its batch first, and one
        // journal flush then covers all their writes.
        tokio::task::yield_now().await;
        Ok(self.replica.commit_upto(mark)?)
    }

    /// Counts the keys that read as a value now (DBSIZE). Walks the local store.
    ///
    /// # Errors
    /// Storage failure.
    pub fn count_live_keys(&self) -> Result<u64> {
        let now = now_ms();
        let mut n = 0;
        self.replica.storage().for_each(|_, set| {
            if matches!(set, Ok(s) if s.get(now).is_some()) {
                n += 1;
            }
        })?;
        Ok(n)
    }

    /// Removes keys whose every sibling is a tombstone or expired since at least `grace_ms`
    /// (design.md section 2). On one node that is all. In a cluster a key goes only when every
    /// replica of it is up and holds the same set (or none): then this node drops its copy and
    /// tells the others to drop theirs if unchanged, so anti-entropy never finds an old value
    /// on one replica with nothing on the others to resurrect it from.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn reap_dead(&self, grace_ms: u64) -> Result<u64> {
        let now = now_ms();
        let settled = |s: &SiblingSet| {
            s.is_dead(now)
                && s.siblings().all(|sib| {
                    let dead_since = sib.expires_ms.filter(|_| sib.value.is_some()).unwrap_or(sib.written_ms);
                    dead_since.saturating_add(grace_ms) <= now
                })
        };
        if !self.replica.storage().take_reapable() {
            return Ok(0);
        }
        let mut candidates = Vec::new();
        let mut later = 0;
        let walked = self.replica.storage().for_each(|k, set| match &set {
            Ok(s) if settled(s) => candidates.push(k.to_vec()),
            Ok(s) if s.is_dead(now) || s.siblings().any(|sib| sib.expires_ms.is_some()) => later += 1,
            _ => {}
        });
        self.replica.storage().note_reapable(later + u64::from(walked.is_err()));
        walked?;
        let single = self.cluster.view().single(self.me());
        let mut reaped = 0;
        for k in candidates {
            if single {
                reaped += u64::from(self.replica.remove_if(&k, settled)?);
            } else if self.reap_everywhere(&k, &settled).await? {
                reaped += 1;
            } else {
                metrics::counter!(m::REAP_DEFERRED_TOTAL).increment(1);
                self.replica.storage().note_reapable(1);
            }
        }
        Ok(reaped)
    }

    /// Drops `key` here and on its other replicas if every replica holds the same dead set.
    ///
    /// Every other member is asked too, not only the replicas (a leaving one included): a stand-in may
    /// hold a hint of a value the tombstone superseded, and delivered after the reaping that
    /// value would come back to life. While any node that could hold such a hint is down or
    /// holds something else, the tombstone stays (it is tried again later).
    async fn reap_everywhere(&self, key: &[u8], settled: &(dyn Fn(&SiblingSet) -> bool + Sync)) -> Result<bool> {
        let Some(mine) = self.replica.storage().get(key)? else { return Ok(false) };
        if !self.replica.storage().hints_of(key)?.is_empty() {
            tracing::debug!("not reaping a key this node holds a hint of");
            return Ok(false);
        }
        let view = self.cluster.view();
        if view.state.as_ref().is_none_or(|s| s.ring.in_transition()) {
            tracing::debug!("not reaping during a ring transition");
            return Ok(false);
        }
        let prefs = view.preference_list(key);
        // Every member, not only the ring walk: a leaving member holds its place while it has
        // hints (`Member::holds_hints`), and one of them may be a hint of this key.
        let members: Vec<NodeId> = view
            .state
            .as_ref()
            .map(|s| s.live_members().map(|m| m.id.clone()).filter(|id| id != self.me()).collect())
            .unwrap_or_default();
        drop(view);
        let others: Vec<&NodeId> = prefs.iter().filter(|n| *n != self.me()).collect();
        let everyone: Vec<&NodeId> = members.iter().collect();
        if let Some(down) = everyone.iter().find(|n| !self.peers.is_up(n)) {
            tracing::debug!(node = %down, "not reaping while a node that may hold a copy is down");
            return Ok(false);
        }
        let key = Bytes::copy_from_slice(key);
        // A replica's Read answers its data and any hint it holds; a stand-in's, its hints.
        for node in &everyone {
            match self.peers.call(node, Request::Read { key: key.clone() }).await {
                Ok(Response::Value(None)) => {}
                Ok(Response::Value(Some(theirs))) if theirs == *mine => {}
                other => {
                    tracing::debug!(node = %node, "not reaping a key another node holds differently: {other:?}");
                    return Ok(false);
                }
            }
        }
        let digest = crate::storage::digest(&mine.encode());
        if !self.replica.remove_if(&key, |s| *s == *mine && settled(s))? {
            return Ok(false);
        }
        for node in others {
            if let Err(e) = self.peers.call(node, Request::Reap { key: key.clone(), digest }).await {
                tracing::debug!(node = %node, "asking a replica to reap failed: {e}");
            }
        }
        Ok(true)
    }

    /// Another replica reaped `key`: drop this copy too if it is still the set it saw.
    ///
    /// # Errors
    /// Storage failure.
    pub fn reap_replica(&self, key: &[u8], digest: u64) -> Result<()> {
        if self.replica.remove_if(key, |s| crate::storage::digest(&s.encode()) == digest)? {
            metrics::counter!(m::REAPED_KEYS_TOTAL).increment(1);
        }
        Ok(())
    }
}

/// The part of a coordinator a background task carries: read repair after a get returned.
struct Background {
    replica: Arc<Replica>,
    peers: Arc<dyn Peers>,
    me: NodeId,
}

impl Background {
    /// Sends the merge of every answer to each replica whose copy differs from it (a
    /// stand-in gets it as a hint for the owner it replaces).
    async fn read_repair(&self, key: Bytes, replies: Vec<(Target, Option<SiblingSet>)>) {
        let merged = merge_all(replies.iter().filter_map(|(_, s)| s.as_ref()));
        if merged.is_empty() {
            return;
        }
        for (target, set) in replies {
            if set.as_ref() == Some(&merged) {
                continue;
            }
            metrics::counter!(m::READ_REPAIRS_TOTAL).increment(1);
            if target.node == self.me {
                let stored = self.replica.merge(&key, &merged, target.hint_for.as_deref());
                if let Err(e) = stored.and_then(|()| self.replica.commit()) {
                    tracing::warn!("local read repair failed: {e}");
                }
                continue;
            }
            let req = Request::Replicate { key: key.clone(), set: merged.clone(), hint_for: target.hint_for.clone() };
            if let Err(e) = self.peers.call(&target.node, req).await {
                tracing::debug!(node = %target.node, "read repair failed: {e}");
            }
        }
    }
}
