//! Consistent hashing with fixed, equal-sized partitions (paper sections 4.2 and 6.2, strategy 3,
//! as Riak's ring).
//!
//! A key's position is the MD5 of the key read as a 128-bit big-endian number. The ring is cut
//! into Q = 2^k equal partitions; partition `p` holds the positions whose top k bits are `p`.
//! A key with a Redis hash tag (`{tag}`: [`hash_tag`]) takes its top 32 bits from the tag's
//! MD5 instead, so every key of one tag is in one partition (Q is at most 2^31) and has one
//! preference list, while the rest of its position still spreads the tag's keys apart in
//! storage order (SCAN cursors and Merkle leaves are ranges of positions).
//! Each partition has one owner; a key's **preference list** is the N distinct physical nodes met
//! walking the ring clockwise from the key's partition, skipping owners already taken (paper 4.3).
//! Walking further gives the *extended* preference list that sloppy quorums draw stand-ins from.
//!
//! Ownership changes only through [`Ring::claim`], which rebalances to floor(Q/S) or ceil(Q/S)
//! partitions per node while moving as few partitions as it can (about Q/S when a node joins).
//! Everything here is a pure function of the ring state: no I/O, no clocks.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A node's identity in the ring (its `--node-id`).
pub type NodeId = String;

/// How keys are placed on the ring, fixed when a cluster is founded (`--placement`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// The paper's ring: a key's position is its MD5 (its hash tag's, for the top bits).
    #[default]
    Md5,
    /// Redis Cluster's slots: a key's position begins with its slot ([`key_slot`]), so a
    /// partition is a range of 16384/Q slots and cluster clients route a key in one hop.
    Slots,
}

impl Placement {
    pub fn other(self) -> Placement {
        match self {
            Placement::Md5 => Placement::Slots,
            Placement::Slots => Placement::Md5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Placement::Md5 => "md5",
            Placement::Slots => "slots",
        }
    }
}

/// The process's placement: the data dir's (`Storage::placement`), set at start as the frame
/// limit is (`rpc::set_max_frame`), and changed once more only by a node that joins a cluster
/// of the other placement while it stores nothing. It is a constant of the data (keys are
/// stored in ring order), so it is not passed around; every node of a cluster runs with its
/// founder's (`ClusterState::cluster_id` differs between placements).
static SLOTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_placement(placement: Placement) {
    SLOTS.store(placement == Placement::Slots, std::sync::atomic::Ordering::Relaxed);
}

pub fn placement() -> Placement {
    if SLOTS.load(std::sync::atomic::Ordering::Relaxed) {
        Placement::Slots
    } else {
        Placement::Md5
    }
}

/// Redis Cluster's slots.
pub const SLOTS_COUNT: u16 = 16384;

/// A key's Redis Cluster slot: CRC16 (XMODEM) of its hash tag, or of the whole key when it has
/// none, mod 16384 (Redis's `keyHashSlot`).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS_COUNT
}

/// The slots of partition `p` in a ring of `q` partitions placed by slots (q <= 16384), as an
/// inclusive range.
pub fn partition_slots(p: u32, q: u32) -> (u16, u16) {
    let per = u32::from(SLOTS_COUNT) / q.clamp(1, u32::from(SLOTS_COUNT));
    ((p * per) as u16, (p * per + per - 1) as u16)
}

/// The ring position of `key` under this process's placement ([`position_in`]).
pub fn position(key: &[u8]) -> u128 {
    position_in(placement(), key)
}

/// The ring position of `key`: by MD5, its digest as a 128-bit big-endian number, with the top
/// 32 bits of its hash tag's MD5 when it has one; by slots, its slot in the top 14 bits and
/// the top bits of its MD5 after them (a slot's keys spread apart in storage order).
pub fn position_in(placement: Placement, key: &[u8]) -> u128 {
    let own = u128::from_be_bytes(md5::compute(key).0);
    match (placement, hash_tag(key)) {
        (Placement::Slots, _) => (u128::from(key_slot(key)) << 114) | (own >> 14),
        (Placement::Md5, None) => own,
        (Placement::Md5, Some(tag)) => {
            let tag = u128::from_be_bytes(md5::compute(tag).0);
            (tag & !(u128::MAX >> 32)) | (own >> 32)
        }
    }
}

/// The ring positions of slot `slot`'s keys, as the inclusive range of their first 8 bytes
/// (storage's order; [`partition_prefix_range`]) under slots placement.
pub fn slot_prefix_range(slot: u16) -> (u64, u64) {
    let start = u64::from(slot) << 50;
    (start, start | (u64::MAX >> 14))
}

/// A key's hash tag by Redis Cluster's rule: the bytes between its first `{` and the first
/// `}` after it, if there are any (`{}x` and `x{` have none; `foo{}{bar}` has none either:
/// only the first `{` counts). Keys of another database than 0 carry a prefix without braces
/// (`keyspace.rs`), so their tag is the client's.
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let len = key[open + 1..].iter().position(|&b| b == b'}')?;
    (len > 0).then(|| &key[open + 1..open + 1 + len])
}

/// The partition of ring position `pos` in a ring of `q` partitions (a power of two).
pub fn partition_of(pos: u128, q: u32) -> u32 {
    debug_assert!(q.is_power_of_two());
    if q == 1 {
        0
    } else {
        (pos >> (128 - q.trailing_zeros())) as u32
    }
}

/// The partition of `key`.
pub fn partition_of_key(key: &[u8], q: u32) -> u32 {
    partition_of(position(key), q)
}

/// The first 8 bytes of the positions of partition `p`, as an inclusive range: storage orders
/// keys by this prefix, so a partition is one contiguous range on disk.
pub fn partition_prefix_range(p: u32, q: u32) -> (u64, u64) {
    if q == 1 {
        return (0, u64::MAX);
    }
    let shift = 64 - q.trailing_zeros();
    let start = u64::from(p) << shift;
    (start, start | (u64::MAX >> q.trailing_zeros()))
}

/// One partition's ownership. `next` names the node it is being handed to while a transfer
/// runs (set by a rebalance, cleared when the new owner has the data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub owner: NodeId,
    pub next: Option<NodeId>,
}

/// Ownership of every partition, versioned: a higher version is a later ring.
///
/// While some partitions have a `next` owner the ring is *in transition*: the preference lists
/// of the current owners serve reads, writes also reach the replicas of the future ring, and
/// every replica that the future ring adds to a partition's preference list is sent that
/// partition's data (a *transfer*). `transferred` records the transfers that finished; when
/// all have, the claimant flips the ring to its future owners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    pub version: u64,
    #[serde(deserialize_with = "partitions_of_a_ring")]
    pub partitions: Vec<Partition>,
    /// Finished transfers of the current transition: (partition, receiving node).
    pub transferred: std::collections::BTreeSet<(u32, NodeId)>,
}

/// A ring's partitions as stored or received: a power of two of them, at most 2^31. A key's
/// partition is the top bits of its position ([`partition_of`]): with any other count keys
/// route past the ring's end (a node that took such a ring in gossip panicked routing them).
fn partitions_of_a_ring<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Partition>, D::Error> {
    let partitions = Vec::<Partition>::deserialize(d)?;
    if !partitions.len().is_power_of_two() || partitions.len() > 1 << 31 {
        return Err(serde::de::Error::custom("a ring of a size that is not a power of two"));
    }
    Ok(partitions)
}

/// One transfer of a transition: partition `partition`'s data to `to`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Transfer {
    pub partition: u32,
    pub to: NodeId,
}

impl Ring {
    /// A ring of `q` partitions owned round-robin by `members` (sorted), version 1.
    pub fn new(q: u32, members: &[NodeId]) -> Ring {
        let mut sorted: Vec<&NodeId> = members.iter().collect();
        sorted.sort();
        let partitions =
            (0..q as usize).map(|i| Partition { owner: sorted[i % sorted.len()].clone(), next: None }).collect();
        Ring { version: 1, partitions, transferred: BTreeSet::new() }
    }

    /// Whether a transition is under way.
    pub fn in_transition(&self) -> bool {
        self.partitions.iter().any(|p| p.next.is_some())
    }

    /// The ring the transition leads to (this ring if there is none).
    pub fn future(&self) -> Ring {
        let partitions = self
            .partitions
            .iter()
            .map(|p| Partition { owner: p.next.clone().unwrap_or_else(|| p.owner.clone()), next: None })
            .collect();
        Ring { version: self.version, partitions, transferred: BTreeSet::new() }
    }

    /// Every transfer the transition needs: for each partition, each node in its future
    /// preference list that is not in its current one.
    pub fn transfers(&self, n: usize, zone_of: &dyn Fn(&NodeId) -> Option<String>) -> Vec<Transfer> {
        if !self.in_transition() {
            return Vec::new();
        }
        let future = self.future();
        let (zones, future_zones) = (self.zones(zone_of), future.zones(zone_of));
        let mut out = Vec::new();
        for p in 0..self.size() {
            let now = self.preference_list_in(p, n, zone_of, &zones);
            for to in future.preference_list_in(p, n, zone_of, &future_zones) {
                if !now.contains(&to) {
                    out.push(Transfer { partition: p, to });
                }
            }
        }
        out
    }

    /// The transfers still to do.
    pub fn pending_transfers(&self, n: usize, zone_of: &dyn Fn(&NodeId) -> Option<String>) -> Vec<Transfer> {
        self.transfers(n, zone_of)
            .into_iter()
            .filter(|t| !self.transferred.contains(&(t.partition, t.to.clone())))
            .collect()
    }

    pub fn size(&self) -> u32 {
        self.partitions.len() as u32
    }

    pub fn partition_of_key(&self, key: &[u8]) -> u32 {
        partition_of_key(key, self.size())
    }

    pub fn owner(&self, p: u32) -> &NodeId {
        &self.partitions[p as usize].owner
    }

    /// Every node that owns a partition, sorted.
    pub fn owners(&self) -> BTreeSet<&NodeId> {
        self.partitions.iter().map(|p| &p.owner).collect()
    }

    /// Partitions per owner.
    pub fn ownership(&self) -> BTreeMap<&NodeId, usize> {
        let mut counts = BTreeMap::new();
        for p in &self.partitions {
            *counts.entry(&p.owner).or_insert(0) += 1;
        }
        counts
    }

    /// Distinct owners in ring order starting at partition `p`: the extended preference list.
    pub fn walk(&self, p: u32) -> Vec<&NodeId> {
        self.walk_up_to(p, usize::MAX)
    }

    /// The first `max` owners of [`Ring::walk`]: it stops there, so its cost is the partitions
    /// it passes, not the ring (at 1,000 nodes and Q = 1,024 a whole walk is a million steps).
    pub fn walk_up_to(&self, p: u32, max: usize) -> Vec<&NodeId> {
        let q = self.partitions.len();
        let mut seen: Vec<&NodeId> = Vec::new();
        // A set beside the list once the list is long (a whole walk of a large cluster).
        let mut index: std::collections::HashSet<&NodeId> = std::collections::HashSet::new();
        for i in 0..q {
            if seen.len() >= max {
                break;
            }
            let owner = &self.partitions[(p as usize + i) % q].owner;
            let new = if seen.len() < 32 { !seen.contains(&owner) } else { !index.contains(owner) };
            if new {
                if seen.len() == 31 {
                    index.extend(seen.iter().copied());
                }
                if seen.len() >= 31 {
                    index.insert(owner);
                }
                seen.push(owner);
            }
        }
        seen
    }

    /// The distinct zones of the ring's owners (`zone_of` gives a node's zone), `None` among
    /// them for owners without one: `[None]` when no owner has a zone. One pass over the ring.
    pub fn zones(&self, zone_of: &dyn Fn(&NodeId) -> Option<String>) -> Vec<Option<String>> {
        let mut met: std::collections::HashSet<&NodeId> = std::collections::HashSet::new();
        let mut zones: Vec<Option<String>> = Vec::new();
        for part in &self.partitions {
            if met.insert(&part.owner) {
                let z = zone_of(&part.owner);
                if !zones.contains(&z) {
                    zones.push(z);
                }
            }
        }
        zones
    }

    /// The preference list of partition `p`: the first `n` distinct owners walking the ring.
    /// With zones (`zone_of` gives a node's zone), nodes of zones not yet in the list are
    /// preferred, so a list spans zones when it can (paper 4.3: across data centers); the list
    /// keeps ring order.
    pub fn preference_list(&self, p: u32, n: usize, zone_of: &dyn Fn(&NodeId) -> Option<String>) -> Vec<NodeId> {
        self.preference_list_in(p, n, zone_of, &self.zones(zone_of))
    }

    /// [`Ring::preference_list`] given the ring's [`Ring::zones`] (callers that want many
    /// lists find them once). The walk stops as soon as the rest of the ring cannot change the
    /// list: after `n` owners without zones, or once it met every zone and `n` owners.
    pub fn preference_list_in(
        &self,
        p: u32,
        n: usize,
        zone_of: &dyn Fn(&NodeId) -> Option<String>,
        ring_zones: &[Option<String>],
    ) -> Vec<NodeId> {
        if ring_zones.iter().all(Option::is_none) {
            return self.walk_up_to(p, n).into_iter().cloned().collect();
        }
        let q = self.partitions.len();
        let mut walk: Vec<&NodeId> = Vec::new();
        let mut zones: Vec<Option<String>> = Vec::new();
        let mut distinct = 0;
        for i in 0..q {
            let owner = &self.partitions[(p as usize + i) % q].owner;
            if walk.contains(&owner) {
                continue;
            }
            let z = zone_of(owner);
            if !zones.contains(&z) {
                distinct += 1;
            }
            walk.push(owner);
            zones.push(z);
            if walk.len() >= n && distinct >= ring_zones.len() {
                break;
            }
        }
        let mut chosen = vec![false; walk.len()];
        let mut taken_zones: Vec<&Option<String>> = Vec::new();
        let mut count = 0;
        for (i, z) in zones.iter().enumerate() {
            if count < n && !taken_zones.contains(&z) {
                chosen[i] = true;
                taken_zones.push(z);
                count += 1;
            }
        }
        for c in chosen.iter_mut() {
            if count < n && !*c {
                *c = true;
                count += 1;
            }
        }
        walk.into_iter().zip(chosen).filter(|(_, c)| *c).map(|(id, _)| id.clone()).collect()
    }

    /// The ownership after rebalancing onto `members` (which must not be empty): every member
    /// ends with floor(Q/S) or ceil(Q/S) partitions; partitions of nodes that are not members
    /// go to members; a member keeps every partition it can, so adding a node moves about Q/S
    /// partitions and removing one moves only its own. Where it has a choice, it avoids giving a
    /// node a partition within `n - 1` steps of another of its partitions, so that preference
    /// lists spread load. Deterministic.
    pub fn claim(&self, members: &[NodeId], n: usize) -> Vec<NodeId> {
        let q = self.partitions.len();
        let members: BTreeSet<&NodeId> = members.iter().collect();
        assert!(!members.is_empty(), "a ring needs at least one member");
        let mut owners: Vec<Option<NodeId>> =
            self.partitions.iter().map(|p| members.contains(&p.owner).then(|| p.owner.clone())).collect();
        // Quotas: the members that own most now get the larger share, to move least.
        let mut counts: BTreeMap<&NodeId, usize> = members.iter().map(|m| (*m, 0)).collect();
        for o in owners.iter().flatten() {
            if let Some(c) = counts.get_mut(o) {
                *c += 1;
            }
        }
        let mut by_count: Vec<(&NodeId, usize)> = counts.iter().map(|(m, c)| (*m, *c)).collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let (base, extra) = (q / members.len(), q % members.len());
        let quota: BTreeMap<&NodeId, usize> =
            by_count.iter().enumerate().map(|(i, (m, _))| (*m, base + usize::from(i < extra))).collect();
        let window = n.saturating_sub(1).min(q / 2);
        let crowded = |owners: &[Option<NodeId>], i: usize, who: &NodeId| {
            (1..=window)
                .any(|d| owners[(i + d) % q].as_ref() == Some(who) || owners[(i + q - d) % q].as_ref() == Some(who))
        };
        // Over-quota members give up partitions, crowded ones first.
        for (member, &limit) in &quota {
            let mut mine: Vec<usize> = (0..q).filter(|&i| owners[i].as_ref() == Some(*member)).collect();
            if mine.len() <= limit {
                continue;
            }
            mine.sort_by_key(|&i| (!crowded(&owners, i, member), i));
            let surplus = mine.len() - limit;
            // Of equally good candidates, release spread-out ones (every k-th), not a block.
            let (bad, good): (Vec<usize>, Vec<usize>) = mine.iter().partition(|&&i| crowded(&owners, i, member));
            let mut release: Vec<usize> = bad.into_iter().take(surplus).collect();
            let more = surplus - release.len();
            if more > 0 {
                let step = good.len() as f64 / more as f64;
                release.extend((0..more).map(|k| good[(k as f64 * step) as usize]));
            }
            for i in release {
                owners[i] = None;
            }
        }
        // Free partitions go to under-quota members: not crowded if possible, largest deficit.
        let mut have: BTreeMap<&NodeId, usize> = quota.keys().map(|m| (*m, 0)).collect();
        for o in owners.iter().flatten() {
            if let Some(h) = have.get_mut(o) {
                *h += 1;
            }
        }
        for i in 0..q {
            if owners[i].is_some() {
                continue;
            }
            let best = quota
                .iter()
                .filter(|(m, limit)| have[**m] < **limit)
                .max_by(|(a, la), (b, lb)| {
                    let score = |m: &NodeId, limit: usize| (!crowded(&owners, i, m), limit - have[m]);
                    score(a, **la).cmp(&score(b, **lb)).then(b.cmp(a))
                })
                .map(|(m, _)| (*m).clone())
                .expect("quotas add up to Q");
            *have.get_mut(&best).expect("a member") += 1;
            owners[i] = Some(best);
        }
        owners.into_iter().map(|o| o.expect("every partition assigned")).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slots_are_redis_clusters() {
        // Redis's documented examples (cluster spec; CLUSTER KEYSLOT's page).
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"foo{hash_tag}"), 2515);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(key_slot(b"123456789"), 0x31C3); // its CRC16, which is below 16384
                                                    // No tag: the whole key.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16::State::<crc16::XMODEM>::calculate(b"foo{}{bar}") % 16384);
    }

    #[test]
    fn by_slots_a_partition_is_a_range_of_slots() {
        for q in [1u32, 4, 64, 1024, 16384] {
            let mut next = 0u32;
            for p in 0..q {
                let (lo, hi) = partition_slots(p, q);
                assert_eq!(u32::from(lo), next, "q={q} p={p}: no hole");
                next = u32::from(hi) + 1;
            }
            assert_eq!(next, 16384);
        }
        for i in 0..2000 {
            let key = format!("key:{i}");
            let pos = position_in(Placement::Slots, key.as_bytes());
            let slot = key_slot(key.as_bytes());
            for q in [1u32, 8, 64, 16384] {
                let p = partition_of(pos, q);
                let (lo, hi) = partition_slots(p, q);
                assert!((lo..=hi).contains(&slot), "{key}: slot {slot} outside partition {p} of {q}");
            }
            let (lo, hi) = slot_prefix_range(slot);
            let prefix = (pos >> 64) as u64;
            assert!((lo..=hi).contains(&prefix));
        }
        // A tag's keys share a slot, and spread apart within it.
        let a = position_in(Placement::Slots, b"{cart}.a");
        let b = position_in(Placement::Slots, b"{cart}.b");
        assert_eq!(a >> 114, b >> 114);
        assert_ne!(a, b);
    }

    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<NodeId> {
        (1..=n).map(|i| format!("node{i}")).collect()
    }

    /// Found by fuzzing (`fuzz/`, target `cluster_state`): a cluster state whose ring had 3
    /// partitions decoded, and routing a key on it panicked (its partition was past the
    /// ring's end). A ring whose size is not a power of two no longer decodes.
    #[test]
    fn a_ring_of_another_size_than_a_power_of_two_does_not_decode() {
        let decode = |r: &Ring| postcard::from_bytes::<Ring>(&postcard::to_stdvec(r).unwrap());
        for q in [1, 2, 64] {
            assert_eq!(decode(&Ring::new(q, &ids(2))), Ok(Ring::new(q, &ids(2))));
        }
        let mut ring = Ring::new(4, &ids(2));
        ring.partitions.pop();
        assert!(decode(&ring).is_err());
        ring.partitions.clear();
        assert!(decode(&ring).is_err());
        // The fuzzer's input: a saved cluster state with such a ring.
        let found = [
            0x01, 0x02, 0x6e, 0x31, 0x02, 0x6e, 0x31, 0x00, 0x7f, 0x00, 0x00, 0x01, 0xd3, 0x39, 0x00, 0x7f, 0x00, 0x00,
            0x01, 0xeb, 0x31, 0x00, 0x01, 0x01, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
            0x6e, 0x31, 0x00, 0x02, 0x6e, 0x00, 0x31, 0x02, 0x6e, 0x31, 0x00, 0x00, 0x02, 0x08, 0x02, 0x6e, 0x31, 0x01,
            0x02, 0x6e, 0x32, 0x02, 0x6e, 0x31, 0x03, 0x02, 0x6e, 0x32, 0x02, 0x6e, 0x31, 0x01, 0x02, 0x6e, 0x32, 0x02,
            0x6e, 0x26, 0x31, 0x01, 0x02, 0x6e, 0x32, 0x02, 0x6e, 0x31, 0x00, 0x02, 0x6e, 0x31, 0x00, 0x02, 0x6e, 0x31,
            0x00, 0x02, 0x6e, 0x31, 0x00, 0x00, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x68, 0x68, 0x98, 0x02, 0x6e,
            0x31, 0x00, 0x07, 0x07, 0x07, 0x00, 0x00, 0x00, 0x00,
        ];
        if let Ok(state) = crate::membership::ClusterState::decode(&found) {
            let _ = crate::cluster::View::new(Some(state), 3).preference_list(b"key");
        }
    }

    #[test]
    fn a_transition_transfers_to_new_replicas_only() {
        let mut r = Ring::new(8, &ids(3));
        assert!(!r.in_transition() && r.transfers(2, &no_zones).is_empty());
        let claimed = r.claim(&ids(4), 2);
        for (p, o) in r.partitions.iter_mut().zip(&claimed) {
            if &p.owner != o {
                p.next = Some(o.clone());
            }
        }
        assert!(r.in_transition());
        let transfers = r.transfers(2, &no_zones);
        assert!(!transfers.is_empty());
        // Mostly the new node needs data; a neighbour can enter a shifted preference list too.
        assert!(transfers.iter().filter(|t| t.to == "node4").count() * 2 > transfers.len(), "{transfers:?}");
        let future = r.future();
        for t in &transfers {
            assert!(future.preference_list(t.partition, 2, &no_zones).contains(&t.to));
            assert!(!r.preference_list(t.partition, 2, &no_zones).contains(&t.to));
        }
        r.transferred.insert((transfers[0].partition, transfers[0].to.clone()));
        assert_eq!(r.pending_transfers(2, &no_zones).len(), transfers.len() - 1);
    }

    fn with_owners(q: u32, owners: Vec<NodeId>) -> Ring {
        let mut r = Ring::new(q, &owners[..1]);
        for (p, o) in r.partitions.iter_mut().zip(owners) {
            p.owner = o;
        }
        r
    }

    fn no_zones(_: &NodeId) -> Option<String> {
        None
    }

    #[test]
    fn position_is_md5_big_endian_and_partitions_are_its_top_bits() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(position(b""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(partition_of(position(b""), 64), 0xd4 >> 2);
        assert_eq!(partition_of(u128::MAX, 64), 63);
        assert_eq!(partition_of(0, 64), 0);
        assert_eq!(partition_of(u128::MAX, 1), 0);
        assert_eq!(partition_prefix_range(0, 64), (0, (1u64 << 58) - 1));
        assert_eq!(partition_prefix_range(63, 64), (63u64 << 58, u64::MAX));
        let key_prefix = u64::from_be_bytes(position(b"abc").to_be_bytes()[..8].try_into().unwrap());
        let (lo, hi) = partition_prefix_range(partition_of_key(b"abc", 64), 64);
        assert!(lo <= key_prefix && key_prefix <= hi);
    }

    /// Issue 22: keys of one hash tag share their partition, so their preference list, by
    /// Redis Cluster's rule for the tag; the rest of the position still differs.
    #[test]
    fn keys_of_one_hash_tag_share_a_preference_list() {
        assert_eq!(hash_tag(b"{user1}.a"), Some(&b"user1"[..]));
        assert_eq!(hash_tag(b"a{user1}b{x}"), Some(&b"user1"[..]));
        assert_eq!(hash_tag(b"{}x"), None, "an empty tag is no tag: the whole key places it");
        assert_eq!(hash_tag(b"foo{}{bar}"), None, "only the first {{ counts");
        assert_eq!(hash_tag(b"foo{{bar}}"), Some(&b"{bar"[..]));
        assert_eq!(hash_tag(b"foo{bar"), None);
        assert_eq!(hash_tag(b"foo}bar{"), None);
        assert_eq!(position(b"{}x"), u128::from_be_bytes(md5::compute(b"{}x").0));
        assert_eq!(position(b"foo{}{bar}"), u128::from_be_bytes(md5::compute(b"foo{}{bar}").0));
        let tag_top = u128::from_be_bytes(md5::compute(b"user1").0) >> 96;
        assert_eq!(position(b"{user1}.a") >> 96, tag_top);
        assert_ne!(position(b"{user1}.a"), position(b"{user1}.b"), "spread apart within the tag");
        let ring = Ring::new(64, &ids(5));
        let pref = |k: &[u8]| ring.preference_list(partition_of_key(k, 64), 3, &no_zones);
        assert_eq!(pref(b"{user1}.a"), pref(b"{user1}.b"));
        assert_eq!(pref(b"{user1}.a"), pref(b"x{user1}y"));
        assert_eq!(pref(b"{user1}.a"), pref(b"\0kura:db:3:{user1}.a"), "another database's key");
        // Without the rule these keys spread over the ring.
        let spread: BTreeSet<Vec<NodeId>> = (0..40).map(|i| pref(format!("{{}}{i}").as_bytes())).collect();
        assert!(spread.len() > 1);
        let tagged: BTreeSet<Vec<NodeId>> = (0..40).map(|i| pref(format!("{{t}}{i}").as_bytes())).collect();
        assert_eq!(tagged.len(), 1);
    }

    #[test]
    fn preference_list_skips_owners_already_taken() {
        let r = with_owners(8, ["a", "a", "b", "a", "c", "c", "d", "b"].map(String::from).to_vec());
        assert_eq!(r.preference_list(0, 3, &no_zones), vec!["a", "b", "c"]);
        assert_eq!(r.preference_list(6, 3, &no_zones), vec!["d", "b", "a"]);
        assert_eq!(r.walk(5), vec!["c", "d", "b", "a"]);
        // More replicas than nodes: every node once.
        assert_eq!(r.preference_list(0, 9, &no_zones).len(), 4);
    }

    /// Issue 26: at 1,000 nodes and Q = 1,024 a preference list walked the whole ring and
    /// asked every owner's zone: a transition's transfers asked 2 Q x S = two million times,
    /// seconds of the claimant's and every node's time per ring change. Now the zones are
    /// found once and a list stops after its N owners.
    #[test]
    fn preference_lists_of_a_large_ring_do_not_walk_it() {
        let members = ids(1000);
        let mut ring = Ring::new(1024, &members);
        let claimed = ring.claim(&ids(1001), 3);
        for (p, o) in ring.partitions.iter_mut().zip(claimed) {
            p.next = (p.owner != o).then_some(o);
        }
        let asked = std::cell::Cell::new(0usize);
        let zone_of = |_: &NodeId| {
            asked.set(asked.get() + 1);
            None
        };
        let transfers = ring.transfers(3, &zone_of);
        assert!(!transfers.is_empty());
        assert!(asked.get() <= 4 * 1024, "zones asked {} times", asked.get());
        assert_eq!(ring.walk_up_to(7, 19), ring.walk(7)[..19].to_vec());
    }

    /// The early stop with zones gives the list the whole walk gives.
    #[test]
    fn zoned_preference_lists_stop_early_and_agree_with_the_whole_walk() {
        let whole = |r: &Ring, p: u32, n: usize, zone_of: &dyn Fn(&NodeId) -> Option<String>| {
            let walk = r.walk(p);
            let zones: Vec<Option<String>> = walk.iter().map(|id| zone_of(id)).collect();
            let mut chosen = vec![false; walk.len()];
            let mut taken: Vec<&Option<String>> = Vec::new();
            let mut count = 0;
            for (i, z) in zones.iter().enumerate() {
                if count < n && !taken.contains(&z) {
                    chosen[i] = true;
                    taken.push(z);
                    count += 1;
                }
            }
            for c in chosen.iter_mut() {
                if count < n && !*c {
                    *c = true;
                    count += 1;
                }
            }
            walk.into_iter().zip(chosen).filter(|(_, c)| *c).map(|(id, _)| id.clone()).collect::<Vec<_>>()
        };
        for (members, zones) in [(7, 2), (20, 3), (40, 5), (12, 12)] {
            let ring = with_owners(64, (0..64).map(|i| format!("node{}", (i * 7 + i / 5) % members)).collect());
            let zone_of = |id: &NodeId| {
                let k: usize = id.trim_start_matches("node").parse().unwrap_or(0);
                (!k.is_multiple_of(zones)).then(|| format!("z{}", k % zones))
            };
            for p in 0..64 {
                for n in 1..6 {
                    assert_eq!(ring.preference_list(p, n, &zone_of), whole(&ring, p, n, &zone_of));
                }
            }
        }
    }

    #[test]
    fn zones_spread_a_preference_list() {
        let r = with_owners(4, ["a1", "a2", "b1", "a3"].map(String::from).to_vec());
        let zone = |id: &NodeId| Some(id[..1].to_string());
        assert_eq!(r.preference_list(0, 2, &zone), vec!["a1", "b1"]);
        assert_eq!(r.preference_list(0, 3, &zone), vec!["a1", "a2", "b1"]);
    }

    #[test]
    fn joining_node_takes_about_q_over_s() {
        let r = Ring::new(64, &ids(4));
        let next = r.claim(&ids(5), 3);
        let moved = r.partitions.iter().zip(&next).filter(|(p, o)| &p.owner != *o).count();
        assert!((12..=13).contains(&moved), "moved {moved}");
        assert!(next.iter().zip(&r.partitions).all(|(o, p)| o == &p.owner || o == "node5"), "only to the new node");
        // Leaving: only the leaver's partitions move.
        let after = with_owners(64, next.clone());
        let four = after.claim(&ids(4), 3);
        let moved: Vec<_> = next.iter().zip(&four).filter(|(a, b)| a != b).collect();
        assert!(moved.iter().all(|(from, _)| from.as_str() == "node5"));
    }

    fn arb_members() -> impl Strategy<Value = Vec<NodeId>> {
        proptest::collection::btree_set("[a-z]{1,6}", 1..12).prop_map(|s| s.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn claim_balances_and_preference_lists_are_distinct(
            start in arb_members(),
            steps in proptest::collection::vec((arb_members(), any::<bool>()), 1..5),
            qexp in 3u32..8,
            n in 1usize..5,
        ) {
            let q = 1u32 << qexp;
            let mut ring = Ring::new(q, &start);
            for (members, keep_some) in steps {
                // Mix old and new members, as joins and leaves do.
                let mut target: Vec<NodeId> = members;
                if keep_some {
                    target.extend(ring.owners().into_iter().take(2).cloned());
                    target.sort();
                    target.dedup();
                }
                let owners = ring.claim(&target, n);
                let counts = {
                    let mut c: BTreeMap<&NodeId, usize> = target.iter().map(|m| (m, 0)).collect();
                    for o in &owners {
                        prop_assert!(c.contains_key(o), "owner {} is not a member", o);
                        *c.get_mut(o).unwrap() += 1;
                    }
                    c
                };
                let (min, max) = (counts.values().min().unwrap(), counts.values().max().unwrap());
                prop_assert!(max - min <= 1, "unbalanced: {:?}", counts);
                // Members that stay keep what they can: nothing moves between two staying
                // members unless one of them was over its quota.
                let base = q as usize / target.len();
                for (i, (old, new)) in ring.partitions.iter().zip(&owners).enumerate() {
                    if old.owner != *new && target.contains(&old.owner) {
                        let had = ring.partitions.iter().filter(|p| p.owner == old.owner).count();
                        prop_assert!(had > base, "partition {} moved off {} which had only {}", i, old.owner, had);
                    }
                }
                ring = with_owners(q, owners);
                for p in 0..q {
                    let pl = ring.preference_list(p, n, &no_zones);
                    let distinct: BTreeSet<_> = pl.iter().collect();
                    prop_assert_eq!(distinct.len(), pl.len());
                    prop_assert_eq!(pl.len(), n.min(target.len()));
                    prop_assert_eq!(&pl[0], ring.owner(p));
                }
            }
        }
    }
}
