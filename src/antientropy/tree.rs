//! The Merkle trees of anti-entropy (paper 4.7), pure.
//!
//! The ring's positions are cut into 2^16 fixed *leaves* (the top 16 bits of a key's position),
//! so that every partition of any ring size up to 2^16 is a contiguous run of leaves, and a
//! leaf is one contiguous range of storage. A leaf's hash is the XOR of `mix(key, digest)` over
//! its keys: a write changes it in O(1) (XOR the old contribution out, the new one in), with
//! no read of the other keys. A partition's tree has three levels: its root, [`FANOUT`] inner
//! hashes, each over [`FANOUT`] groups of leaves. Replicas compare roots and descend only where
//! hashes differ.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of a position that pick its leaf.
pub const LEAF_BITS: u32 = 16;
pub const LEAVES: usize = 1 << LEAF_BITS;
/// Children per inner node.
pub const FANOUT: usize = 32;

/// A key's contribution to its leaf.
pub fn mix(key: &[u8], digest: u64) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(key);
    h.update(&digest.to_le_bytes());
    h.digest()
}

/// The leaf of a key at ring prefix `prefix` (the top 64 bits of its position).
pub fn leaf_of(prefix: u64) -> usize {
    (prefix >> (64 - LEAF_BITS)) as usize
}

/// The ring prefixes of leaf `leaf`, inclusive.
pub fn leaf_range(leaf: usize) -> (u64, u64) {
    let lo = (leaf as u64) << (64 - LEAF_BITS);
    (lo, lo | (u64::MAX >> LEAF_BITS))
}

/// The leaves of partition `p` of `q` (a power of two, at most 2^16).
pub fn partition_leaves(p: u32, q: u32) -> std::ops::Range<usize> {
    let per = LEAVES / q as usize;
    p as usize * per..(p as usize + 1) * per
}

/// Every leaf of the ring, updated concurrently by writes.
pub struct Leaves {
    leaves: Vec<AtomicU64>,
}

impl Default for Leaves {
    fn default() -> Self {
        Leaves { leaves: (0..LEAVES).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Leaves {
    /// A key at `prefix` changed from digest `old` to `new`.
    pub fn change(&self, prefix: u64, key: &[u8], old: Option<u64>, new: Option<u64>) {
        let delta = old.map_or(0, |d| mix(key, d)) ^ new.map_or(0, |d| mix(key, d));
        if delta != 0 {
            self.leaves[leaf_of(prefix)].fetch_xor(delta, Ordering::Relaxed);
        }
    }

    pub fn leaf(&self, leaf: usize) -> u64 {
        self.leaves[leaf].load(Ordering::Relaxed)
    }

    /// Partition `p`'s tree: `FANOUT` groups of its leaves, each hashed.
    pub fn inner(&self, p: u32, q: u32) -> Vec<u64> {
        let range = partition_leaves(p, q);
        let per_group = range.len().div_ceil(FANOUT).max(1);
        range
            .clone()
            .step_by(per_group)
            .map(|start| {
                let end = (start + per_group).min(range.end);
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                for l in start..end {
                    h.update(&self.leaf(l).to_le_bytes());
                }
                h.digest()
            })
            .collect()
    }

    /// The leaves of group `g` of partition `p`: (leaf index, hash).
    pub fn group(&self, p: u32, q: u32, g: usize) -> Vec<(usize, u64)> {
        let range = partition_leaves(p, q);
        let per_group = range.len().div_ceil(FANOUT).max(1);
        let start = range.start + g * per_group;
        (start..(start + per_group).min(range.end)).map(|l| (l, self.leaf(l))).collect()
    }

    /// Partition `p`'s root.
    pub fn root(&self, p: u32, q: u32) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for x in self.inner(p, q) {
            h.update(&x.to_le_bytes());
        }
        h.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_agree_iff_contents_agree_and_updates_are_incremental() {
        let (a, b) = (Leaves::default(), Leaves::default());
        let keys: Vec<(u64, Vec<u8>, u64)> =
            (0..500u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), format!("k{i}").into_bytes(), i)).collect();
        for (prefix, key, d) in &keys {
            a.change(*prefix, key, None, Some(*d));
        }
        // The same contents in another order give the same trees.
        for (prefix, key, d) in keys.iter().rev() {
            b.change(*prefix, key, None, Some(*d));
        }
        for p in 0..64 {
            assert_eq!(a.root(p, 64), b.root(p, 64));
        }
        // One key differs: exactly one partition, one group and one leaf differ.
        let (prefix, key, d) = &keys[7];
        b.change(*prefix, key, Some(*d), Some(d + 1));
        let p = (prefix >> 58) as u32;
        let differing: Vec<u32> = (0..64).filter(|&p| a.root(p, 64) != b.root(p, 64)).collect();
        assert_eq!(differing, vec![p]);
        let groups: Vec<usize> = (0..FANOUT).filter(|&g| a.inner(p, 64)[g] != b.inner(p, 64)[g]).collect();
        assert_eq!(groups.len(), 1);
        let leaves: Vec<usize> = a
            .group(p, 64, groups[0])
            .into_iter()
            .zip(b.group(p, 64, groups[0]))
            .filter(|(x, y)| x != y)
            .map(|(x, _)| x.0)
            .collect();
        assert_eq!(leaves, vec![leaf_of(*prefix)]);
        let (lo, hi) = leaf_range(leaves[0]);
        assert!(lo <= *prefix && *prefix <= hi);
        // Removing it and writing it back restores the tree.
        b.change(*prefix, key, Some(d + 1), None);
        b.change(*prefix, key, None, Some(*d));
        assert_eq!(a.root(p, 64), b.root(p, 64));
    }
}
