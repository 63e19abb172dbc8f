//! What one sibling holds: a string, or the state of a type that converges (a counter, a
//! HyperLogLog, a set, a hash). The type is part of the stored value. Strings resolve
//! last-write-wins between siblings; the state of a convergent type joins with the other
//! siblings' states of that type.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ormap::RecordChange;
use super::{Counter, Hll, OrHash, OrList, OrSet, Stream, ZSet};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Bytes(Bytes),
    /// INCR and friends: a string in Redis's terms (TYPE says `string`), read as its decimal.
    Counter(Counter),
    /// PFADD and friends: a string in Redis's terms, read as Redis's dense encoding.
    Hll(Hll),
    /// SADD and friends (an observed-remove set).
    Set(OrSet),
    /// HSET and friends (an observed-remove map of fields).
    Hash(OrHash),
    /// LPUSH and friends (a sequence of elements at dense positions: `version::list`).
    List(OrList),
    /// ZADD and friends (an observed-remove map of scores: `version::zset`).
    ZSet(ZSet),
    /// XADD and friends (an observed-remove map of entries by ID: `version::stream`).
    Stream(Stream),
}

/// The kinds of value, as resolution and WRONGTYPE see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bytes,
    Counter,
    Hll,
    Set,
    Hash,
    List,
    ZSet,
    Stream,
}

impl Value {
    pub fn kind(&self) -> Kind {
        match self {
            Value::Bytes(_) => Kind::Bytes,
            Value::Counter(_) => Kind::Counter,
            Value::Hll(_) => Kind::Hll,
            Value::Set(_) => Kind::Set,
            Value::Hash(_) => Kind::Hash,
            Value::List(_) => Kind::List,
            Value::ZSet(_) => Kind::ZSet,
            Value::Stream(_) => Kind::Stream,
        }
    }

    /// Redis's TYPE of it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bytes(_) | Value::Counter(_) | Value::Hll(_) => "string",
            Value::Set(_) => "set",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// Whether it reads as a value (a counter may be deleted: a reset with nothing after it).
    pub fn exists(&self) -> bool {
        match self {
            Value::Bytes(_) | Value::Hll(_) => true,
            Value::Counter(c) => c.exists(),
            Value::Set(s) => !s.is_empty(),
            Value::Hash(h) => !h.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::ZSet(z) => !z.is_empty(),
            Value::Stream(s) => s.exists(),
        }
    }

    /// A string's bytes (`None` for another type).
    pub fn as_str_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The set it holds (`None` for another type).
    pub fn as_set(&self) -> Option<&OrSet> {
        match self {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    /// The hash it holds (`None` for another type).
    pub fn as_hash(&self) -> Option<&OrHash> {
        match self {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }

    /// The list it holds (`None` for another type).
    pub fn as_list(&self) -> Option<&OrList> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The sorted set it holds (`None` for another type).
    pub fn as_zset(&self) -> Option<&ZSet> {
        match self {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }

    /// The stream it holds (`None` for another type).
    pub fn as_stream(&self) -> Option<&Stream> {
        match self {
            Value::Stream(s) => Some(s),
            _ => None,
        }
    }

    /// What storage keeps in the key's own record of a collection: the value without its
    /// members (a stream keeps its metadata and groups); `None` for another type.
    pub fn header(&self) -> Option<Value> {
        match self {
            Value::Stream(s) => Some(Value::Stream(s.header())),
            other => other.cleared(),
        }
    }

    /// A collection (set, hash, list, sorted set, stream) with every member removed (what a DEL over
    /// it writes); `None` for another type.
    pub fn cleared(&self) -> Option<Value> {
        match self {
            Value::Set(s) => Some(Value::Set(s.cleared())),
            Value::Hash(h) => Some(Value::Hash(h.cleared())),
            Value::List(l) => Some(Value::List(l.cleared())),
            Value::ZSet(z) => Some(Value::ZSet(z.cleared())),
            Value::Stream(s) => Some(Value::Stream(s.cleared())),
            _ => None,
        }
    }

    /// Records, in a set's or a hash's clock, the events `seen` a write of it observed (see
    /// `OrMap::witness`); other types keep no clock.
    pub fn witness(&mut self, seen: &super::VersionVector) {
        match self {
            Value::Set(s) => s.witness(seen),
            Value::Hash(h) => h.witness(seen),
            Value::List(l) => l.witness(seen),
            Value::ZSet(z) => z.witness(seen),
            Value::Stream(s) => s.witness(seen),
            Value::Counter(c) => c.witness(seen),
            Value::Bytes(_) | Value::Hll(_) => {}
        }
    }

    /// Whether a set or a hash holds `member` (never, for another type).
    pub fn has_member(&self, member: &[u8]) -> bool {
        match self {
            Value::Set(s) => s.contains(member),
            Value::Hash(h) => h.contains(member),
            Value::List(l) => l.contains(member),
            Value::ZSet(z) => z.contains(member),
            Value::Stream(s) => crate::version::StreamId::from_key(member).is_some_and(|id| s.get(id).is_some()),
            _ => false,
        }
    }

    /// A set's or a hash's members with their records (storage keeps them apart from the key's
    /// own record); `None` for another type.
    pub fn records(&self) -> Option<Vec<(Bytes, Vec<u8>)>> {
        match self {
            Value::Set(s) => Some(s.records().map(|(m, r)| (m.clone(), r)).collect()),
            Value::Hash(h) => Some(h.records().map(|(m, r)| (m.clone(), r)).collect()),
            Value::List(l) => Some(l.records().map(|(m, r)| (m.clone(), r)).collect()),
            Value::ZSet(z) => Some(z.records().map(|(m, r)| (m.clone(), r)).collect()),
            Value::Stream(s) => Some(s.records().map(|(m, r)| (m.clone(), r)).collect()),
            _ => None,
        }
    }

    /// The members whose records differ from `older`'s (see `OrMap::changed_records`), when
    /// both are sets or both are hashes; `None` otherwise.
    pub fn changed_records<'a>(&'a self, older: &'a Value) -> Option<Vec<RecordChange<'a>>> {
        match (older, self) {
            (Value::Set(o), Value::Set(n)) => Some(n.changed_records(o).collect()),
            (Value::Hash(o), Value::Hash(n)) => Some(n.changed_records(o).collect()),
            (Value::List(o), Value::List(n)) => Some(n.changed_records(o).collect()),
            (Value::ZSet(o), Value::ZSet(n)) => Some(n.changed_records(o).collect()),
            (Value::Stream(o), Value::Stream(n)) => Some(n.changed_records(o).collect()),
            _ => None,
        }
    }

    /// A set or a hash with the members of `records` put in (other types are returned as
    /// they are).
    ///
    /// # Errors
    /// A record that does not decode.
    pub fn with_records<'r>(
        self,
        records: impl IntoIterator<Item = (Bytes, &'r [u8])>,
    ) -> Result<Value, postcard::Error> {
        Ok(match self {
            Value::Set(s) => Value::Set(s.with_records(records)?),
            Value::Hash(h) => Value::Hash(h.with_records(records)?),
            Value::List(l) => Value::List(l.with_records(records)?),
            Value::ZSet(z) => Value::ZSet(z.with_records(records)?),
            Value::Stream(s) => Value::Stream(s.with_records(records)?),
            other => other,
        })
    }

    /// The version a patch of `base` makes (see `OrMap::patched`), this value being the new
    /// version's header; `None` unless both are sets or both are hashes.
    ///
    /// # Errors
    /// A record that does not decode.
    pub fn patched<'r>(
        &self,
        base: &Value,
        changes: impl IntoIterator<Item = (Bytes, Option<&'r [u8]>)>,
    ) -> Result<Option<Value>, postcard::Error> {
        Ok(match (self, base) {
            (Value::Set(h), Value::Set(b)) => Some(Value::Set(h.patched(b, changes)?)),
            (Value::Hash(h), Value::Hash(b)) => Some(Value::Hash(h.patched(b, changes)?)),
            (Value::List(h), Value::List(b)) => Some(Value::List(h.patched(b, changes)?)),
            (Value::ZSet(h), Value::ZSet(b)) => Some(Value::ZSet(h.patched(b, changes)?)),
            (Value::Stream(h), Value::Stream(b)) => Some(Value::Stream(h.patched(b, changes)?)),
            _ => None,
        })
    }

    /// Whether Redis calls it a string (the string commands work on it).
    pub fn is_string(&self) -> bool {
        matches!(self, Value::Bytes(_) | Value::Counter(_) | Value::Hll(_))
    }

    /// The bytes GET answers (a set or a hash has none: GET answers WRONGTYPE).
    pub fn bytes(&self) -> Cow<'_, Bytes> {
        match self {
            Value::Bytes(b) => Cow::Borrowed(b),
            Value::Counter(c) => {
                Cow::Owned(Bytes::copy_from_slice(itoa::Buffer::new().format(c.value().unwrap_or(0)).as_bytes()))
            }
            Value::Hll(h) => Cow::Owned(Bytes::from(h.to_redis())),
            Value::Set(_) | Value::Hash(_) | Value::List(_) | Value::ZSet(_) | Value::Stream(_) => {
                Cow::Owned(Bytes::new())
            }
        }
    }

    /// Bytes its encoding takes, guessed without walking a set or a hash (for presizing).
    pub fn size_hint(&self) -> usize {
        match self {
            Value::Set(s) => 16 + 40 * s.len(),
            Value::Hash(h) => 16 + 64 * h.len(),
            Value::List(l) => 16 + 64 * l.len(),
            Value::ZSet(z) => 16 + 64 * z.len(),
            Value::Stream(s) => 64 + 64 * s.len(),
            other => other.size(),
        }
    }

    /// Bytes it takes, roughly.
    pub fn size(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            Value::Counter(c) => c.size(),
            Value::Hll(h) => h.size(),
            Value::Set(s) => s.set_size(),
            Value::Hash(h) => h.hash_size(),
            Value::List(l) => l.size(|e| e.value.len() + 24),
            Value::ZSet(z) => z.size(),
            Value::Stream(s) => s.size(),
        }
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Value {
        Value::Bytes(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(Bytes::from(v))
    }
}
