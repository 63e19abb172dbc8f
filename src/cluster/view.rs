//! The placement view: the cluster state as this node sees it at one moment, with every
//! partition's preference list (and ring walk, and future owners during a transition)
//! computed once per change. Readers take it without locks; `Cluster` swaps in a new one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::membership::ClusterState;
use crate::ring::NodeId;

/// How far past the preference list a view's ring walk goes: the candidates for stand-ins
/// (sloppy quorum). A request finds its stand-ins unless this many ring successors are down as
/// well. Bounded because a whole walk per partition is Q x S node ids: at 1,000 nodes and
/// Q = 1,024 a million, rebuilt on every ring change (`docs/scale.md`).
pub const STAND_INS: usize = 16;

/// The cluster as this node sees it at one moment.
pub struct View {
    /// `None` until a joining node has heard from its seeds.
    pub state: Option<ClusterState>,
    /// Per partition, the N owners in preference order.
    preflists: Vec<Arc<[NodeId]>>,
    /// Per partition, the ring walk (the extended preference list, for stand-ins), up to
    /// [`STAND_INS`] owners past the preference list.
    walks: Vec<Arc<[NodeId]>>,
    /// Per partition during a transition, the future replicas that are not current ones
    /// (writes reach them too); empty otherwise.
    joining_replicas: Vec<Arc<[NodeId]>>,
    /// Per partition during a transition, the future preference list; empty otherwise.
    future_preflists: Vec<Arc<[NodeId]>>,
    addrs: HashMap<NodeId, SocketAddr>,
}

impl View {
    pub fn new(state: Option<ClusterState>, n: usize) -> View {
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
        let zones = s.ring.zones(&zone_of);
        let preflists: Vec<Arc<[NodeId]>> =
            (0..q).map(|p| Arc::from(s.ring.preference_list_in(p, n, &zone_of, &zones))).collect();
        let walks = (0..q)
            .map(|p| s.ring.walk_up_to(p, n.saturating_add(STAND_INS)).into_iter().cloned().collect::<Vec<_>>().into())
            .collect();
        let future_preflists: Vec<Arc<[NodeId]>> = if s.ring.in_transition() {
            let future = s.ring.future();
            let zones = future.zones(&zone_of);
            (0..q).map(|p| Arc::from(future.preference_list_in(p, n, &zone_of, &zones))).collect()
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

    /// The owners in ring order from `key`'s partition: the preference list and up to
    /// [`STAND_INS`] more.
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

    /// Whether `me` is a replica of `key` in this ring, or one the key is gaining.
    pub fn replicates_key(&self, key: &[u8], me: &str) -> bool {
        self.preference_list(key).iter().any(|r| r == me)
            || self.joining_replicas(key).is_some_and(|g| g.iter().any(|r| r == me))
    }

    /// Whether `me` refuses a request for `key` from a sender whose ring is at
    /// `their_version`: the sender has not seen the ring move the key away from here (a copy
    /// kept now would be dropped or never found, and an answer from here, "none", would count
    /// toward its R). It learns the ring from the refusal (`RemoteError::StaleRing`).
    pub fn refuses_as_stale(&self, their_version: u64, key: &[u8], me: &str) -> bool {
        their_version < self.ring_version() && !self.replicates_key(key, me)
    }

    pub fn addr(&self, id: &str) -> Option<SocketAddr> {
        self.addrs.get(id).copied()
    }

    /// Whether this is a cluster of one (every key lives here alone).
    pub fn single(&self, me: &str) -> bool {
        self.state.as_ref().is_some_and(|s| s.members.len() == 1 && s.members.contains_key(me))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26: a view kept the whole ring walk of every partition, Q x S node ids (a million
    /// at 1,000 nodes and Q = 1,024), rebuilt on every ring change; it keeps the preference
    /// list and [`STAND_INS`] more.
    #[test]
    fn a_view_of_a_large_cluster_keeps_short_walks() {
        let ids: Vec<NodeId> = (0..1000).map(|i| format!("{i:016x}")).collect();
        let mut state = crate::membership::ClusterState::found(
            crate::membership::Member {
                id: ids[0].clone(),
                addr: SocketAddr::from(([10, 0, 0, 1], 7379)),
                client: SocketAddr::from(([10, 0, 0, 1], 6379)),
                zone: None,
                status: crate::membership::Status::Valid,
                version: 1,
                holds_hints: false,
            },
            1024,
        );
        state.ring = crate::ring::Ring::new(1024, &ids);
        let view = View::new(Some(state), 3);
        for k in 0..50 {
            let key = format!("key{k}");
            let walk = view.walk(key.as_bytes());
            assert_eq!(walk.len(), 3 + STAND_INS);
            assert_eq!(&walk[..3], &view.preference_list(key.as_bytes())[..]);
        }
    }
}
