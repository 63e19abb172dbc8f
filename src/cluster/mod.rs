//! Membership, gossip, failure detection and ring changes (paper 4.8, 4.9).
//!
//! A node founds a cluster when it starts with no seeds and no saved state, or joins through
//! its seeds (the seeds keep the ring from splitting into logically separate rings, paper
//! 4.8.2). Every second it gossips its view to one random member and sends a heartbeat to
//! every member; the claimant (see [`state`]) turns joins into ring changes. The state is saved
//! in the `ring` keyspace on every change, so a restarted node keeps its ring and members.
//!
//! Readers take a [`View`]: the state with the preference list of every partition computed once
//! per ring change, swapped atomically.

mod detector;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

pub use crate::membership::{ClusterState, Member, Status};
pub use detector::Detector;

use crate::metrics as m;
use crate::peer::{PeerRequest, PeerResponse, RemoteError, Request, Response, Transport};
use crate::replica::Replica;
use crate::ring::NodeId;
use crate::rpc::RpcError;
use crate::storage::StorageError;

/// Name of the saved state in the `ring` keyspace.
const STATE_KEY: &str = "cluster";
const GOSSIP_EVERY: Duration = Duration::from_secs(1);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
const CLAIM_EVERY: Duration = Duration::from_millis(500);

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

/// The cluster as this node sees it at one moment.
pub struct View {
    /// `None` until a joining node has heard from its seeds.
    pub state: Option<ClusterState>,
    /// Per partition, the N owners in preference order.
    preflists: Vec<Arc<[NodeId]>>,
    /// Per partition, the whole ring walk (the extended preference list, for stand-ins).
    walks: Vec<Arc<[NodeId]>>,
    /// Per partition during a transition, the future replicas that are not current ones
    /// (writes reach them too); empty otherwise.
    joining_replicas: Vec<Arc<[NodeId]>>,
    /// Per partition during a transition, the future preference list; empty otherwise.
    future_preflists: Vec<Arc<[NodeId]>>,
    addrs: HashMap<NodeId, SocketAddr>,
}

impl View {
    fn new(state: Option<ClusterState>, n: usize) -> View {
        let Some(s) = &state else {
            return View {
                state,
                preflists: Vec::new(),
                walks: Vec::new(),
                joining_replicas: Vec::new(),
                future_preflists: Vec::new(),
                addrs: HashMap::new(),
            };
        };
        let zone_of = |id: &NodeId| s.members.get(id).and_then(|m| m.zone.clone());
        let q = s.ring.size();
        let preflists: Vec<Arc<[NodeId]>> = (0..q).map(|p| Arc::from(s.ring.preference_list(p, n, &zone_of))).collect();
        let walks = (0..q).map(|p| s.ring.walk(p).into_iter().cloned().collect::<Vec<_>>().into()).collect();
        let future_preflists: Vec<Arc<[NodeId]>> = if s.ring.in_transition() {
            let future = s.ring.future();
            (0..q).map(|p| Arc::from(future.preference_list(p, n, &zone_of))).collect()
        } else {
            Vec::new()
        };
        let joining_replicas = future_preflists
            .iter()
            .zip(&preflists)
            .map(|(later, now)| later.iter().filter(|x| !now.contains(x)).cloned().collect::<Vec<_>>().into())
            .collect();
        let addrs = s.members.values().map(|m| (m.id.clone(), m.addr)).collect();
        View { state, preflists, walks, joining_replicas, future_preflists, addrs }
    }

    pub fn ring_version(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.ring.version)
    }

    /// The ring size Q (0 before joining).
    pub fn partitions(&self) -> u32 {
        self.preflists.len() as u32
    }

    /// The preference list of `key` (empty before joining).
    pub fn preference_list(&self, key: &[u8]) -> Arc<[NodeId]> {
        match self.partitions() {
            0 => Arc::from(Vec::new()),
            q => self.preflists[crate::ring::partition_of_key(key, q) as usize].clone(),
        }
    }

    /// Every owner in ring order from `key`'s partition.
    pub fn walk(&self, key: &[u8]) -> Arc<[NodeId]> {
        match self.partitions() {
            0 => Arc::from(Vec::new()),
            q => self.walks[crate::ring::partition_of_key(key, q) as usize].clone(),
        }
    }

    /// During a transition, the replicas `key` is gaining (writes go to them as well).
    pub fn joining_replicas(&self, key: &[u8]) -> Option<Arc<[NodeId]>> {
        match self.joining_replicas.len() as u32 {
            0 => None,
            q => Some(self.joining_replicas[crate::ring::partition_of_key(key, q) as usize].clone())
                .filter(|r| !r.is_empty()),
        }
    }

    /// During a transition, `key`'s preference list in the future ring.
    pub fn future_preference_list(&self, key: &[u8]) -> Option<Arc<[NodeId]>> {
        match self.future_preflists.len() as u32 {
            0 => None,
            q => Some(self.future_preflists[crate::ring::partition_of_key(key, q) as usize].clone()),
        }
    }

    /// Partition `p`'s current replicas (its preference list).
    pub fn partition_replicas(&self, p: u32) -> Arc<[NodeId]> {
        self.preflists.get(p as usize).cloned().unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// Whether this node is among partition `p`'s current replicas.
    pub fn replicates(&self, p: u32, me: &str) -> bool {
        self.preflists.get(p as usize).is_some_and(|r| r.iter().any(|x| x == me))
    }

    pub fn addr(&self, id: &str) -> Option<SocketAddr> {
        self.addrs.get(id).copied()
    }

    /// Whether this is a cluster of one (every key lives here alone).
    pub fn single(&self, me: &str) -> bool {
        self.state.as_ref().is_some_and(|s| s.members.len() == 1 && s.members.contains_key(me))
    }
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
            Some(bytes) => {
                Some(postcard::from_bytes::<ClusterState>(&bytes).map_err(|e| ClusterError::Corrupt(e.to_string()))?)
            }
            None => None,
        };
        let me = &settings.me;
        let seeds: Vec<SocketAddr> = settings.seeds.iter().copied().filter(|s| *s != me.addr).collect();
        let state = match saved {
            Some(mut s) => {
                // A restart may come with new addresses or zone: describe ourselves again.
                if let Some(old) = s.members.get(&me.id).cloned() {
                    if (old.addr, old.client, &old.zone) != (me.addr, me.client, &me.zone) {
                        s.upsert(Member { version: old.version + 1, status: old.status, ..me.clone() });
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
            detector: Mutex::new(Detector::new(Duration::from_secs(3))),
            replica,
            transport,
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

    /// Saves and publishes `state`. Callers hold `changing`.
    fn install(&self, state: ClusterState) -> Result<(), ClusterError> {
        let bytes = postcard::to_stdvec(&state).map_err(|e| ClusterError::Corrupt(e.to_string()))?;
        self.replica.save_ring_state(STATE_KEY, &bytes)?;
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

    /// A node asks to join: add it (as joining) and return the state it should start from.
    pub fn admit(&self, member: Member) -> Result<ClusterState, ClusterError> {
        let _guard = self.changing.lock();
        let Some(mut state) = self.view.load().state.clone() else {
            return Err(ClusterError::NotReady);
        };
        let member = match state.members.get(&member.id) {
            // A known node (restarted without its data) keeps its place.
            Some(old) => Member { status: old.status, version: old.version + 1, ..member },
            None => {
                // A node at the address of a member with another id is that member, rebuilt
                // with a new id (its data dir, where the id was kept, is gone): the old id goes,
                // and its partitions are rebuilt from the other replicas.
                let replaced: Vec<NodeId> = state
                    .live_members()
                    .filter(|m| m.addr == member.addr && m.id != member.id)
                    .map(|m| m.id.clone())
                    .collect();
                for id in replaced {
                    if let Some(m) = state.members.get_mut(&id) {
                        tracing::info!(old = %id, new = %member.id, "a rebuilt node replaces the member at its address");
                        m.status = Status::Removed;
                        m.version += 1;
                    }
                }
                Member { status: Status::Joining, ..member }
            }
        };
        if state.upsert(member.clone()) {
            tracing::info!(node = %member.id, addr = %member.addr, "member joining");
            self.install(state.clone())?;
        }
        Ok(state)
    }

    /// Whether `id` is up as this node sees it (itself always is).
    pub fn is_up(&self, id: &str) -> bool {
        id == self.me() || self.detector.lock().is_up(id)
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
        let addr = self.view().addr(id).ok_or_else(|| ClusterError::UnknownMember(id.to_owned()))?;
        let result = self.call_addr(addr, body).await;
        match &result {
            Ok(_) => self.record(id, true),
            Err(ClusterError::Rpc(e)) => {
                m::peer_error(match e {
                    RpcError::Timeout(_) => "timeout",
                    RpcError::Connect { .. } => "connect",
                    RpcError::Handshake { .. } => "handshake",
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
        let mine = self.view().ring_version();
        let req = PeerRequest { ring_version: mine, body };
        let PeerResponse { ring_version, body } = self.transport.call(addr, req, self.settings.timeout).await?;
        if ring_version > mine && !matches!(body, Response::State(_)) {
            self.refresh_from(addr);
        }
        Ok(body)
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
    fn others(&self) -> Vec<(NodeId, SocketAddr)> {
        self.view()
            .state
            .as_ref()
            .map(|s| s.live_members().filter(|m| &m.id != self.me()).map(|m| (m.id.clone(), m.addr)).collect())
            .unwrap_or_default()
    }

    async fn heartbeat_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            for (id, _) in self.others() {
                let me = self.clone();
                tokio::spawn(async move {
                    let _ = me.call(&id, Request::Ping).await;
                });
            }
            let down = self.others().iter().filter(|(id, _)| !self.is_up(id)).count();
            metrics::gauge!(m::PEERS_DOWN).set(down as f64);
        }
    }

    async fn gossip_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(GOSSIP_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
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
    async fn claim_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(CLAIM_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let next = {
                let _guard = self.changing.lock();
                let view = self.view.load();
                let Some(state) = &view.state else { continue };
                if state.claimant() != Some(self.me()) {
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
    fn push(self: &Arc<Self>, state: ClusterState) {
        for (_, addr) in self.others() {
            let (me, state) = (self.clone(), state.clone());
            tokio::spawn(async move {
                if let Ok(Response::State(theirs)) = me.call_addr(addr, Request::Gossip(Box::new(state))).await {
                    let _ = me.merge(&theirs);
                }
            });
        }
    }

    /// `KURA LEAVE`: this node starts handing its partitions off.
    pub fn leave(self: &Arc<Self>) -> Result<bool, ClusterError> {
        let me = self.me().clone();
        let holds_hints = self.replica.storage().hint_count() > 0;
        self.change(|s| {
            let m = s.members.get_mut(&me).ok_or_else(|| ClusterError::UnknownMember(me.clone()))?;
            if matches!(m.status, Status::Leaving | Status::Exiting | Status::Removed) {
                return Ok(false);
            }
            m.status = Status::Leaving;
            m.holds_hints = holds_hints;
            m.version += 1;
            Ok(true)
        })
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
            m.version += 1;
            Ok(true)
        })?;
        Ok(())
    }

    /// `KURA REMOVE id`: takes a (dead) member out; its partitions are rebuilt from the other
    /// replicas.
    pub fn remove(self: &Arc<Self>, id: &str) -> Result<bool, ClusterError> {
        self.change(|s| {
            let m = s.members.get_mut(id).ok_or_else(|| ClusterError::UnknownMember(id.to_owned()))?;
            if m.status == Status::Removed {
                return Ok(false);
            }
            m.status = Status::Removed;
            m.version += 1;
            Ok(true)
        })
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

    /// Answers a gossip round: merge theirs, reply with ours.
    pub fn on_gossip(&self, theirs: &ClusterState) -> Response {
        if let Err(e) = self.merge(theirs) {
            tracing::error!("cannot save merged state: {e}");
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
