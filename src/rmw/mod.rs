//! Read-modify-write operations on a key: what SET NX/XX/GET/KEEPTTL, GETSET, GETDEL, GETEX,
//! APPEND, SETRANGE, the EXPIRE family and INCRBY/INCRBYFLOAT do with the value they find.
//! Pure: [`apply`] takes the key's live value and expiry and decides the new value (or
//! nothing) and the reply's material. The coordinator evaluates an operation under the key's
//! lock at one node (the key's first reachable owner), so on a single node it is exactly as
//! atomic as in Redis. INCRBY adds to the key's counter as the writing actor (a convergent
//! counter: `version::Counter`); INCRBYFLOAT rewrites the value (not convergent). The
//! operations of sets and hashes are in `collections.rs`, BITFIELD's arithmetic in
//! `bitfield.rs`.

pub mod bitfield;
mod collections;
mod lists;
mod streams;
mod zsets;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::version::{Actor, Counter, Dot, Hll, Resolved, SiblingSet, Value};
pub use collections::{hash_of, set_of, Copied};
pub use lists::{list_of, range_bounds};
pub use streams::{
    distance_from_first, has_tombstones_from, lag, stream_of, ClaimOpts, EntryReply, StreamOp, Trim, TrimBy, XAddId,
};
pub use zsets::{select, zset_of, LexBound, ScoreBound, ZAddFlags, ZRange};

/// Redis's `proto-max-bulk-len`: no string grows past it.
pub const MAX_STRING: u64 = 512 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCond {
    Always,
    /// NX
    IfMissing,
    /// XX
    IfExists,
}

/// EXPIRE's options; every one given must hold (Redis allows XX with GT or LT).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireCond {
    /// Only when the key has no expiry.
    pub nx: bool,
    /// Only when it has one.
    pub xx: bool,
    /// Only when the new expiry is later (no expiry counts as infinite).
    pub gt: bool,
    /// Only when the new expiry is earlier.
    pub lt: bool,
}

impl ExpireCond {
    fn allows(self, current: Option<u64>, at: u64) -> bool {
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|e| at <= e)
            || self.lt && current.is_some_and(|e| at >= e))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rmw {
    /// SET with NX/XX, KEEPTTL and GET (the old value is in the outcome; with `get` a key
    /// of another type than string is refused).
    Set {
        value: Bytes,
        expires_ms: Option<u64>,
        keep_ttl: bool,
        cond: SetCond,
        get: bool,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (`Some` time) and PERSIST (`None`). A time not
    /// in the future deletes the key.
    Expire {
        at_ms: Option<u64>,
        cond: ExpireCond,
    },
    /// GETDEL (a string).
    GetDel,
    /// DEL: any type; `applied` when the key existed.
    Del,
    /// GETEX: `None` leaves the expiry, `Some(None)` removes it (PERSIST), `Some(Some(t))` sets it.
    GetEx {
        expiry: Option<Option<u64>>,
    },
    Append {
        value: Bytes,
    },
    /// SETBIT: the bit at `offset` (bit 0 is the first byte's most significant), growing the
    /// string with zero bytes; the outcome's `int` is the old bit.
    SetBit {
        offset: u64,
        on: bool,
    },
    /// BITFIELD with a SET or an INCRBY: its GET, SET and INCRBY subcommands in order, the
    /// string first grown to hold every field written (created when missing, even when every
    /// write FAILs); the outcome's `fields` are the replies.
    BitField {
        ops: Vec<bitfield::FieldOp>,
    },
    SetRange {
        offset: u64,
        value: Bytes,
    },
    /// INCR, DECR, INCRBY, DECRBY.
    IncrBy {
        by: i64,
    },
    /// INCRBYFLOAT (the increment as the client sent it, checked to be a float).
    IncrByFloat {
        by: Bytes,
    },
    /// PFADD: the elements into the key's HyperLogLog (created when missing).
    PfAdd {
        elements: Vec<Bytes>,
    },
    /// PFMERGE's destination: the union of the sources' registers into the key's.
    PfMerge {
        sources: Hll,
    },
    SAdd {
        members: Vec<Bytes>,
    },
    SRem {
        members: Vec<Bytes>,
    },
    /// SPOP: `count` members (`None`: one) picked by `seed`.
    SPop {
        count: Option<u64>,
        seed: u64,
    },
    /// HSET, HMSET and (with `nx`) HSETNX.
    HSet {
        pairs: Vec<(Bytes, Bytes)>,
        nx: bool,
    },
    HDel {
        fields: Vec<Bytes>,
    },
    HIncrBy {
        field: Bytes,
        by: i64,
    },
    HIncrByFloat {
        field: Bytes,
        by: Bytes,
    },
    /// LPUSH, RPUSH (`head`: at the head) and with `existing` LPUSHX, RPUSHX; `int` is the
    /// new length.
    Push {
        elements: Vec<Bytes>,
        head: bool,
        existing: bool,
    },
    /// LPOP, RPOP: `count` elements (`None`: one); `members` lists them, `len` is the
    /// length before.
    Pop {
        head: bool,
        count: Option<u64>,
    },
    LSet {
        index: i64,
        element: Bytes,
    },
    /// LINSERT: `int` is the new length, -1 without the pivot, 0 without the list.
    LInsert {
        before: bool,
        pivot: Bytes,
        element: Bytes,
    },
    LRem {
        count: i64,
        element: Bytes,
    },
    LTrim {
        start: i64,
        stop: i64,
    },
    /// ZADD and ZINCRBY (`flags.incr`).
    ZAdd {
        members: Vec<(f64, Bytes)>,
        flags: ZAddFlags,
    },
    ZRem {
        members: Vec<Bytes>,
    },
    /// ZPOPMIN, ZPOPMAX (`max`).
    ZPop {
        max: bool,
        count: u64,
    },
    /// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX.
    ZRemRange {
        range: ZRange,
    },
    /// XADD and the other writes of streams (`streams.rs`).
    Stream(StreamOp),
    /// RENAME, COPY and the STORE commands at their destination: the value replaces the key's
    /// (with `nx` only when the key is missing); `applied` when it wrote.
    Store {
        value: Copied,
        expires_ms: Option<u64>,
        nx: bool,
    },
}

impl Rmw {
    /// Tells an XADD who decides it: the key's home (`writer` 0) or a stand-in with this
    /// writer tag (`version::stream`'s ID rule). Other operations ignore it.
    pub fn decided_by(&mut self, writer: u16) {
        if let Rmw::Stream(StreamOp::XAdd { writer: w, .. }) = self {
            *w = writer;
        }
    }
}

/// The new sibling an operation writes: a value (or a tombstone) and its expiry.
#[derive(Clone, Debug, PartialEq)]
pub struct NewValue {
    pub value: Option<Value>,
    pub expires_ms: Option<u64>,
}

/// What the reply is made of.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The live value before the operation.
    pub old: Option<Bytes>,
    /// Whether the operation changed the key (SET's condition held, EXPIRE's reply 1).
    pub applied: bool,
    /// The string's length after it (APPEND, SETRANGE); a collection's size before it
    /// (pops, SREM, HDEL, LREM, LTRIM, ZREM ...: keyspace notifications tell from it whether
    /// the key was emptied).
    pub len: u64,
    /// INCRBYFLOAT's new value, as the reply shows it.
    pub new: Option<Bytes>,
    /// INCRBY's new value; how many members SADD added, SREM removed, LTRIM removed ...;
    /// 1 when EXPIRE or GETEX deleted the key (a time not in the future).
    pub int: i64,
    /// The members SPOP removed.
    pub members: Vec<Bytes>,
    /// The scores ZPOPMIN removed, ZADD INCR's new score.
    pub scores: Vec<f64>,
    /// BITFIELD's replies, one per subcommand (`None`: an OVERFLOW FAIL wrote nothing).
    pub fields: Vec<Option<i64>>,
    /// XADD's new ID; XAUTOCLAIM's next cursor.
    pub id: Option<crate::version::StreamId>,
    /// The entries XREADGROUP delivered, XCLAIM and XAUTOCLAIM claimed.
    pub entries: Vec<EntryReply>,
    /// The IDs XAUTOCLAIM found deleted.
    pub deleted: Vec<crate::version::StreamId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RmwError {
    #[error("string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooLarge,
    #[error("value is not an integer or out of range")]
    NotInteger,
    #[error("increment or decrement would overflow")]
    Overflow,
    #[error("value is not a valid float")]
    NotFloat,
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// Its reply code is WRONGTYPE, not ERR (`command::CommandError::to_reply`).
    #[error("Key is not a valid HyperLogLog string value.")]
    NotHll,
    /// Its reply code is WRONGTYPE, not ERR.
    #[error("Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("hash value is not an integer")]
    HashNotInteger,
    #[error("hash value is not a float")]
    HashNotFloat,
    #[error("no such key")]
    NoSuchKey,
    #[error("index out of range")]
    IndexOutOfRange,
    #[error("list has no room left at that end")]
    ListFull,
    #[error("resulting score is not a number (NaN)")]
    ScoreNan,
    /// A whole error line with its own code (`ERR ...`, `BUSYGROUP ...`), sent as it is.
    #[error("{0}")]
    Coded(String),
    /// No such consumer group (or no such key): each stream command words it its own way.
    #[error("no such consumer group '{0}'")]
    NoGroup(String),
}

/// The HyperLogLog a value holds: its own, or a string in Redis's encoding of one.
///
/// # Errors
/// Any other value ([`RmwError::NotHll`]).
pub fn hll_of(value: &Value) -> Result<Hll, RmwError> {
    match value {
        Value::Hll(h) => Ok(h.clone()),
        Value::Bytes(b) => Hll::from_redis(b).ok_or(RmwError::NotHll),
        Value::Counter(_) => Err(RmwError::NotHll),
        Value::Set(_) | Value::Hash(_) | Value::List(_) | Value::ZSet(_) | Value::Stream(_) => Err(RmwError::WrongType),
    }
}

/// Sets the bit at `offset` of `value` (bit 0 is the first byte's most significant), growing it
/// with zero bytes; returns the old bit.
pub fn set_bit(value: &mut Vec<u8>, offset: u64, on: bool) -> bool {
    let byte = (offset >> 3) as usize;
    if value.len() <= byte {
        value.resize(byte + 1, 0);
    }
    let mask = 0x80 >> (offset & 7);
    let old = value[byte] & mask != 0;
    if on {
        value[byte] |= mask;
    } else {
        value[byte] &= !mask;
    }
    old
}

/// Parses an integer as Redis's `string2ll` does: an optional `-`, then digits with no
/// leading zero (or a lone `0`), within i64; no spaces, no `+`.
pub fn redis_i64(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = match digits {
        [b'0'] => text.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || text.len() > 20 {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Applies `op` to the key's live value `current` (value, expiry) at time `now`, written as
/// the event `dot` (of the writing actor); `observed` is the join of every counter state the
/// key's siblings hold (what a counter made from a string must not count again).
///
/// # Errors
/// A string that would grow past [`MAX_STRING`]; an increment of a value that is not a
/// number, or past the range; a string operation on a set or a hash, or the other way round.
pub fn apply(
    op: &Rmw,
    resolved: Option<Resolved>,
    observed: &Counter,
    now: u64,
    dot: Dot,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let actor = dot.actor;
    // The operations of sets and hashes take the value (a set is not copied again).
    let expiry = resolved.as_ref().and_then(|r| r.expires_ms);
    match op {
        Rmw::SAdd { .. }
        | Rmw::SRem { .. }
        | Rmw::SPop { .. }
        | Rmw::HSet { .. }
        | Rmw::HDel { .. }
        | Rmw::HIncrBy { .. }
        | Rmw::HIncrByFloat { .. } => return collections::apply(op, resolved.map(|r| r.value), expiry, dot, now),
        Rmw::Push { .. }
        | Rmw::Pop { .. }
        | Rmw::LSet { .. }
        | Rmw::LInsert { .. }
        | Rmw::LRem { .. }
        | Rmw::LTrim { .. } => return lists::apply(op, resolved.map(|r| r.value), expiry, dot, now),
        Rmw::ZAdd { .. } | Rmw::ZRem { .. } | Rmw::ZPop { .. } | Rmw::ZRemRange { .. } => {
            return zsets::apply(op, resolved.map(|r| r.value), expiry, dot, now)
        }
        Rmw::Stream(op) => return streams::apply(op, resolved.map(|r| r.value), expiry, dot, now),
        _ => {}
    }
    let resolved = resolved.as_ref();
    let current = resolved.map(|r| (&r.value, r.expires_ms));
    let value = current.map(|(v, _)| v);
    // The type-blind operations.
    match op {
        Rmw::Store { value: copied, expires_ms, nx } => {
            if *nx && value.is_some() {
                return Ok((None, Outcome::default()));
            }
            let new = NewValue { value: copied.value(dot, now), expires_ms: *expires_ms };
            let wrote = new.value.is_some() || value.is_some();
            return Ok((wrote.then_some(new), Outcome { applied: wrote, ..Outcome::default() }));
        }
        Rmw::Del => {
            let out = Outcome { applied: value.is_some(), ..Outcome::default() };
            return Ok((value.map(|_| NewValue { value: None, expires_ms: None }), out));
        }
        Rmw::Expire { .. } => {}
        // Everything else works on strings only (SET without GET overwrites any type).
        Rmw::Set { get: false, .. } => {}
        _ if value.is_some_and(|v| !v.is_string()) => return Err(RmwError::WrongType),
        _ => {}
    }
    let old: Option<Bytes> = current.map(|(v, _)| v.bytes().into_owned());
    let keep = |value: Bytes, expires_ms: Option<u64>| NewValue { value: Some(Value::Bytes(value)), expires_ms };
    // The value as it is (a counter stays a counter), with another expiry.
    let same = |expires_ms: Option<u64>| NewValue { value: current.map(|(v, _)| v.clone()), expires_ms };
    let delete = NewValue { value: None, expires_ms: None };
    let outcome = |applied: bool, len: u64| Outcome { old: old.clone(), applied, len, ..Outcome::default() };
    Ok(match op {
        Rmw::Set { value, expires_ms, keep_ttl, cond, .. } => {
            let proceed = match cond {
                SetCond::Always => true,
                SetCond::IfMissing => current.is_none(),
                SetCond::IfExists => current.is_some(),
            };
            let expires = if *keep_ttl { expiry } else { *expires_ms };
            (proceed.then(|| keep(value.clone(), expires)), outcome(proceed, value.len() as u64))
        }
        Rmw::Expire { at_ms, cond } => {
            if current.is_none() {
                return Ok((None, outcome(false, 0)));
            }
            match at_ms {
                None => (expiry.map(|_| same(None)), outcome(expiry.is_some(), 0)),
                Some(at) => {
                    if !cond.allows(expiry, *at) {
                        (None, outcome(false, 0))
                    } else if *at <= now {
                        // `int` 1: deleted (its keyspace event is `del`, not `expire`).
                        (Some(delete), Outcome { int: 1, ..outcome(true, 0) })
                    } else {
                        (Some(same(Some(*at))), outcome(true, 0))
                    }
                }
            }
        }
        Rmw::GetDel | Rmw::Del => (current.map(|_| delete), outcome(current.is_some(), 0)),
        Rmw::GetEx { expiry: change } => match (current, change) {
            (Some(_), Some(Some(at))) if *at <= now => (Some(delete), Outcome { int: 1, ..outcome(true, 0) }),
            // PERSIST changes (and reports) something only when there is an expiry.
            (Some(_), Some(None)) => (expiry.map(|_| same(None)), outcome(expiry.is_some(), 0)),
            (Some(_), Some(new)) => (Some(same(*new)), outcome(true, 0)),
            _ => (None, outcome(false, 0)),
        },
        Rmw::Append { value } => {
            let before = old.as_ref().map_or(0, Bytes::len);
            let len = (before + value.len()) as u64;
            if len > MAX_STRING {
                return Err(RmwError::TooLarge);
            }
            let mut next = BytesMut::with_capacity(len as usize);
            next.extend_from_slice(old.as_deref().unwrap_or_default());
            next.extend_from_slice(value);
            (Some(keep(next.freeze(), expiry)), outcome(true, len))
        }
        Rmw::SetBit { offset, on } => {
            let mut next = old.as_deref().unwrap_or_default().to_vec();
            let was = set_bit(&mut next, *offset, *on);
            let mut out = outcome(true, next.len() as u64);
            out.int = i64::from(was);
            (Some(keep(Bytes::from(next), expiry)), out)
        }
        Rmw::BitField { ops } => {
            let mut next = old.as_deref().unwrap_or_default().to_vec();
            let fields = bitfield::run(&mut next, ops);
            let mut out = outcome(true, next.len() as u64);
            out.fields = fields;
            (Some(keep(Bytes::from(next), expiry)), out)
        }
        Rmw::SetRange { offset, value } => {
            let before = old.as_ref().map_or(0, Bytes::len) as u64;
            if value.is_empty() {
                return Ok((None, outcome(false, before)));
            }
            let end = offset.checked_add(value.len() as u64).filter(|&e| e <= MAX_STRING).ok_or(RmwError::TooLarge)?;
            let len = end.max(before);
            let mut next = BytesMut::zeroed(len as usize);
            next[..before as usize].copy_from_slice(old.as_deref().unwrap_or_default());
            next[*offset as usize..end as usize].copy_from_slice(value);
            (Some(keep(next.freeze(), expiry)), outcome(true, len))
        }
        Rmw::IncrBy { by } => {
            let mut counter = match current.map(|(v, _)| v) {
                // Missing (deleted, expired, never written): a counter from 0; whatever its
                // siblings counted before is observed and no longer counts.
                None => observed.reset(Some(0), now, actor),
                Some(Value::Counter(c)) => c.clone(),
                Some(Value::Hll(_)) => return Err(RmwError::NotInteger),
                Some(Value::Set(_) | Value::Hash(_) | Value::List(_) | Value::ZSet(_) | Value::Stream(_)) => {
                    return Err(RmwError::WrongType)
                }
                Some(Value::Bytes(b)) => {
                    // A string holding an integer becomes a counter from that integer, written
                    // when the string was (a DEL after the string resets it, wherever the two
                    // meet); the counters its siblings held are observed and no longer count.
                    let start = redis_i64(b).ok_or(RmwError::NotInteger)?;
                    let (ms, origin) = resolved.map_or((now, actor), |r| r.stamp);
                    observed.reset(Some(start), ms, origin)
                }
            };
            if !counter.can_add(*by) {
                return Err(RmwError::Overflow);
            }
            counter.add(dot, *by);
            let mut out = outcome(true, 0);
            out.int = counter.value().unwrap_or(0);
            (Some(NewValue { value: Some(Value::Counter(counter)), expires_ms: expiry }), out)
        }
        Rmw::IncrByFloat { by } => {
            let text = crate::longdouble::add(old.as_deref().unwrap_or(b"0"), by).map_err(|e| match e {
                crate::longdouble::FloatError::NotFloat => RmwError::NotFloat,
                crate::longdouble::FloatError::NanOrInfinity => RmwError::NanOrInfinity,
            })?;
            let mut out = outcome(true, 0);
            out.new = Some(text.clone());
            (Some(keep(text, expiry)), out)
        }
        Rmw::PfAdd { elements } => {
            let (mut hll, created) = match current {
                None => (Hll::default(), true),
                Some((v, _)) => (hll_of(v)?, false),
            };
            let mut changed = created;
            for e in elements {
                changed |= hll.add(e);
            }
            let written = changed.then(|| NewValue { value: Some(Value::Hll(hll)), expires_ms: expiry });
            (written, outcome(changed, 0))
        }
        Rmw::PfMerge { sources } => {
            let mut hll = match current {
                None => Hll::default(),
                Some((v, _)) => hll_of(v)?,
            };
            hll.merge(sources);
            (Some(NewValue { value: Some(Value::Hll(hll)), expires_ms: expiry }), outcome(true, 0))
        }
        Rmw::SAdd { .. }
        | Rmw::SRem { .. }
        | Rmw::SPop { .. }
        | Rmw::HSet { .. }
        | Rmw::HDel { .. }
        | Rmw::HIncrBy { .. }
        | Rmw::HIncrByFloat { .. }
        | Rmw::Push { .. }
        | Rmw::Pop { .. }
        | Rmw::LSet { .. }
        | Rmw::LInsert { .. }
        | Rmw::LRem { .. }
        | Rmw::LTrim { .. }
        | Rmw::ZAdd { .. }
        | Rmw::ZRem { .. }
        | Rmw::ZPop { .. }
        | Rmw::ZRemRange { .. }
        | Rmw::Stream(_)
        | Rmw::Store { .. } => unreachable!("answered above"),
    })
}

/// What a write of `new` over a key's siblings `current` stores (Riak's reset-remove): over a
/// counter, a DEL, or a string that is an integer, resets it (the increments it observed stop
/// counting, those it did not survive) and stays a counter. A DEL over a set or a hash is the
/// empty one with the clock of what it observed (members added concurrently survive it). Any
/// other write is stored as it is.
pub fn written_over(new: Option<Value>, current: &SiblingSet, now: u64, actor: Actor) -> Option<Value> {
    let reset = |value: Option<i64>| {
        let observed = if current.holds_counter() { current.counter() } else { Counter::default() };
        (observed != Counter::default()).then(|| Value::Counter(observed.reset(value, now, actor)))
    };
    match new {
        None => reset(None).or_else(|| current.observed_set().and_then(|v| v.cleared())),
        Some(Value::Bytes(b)) => match redis_i64(&b) {
            Some(n) => reset(Some(n)).or(Some(Value::Bytes(b))),
            None => Some(Value::Bytes(b)),
        },
        kept @ Some(
            Value::Counter(_)
            | Value::Hll(_)
            | Value::Set(_)
            | Value::Hash(_)
            | Value::List(_)
            | Value::ZSet(_)
            | Value::Stream(_),
        ) => kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    /// `apply` on a string value, written by actor 1, with no counter among the siblings.
    fn run(
        op: &Rmw,
        current: Option<(&Bytes, Option<u64>)>,
        now: u64,
    ) -> Result<(Option<NewValue>, Outcome), RmwError> {
        let resolved =
            current.map(|(v, e)| Resolved { value: Value::Bytes(v.clone()), expires_ms: e, stamp: (1, Actor(9)) });
        apply(op, resolved, &Counter::default(), now, Dot { actor: Actor(1), counter: 1 })
    }

    fn bv(s: &str) -> Option<Value> {
        Some(Value::Bytes(b(s)))
    }

    fn set(cond: SetCond) -> Rmw {
        Rmw::Set { value: b("new"), expires_ms: Some(50), keep_ttl: false, cond, get: true }
    }

    #[test]
    fn set_conditions() {
        let old = b("old");
        let (w, o) = run(&set(SetCond::IfMissing), Some((&old, None)), 0).unwrap();
        assert_eq!((w, o.applied, o.old), (None, false, Some(old.clone())));
        let (w, o) = run(&set(SetCond::IfMissing), None, 0).unwrap();
        assert_eq!(w, Some(NewValue { value: bv("new"), expires_ms: Some(50) }));
        assert!(o.applied);
        assert_eq!(run(&set(SetCond::IfExists), None, 0).unwrap().0, None);
        let keep = Rmw::Set { value: b("n"), expires_ms: None, keep_ttl: true, cond: SetCond::Always, get: false };
        assert_eq!(run(&keep, Some((&old, Some(99))), 0).unwrap().0.unwrap().expires_ms, Some(99));
    }

    #[test]
    fn expire_conditions_follow_redis() {
        let v = b("v");
        let exp = |at, cond| Rmw::Expire { at_ms: Some(at), cond };
        let nx = ExpireCond { nx: true, ..Default::default() };
        let xx = ExpireCond { xx: true, ..Default::default() };
        let gt = ExpireCond { gt: true, ..Default::default() };
        let lt = ExpireCond { lt: true, ..Default::default() };
        let always = ExpireCond::default();
        // Missing key: 0.
        assert!(!run(&exp(100, always), None, 0).unwrap().1.applied);
        // GT against no expiry (infinite) fails; LT succeeds.
        assert!(!run(&exp(100, gt), Some((&v, None)), 0).unwrap().1.applied);
        assert!(run(&exp(100, lt), Some((&v, None)), 0).unwrap().1.applied);
        assert!(run(&exp(100, gt), Some((&v, Some(50))), 0).unwrap().1.applied);
        assert!(!run(&exp(100, nx), Some((&v, Some(50))), 0).unwrap().1.applied);
        assert!(!run(&exp(100, xx), Some((&v, None)), 0).unwrap().1.applied);
        // XX and LT together: an expiry must exist and the new one be earlier.
        let xx_lt = ExpireCond { xx: true, lt: true, ..Default::default() };
        assert!(!run(&exp(100, xx_lt), Some((&v, None)), 0).unwrap().1.applied);
        assert!(run(&exp(100, xx_lt), Some((&v, Some(200))), 0).unwrap().1.applied);
        // A time not in the future deletes.
        let (w, o) = run(&exp(10, always), Some((&v, None)), 10).unwrap();
        assert_eq!((w.unwrap().value, o.applied), (None, true));
        // PERSIST: 1 only if there was an expiry.
        let persist = Rmw::Expire { at_ms: None, cond: always };
        assert!(!run(&persist, Some((&v, None)), 0).unwrap().1.applied);
        let (w, o) = run(&persist, Some((&v, Some(5))), 0).unwrap();
        assert_eq!((w.unwrap().expires_ms, o.applied), (None, true));
    }

    #[test]
    fn append_and_setrange() {
        let v = b("Hello");
        let (w, o) = run(&Rmw::Append { value: b(" World") }, Some((&v, Some(7))), 0).unwrap();
        assert_eq!(w, Some(NewValue { value: bv("Hello World"), expires_ms: Some(7) }));
        assert_eq!(o.len, 11);
        let (w, o) = run(&Rmw::SetRange { offset: 6, value: b("Redis") }, Some((&b("Hello World"), None)), 0).unwrap();
        assert_eq!((w.unwrap().value, o.len), (bv("Hello Redis"), 11));
        let (w, o) = run(&Rmw::SetRange { offset: 3, value: b("x") }, None, 0).unwrap();
        assert_eq!((w.unwrap().value, o.len), (Some(Value::Bytes(Bytes::from_static(b"\0\0\0x"))), 4));
        assert_eq!(run(&Rmw::SetRange { offset: 3, value: b("") }, None, 0).unwrap(), (None, Outcome::default()));
        assert_eq!(run(&Rmw::SetRange { offset: MAX_STRING, value: b("x") }, None, 0), Err(RmwError::TooLarge));
    }

    #[test]
    fn integers_as_redis_parses_them() {
        for ok in ["0", "-1", "42", "9223372036854775807", "-9223372036854775808"] {
            assert!(redis_i64(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in ["", "-", "+1", "007", "-0", " 1", "1 ", "1.0", "9223372036854775808", "abc"] {
            assert_eq!(redis_i64(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn incrby_on_missing_strings_and_counters() {
        let by = |n| Rmw::IncrBy { by: n };
        let (w, o) = run(&by(5), None, 0).unwrap();
        assert_eq!(o.int, 5);
        let Some(Value::Counter(c)) = w.unwrap().value else { panic!("a counter") };
        assert_eq!(c.value(), Some(5));
        let (w, o) = run(&by(-3), Some((&b("10"), Some(99))), 0).unwrap();
        assert_eq!((o.int, w.unwrap().expires_ms), (7, Some(99)), "INCR keeps the TTL");
        assert_eq!(run(&by(1), Some((&b("abc"), None)), 0), Err(RmwError::NotInteger));
        assert_eq!(run(&by(1), Some((&b(" 1"), None)), 0), Err(RmwError::NotInteger));
        assert_eq!(run(&by(1), Some((&b("9223372036854775807"), None)), 0), Err(RmwError::Overflow));
        assert_eq!(run(&by(i64::MIN), Some((&b("-1"), None)), 0), Err(RmwError::Overflow));
        // Expiry changes keep a counter a counter.
        let mut counter = Counter::default();
        counter.add(Dot { actor: Actor(2), counter: 1 }, 8);
        let value = Value::Counter(counter);
        let exp = Rmw::Expire { at_ms: Some(500), cond: ExpireCond::default() };
        let resolved = Resolved { value: value.clone(), expires_ms: None, stamp: (1, Actor(2)) };
        let (w, _) = apply(&exp, Some(resolved), &Counter::default(), 0, Dot { actor: Actor(1), counter: 1 }).unwrap();
        assert_eq!(w.unwrap().value, Some(value));
    }

    #[test]
    fn incrbyfloat_as_redis() {
        let by = |n: &str| Rmw::IncrByFloat { by: b(n) };
        assert_eq!(run(&by("0.1"), Some((&b("10.5"), None)), 0).unwrap().1.new, Some(b("10.6")));
        assert_eq!(run(&by("2.0"), None, 0).unwrap().1.new, Some(b("2")));
        assert_eq!(run(&by("0.1"), Some((&b("300"), None)), 0).unwrap().1.new, Some(b("300.10000000000000001")));
        assert_eq!(run(&by("3e2"), None, 0).unwrap().1.new, Some(b("300")));
        assert_eq!(
            run(&by("10"), Some((&b("-9223372036854775807"), None)), 0).unwrap().1.new,
            Some(b("-9223372036854775797"))
        );
        assert_eq!(run(&by("1"), Some((&b("x"), None)), 0), Err(RmwError::NotFloat));
        assert_eq!(run(&by("-inf"), Some((&b("1"), None)), 0), Err(RmwError::NanOrInfinity));
    }

    #[test]
    fn writes_over_a_counter_reset_it() {
        let mut seen = Counter::default();
        seen.add(Dot { actor: Actor(2), counter: 1 }, 10);
        let sibling = |value| crate::version::Sibling {
            value,
            written_ms: 1,
            origin: Actor(2),
            expires_ms: None,
            resets: Vec::new(),
            flush_seen: None,
        };
        let none = crate::version::VersionVector::default();
        let (holding, _) = SiblingSet::new().update(&none, sibling(Some(Value::Counter(seen))));
        let Some(Value::Counter(c)) = written_over(bv("5"), &holding, 1, Actor(1)) else { panic!("a counter") };
        assert_eq!(c.value(), Some(5));
        let Some(Value::Counter(c)) = written_over(None, &holding, 1, Actor(1)) else { panic!("a reset") };
        assert_eq!(c.value(), None);
        assert_eq!(written_over(bv("text"), &holding, 1, Actor(1)), bv("text"));
        assert_eq!(written_over(None, &SiblingSet::new(), 1, Actor(1)), None);
        // A DEL over a set: the empty set with what it observed.
        let mut set = crate::version::OrSet::default();
        set.insert(b("m"), Dot { actor: Actor(2), counter: 2 }, ());
        let (holding, _) = SiblingSet::new().update(&none, sibling(Some(Value::Set(set.clone()))));
        assert_eq!(written_over(None, &holding, 1, Actor(1)), Some(Value::Set(set.cleared())));
    }
}
