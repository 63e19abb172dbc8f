//! The coordinator: the commands' path to the data (paper sections 4.5 and 4.6); it writes
//! locally only through [`Replica`] and reaches other nodes only through [`Peers`].
//!
//! - `get.rs`: ask the key's targets, answer after R with the merge, repair stale replicas in
//!   the background;
//! - `put.rs`: make the new version at an owner (forwarding when this node is none, a stand-in
//!   when no owner answers), send it on, answer after W copies ([`quorum::WriteQuorum`]);
//! - `reap.rs`: remove deleted and expired keys once every replica agrees;
//! - `batch.rs`: the requests to one peer made in the same moment leave as one batch;
//! - `gather.rs`: the one "send, need enough, replace the silent" loop; `quorum.rs`: the pure
//!   rules.
//!
//! Fewer than R or W answers within the request timeout is a `NoQuorum` error, never a hang.
//! In a cluster of one the preference list is this node alone and both paths stay local.

mod batch;
mod combine;
pub use batch::MAX_BATCH;
pub mod gather;
mod get;
mod hedge;
mod modify;
mod put;
pub mod quorum;
mod reap;
mod scan;
pub mod scripts;

pub use crate::version::{Write, WriteContext};

use std::sync::Arc;

pub use crate::clock::now_ms;
use crate::cluster::{Cluster, ClusterError};
use crate::peer::{RemoteError, Request, Response};
use crate::replica::{ModifyError, Replica};
use crate::ring::NodeId;
use crate::rmw::RmwError;
use crate::storage::{Storage, StorageError};
use crate::version::{Context, ContextError, ContextKey, SiblingSet, VersionVector};
use quorum::{Quorum, QuorumError, Target};

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
    /// A read-modify-write forwarded to `peer`, its decider, got no answer after it was sent
    /// (timed out, or the connection closed): it may have been applied there.
    #[error("the write was forwarded to {peer}, which did not answer ({reason})")]
    Unanswered { peer: NodeId, reason: String },
    /// A script sent to `peer` (its first key's decider) to run got no reply after it was
    /// sent: it may have run there.
    #[error("the script was sent to {peer} to run, and no reply came ({reason}): it may have run")]
    ScriptUnanswered { peer: NodeId, reason: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Rmw(#[from] RmwError),
    /// A read-modify-write waited until its deadline for a key a running script holds
    /// (`scripts.rs`); nothing was written.
    #[error("the key is held by a running script")]
    Busy,
    /// A write with a context that would leave the key with too many siblings (nothing was
    /// written).
    #[error("too many siblings: the key holds {kept} values this write did not see (at most {max}); read them with DGET and write their merge back with DPUT and its context")]
    TooManySiblings { kept: usize, max: usize },
    /// A walk run on the blocking pool did not finish (it panicked).
    #[error("a storage walk failed: {0}")]
    Walk(#[from] tokio::task::JoinError),
    /// The request deciding this read-modify-write with others of its key went away before it
    /// answered (`combine.rs`): it may have been applied.
    #[error("the request deciding this write with others went away before it answered: it may have been applied")]
    Cancelled,
    /// Another read-modify-write's error, told to each of a batch that failed together (see
    /// [`CoordError::copy`]).
    #[error("{0}")]
    Copied(String),
}

impl From<crate::replica::WriteError> for CoordError {
    fn from(e: crate::replica::WriteError) -> Self {
        match e {
            crate::replica::WriteError::Storage(e) => CoordError::Storage(e),
            crate::replica::WriteError::Siblings { kept, max } => CoordError::TooManySiblings { kept, max },
        }
    }
}

impl From<ModifyError> for CoordError {
    fn from(e: ModifyError) -> Self {
        match e {
            ModifyError::Storage(e) => CoordError::Storage(e),
            ModifyError::Rmw(e) => CoordError::Rmw(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, CoordError>;

impl CoordError {
    /// Whether this is a write the disk refused unapplied (logged once by storage: callers
    /// that retry it keep quiet).
    pub fn is_disk_refused(&self) -> bool {
        match self {
            CoordError::Storage(e) => e.is_refused(),
            CoordError::Cluster(e) => e.is_disk_refused(),
            _ => false,
        }
    }

    /// The same error for another request of a batch that failed together (`combine.rs`):
    /// the same variant where it can be copied, else its text.
    pub fn copy(&self) -> CoordError {
        match self {
            CoordError::NoQuorum { op, needed, got } => CoordError::NoQuorum { op, needed: *needed, got: *got },
            CoordError::NotReady => CoordError::NotReady,
            CoordError::Unanswered { peer, reason } => {
                CoordError::Unanswered { peer: peer.clone(), reason: reason.clone() }
            }
            CoordError::Rmw(e) => CoordError::Rmw(e.clone()),
            CoordError::Busy => CoordError::Busy,
            CoordError::Cancelled => CoordError::Cancelled,
            CoordError::TooManySiblings { kept, max } => CoordError::TooManySiblings { kept: *kept, max: *max },
            CoordError::Storage(StorageError::Refused(t)) => CoordError::Storage(StorageError::Refused(t.clone())),
            CoordError::Storage(StorageError::WriteFailed(t)) => {
                CoordError::Storage(StorageError::WriteFailed(t.clone()))
            }
            other => CoordError::Copied(other.to_string()),
        }
    }

    /// The form a peer reports this error in.
    pub fn to_remote(&self) -> RemoteError {
        match self {
            CoordError::NoQuorum { op, needed, got } => {
                RemoteError::NoQuorum { op: (*op).to_owned(), needed: *needed, got: *got }
            }
            CoordError::NotReady => RemoteError::NotReady,
            CoordError::Unanswered { .. } | CoordError::ScriptUnanswered { .. } | CoordError::Cancelled => {
                RemoteError::NoQuorum { op: "write".to_owned(), needed: 1, got: 0 }
            }
            CoordError::Rmw(e) => RemoteError::Rmw(e.clone()),
            CoordError::Busy => RemoteError::Busy,
            CoordError::TooManySiblings { kept, max } => RemoteError::TooManySiblings { kept: *kept, max: *max },
            CoordError::Storage(StorageError::Refused(trouble)) => RemoteError::DiskRefused(trouble.to_string()),
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

pub use crate::peer::BoxFuture;

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
    /// Requests to other nodes (those made together to one peer leave as a batch).
    peers: Arc<dyn Peers>,
    /// The same, never batched: a read-modify-write's decider reads and writes through it. Its
    /// quorum read must reach each replica ahead of the patches of the writes it decides
    /// next, so that the replica still holds what the decider has seen and answers `Same`
    /// instead of the whole set; and its writes, serial per key, have little to share.
    direct: Arc<dyn Peers>,
    /// The keys the scripts running here hold (`scripts.rs`).
    key_locks: scripts::KeyLocks,
    /// The read-modify-writes of each key decided here, queued to be decided together.
    combiner: combine::Combiner,
    /// How long a read waits before it asks one more replica (`hedge.rs`).
    hedge: Arc<hedge::Hedge>,
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
        // Replication and quorum reads to a peer made in the same moment travel together.
        let direct = peers.clone();
        let peers: Arc<dyn Peers> = Arc::new(batch::Batching::new(peers));
        Coordinator {
            replica,
            identity,
            secret_key,
            quorum,
            cluster,
            peers,
            direct,
            key_locks: scripts::KeyLocks::default(),
            combiner: combine::Combiner::default(),
            hedge: Arc::default(),
        }
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
        self.cluster.view().replicates_key(key, self.me())
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

    /// Asks the nodes a write of each of `keys` reaches now (the sloppy quorum's targets) to
    /// tell this node of their next write of it: a client here is blocked on the keys.
    /// Best effort: a node that does not answer within the request timeout is passed over
    /// (the blocked client's periodic retry covers it).
    pub async fn watch(&self, keys: &[bytes::Bytes]) {
        if self.cluster.view().single(self.me()) {
            return;
        }
        let mut by_node: std::collections::HashMap<String, Vec<bytes::Bytes>> = std::collections::HashMap::new();
        for key in keys {
            for t in self.targets(key).1 {
                if t.node != self.me() {
                    by_node.entry(t.node).or_default().push(key.clone());
                }
            }
        }
        let timeout = self.cluster.settings().timeout;
        let calls = by_node.into_iter().map(|(node, keys)| async move {
            let _ = tokio::time::timeout(timeout, self.peers.call(&node, Request::Watch { keys })).await;
        });
        futures::future::join_all(calls).await;
    }

    /// Tells `node` that `key`, which it watched, was written here.
    pub async fn tell_touched(&self, node: &str, key: bytes::Bytes) {
        let timeout = self.cluster.settings().timeout;
        let _ = tokio::time::timeout(timeout, self.peers.call(node, Request::Touched { key })).await;
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
}
