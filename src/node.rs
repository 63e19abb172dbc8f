//! A running node's shared state: its identity, configuration, coordinator and counters; and
//! the answers to peers' requests (`peer.rs` lists them).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::antientropy::AntiEntropy;
use crate::cluster::{Cluster, ClusterError, Member, Settings, Status};
use crate::config::Config;
use crate::coordinator::quorum::Quorum;
use crate::coordinator::{ClusterPeers, CoordError, Coordinator, NodeIdentity, Peers};
use crate::handoff::Transfers;
use crate::peer::{PeerClient, PeerRequest, PeerResponse, RemoteError, Request, Response, Transport};
use crate::replica::Replica;
use crate::rpc::{self, Identity};
use crate::storage::{Storage, StorageError};
use crate::version::ContextKey;

/// The name peers check in the handshake: nodes of different clusters never talk.
pub const CLUSTER_NAME: &str = "kura";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// What a reply that acknowledges writes waits for: the writes up to a point of this node's
/// journal (see [`Node::durable`]). Tickets are ordered; the larger covers the smaller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    /// Covers nothing: nothing to wait for.
    pub const NONE: Ticket = Ticket(0);
}

/// How a node reaches its peers.
pub enum Network {
    /// TCP connections to their cluster addresses.
    Tcp,
    /// A simulated network (`sim.rs`): every message goes through `transport`, and with
    /// `peers` the coordinator's go through that instead (a network whose failure detector
    /// never notices anything).
    Simulated { transport: Arc<dyn Transport>, peers: Option<Arc<dyn Peers>> },
}

pub struct Node {
    pub config: Config,
    pub coordinator: Coordinator,
    /// Who this node is to its peers (for the peer listener's handshake).
    pub peer_identity: Arc<Identity>,
    /// Certificates for the TLS client port and, with `--tls-cluster yes`, the peer port.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Progress of partition transfers.
    pub transfers: Arc<Transfers>,
    /// Merkle trees and exchanges.
    pub aae: Arc<AntiEntropy>,
    pub metrics: Option<PrometheusHandle>,
    pub started: Instant,
    pub run_id: String,
    pub total_commands: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// The client connections (CLIENT, MONITOR, the idle timeout, INFO errorstats).
    pub clients: Arc<crate::clients::Clients>,
    /// The password of the `default` user (`--requirepass`, CONFIG SET requirepass).
    pub requirepass: parking_lot::RwLock<Option<String>>,
    /// Redis's encoding settings as CONFIG SET last set them (`command::config`): remembered
    /// and answered, never used (kura's storage has one encoding per type).
    pub encodings: parking_lot::Mutex<Vec<(&'static str, i64)>>,
    /// Connections allowed at once (`--maxclients`, CONFIG SET maxclients): the server's
    /// permits, and how many there are.
    pub client_slots: Arc<tokio::sync::Semaphore>,
    pub maxclients: AtomicU64,
    /// Permits a lowered `maxclients` still has to take back from open connections: each
    /// connection that ends while some are owed forgets its permit instead of returning it.
    owed_slots: AtomicU64,
    /// Requests slower than `slowlog-log-slower-than`.
    pub slowlog: crate::slowlog::SlowLog,
    /// SHUTDOWN asked the process to stop (as a signal does).
    pub shutdown: tokio::sync::Notify,
    /// EXEC holds it exclusively; every other request holds it shared while it runs.
    pub exec_gate: tokio::sync::RwLock<()>,
    /// INFO keyspace's last walk of the store (`command/info.rs`).
    pub keyspace_walk: tokio::sync::Mutex<Option<Arc<crate::command::KeyspaceWalk>>>,
    /// Lua scripting: the script cache, the Lua states, the running scripts (`script/`).
    pub scripts: crate::script::Engine,
    /// Pub/sub: this node's subscriptions and the fan-out to its peers.
    pub pubsub: Arc<crate::pubsub::Broker>,
    /// Keyspace notifications (`notify-keyspace-events`) to this node's subscribers.
    pub notify: Arc<crate::notify::Notifier>,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    crate::random::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Node {
    /// Opens the data directory and establishes this node's identity: the node id (given, or
    /// generated once and kept), this process's incarnation (new at every start, see
    /// `coordinator::Actors`) and the context key.
    ///
    /// # Errors
    /// When the data directory cannot be opened.
    pub fn open(config: Config, metrics: Option<PrometheusHandle>) -> Result<Arc<Node>, NodeError> {
        Self::open_with(config, metrics, Network::Tcp)
    }

    /// [`Node::open`] on the given network (a simulation's, in tests).
    ///
    /// # Errors
    /// When the data directory cannot be opened.
    pub fn open_with(
        config: Config,
        metrics: Option<PrometheusHandle>,
        network: Network,
    ) -> Result<Arc<Node>, NodeError> {
        let idle_timeout = config.timeout;
        rpc::set_max_frame(config.max_frame_bytes);
        // A store of a build before placements (walked at open to upgrade it) is placed by MD5.
        crate::ring::set_placement(crate::ring::Placement::Md5);
        let storage = Storage::open_keeping(&config.data_dir, config.fsync, config.min_free_disk)?;
        crate::ring::set_placement(storage.placement(config.placement)?);
        let node_id = Replica::node_id(&storage, config.node_id.as_deref(), || random_hex(8))?;
        // Contexts must decode on every node: signed with the cluster secret when there is
        // one, else with the key the cluster was founded with (carried by its state).
        let context_key = config.cluster_secret.as_deref().map(|s| ContextKey::derive(s.as_bytes()));
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let peer_identity = Arc::new(Identity::new(&node_id, CLUSTER_NAME, config.cluster_secret.as_deref()));
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(crate::tls::Tls::new(files.clone(), config.tls_cluster)?)),
            None => None,
        };
        let (transport, simulated): (Arc<dyn Transport>, _) = match network {
            Network::Tcp => {
                // A peer that does not take a connection within this is silent (a forward
                // then moves on: a request never sent may go elsewhere).
                let connect = Duration::from_millis(config.sloppy_after_ms.max(500)).min(timeout);
                let client = PeerClient::new(peer_identity.clone(), config.cluster_listen.ip(), connect)
                    .with_tls(tls.clone().filter(|t| t.cluster()));
                (Arc::new(client), None)
            }
            Network::Simulated { transport, peers } => (transport, peers),
        };
        let me = Member {
            id: node_id.clone(),
            addr: config.cluster_listen,
            client: config.listen,
            zone: config.zone.clone(),
            status: Status::Joining,
            version: 1,
            holds_hints: false,
        };
        let settings = Settings {
            me,
            n: config.n,
            partitions: config.partitions,
            seeds: config.seeds.clone(),
            timeout,
            sloppy_after: Duration::from_millis(config.sloppy_after_ms),
        };
        let replica = Arc::new(Replica::new(storage.clone(), &node_id));
        replica.admission().set_target(Duration::from_millis(config.background_p99_ms));
        replica.set_max_siblings(config.max_siblings);
        let cluster = Cluster::open(settings, replica.clone(), transport)?;
        // Keys with a hash tag stored by a build before tags moved to their tag's position;
        // those of partitions this node does not replicate go to their replicas.
        replica.rehome(|key| {
            let view = cluster.view();
            let mut replicas = view.preference_list(key).to_vec();
            replicas.extend(view.joining_replicas(key).map(|r| r.to_vec()).unwrap_or_default());
            replicas
        })?;
        let clients = Arc::new(crate::clients::Clients::new(idle_timeout));
        clients.set_output_limits(config.output_limits);
        let pubsub = Arc::new(crate::pubsub::Broker::new(cluster.clone(), clients.clone()));
        let notify = crate::notify::Notifier::new(pubsub.clone(), cluster.clone());
        storage.watch_expiries(&(notify.clone() as Arc<dyn crate::storage::ExpiryWatch>));
        let aae = AntiEntropy::open(
            replica.clone(),
            cluster.clone(),
            Duration::from_secs(config.aae_interval_secs),
            config.aae_walk_at_open_keys,
        )?;
        let identity = NodeIdentity { node_id };
        let quorum = Quorum { n: config.n, r: config.r, w: config.w };
        let peers: Arc<dyn Peers> = match simulated {
            Some(p) => p,
            None => Arc::new(ClusterPeers(cluster.clone())),
        };
        let coordinator = Coordinator::new(replica, identity, context_key, quorum, cluster, peers);
        let (requirepass, maxclients) = (config.requirepass.clone(), config.maxclients);
        Ok(Arc::new(Node {
            config,
            coordinator,
            peer_identity,
            tls,
            transfers: Arc::new(Transfers::default()),
            aae,
            metrics,
            started: Instant::now(),
            run_id: random_hex(20),
            total_commands: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            clients,
            exec_gate: tokio::sync::RwLock::new(()),
            keyspace_walk: tokio::sync::Mutex::new(None),
            scripts: crate::script::Engine::default(),
            shutdown: tokio::sync::Notify::new(),
            slowlog: crate::slowlog::SlowLog::default(),
            requirepass: parking_lot::RwLock::new(requirepass),
            encodings: parking_lot::Mutex::new(crate::command::ENCODINGS.to_vec()),
            client_slots: Arc::new(tokio::sync::Semaphore::new(maxclients)),
            maxclients: AtomicU64::new(maxclients as u64),
            owed_slots: AtomicU64::new(0),
            pubsub,
            notify,
        }))
    }

    /// Starts the node's background work on the current runtime: the cluster's joining,
    /// heartbeats, gossip and claimant; hinted handoff; anti-entropy; partition transfers.
    /// Everything ends when `stop` turns true.
    pub fn spawn_background(self: &Arc<Self>, stop: &watch::Receiver<bool>) {
        let (replica, cluster) = (self.coordinator.replica().clone(), self.coordinator.cluster().clone());
        cluster.spawn(stop.clone());
        tokio::spawn(crate::handoff::run(replica.clone(), cluster.clone(), stop.clone()));
        tokio::spawn(self.aae.clone().run(stop.clone()));
        tokio::spawn(self.notify.clone().run_expiries(replica.storage().clone(), stop.clone()));
        if let Some(outbox) = replica.wakeups().outbox() {
            tokio::spawn(crate::command::blocking::tell_watchers(self.clone(), outbox, stop.clone()));
        }
        let (limit, rate) = (self.config.transfer_limit, self.config.transfer_rate);
        tokio::spawn(crate::handoff::transfer::run(
            replica,
            cluster,
            self.transfers.clone(),
            limit,
            rate,
            stop.clone(),
        ));
    }

    /// Changes how many connections may be open at once: new connections beyond it are
    /// refused; open ones stay (as in Redis).
    pub fn set_maxclients(&self, n: usize) {
        let old = self.maxclients.swap(n as u64, Ordering::AcqRel) as usize;
        if n > old {
            // A debt left by an earlier decrease is paid first.
            let mut more = (n - old) as u64;
            let _ = self.owed_slots.fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| {
                let paid = owed.min(more);
                more -= paid;
                Some(owed - paid)
            });
            self.client_slots.add_permits(more as usize);
        } else {
            let want = old - n;
            let forgotten = self.client_slots.forget_permits(want);
            self.owed_slots.fetch_add((want - forgotten) as u64, Ordering::AcqRel);
        }
    }

    /// A connection ended: whether its permit must be forgotten (a lowered `maxclients` is
    /// still owed one) rather than returned.
    pub fn take_owed_slot(&self) -> bool {
        self.owed_slots.fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| owed.checked_sub(1)).is_ok()
    }

    /// A ticket covering every write made on this node so far.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.coordinator.write_mark())
    }

    /// Waits until the writes `ticket` covers are durable (one journal flush for every
    /// connection's writes meanwhile): replies that acknowledge them go out after this.
    ///
    /// # Errors
    /// Storage failure: those writes must not be acknowledged.
    pub async fn durable(&self, ticket: Ticket) -> Result<(), crate::coordinator::CoordError> {
        if ticket == Ticket::NONE {
            return Ok(());
        }
        self.coordinator.commit(ticket.0).await
    }

    /// Whether this node is a cluster of one (requests then never wait for a peer).
    pub fn alone(&self) -> bool {
        let cluster = self.coordinator.cluster();
        cluster.view().single(cluster.me())
    }
}

impl Node {
    /// Merges sets a peer sent (replication, read repair, hinted handoff, a transfer batch,
    /// anti-entropy) and acknowledges them only once they are in this node's journal.
    async fn merge_and_ack<'a>(
        &self,
        entries: impl Iterator<Item = (&'a Bytes, &'a crate::version::SiblingSet)>,
        hint_for: Option<&str>,
    ) -> Response {
        let merged: Result<(), _> =
            entries.into_iter().try_for_each(|(key, set)| self.coordinator.merge_replica(key, set, hint_for));
        let committed = match merged {
            Ok(()) => self.coordinator.commit(self.coordinator.write_mark()).await,
            Err(e) => Err(e),
        };
        match committed {
            Ok(()) => Response::Ack,
            Err(e) => Response::Error(e.to_remote()),
        }
    }
}

impl Node {
    /// Applies a replicated patch (`Request::Patch`). Patches a decider sends one after the
    /// other to the same replica may arrive out of order: one whose base is not here yet waits
    /// for it (a write of the key wakes it) for at most `PATCH_WAIT`, well within the
    /// sender's `--sloppy-after-ms`, before it is refused as stale (which costs the sender a
    /// send of the whole set).
    async fn apply_patch(&self, key: &[u8], patch: &crate::storage::Patch) -> Response {
        let budget = PATCH_WAIT.min(self.coordinator.cluster().settings().sloppy_after / 2);
        let deadline = tokio::time::Instant::now() + budget;
        match self.coordinator.replica().apply_patch_when_based(key, patch, deadline).await {
            Ok(true) => match self.coordinator.commit(self.coordinator.write_mark()).await {
                Ok(()) => Response::Ack,
                Err(e) => Response::Error(e.to_remote()),
            },
            Ok(false) => Response::Stale,
            Err(e) => Response::Error(CoordError::from(e).to_remote()),
        }
    }
}

impl Node {
    /// Answers a request that needs no waiting (those `Request::batchable` allows): a read,
    /// or a replica's copy merged into the journal but not yet flushed (`Ack` means it still
    /// needs [`Coordinator::commit`] before it may be sent).
    fn answer_now(&self, ring_version: u64, req: Request) -> Response {
        let cluster = self.coordinator.cluster();
        match req {
            // The sender has not seen the ring move the key away from here: a copy kept now
            // would be dropped or never found, and an answer from here ("none") would count
            // toward its R. It learns the ring from this reply.
            Request::Read { ref key }
            | Request::ReadUnlessSame { ref key, .. }
            | Request::Replicate { hint_for: None, ref key, .. }
                if cluster.view().refuses_as_stale(ring_version, key, cluster.me()) =>
            {
                Response::Error(RemoteError::StaleRing)
            }
            Request::Read { key } => match self.coordinator.local(&key) {
                Ok(set) => Response::Value(set.map(|s| (*s).clone())),
                Err(e) => Response::Error(RemoteError::Failed(e.to_string())),
            },
            Request::ReadUnlessSame { key, digest, seen, flushed_to, exact } => {
                match self.coordinator.replica().unless_same(&key, digest, &seen, flushed_to, exact) {
                    Ok(None) => {
                        metrics::counter!(crate::metrics::READS_SAME_TOTAL).increment(1);
                        Response::Same
                    }
                    Ok(Some(set)) => Response::Value(set.map(|s| (*s).clone())),
                    Err(e) => Response::Error(RemoteError::Failed(e.to_string())),
                }
            }
            Request::Replicate { key, set, hint_for } => {
                match self.coordinator.merge_replica(&key, &set, hint_for.as_deref()) {
                    Ok(()) => Response::Ack,
                    Err(e) => Response::Error(e.to_remote()),
                }
            }
            _ => Response::Error(RemoteError::Failed("not a request a batch may carry".into())),
        }
    }
}

/// The longest a replicated patch waits for the version it applies to.
const PATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

impl rpc::Handler<PeerRequest, PeerResponse> for Node {
    fn handle(&self, from: Arc<str>, req: PeerRequest) -> Pin<Box<dyn Future<Output = PeerResponse> + Send + '_>> {
        Box::pin(async move {
            let cluster = self.coordinator.cluster();
            // A node of another cluster (the same id and address, founded anew after a lost
            // data dir, or a stray one) is refused before anything is taken from it, and is
            // not heard from: it stays down here. A join is the one request across clusters.
            if !matches!(req.body, Request::Join(_)) && !cluster.accepts(req.cluster) {
                cluster.refuse(req.sender, req.cluster);
                let ours = cluster.cluster_id();
                return PeerResponse {
                    ring_version: 0,
                    cluster: ours,
                    body: Response::Error(RemoteError::OtherCluster { ours }),
                };
            }
            cluster.heard_from(&from);
            cluster.on_peer_ring(&from, req.ring_version);
            if req.deadline_ms != 0 && req.body.expires() && crate::clock::now_ms() > req.deadline_ms {
                metrics::counter!(crate::metrics::PEER_EXPIRED_TOTAL).increment(1);
                return PeerResponse {
                    ring_version: cluster.view().ring_version(),
                    cluster: cluster.cluster_id(),
                    body: Response::Error(RemoteError::Expired),
                };
            }
            // A write to coordinate or decide here is refused at once while the disk refuses
            // writes (it would fail at its first write): the sender takes the next owner.
            if matches!(req.body, Request::Modify { .. } | Request::Put { .. }) {
                let disk = self.coordinator.storage().health();
                if let Some(trouble) = disk.trouble() {
                    return PeerResponse {
                        ring_version: cluster.view().ring_version(),
                        cluster: cluster.cluster_id(),
                        body: Response::Error(RemoteError::DiskRefused(disk.refuse(trouble).to_string())),
                    };
                }
            }
            let failed = |e: &dyn std::fmt::Display| Response::Error(RemoteError::Failed(e.to_string()));
            let body = match req.body {
                Request::Ping => Response::Pong,
                Request::Gossip(state) => cluster.on_gossip(&state),
                Request::Join(member) => match cluster.admit(member) {
                    Ok(state) => Response::State(Box::new(state)),
                    Err(ClusterError::NotReady) => Response::Error(RemoteError::NotReady),
                    Err(e) => failed(&e),
                },
                // See `answer_now`.
                Request::Patch { ref key, .. }
                    if cluster.view().refuses_as_stale(req.ring_version, key, cluster.me()) =>
                {
                    Response::Error(RemoteError::StaleRing)
                }
                r @ (Request::Read { .. } | Request::ReadUnlessSame { .. }) => self.answer_now(req.ring_version, r),
                Request::Patch { key, patch } => self.apply_patch(&key, &patch).await,
                r @ Request::Replicate { .. } => match self.answer_now(req.ring_version, r) {
                    Response::Ack => match self.coordinator.commit(self.coordinator.write_mark()).await {
                        Ok(()) => Response::Ack,
                        Err(e) => Response::Error(e.to_remote()),
                    },
                    refused => refused,
                },
                // A batch is at most what a sender makes (its answer, which may hold a copy of a
                // large key per part, stays bounded).
                Request::Batch(requests) if requests.len() > crate::coordinator::MAX_BATCH => {
                    Response::Error(RemoteError::Failed(format!(
                        "a batch of {} requests (at most {})",
                        requests.len(),
                        crate::coordinator::MAX_BATCH
                    )))
                }
                // Each part answered at once, then one journal flush acknowledges every copy.
                Request::Batch(requests) => {
                    let mut answers: Vec<Response> =
                        requests.into_iter().map(|r| self.answer_now(req.ring_version, r)).collect();
                    if answers.iter().any(|a| matches!(a, Response::Ack)) {
                        if let Err(e) = self.coordinator.commit(self.coordinator.write_mark()).await {
                            let error = e.to_remote();
                            for a in answers.iter_mut().filter(|a| matches!(a, Response::Ack)) {
                                *a = Response::Error(error.clone());
                            }
                        }
                    }
                    Response::Batch(answers)
                }
                Request::TransferBatch { partition, entries } => {
                    let reply = self.merge_and_ack(entries.iter().map(|(k, s)| (k, s)), None).await;
                    match &reply {
                        Response::Ack => self.transfers.received(entries.len() as u64),
                        Response::Error(RemoteError::DiskRefused(_)) => {
                            tracing::debug!(partition, "storing a transfer batch failed: {reply:?}")
                        }
                        _ => tracing::warn!(partition, "storing a transfer batch failed: {reply:?}"),
                    }
                    reply
                }
                req @ (Request::AaeRoot { .. }
                | Request::AaeInner { .. }
                | Request::AaeGroup { .. }
                | Request::AaeKeys { .. }
                | Request::AaeFetch { .. }) => {
                    self.aae.built().await;
                    self.aae.answer(req)
                }
                Request::AaePush { entries } => self.merge_and_ack(entries.iter().map(|(k, s)| (k, s)), None).await,
                Request::Reap { key, digest } => match self.coordinator.reap_replica(&key, digest) {
                    Ok(()) => Response::Ack,
                    Err(e) => Response::Error(e.to_remote()),
                },
                Request::TransferDone { partition, to } => match cluster.on_transfer_done(partition, &to) {
                    Ok(state) => Response::State(Box::new(state)),
                    Err(e) => failed(&e),
                },
                Request::Keys { from, to, limit } => {
                    let limit = (limit as usize).min(10_000);
                    match self.coordinator.live_keys(from, to, limit, crate::clock::now_ms()).await {
                        Ok((keys, next)) => Response::Keys { keys, next },
                        Err(e) => Response::Error(RemoteError::Failed(e.to_string())),
                    }
                }
                Request::Publish { stream, seq, messages } => {
                    Response::Delivered(self.pubsub.receive(stream, seq, &messages))
                }
                Request::PubsubQuery(q) => Response::Pubsub(self.pubsub.answer(&q)),
                Request::Modify { key, op, deadline_ms, from_script } => {
                    let Some(budget) = crate::peer::budget_until(deadline_ms) else {
                        return PeerResponse {
                            ring_version: cluster.view().ring_version(),
                            cluster: cluster.cluster_id(),
                            body: Response::Error(RemoteError::Expired),
                        };
                    };
                    match self.coordinator.modify_forwarded(&key, op, budget, from_script).await {
                        Ok(outcome) => match self.coordinator.commit(self.coordinator.write_mark()).await {
                            Ok(()) => Response::Modified(outcome),
                            Err(e) => Response::Error(e.to_remote()),
                        },
                        Err(e) => Response::Error(e.to_remote()),
                    }
                }
                Request::Script { db, args } => {
                    Response::Script((&crate::command::forwarded_script(self, db, args, req.sender).await).into())
                }
                Request::Transaction { db, resp3, watched, requests } => {
                    let reply = crate::command::forwarded_transaction(self, db, resp3, watched, requests, req.sender);
                    Response::Script((&reply.await).into())
                }
                Request::ScriptKill { functions } => {
                    Response::Script((&crate::command::forwarded_kill(self, functions)).into())
                }
                Request::Watch { keys } => {
                    let wakeups = self.coordinator.replica().wakeups();
                    for key in keys {
                        wakeups.watch(key, from.clone());
                    }
                    Response::Ack
                }
                Request::Touched { key } => {
                    self.coordinator.replica().wakeups().wake_local(&key);
                    Response::Ack
                }
                Request::Put { key, context, write, w, deadline_ms } => {
                    let Some(budget) = crate::peer::budget_until(deadline_ms) else {
                        return PeerResponse {
                            ring_version: cluster.view().ring_version(),
                            cluster: cluster.cluster_id(),
                            body: Response::Error(RemoteError::Expired),
                        };
                    };
                    match self.coordinator.put_forwarded(&key, context, write, w, budget).await {
                        Ok(set) => match self.coordinator.commit(self.coordinator.write_mark()).await {
                            Ok(()) => Response::Written((*set).clone()),
                            Err(e) => Response::Error(e.to_remote()),
                        },
                        Err(e) => Response::Error(e.to_remote()),
                    }
                }
            };
            PeerResponse { ring_version: cluster.view().ring_version(), cluster: cluster.cluster_id(), body }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerArgs;
    use crate::ring::Ring;
    use bytes::Bytes;
    use rpc::Handler;
    use std::net::SocketAddr;

    fn node(dir: &std::path::Path) -> Arc<Node> {
        let args = ServerArgs {
            data_dir: Some(dir.to_path_buf()),
            node_id: Some("n1".into()),
            fsync: Some(crate::storage::FsyncPolicy::Never),
            ..Default::default()
        };
        Node::open(Config::resolve(args).expect("config"), None).expect("node")
    }

    /// Issue 10 item 7: a replica `Read` from a coordinator with an older ring, of a key this
    /// node no longer replicates, is refused (its "none" would count toward R), as a
    /// `Replicate` is; with the current ring it is answered.
    #[tokio::test]
    async fn a_stale_coordinators_read_of_a_key_moved_away_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let cluster = node.coordinator.cluster();
        let mut state = cluster.view().state.clone().expect("a founded cluster");
        let ids: Vec<String> = ["n1", "n2", "n3", "n4", "n5"].iter().map(|s| s.to_string()).collect();
        for (i, id) in ids.iter().enumerate().skip(1) {
            let ip = [127, 0, 0, 1 + i as u8];
            state.upsert(Member {
                id: id.clone(),
                addr: SocketAddr::from((ip, 7379)),
                client: SocketAddr::from((ip, 6379)),
                zone: None,
                status: Status::Valid,
                version: 1,
                holds_hints: false,
            });
        }
        let mut ring = Ring::new(state.ring.size(), &ids);
        ring.version = state.ring.version + 5;
        state.ring = ring;
        cluster.merge(&state).expect("merge");
        let now = cluster.view().ring_version();
        assert_eq!(now, state.ring.version);
        let key = (0..1000)
            .map(|i| Bytes::from(format!("k{i}")))
            .find(|k| !node.coordinator.replicates(k))
            .expect("a key n1 does not replicate");
        let ask = |ring_version: u64| {
            let body = Request::Read { key: key.clone() };
            let (cluster, sender) = (0, SocketAddr::from(([127, 0, 0, 2], 7379)));
            node.handle(Arc::from("n2"), PeerRequest { ring_version, cluster, sender, deadline_ms: 0, body })
        };
        assert!(matches!(ask(now - 1).await.body, Response::Error(RemoteError::StaleRing)));
        assert!(matches!(ask(now).await.body, Response::Value(None)));
    }

    /// Issue 23: a `Batch` is answered part by part, in its order (a copy merged, reads of a
    /// key held and of one missing), and the copy is kept; a batch larger than any sender
    /// makes is refused whole.
    #[tokio::test]
    async fn a_batch_is_answered_part_by_part() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let write = crate::version::Write { value: Some(Bytes::from_static(b"v").into()), expires_ms: None };
        let set = node.coordinator.put(b"a", crate::version::WriteContext::Everything, write, None).await.unwrap();
        let ask = |body: Request| {
            let ring_version = node.coordinator.cluster().view().ring_version();
            let sender = SocketAddr::from(([127, 0, 0, 2], 7379));
            node.handle(Arc::from("n2"), PeerRequest { ring_version, cluster: 0, sender, deadline_ms: 0, body })
        };
        let parts = vec![
            Request::Replicate { key: Bytes::from_static(b"b"), set: (*set).clone(), hint_for: None },
            Request::Read { key: Bytes::from_static(b"b") },
            Request::Read { key: Bytes::from_static(b"missing") },
        ];
        match ask(Request::Batch(parts)).await.body {
            Response::Batch(answers) => {
                assert!(matches!(answers[0], Response::Ack), "{answers:?}");
                assert!(matches!(&answers[1], Response::Value(Some(s)) if *s == *set), "{answers:?}");
                assert!(matches!(answers[2], Response::Value(None)), "{answers:?}");
                assert_eq!(answers.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        let kept = node.coordinator.local(b"b").unwrap().expect("the batch's copy is kept");
        assert_eq!(*kept, *set);
        let too_many = (0..=crate::coordinator::MAX_BATCH).map(|_| Request::Read { key: Bytes::from_static(b"b") });
        let refused = ask(Request::Batch(too_many.collect())).await.body;
        assert!(matches!(refused, Response::Error(RemoteError::Failed(_))), "{refused:?}");
    }
}
