//! Membership, gossip, failure detection and ring changes (paper 4.8, 4.9).
//!
//! A node founds a cluster when it starts with no seeds and no saved state, or joins through
//! its seeds (the seeds keep the ring from splitting into logically separate rings, paper
//! 4.8.2). Every second it gossips its view to one random member, and it sends a heartbeat to
//! every member four times a second (`detector.rs`); the claimant (see [`state`]) turns joins
//! into ring changes. The state is saved in the `ring` keyspace on every change, so a restarted
//! node keeps its ring and members.
//!
//! Readers take a [`View`]: the state with the preference list of every partition computed once
//! per ring change, swapped atomically.

mod admin;
mod detector;
mod loops;
mod view;

pub use view::View;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::time::Instant;

pub use crate::membership::{ClusterState, Member, Status};
pub use detector::{Detector, HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT, SILENCE};

use crate::metrics as m;
use crate::peer::{PeerRequest, PeerResponse, RemoteError, Request, Response, Transport};
use crate::replica::Replica;
use crate::ring::NodeId;
use crate::rpc::RpcError;
use crate::storage::StorageError;

/// Name of the saved state in the `ring` keyspace.
const STATE_KEY: &str = "cluster";
/// How often a node gossips with one random member.
pub const GOSSIP_EVERY: Duration = Duration::from_secs(1);
/// How often the claimant looks for a ring change to make.
pub const CLAIM_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("saved cluster state is corrupt: {0}")]
    Corrupt(String),
    #[error("unknown member {0}")]
    UnknownMember(String),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("peer {peer}: {error}")]
    Remote { peer: NodeId, error: RemoteError },
    #[error("unexpected response from {0}")]
    Unexpected(NodeId),
    /// This node has no cluster yet (it is joining through its seeds).
    #[error("this node has not joined its cluster yet")]
    NotReady,
    /// Only the claimant records finished transfers.
    #[error("this node is not the claimant")]
    NotClaimant,
    /// A flush (or another mark: `what`) that not every member confirmed in time (it is in
    /// force where it arrived).
    #[error("{what} confirmed by {} of {members} nodes (not by {}): it may have been applied", members - missing.len(), missing.join(", "))]
    Unconfirmed { what: &'static str, members: usize, missing: Vec<NodeId> },
    /// The peer belongs to another cluster (another founding): nothing is taken from it.
    #[error("peer {peer} belongs to another cluster ({theirs:016x}, this node's is {ours:016x})")]
    OtherCluster { peer: String, theirs: u64, ours: u64 },
    /// The cluster a join reached places keys otherwise (`--placement`) and this node holds
    /// keys placed by its own: its state is not taken.
    #[error("the cluster at {peer} places keys by the other --placement than this node's ({}), and this node holds keys already: it cannot join", crate::ring::placement().name())]
    OtherPlacement { peer: String },
}

/// How long a refused peer stays listed (INFO, `KURA MEMBERS`) after its last message.
const REFUSED_FOR: Duration = Duration::from_secs(60);
/// How often one refused peer is logged.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(30);

/// A peer of another cluster that talked to this node (or answered it) lately.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// Its cluster address.
    pub addr: SocketAddr,
    /// Its cluster id.
    pub cluster: u64,
    pub last: Instant,
    logged: Instant,
}

impl ClusterError {
    /// Whether the request certainly never reached the peer (see [`RpcError::not_sent`]): an
    /// unknown member, or a connection that failed before the request was sent.
    pub fn not_sent(&self) -> bool {
        match self {
            ClusterError::Rpc(e) => e.not_sent(),
            ClusterError::UnknownMember(_) | ClusterError::NotReady => true,
            _ => false,
        }
    }

    /// Whether this is a write refused unapplied for a disk's trouble, this node's (its
    /// storage logs it once) or the peer's.
    pub fn is_disk_refused(&self) -> bool {
        match self {
            ClusterError::Storage(e) => e.is_refused(),
            ClusterError::Remote { error: RemoteError::DiskRefused(_), .. } => true,
            _ => false,
        }
    }
}

/// How this node runs in its cluster.
#[derive(Clone, Debug)]
pub struct Settings {
    pub me: Member,
    pub n: usize,
    pub partitions: u32,
    pub seeds: Vec<SocketAddr>,
    /// Timeout of a peer request.
    pub timeout: Duration,
    /// How long a replica may stay silent within a request before a stand-in replaces it.
    pub sloppy_after: Duration,
}

pub struct Cluster {
    settings: Settings,
    view: ArcSwap<View>,
    /// Serialises changes of the state (merge, save, swap).
    changing: Mutex<()>,
    detector: Mutex<Detector>,
    /// Where the state is kept (and how many hints this node holds).
    replica: Arc<Replica>,
    /// How messages reach other nodes.
    transport: Arc<dyn Transport>,
    /// Peers of other clusters heard from lately, by cluster address.
    refused: Mutex<std::collections::HashMap<SocketAddr, Refusal>>,
}

impl Cluster {
    /// Loads the saved state, or founds a new cluster when there is none and no seeds.
    ///
    /// # Errors
    /// Storage failure or a corrupt saved state.
    pub fn open(
        settings: Settings,
        replica: Arc<Replica>,
        transport: Arc<dyn Transport>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let saved = match replica.storage().ring_get(STATE_KEY)? {
            Some(bytes) => Some(ClusterState::decode(&bytes).map_err(|e| ClusterError::Corrupt(e.to_string()))?),
            None => None,
        };
        let me = &settings.me;
        let seeds: Vec<SocketAddr> = settings.seeds.iter().copied().filter(|s| *s != me.addr).collect();
        let state = match saved {
            Some(mut s) => {
                // A restart may come with new addresses or zone: describe ourselves again.
                if let Some(old) = s.members.get(&me.id).cloned() {
                    if (old.addr, old.client, &old.zone) != (me.addr, me.client, &me.zone) {
                        s.upsert(Member { version: old.version.saturating_add(1), status: old.status, ..me.clone() });
                    }
                }
                Some(s)
            }
            None if seeds.is_empty() => Some(ClusterState::found(me.clone(), settings.partitions)),
            None => None,
        };
        let cluster = Arc::new(Cluster {
            view: ArcSwap::from_pointee(View::new(None, settings.n)),
            settings: Settings { seeds, ..settings },
            changing: Mutex::new(()),
            detector: Mutex::new(Detector::new(detector::SILENCE)),
            replica,
            transport,
            refused: Mutex::new(std::collections::HashMap::new()),
        });
        if let Some(s) = state {
            let _guard = cluster.changing.lock();
            cluster.install(s)?;
        }
        Ok(cluster)
    }

    pub fn me(&self) -> &NodeId {
        &self.settings.me.id
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current view (cheap: an atomic load).
    pub fn view(&self) -> arc_swap::Guard<Arc<View>> {
        self.view.load()
    }

    /// This node's cluster id (`ClusterState::cluster_id`), 0 while it has no cluster.
    pub fn cluster_id(&self) -> u64 {
        self.view().state.as_ref().map_or(0, ClusterState::cluster_id)
    }

    /// Whether a message stamped with cluster id `theirs` may be taken: from this node's own
    /// cluster, or from or to a node that has none yet (a joining node).
    pub fn accepts(&self, theirs: u64) -> bool {
        let ours = self.cluster_id();
        theirs == 0 || ours == 0 || theirs == ours
    }

    /// A node of another cluster (`theirs`) at `addr` talked to us or answered us: counted,
    /// listed (INFO, `KURA MEMBERS`) and logged, with the command that moves this node into it.
    pub fn refuse(&self, addr: SocketAddr, theirs: u64) {
        m::peer_error("other_cluster");
        let now = Instant::now();
        let log = {
            let mut refused = self.refused.lock();
            let entry = refused.entry(addr).or_insert(Refusal {
                addr,
                cluster: theirs,
                last: now,
                logged: now - REFUSAL_LOG_EVERY - Duration::from_secs(1),
            });
            entry.cluster = theirs;
            entry.last = now;
            let log = now.duration_since(entry.logged) >= REFUSAL_LOG_EVERY;
            if log {
                entry.logged = now;
            }
            log
        };
        if log {
            tracing::warn!(
                peer = %addr,
                their_cluster = format!("{theirs:016x}"),
                our_cluster = format!("{:016x}", self.cluster_id()),
                "refusing a node of another cluster; if this node lost its data dir and founded a \
                 new cluster, run `KURA JOIN {addr}` on it (it must be empty) to rejoin that one; if the \
                 other node is the one that should go, `KURA REMOVE` its id there"
            );
        }
    }

    /// Peers of other clusters heard from within the last minute.
    pub fn refused_peers(&self) -> Vec<Refusal> {
        let now = Instant::now();
        let mut refused = self.refused.lock();
        refused.retain(|_, r| now.duration_since(r.last) < REFUSED_FOR);
        let mut out: Vec<Refusal> = refused.values().cloned().collect();
        out.sort_by_key(|r| r.addr);
        out
    }

    /// Whether the member at `addr` belongs to another cluster (it answered as such lately).
    pub fn refuses(&self, addr: SocketAddr) -> bool {
        self.refused.lock().get(&addr).is_some_and(|r| r.last.elapsed() < REFUSED_FOR)
    }

    /// The peer at `addr` spoke as a node of this cluster: no longer refused.
    fn accepted(&self, addr: SocketAddr) {
        let mut refused = self.refused.lock();
        if !refused.is_empty() {
            refused.remove(&addr);
        }
    }

    /// Saves and publishes `state`. Callers hold `changing`.
    fn install(&self, state: ClusterState) -> Result<(), ClusterError> {
        self.replica.save_ring_state(STATE_KEY, &state.encode())?;
        // A flush this node had not heard of: in force at once (reads and writes apply it);
        // its stored copies are purged by a blocking task, off the gossip path.
        if let Some(purge) = self.replica.storage().install_flush_marks(&state.flushes) {
            let storage = self.replica.storage().clone();
            let mut gate = self.replica.admission().gate();
            let run = move || match storage.purge(purge, || gate.admit_blocking()) {
                Ok(n) => tracing::info!(keys = n, "flush purged"),
                Err(e) => tracing::warn!("flush purge failed (reads still apply the flush): {e}"),
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(run)),
                Err(_) => run(),
            }
        }
        metrics::gauge!(m::RING_VERSION).set(state.ring.version as f64);
        metrics::gauge!(m::MEMBERS).set(state.live_members().count() as f64);
        self.view.store(Arc::new(View::new(Some(state), self.settings.n)));
        Ok(())
    }

    /// Merges another node's view into ours; returns whether ours changed.
    pub fn merge(&self, other: &ClusterState) -> Result<bool, ClusterError> {
        let _guard = self.changing.lock();
        let view = self.view.load();
        let mut state = match &view.state {
            // Never a state of another cluster (callers check the sender's id; this is the
            // last line): merging it would make its members ours.
            Some(s) if s.context_seed != other.context_seed => return Ok(false),
            // Most gossip brings nothing new: no copy of the state for it.
            Some(s) if !s.would_change(other) => return Ok(false),
            Some(s) => s.clone(),
            // A joining node adopts the first state it hears, if it names this node.
            None if other.members.contains_key(self.me()) => other.clone(),
            None => return Ok(false),
        };
        let changed = state.merge(other);
        if changed || view.state.is_none() {
            if view.state.as_ref().map(|s| s.ring.version) != Some(state.ring.version) {
                tracing::info!(ring_version = state.ring.version, "new ring");
            }
            self.install(state)?;
        }
        Ok(changed)
    }

    /// Takes `state` as this node's whole, whatever cluster it had (tests: the simulation
    /// gives every node one state, as `KURA JOIN` does).
    #[cfg(test)]
    pub fn adopt(&self, state: ClusterState) -> Result<(), ClusterError> {
        let _guard = self.changing.lock();
        self.install(state)
    }

    /// A node asks to join: add it (as joining) and return the state it should start from.
    pub fn admit(&self, member: Member) -> Result<ClusterState, ClusterError> {
        let _guard = self.changing.lock();
        let Some(mut state) = self.view.load().state.clone() else {
            return Err(ClusterError::NotReady);
        };
        if state.admit(member) {
            self.install(state.clone())?;
        }
        Ok(state)
    }

    /// Whether `id` is up as this node sees it (itself always is).
    pub fn is_up(&self, id: &str) -> bool {
        id == self.me() || self.detector.lock().is_up(id)
    }

    /// The other members (not removed) that are up as this node sees them: where a published
    /// message goes.
    pub fn peers_up(&self) -> Vec<NodeId> {
        let view = self.view();
        let Some(state) = view.state.as_ref() else { return Vec::new() };
        let detector = self.detector.lock();
        state.live_members().filter(|m| &m.id != self.me() && detector.is_up(&m.id)).map(|m| m.id.clone()).collect()
    }

    /// A peer's request arrived: it is alive.
    pub fn heard_from(&self, id: &str) {
        self.record(id, true);
    }

    fn record(&self, id: &str, ok: bool) {
        let now = Instant::now();
        let mut d = self.detector.lock();
        if ok {
            if d.ok(id, now) {
                tracing::info!(node = id, "peer is up");
            }
        } else if d.failed(id, now) {
            tracing::warn!(node = id, "peer is down");
        }
    }

    /// Sends `body` to member `id` and returns its response body. Reports the outcome to the
    /// failure detector, and fetches the peer's state if its ring is newer than ours.
    ///
    /// # Errors
    /// The member is unknown, unreachable, timed out, or answered with an error.
    pub async fn call(self: &Arc<Self>, id: &str, body: Request) -> Result<Response, ClusterError> {
        self.call_within(id, body, self.settings.timeout).await
    }

    /// [`Cluster::call`] waiting at most `timeout` (a heartbeat's is short; a forwarded
    /// script's is long).
    pub async fn call_within(
        self: &Arc<Self>,
        id: &str,
        body: Request,
        timeout: Duration,
    ) -> Result<Response, ClusterError> {
        let addr = self.view().addr(id).ok_or_else(|| ClusterError::UnknownMember(id.to_owned()))?;
        let result = self.call_addr_within(addr, Some(id), body, timeout).await;
        match &result {
            Ok(_) => self.record(id, true),
            Err(ClusterError::OtherCluster { .. }) => self.record(id, false),
            // Refused here, unsent: the peer speaks an older protocol (not a failure of it).
            Err(ClusterError::Rpc(RpcError::Unsupported { .. })) => {}
            Err(ClusterError::Rpc(e)) => {
                m::peer_error(match e {
                    RpcError::Timeout(_) => "timeout",
                    RpcError::Connect { .. } => "connect",
                    RpcError::Handshake { .. } => "handshake",
                    RpcError::WrongPeer { .. } => "wrong_peer",
                    _ => "closed",
                });
                self.record(id, false);
            }
            Err(_) => {}
        }
        let body = result?;
        if let Response::Error(error) = body {
            return Err(ClusterError::Remote { peer: id.to_owned(), error });
        }
        Ok(body)
    }

    async fn call_addr(self: &Arc<Self>, addr: SocketAddr, body: Request) -> Result<Response, ClusterError> {
        self.call_addr_within(addr, None, body, self.settings.timeout).await
    }

    /// Sends `body` to the node at `addr` (to node `to`, when the caller knows who is there).
    async fn call_addr_within(
        self: &Arc<Self>,
        addr: SocketAddr,
        to: Option<&str>,
        body: Request,
        timeout: Duration,
    ) -> Result<Response, ClusterError> {
        let (mine, ours) = (self.view().ring_version(), self.cluster_id());
        let join = matches!(body, Request::Join(_));
        let deadline_ms = crate::clock::now_ms().saturating_add(timeout.as_millis() as u64);
        let req = PeerRequest { ring_version: mine, cluster: ours, sender: self.settings.me.addr, deadline_ms, body };
        let PeerResponse { ring_version, cluster, body } = self.transport.call(addr, to, req, timeout).await?;
        // A node of another cluster: take nothing from its answer (a join is the one request
        // that crosses clusters).
        if let Response::Error(RemoteError::OtherCluster { ours: theirs }) = body {
            self.refuse(addr, theirs);
            return Err(ClusterError::OtherCluster { peer: addr.to_string(), theirs, ours });
        } else if !join && !self.accepts(cluster) {
            self.refuse(addr, cluster);
            return Err(ClusterError::OtherCluster { peer: addr.to_string(), theirs: cluster, ours });
        } else if let (true, Response::State(state)) = (join && cluster != 0, &body) {
            // The answer's cluster id was made by the seed under its placement, the state's
            // here under this node's: they differ only when the placements do.
            if state.cluster_id() != cluster {
                self.adopt_placement(addr, &state.context_seed, cluster)?;
            }
            self.accepted(addr);
        } else {
            self.accepted(addr);
        }
        if ring_version > mine && !matches!(body, Response::State(_)) {
            self.refresh_from(addr);
        }
        Ok(body)
    }

    /// A join reached a cluster of the other placement (its id, `theirs`, is the one its seed
    /// makes under it): this node takes that placement when it stores nothing yet (a joining
    /// node, or an empty one moved by `KURA JOIN`), as it takes the cluster's ring size.
    fn adopt_placement(&self, addr: SocketAddr, seed: &[u8; 32], theirs: u64) -> Result<(), ClusterError> {
        let other = crate::ring::placement().other();
        let storage = self.replica.storage();
        if crate::membership::cluster_id_in(other, seed) != theirs || !storage.is_empty()? {
            let refused = ClusterError::OtherPlacement { peer: addr.to_string() };
            tracing::error!(peer = %addr, "{refused}");
            return Err(refused);
        }
        storage.mark_placement(other)?;
        crate::ring::set_placement(other);
        tracing::info!(peer = %addr, placement = other.name(), "joining a cluster placed by {}: this node is too", other.name());
        Ok(())
    }

    /// Exchanges state with the peer at `addr` in the background (its ring is newer).
    pub fn refresh_from(self: &Arc<Self>, addr: SocketAddr) {
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.gossip_with(addr).await {
                tracing::debug!("state refresh from {addr} failed: {e}");
            }
        });
    }

    /// One gossip exchange with the peer at `addr`.
    async fn gossip_with(self: &Arc<Self>, addr: SocketAddr) -> Result<(), ClusterError> {
        let Some(state) = self.view().state.clone() else { return Ok(()) };
        if let Response::State(theirs) = self.call_addr(addr, Request::Gossip(Box::new(state))).await? {
            self.merge(&theirs)?;
        }
        Ok(())
    }

    /// Answers a gossip round: merge theirs, reply with ours.
    pub fn on_gossip(&self, theirs: &ClusterState) -> Response {
        match self.merge(theirs) {
            Err(e) if e.is_disk_refused() => tracing::debug!("cannot save merged state: {e}"),
            Err(e) => tracing::error!("cannot save merged state: {e}"),
            Ok(_) => {}
        }
        match self.view().state.clone() {
            Some(s) => Response::State(Box::new(s)),
            None => Response::Error(RemoteError::NotReady),
        }
    }

    /// A peer with a newer ring talked to us: catch up from it.
    pub fn on_peer_ring(self: &Arc<Self>, from: &str, their_version: u64) {
        if their_version > self.view().ring_version() {
            if let Some(addr) = self.view().addr(from) {
                self.refresh_from(addr);
            }
        }
    }
}
