//! What one sibling holds: a string, or the state of a type that converges (a counter). The
//! type is part of the stored value. Strings resolve last-write-wins between siblings; the
//! state of a convergent type joins with the other siblings' states of that type.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Counter, Hll};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Bytes(Bytes),
    /// INCR and friends: a string in Redis's terms (TYPE says `string`), read as its decimal.
    Counter(Counter),
    /// PFADD and friends: a string in Redis's terms, read as Redis's dense encoding.
    Hll(Hll),
}

/// The kinds of value, as resolution and WRONGTYPE see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bytes,
    Counter,
    Hll,
}

impl Value {
    pub fn kind(&self) -> Kind {
        match self {
            Value::Bytes(_) => Kind::Bytes,
            Value::Counter(_) => Kind::Counter,
            Value::Hll(_) => Kind::Hll,
        }
    }

    /// Redis's TYPE of it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bytes(_) | Value::Counter(_) | Value::Hll(_) => "string",
        }
    }

    /// Whether it reads as a value (a counter may be deleted: a reset with nothing after it).
    pub fn exists(&self) -> bool {
        match self {
            Value::Bytes(_) | Value::Hll(_) => true,
            Value::Counter(c) => c.exists(),
        }
    }

    /// A string's bytes (`None` for another type).
    pub fn as_str_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Counter(_) | Value::Hll(_) => None,
        }
    }

    /// The bytes GET answers.
    pub fn bytes(&self) -> Cow<'_, Bytes> {
        match self {
            Value::Bytes(b) => Cow::Borrowed(b),
            Value::Counter(c) => {
                Cow::Owned(Bytes::copy_from_slice(itoa::Buffer::new().format(c.value().unwrap_or(0)).as_bytes()))
            }
            Value::Hll(h) => Cow::Owned(Bytes::from(h.to_redis())),
        }
    }

    /// Bytes it takes, roughly.
    pub fn size(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            Value::Counter(c) => c.size(),
            Value::Hll(h) => h.size(),
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
