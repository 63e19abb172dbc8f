//! Read-modify-write operations on a key: what SET NX/XX/GET/KEEPTTL, GETSET, GETDEL, GETEX,
//! APPEND, SETRANGE and the EXPIRE family do with the value they find. Pure: [`apply`] takes
//! the key's live value and expiry and decides the new value (or nothing) and the reply's
//! material. The coordinator evaluates an operation under the key's lock at one node (the
//! key's first reachable owner), so on a single node it is exactly as atomic as in Redis.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

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
    /// SET with NX/XX and KEEPTTL (the old value is always in the outcome, for GET).
    Set {
        value: Bytes,
        expires_ms: Option<u64>,
        keep_ttl: bool,
        cond: SetCond,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (`Some` time) and PERSIST (`None`). A time not
    /// in the future deletes the key.
    Expire {
        at_ms: Option<u64>,
        cond: ExpireCond,
    },
    GetDel,
    /// GETEX: `None` leaves the expiry, `Some(None)` removes it (PERSIST), `Some(Some(t))` sets it.
    GetEx {
        expiry: Option<Option<u64>>,
    },
    Append {
        value: Bytes,
    },
    SetRange {
        offset: u64,
        value: Bytes,
    },
}

/// The new sibling an operation writes: a value (or a tombstone) and its expiry.
#[derive(Clone, Debug, PartialEq)]
pub struct NewValue {
    pub value: Option<Bytes>,
    pub expires_ms: Option<u64>,
}

/// What the reply is made of.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The live value before the operation.
    pub old: Option<Bytes>,
    /// Whether the operation changed the key (SET's condition held, EXPIRE's reply 1).
    pub applied: bool,
    /// The string's length after it (APPEND, SETRANGE).
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RmwError {
    #[error("string exceeds maximum allowed size (proto-max-bulk-len)")]
    TooLarge,
}

/// Applies `op` to the key's live value `current` (value, expiry) at time `now`.
///
/// # Errors
/// A string that would grow past [`MAX_STRING`].
pub fn apply(
    op: &Rmw,
    current: Option<(&Bytes, Option<u64>)>,
    now: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let old = current.map(|(v, _)| v.clone());
    let expiry = current.and_then(|(_, e)| e);
    let keep = |value: Bytes, expires_ms: Option<u64>| NewValue { value: Some(value), expires_ms };
    let delete = NewValue { value: None, expires_ms: None };
    let outcome = |applied: bool, len: u64| Outcome { old: old.clone(), applied, len };
    Ok(match op {
        Rmw::Set { value, expires_ms, keep_ttl, cond } => {
            let proceed = match cond {
                SetCond::Always => true,
                SetCond::IfMissing => current.is_none(),
                SetCond::IfExists => current.is_some(),
            };
            let expires = if *keep_ttl { expiry } else { *expires_ms };
            (proceed.then(|| keep(value.clone(), expires)), outcome(proceed, value.len() as u64))
        }
        Rmw::Expire { at_ms, cond } => {
            let Some((value, _)) = current else { return Ok((None, outcome(false, 0))) };
            match at_ms {
                None => (expiry.map(|_| keep(value.clone(), None)), outcome(expiry.is_some(), 0)),
                Some(at) => {
                    if !cond.allows(expiry, *at) {
                        (None, outcome(false, 0))
                    } else if *at <= now {
                        (Some(delete), outcome(true, 0))
                    } else {
                        (Some(keep(value.clone(), Some(*at))), outcome(true, 0))
                    }
                }
            }
        }
        Rmw::GetDel => (current.map(|_| delete), outcome(current.is_some(), 0)),
        Rmw::GetEx { expiry: change } => match (current, change) {
            (Some(_), Some(Some(at))) if *at <= now => (Some(delete), outcome(true, 0)),
            (Some((value, _)), Some(new)) => (Some(keep(value.clone(), *new)), outcome(true, 0)),
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    fn set(cond: SetCond) -> Rmw {
        Rmw::Set { value: b("new"), expires_ms: Some(50), keep_ttl: false, cond }
    }

    #[test]
    fn set_conditions() {
        let old = b("old");
        let (w, o) = apply(&set(SetCond::IfMissing), Some((&old, None)), 0).unwrap();
        assert_eq!((w, o.applied, o.old), (None, false, Some(old.clone())));
        let (w, o) = apply(&set(SetCond::IfMissing), None, 0).unwrap();
        assert_eq!(w, Some(NewValue { value: Some(b("new")), expires_ms: Some(50) }));
        assert!(o.applied);
        assert_eq!(apply(&set(SetCond::IfExists), None, 0).unwrap().0, None);
        let keep = Rmw::Set { value: b("n"), expires_ms: None, keep_ttl: true, cond: SetCond::Always };
        assert_eq!(apply(&keep, Some((&old, Some(99))), 0).unwrap().0.unwrap().expires_ms, Some(99));
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
        assert!(!apply(&exp(100, always), None, 0).unwrap().1.applied);
        // GT against no expiry (infinite) fails; LT succeeds.
        assert!(!apply(&exp(100, gt), Some((&v, None)), 0).unwrap().1.applied);
        assert!(apply(&exp(100, lt), Some((&v, None)), 0).unwrap().1.applied);
        assert!(apply(&exp(100, gt), Some((&v, Some(50))), 0).unwrap().1.applied);
        assert!(!apply(&exp(100, nx), Some((&v, Some(50))), 0).unwrap().1.applied);
        assert!(!apply(&exp(100, xx), Some((&v, None)), 0).unwrap().1.applied);
        // XX and LT together: an expiry must exist and the new one be earlier.
        let xx_lt = ExpireCond { xx: true, lt: true, ..Default::default() };
        assert!(!apply(&exp(100, xx_lt), Some((&v, None)), 0).unwrap().1.applied);
        assert!(apply(&exp(100, xx_lt), Some((&v, Some(200))), 0).unwrap().1.applied);
        // A time not in the future deletes.
        let (w, o) = apply(&exp(10, always), Some((&v, None)), 10).unwrap();
        assert_eq!((w.unwrap().value, o.applied), (None, true));
        // PERSIST: 1 only if there was an expiry.
        let persist = Rmw::Expire { at_ms: None, cond: always };
        assert!(!apply(&persist, Some((&v, None)), 0).unwrap().1.applied);
        let (w, o) = apply(&persist, Some((&v, Some(5))), 0).unwrap();
        assert_eq!((w.unwrap().expires_ms, o.applied), (None, true));
    }

    #[test]
    fn append_and_setrange() {
        let v = b("Hello");
        let (w, o) = apply(&Rmw::Append { value: b(" World") }, Some((&v, Some(7))), 0).unwrap();
        assert_eq!(w, Some(NewValue { value: Some(b("Hello World")), expires_ms: Some(7) }));
        assert_eq!(o.len, 11);
        let (w, o) =
            apply(&Rmw::SetRange { offset: 6, value: b("Redis") }, Some((&b("Hello World"), None)), 0).unwrap();
        assert_eq!((w.unwrap().value, o.len), (Some(b("Hello Redis")), 11));
        let (w, o) = apply(&Rmw::SetRange { offset: 3, value: b("x") }, None, 0).unwrap();
        assert_eq!((w.unwrap().value, o.len), (Some(Bytes::from_static(b"\0\0\0x")), 4));
        assert_eq!(apply(&Rmw::SetRange { offset: 3, value: b("") }, None, 0).unwrap(), (None, Outcome::default()));
        assert_eq!(apply(&Rmw::SetRange { offset: MAX_STRING, value: b("x") }, None, 0), Err(RmwError::TooLarge));
    }
}
