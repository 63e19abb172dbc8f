//! Membership and ring state as gossip carries it (paper 4.8), pure: merging two nodes' views,
//! and the claimant's next ring.
//!
//! Each member entry is versioned and the higher version wins, so a change made anywhere
//! spreads by gossip alone. The ring is versioned as a whole and changed by one node at a time,
//! the *claimant* (the valid member with the smallest id, as Riak's), and only while it sees
//! every member it would place up: ring changes never race across a network partition.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::flushes::{FlushMarks, ScriptMarks};
use crate::ring::{NodeId, Ring};

/// Where a member is in its life (design.md section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Known to the cluster, not yet given partitions.
    Joining,
    /// Owns (or may own) partitions.
    Valid,
    /// Handing its partitions off before it goes.
    Leaving,
    /// Holds no partitions any more; about to go.
    Exiting,
    /// Removed by an operator or after leaving; kept as a tombstone so gossip does not bring it back.
    Removed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Joining => "joining",
            Status::Valid => "valid",
            Status::Leaving => "leaving",
            Status::Exiting => "exiting",
            Status::Removed => "removed",
        }
    }
}

/// One member as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    /// Cluster (peer) address.
    pub addr: SocketAddr,
    /// RESP address for clients.
    pub client: SocketAddr,
    pub zone: Option<String>,
    pub status: Status,
    /// Bumped by whoever changes this entry; the higher version wins a merge.
    pub version: u64,
    /// A leaving member still holds hinted copies for others: it keeps its place (and the
    /// reaper keeps asking it) until it handed them on, or a deleted key could come back.
    pub holds_hints: bool,
}

impl Member {
    /// Which of two versions of one member's entry a merge keeps: the higher version; at equal
    /// versions (two nodes changed it at once) the later status, then the larger address.
    fn newer<'a>(a: &'a Member, b: &'a Member) -> &'a Member {
        let key = |m: &'a Member| (m.version, m.status, m.addr, m.client, &m.zone, m.holds_hints);
        if key(b) > key(a) {
            b
        } else {
            a
        }
    }
}

/// What gossip exchanges: every member and the ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub members: BTreeMap<NodeId, Member>,
    pub ring: Ring,
    /// Chosen when the cluster is founded, never changed: signs contexts when no cluster
    /// secret is set, so that a context from any node decodes on every node.
    pub context_seed: [u8; 32],
    /// The FLUSHDB/FLUSHALL marks (`flushes.rs`), merged by maximum.
    pub flushes: FlushMarks,
    /// SCRIPT FLUSH and the FUNCTION changes every node's caches must see (`flushes.rs`).
    pub scripting: ScriptMarks,
}

/// The saved form before script marks.
#[derive(Deserialize)]
struct ClusterStateV2 {
    members: BTreeMap<NodeId, Member>,
    ring: Ring,
    context_seed: [u8; 32],
    flushes: FlushMarks,
}

/// The saved form before flush marks: still read at start (a node restarted on a data dir of
/// the previous version keeps its ring and members).
#[derive(Deserialize)]
struct ClusterStateV1 {
    members: BTreeMap<NodeId, Member>,
    ring: Ring,
    context_seed: [u8; 32],
}

/// The first bytes of a saved state since kura 0.1.0 (the first tagged version), then its
/// format: no untagged form starts with them (its members' count, a varint, would be over 2^35).
const STATE_TAG: [u8; 5] = [0xFF; 5];
/// The saved state's format: 1, kura 0.1.0's. A later build that changes the state bumps it
/// and still reads this one.
pub const STATE_FORMAT: u8 = 1;

/// A saved state that does not decode.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum StateError {
    #[error("the cluster state was saved by a newer kura (state format {0}; this build reads up to {STATE_FORMAT})")]
    Newer(u8),
    #[error("{0}")]
    Corrupt(#[from] postcard::Error),
}

impl ClusterState {
    /// The saved form: the tag, the format, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = STATE_TAG.to_vec();
        out.push(STATE_FORMAT);
        postcard::to_extend(self, out).expect("serialising to a Vec cannot fail")
    }

    /// Reads a saved state: a tagged one of a format up to this build's, or one of the
    /// untagged forms before 0.1.0 (this one, the one before script marks, the one before
    /// flush marks).
    ///
    /// # Errors
    /// A newer format, or bytes that are none of these.
    pub fn decode(bytes: &[u8]) -> Result<ClusterState, StateError> {
        if let Some(rest) = bytes.strip_prefix(&STATE_TAG) {
            return match rest.split_first() {
                Some((&STATE_FORMAT, state)) => Ok(postcard::from_bytes(state)?),
                Some((&newer, _)) if newer > STATE_FORMAT => Err(StateError::Newer(newer)),
                _ => Err(StateError::Corrupt(postcard::Error::DeserializeUnexpectedEnd)),
            };
        }
        Ok(Self::decode_untagged(bytes)?)
    }

    fn decode_untagged(bytes: &[u8]) -> Result<ClusterState, postcard::Error> {
        // postcard reads a prefix: an older form is tried first only when it takes every byte.
        if let Ok((v2, rest)) = postcard::take_from_bytes::<ClusterStateV2>(bytes) {
            if rest.is_empty() {
                return Ok(ClusterState {
                    members: v2.members,
                    ring: v2.ring,
                    context_seed: v2.context_seed,
                    flushes: v2.flushes,
                    scripting: ScriptMarks::default(),
                });
            }
        }
        postcard::from_bytes(bytes).or_else(|e| match postcard::from_bytes::<ClusterStateV1>(bytes) {
            Ok(v1) => Ok(ClusterState {
                members: v1.members,
                ring: v1.ring,
                context_seed: v1.context_seed,
                flushes: FlushMarks::default(),
                scripting: ScriptMarks::default(),
            }),
            Err(_) => Err(e),
        })
    }

    /// The cluster's identity: made from the seed its founder drew (`found`), so every node
    /// of one cluster has the same one, and a cluster founded anew (a node without seeds that
    /// lost its data dir) has another, even at the same node id and address. Never 0 (0 means
    /// "no cluster yet" on the wire).
    pub fn cluster_id(&self) -> u64 {
        cluster_id_of(&self.context_seed)
    }

    /// A new cluster of one node owning every partition.
    pub fn found(me: Member, q: u32) -> ClusterState {
        let mut me = me;
        me.status = Status::Valid;
        let ring = Ring::new(q, std::slice::from_ref(&me.id));
        let mut context_seed = [0u8; 32];
        crate::random::fill(&mut context_seed);
        ClusterState {
            members: BTreeMap::from([(me.id.clone(), me)]),
            ring,
            context_seed,
            flushes: FlushMarks::default(),
            scripting: ScriptMarks::default(),
        }
    }

    /// Merges another node's view into this one. Returns whether anything changed here.
    pub fn merge(&mut self, other: &ClusterState) -> bool {
        let mut changed = false;
        for (id, theirs) in &other.members {
            match self.members.get_mut(id) {
                Some(mine) => {
                    let newer = Member::newer(mine, theirs);
                    if newer != mine {
                        *mine = newer.clone();
                        changed = true;
                    }
                }
                None => {
                    self.members.insert(id.clone(), theirs.clone());
                    changed = true;
                }
            }
        }
        if ring_newer(&other.ring, &self.ring) {
            self.ring = other.ring.clone();
            changed = true;
        }
        changed |= self.flushes.merge(&other.flushes);
        changed |= self.scripting.merge(&other.scripting);
        changed
    }

    /// Whether merging `other` would change this state: the merge's own rules, without
    /// copying the state first (at 1,000 members a copy is ~70 KB, and most gossip brings
    /// nothing new).
    pub fn would_change(&self, other: &ClusterState) -> bool {
        other.members.iter().any(|(id, theirs)| match self.members.get(id) {
            Some(mine) => Member::newer(mine, theirs) != mine,
            None => true,
        }) || ring_newer(&other.ring, &self.ring)
            || self.flushes.clone().merge(&other.flushes)
            || self.scripting.clone().merge(&other.scripting)
    }

    /// Adds or refreshes `m` as the member itself describes it (join, restart on a new address).
    pub fn upsert(&mut self, m: Member) -> bool {
        match self.members.get(&m.id) {
            Some(old) if Member::newer(old, &m) == old => false,
            _ => {
                self.members.insert(m.id.clone(), m);
                true
            }
        }
    }

    /// The member that changes the ring: the valid member with the smallest id.
    pub fn claimant(&self) -> Option<&NodeId> {
        self.members.values().filter(|m| m.status == Status::Valid).map(|m| &m.id).min()
    }

    /// Members that should own partitions.
    pub fn placeable(&self) -> Vec<NodeId> {
        self.members
            .values()
            .filter(|m| matches!(m.status, Status::Joining | Status::Valid))
            .map(|m| m.id.clone())
            .collect()
    }

    /// Members other than removed ones.
    pub fn live_members(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.status != Status::Removed)
    }

    fn zone_of(&self) -> impl Fn(&NodeId) -> Option<String> + '_ {
        |id: &NodeId| self.members.get(id).and_then(|m| m.zone.clone())
    }

    fn removed(&self, id: &NodeId) -> bool {
        self.members.get(id).is_none_or(|m| m.status == Status::Removed)
    }

    /// Transfers of the current transition that are still to do and can be done: a partition
    /// whose every current replica was removed has no one left to copy it from.
    pub fn pending_transfers(&self, n: usize) -> Vec<crate::ring::Transfer> {
        let zone_of = self.zone_of();
        let zones = self.ring.zones(&zone_of);
        self.ring
            .pending_transfers(n, &zone_of)
            .into_iter()
            .filter(|t| self.ring.preference_list_in(t.partition, n, &zone_of, &zones).iter().any(|r| !self.removed(r)))
            .collect()
    }

    /// Where partition `p`'s data comes from in a transfer: the first current replica that is
    /// up and not removed.
    pub fn transfer_source(&self, p: u32, n: usize, up: &dyn Fn(&NodeId) -> bool) -> Option<NodeId> {
        let zone_of = self.zone_of();
        self.transfer_source_in(p, n, up, &self.ring.zones(&zone_of))
    }

    fn transfer_source_in(
        &self,
        p: u32,
        n: usize,
        up: &dyn Fn(&NodeId) -> bool,
        zones: &[Option<String>],
    ) -> Option<NodeId> {
        let zone_of = self.zone_of();
        self.ring.preference_list_in(p, n, &zone_of, zones).into_iter().find(|r| !self.removed(r) && up(r))
    }

    /// The transfer loop's step at node `me` (`handoff/transfer.rs`): of the `pending`
    /// transfers, those `me` should start now. It sends a partition when it is the partition's
    /// transfer source, runs at most `limit` at once (`running` are under way), and never
    /// starts one twice.
    pub fn transfers_to_start(
        &self,
        pending: &[crate::ring::Transfer],
        n: usize,
        me: &NodeId,
        running: &std::collections::HashSet<crate::ring::Transfer>,
        limit: usize,
        up: &dyn Fn(&NodeId) -> bool,
    ) -> Vec<crate::ring::Transfer> {
        let zones = self.ring.zones(&self.zone_of());
        let mut start = Vec::new();
        for t in pending {
            if running.len() + start.len() >= limit {
                break;
            }
            if self.transfer_source_in(t.partition, n, up, &zones).as_ref() != Some(me) {
                continue;
            }
            if running.contains(t) || start.contains(t) {
                continue;
            }
            start.push(t.clone());
        }
        start
    }

    /// The members a node gossips with and sends heartbeats to: every other one not removed.
    pub fn others<'a>(&'a self, me: &'a NodeId) -> impl Iterator<Item = &'a Member> + 'a {
        self.live_members().filter(move |m| &m.id != me)
    }

    /// A node asks to join (at the member it asked): adds it as joining, or refreshes it if it
    /// is known (a node restarted without its data keeps its place). A node at the address of
    /// a member with another id is that member rebuilt with a new id (its data dir, where the
    /// id was kept, is gone): the old id is removed, and its partitions are rebuilt from the
    /// other replicas. Returns whether the state changed.
    pub fn admit(&mut self, member: Member) -> bool {
        let member = match self.members.get(&member.id) {
            Some(old) => Member { status: old.status, version: old.version.saturating_add(1), ..member },
            None => {
                let replaced: Vec<NodeId> = self
                    .live_members()
                    .filter(|m| m.addr == member.addr && m.id != member.id)
                    .map(|m| m.id.clone())
                    .collect();
                for id in replaced {
                    if let Some(m) = self.members.get_mut(&id) {
                        tracing::info!(old = %id, new = %member.id, "a rebuilt node replaces the member at its address");
                        m.status = Status::Removed;
                        m.version = m.version.saturating_add(1);
                    }
                }
                Member { status: Status::Joining, ..member }
            }
        };
        let (id, addr) = (member.id.clone(), member.addr);
        let changed = self.upsert(member);
        if changed {
            tracing::info!(node = %id, %addr, "member joining");
        }
        changed
    }

    /// `KURA LEAVE` at member `id`: it starts handing its partitions off (`holds_hints`: it
    /// still holds hinted copies for others). Returns whether the state changed, `None` for an
    /// unknown member.
    pub fn leave(&mut self, id: &str, holds_hints: bool) -> Option<bool> {
        let m = self.members.get_mut(id)?;
        if matches!(m.status, Status::Leaving | Status::Exiting | Status::Removed) {
            return Some(false);
        }
        m.status = Status::Leaving;
        m.holds_hints = holds_hints;
        m.version = m.version.saturating_add(1);
        Some(true)
    }

    /// `KURA REMOVE id`: takes a (dead) member out. Returns whether the state changed, `None`
    /// for an unknown member.
    pub fn remove(&mut self, id: &str) -> Option<bool> {
        let m = self.members.get_mut(id)?;
        if m.status == Status::Removed {
            return Some(false);
        }
        m.status = Status::Removed;
        m.version = m.version.saturating_add(1);
        Some(true)
    }

    /// The claimant's step (paper 4.9, Riak's claimant). Out of a transition: when members
    /// joined, are leaving or were removed, starts one toward a rebalanced ring (only while
    /// every member it would place is `up`: ring changes never race across a partition). In a
    /// transition: once every transfer is done, flips to the future ring. Also moves leaving
    /// members that own nothing to `exiting`, and exiting ones to `removed`. Returns the next
    /// state, or `None` when there is nothing to do.
    pub fn next(&self, n: usize, up: &dyn Fn(&NodeId) -> bool) -> Option<ClusterState> {
        let mut next = self.clone();
        if self.ring.in_transition() {
            if !self.pending_transfers(n).is_empty() {
                return None;
            }
            next.ring = self.ring.future();
            next.ring.version = self.ring.version.saturating_add(1);
            next.retire_leavers();
            return Some(next);
        }
        let mut changed = false;
        for m in next.members.values_mut() {
            if m.status == Status::Exiting && !m.holds_hints {
                m.status = Status::Removed;
                m.version = m.version.saturating_add(1);
                changed = true;
            }
        }
        let target = self.placeable();
        if !target.is_empty() {
            let owners: Vec<&NodeId> = self.ring.owners().into_iter().collect();
            let joining = self.members.values().any(|m| m.status == Status::Joining);
            let misplaced = owners.iter().any(|o| !target.contains(o));
            let can_own = target.len().min(self.ring.partitions.len());
            if (joining || misplaced || owners.len() != can_own) && target.iter().all(up) {
                let claimed = self.ring.claim(&target, n);
                for (p, owner) in next.ring.partitions.iter_mut().zip(claimed) {
                    p.next = (p.owner != owner).then_some(owner);
                }
                next.ring.transferred.clear();
                next.ring.version = next.ring.version.saturating_add(1);
                for m in next.members.values_mut() {
                    if m.status == Status::Joining {
                        m.status = Status::Valid;
                        m.version = m.version.saturating_add(1);
                    }
                }
                changed = true;
            }
        }
        changed |= next.retire_leavers();
        changed.then_some(next)
    }

    /// Leaving members that own no partition, now or after the transition, become `exiting`.
    fn retire_leavers(&mut self) -> bool {
        let ring = &self.ring;
        let owns = |id: &NodeId| ring.partitions.iter().any(|p| &p.owner == id || p.next.as_ref() == Some(id));
        let mut changed = false;
        for m in self.members.values_mut() {
            if m.status == Status::Leaving && !owns(&m.id) && !m.holds_hints {
                m.status = Status::Exiting;
                m.version = m.version.saturating_add(1);
                changed = true;
            }
        }
        changed
    }

    /// Records a finished transfer (at the claimant). Returns whether it was news.
    pub fn transfer_done(&mut self, partition: u32, to: &NodeId, n: usize) -> bool {
        let needed =
            self.ring.pending_transfers(n, &self.zone_of()).iter().any(|t| t.partition == partition && &t.to == to);
        if needed {
            self.ring.transferred.insert((partition, to.clone()));
            self.ring.version = self.ring.version.saturating_add(1);
        }
        needed
    }
}

/// The cluster id of a cluster founded with `seed` (see [`ClusterState::cluster_id`]), under
/// this process's placement.
pub fn cluster_id_of(seed: &[u8; 32]) -> u64 {
    cluster_id_in(crate::ring::placement(), seed)
}

/// The cluster id of a cluster founded with `seed` whose keys are placed by `placement`. A
/// cluster placed by slots has another id than one placed by MD5 (`ring::Placement`), so nodes
/// of different placements never take each other's messages, and a joining node learns its
/// cluster's placement from which id the seed's answer carries (an MD5 cluster keeps the id it
/// had before placements existed).
pub fn cluster_id_in(placement: crate::ring::Placement, seed: &[u8; 32]) -> u64 {
    // Every peer message carries it: hashed from the stack, not a new Vec each time.
    const TAG: &[u8; 16] = b"kura-cluster-id\0";
    const SLOTS_TAG: &[u8; 16] = b"kura-slots-ring\0";
    let tag = match placement {
        crate::ring::Placement::Md5 => TAG,
        crate::ring::Placement::Slots => SLOTS_TAG,
    };
    let mut input = [0u8; 48];
    input[..16].copy_from_slice(tag);
    input[16..].copy_from_slice(seed);
    xxhash_rust::xxh3::xxh3_64(&input).max(1)
}

/// Whether ring `a` replaces ring `b`: a higher version; at equal versions with different
/// contents (two claimants for a moment), the larger encoding, so every node picks the same.
pub fn ring_newer(a: &Ring, b: &Ring) -> bool {
    if a.version != b.version {
        return a.version > b.version;
    }
    if a == b {
        return false;
    }
    let enc = |r: &Ring| postcard::to_stdvec(r).unwrap_or_default();
    enc(a) > enc(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, status: Status, version: u64) -> Member {
        let n: u8 = id.trim_start_matches('n').parse().unwrap_or(1);
        Member {
            id: id.into(),
            addr: SocketAddr::from(([127, 0, 0, n], 7379)),
            client: SocketAddr::from(([127, 0, 0, n], 6379)),
            zone: None,
            status,
            version,
            holds_hints: false,
        }
    }

    fn all_up(_: &NodeId) -> bool {
        true
    }

    #[test]
    fn a_state_saved_before_flush_marks_still_decodes() {
        #[derive(Serialize)]
        struct V1<'a> {
            members: &'a BTreeMap<NodeId, Member>,
            ring: &'a Ring,
            context_seed: [u8; 32],
        }
        let mut s = ClusterState::found(member("n1", Status::Joining, 1), 64);
        let old =
            postcard::to_stdvec(&V1 { members: &s.members, ring: &s.ring, context_seed: s.context_seed }).unwrap();
        assert_eq!(ClusterState::decode(&old), Ok(s.clone()));
        s.flushes.mark(Some(2), 77);
        #[derive(Serialize)]
        struct V2<'a> {
            members: &'a BTreeMap<NodeId, Member>,
            ring: &'a Ring,
            context_seed: [u8; 32],
            flushes: &'a FlushMarks,
        }
        let v2 = V2 { members: &s.members, ring: &s.ring, context_seed: s.context_seed, flushes: &s.flushes };
        assert_eq!(ClusterState::decode(&postcard::to_stdvec(&v2).unwrap()), Ok(s.clone()));
        assert_eq!(ClusterState::decode(&postcard::to_stdvec(&s).unwrap()), Ok(s.clone()));
        s.scripting.functions_changed = 12;
        assert_eq!(ClusterState::decode(&postcard::to_stdvec(&s).unwrap()), Ok(s.clone()));
        assert!(ClusterState::decode(b"garbage").is_err());
        // Since 0.1.0 the saved form is tagged with its format; a newer one is refused by name.
        assert_eq!(ClusterState::decode(&s.encode()), Ok(s.clone()));
        let mut newer = s.encode();
        newer[STATE_TAG.len()] = STATE_FORMAT + 1;
        let refused = ClusterState::decode(&newer).unwrap_err();
        assert_eq!(refused, StateError::Newer(STATE_FORMAT + 1));
        assert!(refused.to_string().contains("saved by a newer kura"), "{refused}");
    }

    /// Found by fuzzing (`fuzz/`, target `cluster_state`): the claimant's step on a state
    /// whose ring version was u64::MAX added one past the top: a panic where overflow is
    /// checked, elsewhere a ring of version 0 that no node would take again. Versions at the
    /// top stay there (a change at an equal version is still decided, by status or contents).
    #[test]
    fn versions_at_the_top_stay_there() {
        let mut s = ClusterState::found(member("n1", Status::Valid, u64::MAX), 8);
        s.ring.version = u64::MAX;
        s.upsert(member("n2", Status::Joining, u64::MAX));
        let next = s.next(3, &all_up).expect("a transition");
        assert_eq!(next.ring.version, u64::MAX);
        assert!(next.members.values().all(|m| m.version == u64::MAX && m.status == Status::Valid));
        // The fuzzer's input.
        let found = [
            0x01, 0x02, 0x6e, 0x31, 0x02, 0x6e, 0x31, 0x00, 0x7f, 0x00, 0x00, 0x01, 0xd3, 0x33, 0x00, 0x7f, 0x00, 0x00,
            0x01, 0xeb, 0x31, 0x00, 0x01, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x08,
            0x02, 0x6e, 0x32, 0x00, 0x02, 0x6e, 0x31, 0x00, 0x02, 0x6e, 0x31, 0x00, 0x02, 0x6e, 0x31, 0x00, 0x02, 0x6e,
            0x31, 0x00, 0x02, 0x6e, 0x30, 0x00, 0x02, 0x41, 0x31, 0x00, 0x02, 0x6e, 0x31, 0x00, 0x04, 0x07, 0x07, 0x02,
            0x6e, 0x30, 0x00, 0x02, 0x41, 0x31, 0x00, 0x02, 0x6e, 0x31, 0x00, 0x04, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07,
            0x07, 0x07, 0x07, 0x07, 0x01, 0x32, 0x00, 0x02, 0x6e, 0x31, 0x00, 0x02, 0x6e, 0x31, 0xed, 0x31, 0x00, 0x03,
            0x02, 0x00, 0x00, 0x02, 0x6e, 0x31, 0x32, 0x02, 0x68, 0x68, 0x07, 0x00, 0x00, 0x07, 0x07, 0x07, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x32, 0x6e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07,
            0x07, 0x00, 0x00, 0x00, 0x00,
        ];
        if let Ok(state) = ClusterState::decode(&found) {
            let _ = state.next(3, &all_up);
        }
    }

    #[test]
    fn joins_converge_through_the_claimant() {
        let mut s = ClusterState::found(member("n1", Status::Joining, 1), 64);
        assert_eq!(s.claimant().map(String::as_str), Some("n1"));
        assert!(s.next(3, &all_up).is_none(), "a founded cluster needs no change");
        for i in 2..=5 {
            assert!(s.upsert(member(&format!("n{i}"), Status::Joining, 1)));
        }
        // The claimant waits while a member is unreachable.
        assert!(s.next(3, &|id: &NodeId| id != "n4").is_none());
        let mut next = s.next(3, &all_up).expect("a transition");
        assert_eq!(next.ring.version, 2);
        assert!(next.ring.in_transition());
        assert!(next.members.values().all(|m| m.status == Status::Valid));
        // Nothing flips until every transfer is done.
        assert!(next.next(3, &all_up).is_none());
        for t in next.pending_transfers(3) {
            assert!(next.transfer_done(t.partition, &t.to, 3));
        }
        assert!(!next.transfer_done(0, &"n2".to_string(), 3) || next.pending_transfers(3).is_empty());
        let next = next.next(3, &all_up).expect("the flip");
        assert!(!next.ring.in_transition());
        let counts = next.ring.ownership();
        assert_eq!(counts.len(), 5);
        assert!(counts.values().all(|&c| c == 12 || c == 13), "{counts:?}");
        assert!(next.next(3, &all_up).is_none(), "stable once placed");
    }

    #[test]
    fn a_leaving_member_hands_off_then_exits_then_goes() {
        let mut s = ClusterState::found(member("n1", Status::Valid, 1), 16);
        for i in 2..=3 {
            s.upsert(member(&format!("n{i}"), Status::Joining, 1));
        }
        let mut s = s.next(2, &all_up).unwrap();
        for t in s.pending_transfers(2) {
            s.transfer_done(t.partition, &t.to, 2);
        }
        let mut s = s.next(2, &all_up).unwrap();
        s.members.get_mut("n2").unwrap().status = Status::Leaving;
        let mut s = s.next(2, &all_up).expect("a transition away from n2");
        assert!(s.ring.partitions.iter().filter(|p| p.owner == "n2").all(|p| p.next.is_some()));
        for t in s.pending_transfers(2) {
            assert_ne!(t.to, "n2");
            assert!(s.transfer_source(t.partition, 2, &all_up).is_some());
            s.transfer_done(t.partition, &t.to, 2);
        }
        // A leaver that still holds hints keeps its place until it handed them on.
        let mut held = s.clone();
        held.members.get_mut("n2").unwrap().holds_hints = true;
        let held = held.next(2, &all_up).expect("the flip");
        assert_eq!(held.members["n2"].status, Status::Leaving);
        assert!(held.next(2, &all_up).is_none());
        let s = s.next(2, &all_up).expect("the flip");
        assert_eq!(s.members["n2"].status, Status::Exiting);
        assert!(!s.ring.owners().contains(&"n2".to_string()));
        let mut held = s.clone();
        held.members.get_mut("n2").unwrap().holds_hints = true;
        assert!(held.next(2, &all_up).is_none(), "an exiting member with hints is not removed");
        let s = s.next(2, &all_up).expect("exiting to removed");
        assert_eq!(s.members["n2"].status, Status::Removed);
        assert!(s.next(2, &all_up).is_none());
    }

    #[test]
    fn merge_is_commutative_and_keeps_newest_entries() {
        let base = ClusterState::found(member("n1", Status::Valid, 1), 8);
        let mut a = base.clone();
        a.upsert(member("n2", Status::Joining, 1));
        let mut b = base.clone();
        b.upsert(member("n3", Status::Joining, 1));
        b.members.get_mut("n1").unwrap().version = 2;
        b.members.get_mut("n1").unwrap().status = Status::Leaving;
        let mut ab = a.clone();
        assert!(ab.would_change(&b));
        assert!(ab.merge(&b));
        let mut ba = b.clone();
        assert!(ba.merge(&a));
        assert_eq!(ab, ba);
        assert_eq!(ab.members.len(), 3);
        assert_eq!(ab.members["n1"].status, Status::Leaving);
        assert!(!ab.would_change(&a));
        assert!(!ab.merge(&a), "merging again changes nothing");
        // Rings: the higher version wins; equal versions resolve the same way everywhere.
        let mut r1 = ab.clone();
        r1.ring.version = 5;
        let mut r2 = ab.clone();
        r2.ring.version = 5;
        r2.ring.partitions[0].owner = "n3".into();
        let (mut x, mut y) = (r1.clone(), r2.clone());
        x.merge(&r2);
        y.merge(&r1);
        assert_eq!(x.ring, y.ring);
    }
}
