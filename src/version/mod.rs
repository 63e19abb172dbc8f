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
mod dvvset;
#[cfg(test)]
mod proptests;
mod sibling;

pub use context::{Context, ContextError, ContextKey};
pub use dvvset::{Dot, DvvSet, VersionVector};
pub use sibling::{Sibling, SiblingSet};

/// An actor is one incarnation of a node: it is derived from the node id and an epoch that is
/// created with the data directory, so a node that lost its disk writes under a new actor and
/// never reissues a dot that replicas already saw (riak_kv#679).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Actor(pub u64);

impl Actor {
    /// The actor of node `node_id` in incarnation `epoch`.
    pub fn new(node_id: &str, epoch: u64) -> Actor {
        let mut buf = Vec::with_capacity(node_id.len() + 8);
        buf.extend_from_slice(node_id.as_bytes());
        buf.extend_from_slice(&epoch.to_be_bytes());
        Actor(xxhash_rust::xxh3::xxh3_64(&buf))
    }
}
