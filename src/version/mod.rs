//! Causal machinery (paper section 4.4, design.md section 2).
//!
//! A key maps to a [`SiblingSet`]: a dotted version vector set (DVV set, Almeida et al. 2012,
//! as Riak 2.0 adopted) whose values are [`Sibling`]s. Every write is an *event* of one actor
//! (a node incarnation) and gets a dot `(actor, counter)`; a write made with a context replaces
//! exactly the siblings whose dots that context covers. Unlike plain per-object vector clocks,
//! concurrent writes through the same coordinator do not make the clock lose track of which
//! sibling is which, so there is no "sibling explosion" and no truncation is needed: the clock has
//! one entry per actor that ever coordinated a write of the key.
//!
//! Everything here is pure and deterministic: no I/O, no clocks read (times are passed in).

mod context;
mod counter;
mod dvvset;
mod hll;
mod list;
mod ormap;
#[cfg(test)]
mod proptests;
mod ranked;
mod sibling;
mod stream;
mod value;
mod write;
mod zset;

pub use context::{Context, ContextError, ContextKey};
pub use counter::Counter;
pub use dvvset::{Dot, DvvSet, VersionVector};
pub use hll::Hll;
pub use list::{positions, Elem, ListFull, OrList};
pub use ormap::{Field, FieldValue, Join, OrHash, OrMap, OrSet, Stamp};
pub use sibling::{Resolved, Sibling, SiblingSet};
pub use stream::{next_id, writer_tag, Consumer, Cursor, Entry, Group, Meta, Pending, Stream, StreamId};
pub use value::{Kind, Value};
pub use write::{Write, WriteContext};
pub use zset::{Score, ZSet};

/// An actor is one incarnation of a node, optionally narrowed to a *key epoch*.
///
/// The incarnation part (the high 40 bits) is derived from the node id and an epoch that is
/// created with the data directory, so a node that lost its disk writes under a new actor and
/// never reissues a dot that replicas already saw (riak_kv#679). The low 24 bits are a key
/// epoch: a node that coordinates a write for a key whose local copy holds no entry of its
/// incarnation (it never wrote the key, or its copy was handed off, delivered as a hint or
/// reaped) cannot know the last counter it used for that key, so it writes under a fresh key
/// epoch instead of guessing (Riak 2's per-key epochs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Actor(pub u64);

impl Actor {
    /// Bits of the key epoch.
    pub const KEY_EPOCH_BITS: u32 = 24;
    const KEY_EPOCH_MASK: u64 = (1 << Self::KEY_EPOCH_BITS) - 1;

    /// The actor of node `node_id` in incarnation `epoch` (key epoch 0).
    pub fn new(node_id: &str, epoch: u64) -> Actor {
        let mut buf = Vec::with_capacity(node_id.len() + 8);
        buf.extend_from_slice(node_id.as_bytes());
        buf.extend_from_slice(&epoch.to_be_bytes());
        Actor(xxhash_rust::xxh3::xxh3_64(&buf) & !Self::KEY_EPOCH_MASK)
    }

    /// This incarnation's actor for key epoch `e` (which must fit in 24 bits).
    pub fn keyed(self, e: u32) -> Actor {
        debug_assert!(u64::from(e) <= Self::KEY_EPOCH_MASK);
        Actor((self.0 & !Self::KEY_EPOCH_MASK) | (u64::from(e) & Self::KEY_EPOCH_MASK))
    }

    /// The key epoch (the low 24 bits).
    pub fn key_epoch(self) -> u32 {
        (self.0 & Self::KEY_EPOCH_MASK) as u32
    }

    /// Whether both actors belong to the same node incarnation.
    pub fn same_incarnation(self, other: Actor) -> bool {
        self.0 & !Self::KEY_EPOCH_MASK == other.0 & !Self::KEY_EPOCH_MASK
    }
}

#[cfg(test)]
mod actor_tests {
    use super::Actor;

    #[test]
    fn key_epochs_stay_within_their_incarnation() {
        let a = Actor::new("n1", 7);
        let b = Actor::new("n1", 8);
        assert_eq!(a.keyed(0), a);
        assert!(a.keyed(5).same_incarnation(a) && a.keyed(5) != a);
        assert!(!a.same_incarnation(b));
        assert_ne!(Actor::new("n2", 7), a);
    }
}
