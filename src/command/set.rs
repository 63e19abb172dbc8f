//! `SET key value [EX s|PX ms|EXAT t|PXAT t|KEEPTTL] [NX|XX] [GET]`.
//!
//! A plain SET supersedes every version the coordinating replica holds. NX, XX, GET and KEEPTTL
//! make it a read-modify-write decided at the key's first reachable owner under the key's lock.

use bytes::Bytes;

use super::{parse_i64, value_to_store, CmdResult, CommandError};
use crate::coordinator::{now_ms, Write, WriteContext};
use crate::node::Node;
use crate::notify::Class;
use crate::resp::Reply;
use crate::rmw::{Rmw, SetCond};

#[derive(Default, PartialEq)]
pub(super) enum Condition {
    #[default]
    Always,
    IfMissing,
    IfExists,
}

#[derive(Default)]
pub(super) struct Options {
    pub expires_ms: Option<u64>,
    pub keep_ttl: bool,
    pub condition: Condition,
    pub get: bool,
}

/// Reads a relative expiry argument (SETEX, PSETEX) as an absolute time in ms.
pub(super) fn expiry_after(arg: &[u8], unit_ms: u64, now: u64, cmd: &'static str) -> Result<u64, CommandError> {
    let n = parse_i64(arg)?;
    if n <= 0 {
        return Err(CommandError::InvalidExpire(cmd));
    }
    (n as u64)
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(now))
        .filter(|&t| t < i64::MAX as u64)
        .ok_or(CommandError::InvalidExpire(cmd))
}

fn parse(args: &[Bytes], now: u64) -> Result<Options, CommandError> {
    let mut o = Options::default();
    let mut has_expire = false;
    // Redis checks the whole grammar before it reads the expiry's number.
    let mut expire: Option<(Vec<u8>, &Bytes)> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            // An option may repeat (the last wins); only different ones conflict (Redis 7).
            b"NX" if o.condition != Condition::IfExists => o.condition = Condition::IfMissing,
            b"XX" if o.condition != Condition::IfMissing => o.condition = Condition::IfExists,
            b"GET" => o.get = true,
            b"KEEPTTL" if !has_expire => o.keep_ttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT"
                if expire.as_ref().is_none_or(|(kind, _)| *kind == opt) && !o.keep_ttl && i + 1 < args.len() =>
            {
                i += 1;
                expire = Some((opt, &args[i]));
                has_expire = true;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    if let Some((opt, arg)) = expire {
        let n = parse_i64(arg)?;
        if n <= 0 {
            return Err(CommandError::InvalidExpire("set"));
        }
        let n = n as u64;
        let at = match opt.as_slice() {
            b"EX" => n.checked_mul(1000).and_then(|ms| ms.checked_add(now)),
            b"PX" => n.checked_add(now),
            b"EXAT" => n.checked_mul(1000),
            _ => Some(n),
        };
        o.expires_ms = Some(at.filter(|&t| t < i64::MAX as u64).ok_or(CommandError::InvalidExpire("set"))?);
    }
    Ok(o)
}

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let o = parse(args, now_ms())?;
    apply(node, &args[1], &args[2], o).await
}

/// A SET with parsed options; SETEX, PSETEX, SETNX and GETSET are this with fixed options.
/// A plain SET supersedes what the coordinator holds; with NX, XX, GET or KEEPTTL it is a
/// read-modify-write at the key's first owner (atomic on one node, see `coordinator/modify.rs`).
pub(super) async fn apply(node: &Node, key: &Bytes, value: &Bytes, o: Options) -> CmdResult {
    let value = value_to_store(node, value)?;
    if !(o.get || o.keep_ttl || o.condition != Condition::Always) {
        let write = Write { value: Some(value.into()), expires_ms: o.expires_ms };
        node.coordinator.put(key, WriteContext::Everything, write, None).await?;
        written(node, key, o.expires_ms.is_some());
        return Ok(Reply::ok());
    }
    let cond = match o.condition {
        Condition::Always => SetCond::Always,
        Condition::IfMissing => SetCond::IfMissing,
        Condition::IfExists => SetCond::IfExists,
    };
    let op = Rmw::Set { value, expires_ms: o.expires_ms, keep_ttl: o.keep_ttl, cond, get: o.get };
    let outcome = super::modify(node, key, op).await?;
    Ok(match (o.get, outcome.applied) {
        (true, _) => outcome.old.map_or(Reply::Nil, Reply::Bulk),
        (false, true) => Reply::ok(),
        (false, false) => Reply::Nil,
    })
}

/// The keyspace events of a plain SET of `key` (MSET's, BITOP's ...): `set`, and `expire`
/// when it gave the key an expiry.
pub(super) fn written(node: &Node, key: &[u8], expires: bool) {
    node.notify.report(Class::String, "set", key);
    if expires {
        node.notify.report(Class::Generic, "expire", key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_owned())).collect()
    }

    #[test]
    fn option_grammar() {
        let o = parse(&args("SET k v ex 10 nx get"), 1000).unwrap();
        assert_eq!(o.expires_ms, Some(11_000));
        assert!(o.get && o.condition == Condition::IfMissing);
        assert_eq!(parse(&args("SET k v PXAT 5"), 0).unwrap().expires_ms, Some(5));
        assert!(matches!(parse(&args("SET k v NX XX"), 0), Err(CommandError::Syntax)));
        assert!(matches!(parse(&args("SET k v EX 1 PX 1"), 0), Err(CommandError::Syntax)));
        assert_eq!(parse(&args("SET k v EX 1 EX 2 NX NX"), 0).unwrap().expires_ms, Some(2000));
        assert!(matches!(parse(&args("SET k v KEEPTTL EX 1"), 0), Err(CommandError::Syntax)));
        assert!(matches!(parse(&args("SET k v EX"), 0), Err(CommandError::Syntax)));
        assert!(matches!(parse(&args("SET k v EX 0"), 0), Err(CommandError::InvalidExpire(_))));
        assert!(matches!(parse(&args("SET k v EX x"), 0), Err(CommandError::NotInteger)));
        assert!(matches!(parse(&args("SET k v EX 9223372036854775807"), 0), Err(CommandError::InvalidExpire(_))));
    }
}
