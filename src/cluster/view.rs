//! The placement view: the cluster state as this node sees it at one moment, with every
//! partition's preference list (and ring walk, and future owners during a transition)
//! computed once per change. Readers take it without locks; `Cluster` swaps in a new one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::membership::ClusterState;
use crate::ring::NodeId;

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
    pub(crate) fn new(state: Option<ClusterState>, n: usize) -> View {
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
