//! What a write is: the new sibling (a value or a tombstone, with its expiry) and what it
//! replaces. Below `replica` (which makes versions of them) and `peer` (which carries them
//! between nodes), so neither imports the other for them.

use serde::{Deserialize, Serialize};

use super::VersionVector;

/// What a write replaces.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WriteContext {
    /// Exactly the versions this context covers (DPUT, DDEL).
    Given(VersionVector),
    /// Every version the coordinating replica holds (plain SET and DEL).
    Everything,
}

/// The new sibling of a write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Write {
    /// `None` writes a tombstone.
    pub value: Option<super::Value>,
    pub expires_ms: Option<u64>,
}
