//! A running node's shared state: its identity, configuration, coordinator and counters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::Mutex;
use rand::RngCore;

use crate::config::Config;
use crate::coordinator::quorum::Quorum;
use crate::coordinator::{Coordinator, NodeIdentity};
use crate::storage::{Storage, StorageError};
use crate::version::{Actor, ContextKey};

/// What CLIENT LIST and CLIENT INFO show of a connection.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub name: Option<String>,
    pub connected: Instant,
    pub resp: u8,
}

pub struct Node {
    pub config: Config,
    pub coordinator: Coordinator,
    pub metrics: Option<PrometheusHandle>,
    pub started: Instant,
    pub run_id: String,
    pub total_commands: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub error_replies: AtomicU64,
    next_client_id: AtomicU64,
    clients: Mutex<HashMap<u64, ClientInfo>>,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Node {
    /// Opens the data directory and establishes this node's identity: the node id (given, or
    /// generated once and kept), the incarnation epoch (new with every new data directory, so
    /// a node that lost its disk writes under a new actor) and the context key.
    ///
    /// # Errors
    /// When the data directory cannot be opened.
    pub fn open(config: Config, metrics: Option<PrometheusHandle>) -> Result<Arc<Node>, StorageError> {
        let storage = Storage::open(&config.data_dir, config.fsync)?;
        let node_id = match (&config.node_id, storage.meta_get("node_id")?) {
            (Some(id), stored) => {
                if stored.as_deref() != Some(id.as_bytes()) {
                    storage.meta_put("node_id", id.as_bytes())?;
                }
                id.clone()
            }
            (None, Some(stored)) => String::from_utf8_lossy(&stored).into_owned(),
            (None, None) => {
                let id = random_hex(8);
                storage.meta_put("node_id", id.as_bytes())?;
                id
            }
        };
        let epoch = match storage.meta_get("epoch")?.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()) {
            Some(b) => u64::from_be_bytes(b),
            None => {
                let e = rand::thread_rng().next_u64();
                storage.meta_put("epoch", &e.to_be_bytes())?;
                e
            }
        };
        let context_key = match &config.cluster_secret {
            Some(secret) => ContextKey::derive(secret.as_bytes()),
            None => match storage.meta_get("context_key")?.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()) {
                Some(k) => ContextKey::new(k),
                None => {
                    let mut k = [0u8; 32];
                    rand::thread_rng().fill_bytes(&mut k);
                    storage.meta_put("context_key", &k)?;
                    ContextKey::new(k)
                }
            },
        };
        let identity = NodeIdentity { actor: Actor::new(&node_id, epoch), node_id };
        let quorum = Quorum { n: config.n, r: config.r, w: config.w };
        let coordinator = Coordinator::new(storage, identity, context_key, quorum);
        Ok(Arc::new(Node {
            config,
            coordinator,
            metrics,
            started: Instant::now(),
            run_id: random_hex(20),
            total_commands: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            error_replies: AtomicU64::new(0),
            next_client_id: AtomicU64::new(1),
            clients: Mutex::new(HashMap::new()),
        }))
    }

    /// Registers a new connection; returns its client id.
    pub fn client_connected(&self, info: ClientInfo) -> u64 {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        self.clients.lock().insert(id, info);
        id
    }

    pub fn client_disconnected(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn update_client(&self, id: u64, f: impl FnOnce(&mut ClientInfo)) {
        if let Some(c) = self.clients.lock().get_mut(&id) {
            f(c);
        }
    }

    pub fn clients(&self) -> Vec<(u64, ClientInfo)> {
        let mut v: Vec<_> = self.clients.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    pub fn connected_clients(&self) -> usize {
        self.clients.lock().len()
    }
}
