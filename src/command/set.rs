//! `SET key value [EX s|PX ms|EXAT t|PXAT t|KEEPTTL] [NX|XX] [GET]`.
//!
//! A plain SET supersedes every version the coordinating replica holds. NX, XX, GET and KEEPTTL
//! read at quorum first; the read and the write are not atomic across the cluster.

use bytes::Bytes;

use super::{parse_i64, value_to_store, CmdResult, CommandError};
use crate::coordinator::{now_ms, Write, WriteContext};
use crate::node::Node;
use crate::resp::Reply;

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
    let mut i = 3;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"NX" if o.condition == Condition::Always => o.condition = Condition::IfMissing,
            b"XX" if o.condition == Condition::Always => o.condition = Condition::IfExists,
            b"GET" => o.get = true,
            b"KEEPTTL" if !has_expire => o.keep_ttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if !has_expire && !o.keep_ttl && i + 1 < args.len() => {
                i += 1;
                let n = parse_i64(&args[i])?;
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
                has_expire = true;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    Ok(o)
}

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let o = parse(args, now_ms())?;
    apply(node, &args[1], &args[2], o).await
}

/// A SET with parsed options; SETEX, PSETEX and SETNX are this with fixed options.
pub(super) async fn apply(node: &Node, key: &Bytes, value: &Bytes, mut o: Options) -> CmdResult {
    let now = now_ms();
    let value = value_to_store(node, value)?;
    let needs_read = o.get || o.keep_ttl || o.condition != Condition::Always;
    let mut old = None;
    if needs_read {
        let current = node.coordinator.get(key, None).await?;
        let live = current.winner().filter(|s| s.is_live(now));
        if o.keep_ttl {
            o.expires_ms = live.and_then(|s| s.expires_ms);
        }
        old = live.and_then(|s| s.value.clone());
        let proceed = match o.condition {
            Condition::Always => true,
            Condition::IfMissing => old.is_none(),
            Condition::IfExists => old.is_some(),
        };
        if !proceed {
            return Ok(if o.get { old.map_or(Reply::Nil, Reply::Bulk) } else { Reply::Nil });
        }
    }
    let write = Write { value: Some(value), expires_ms: o.expires_ms };
    node.coordinator.put(key, WriteContext::Everything, write, None).await?;
    Ok(if o.get { old.map_or(Reply::Nil, Reply::Bulk) } else { Reply::ok() })
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
        assert!(matches!(parse(&args("SET k v KEEPTTL EX 1"), 0), Err(CommandError::Syntax)));
        assert!(matches!(parse(&args("SET k v EX"), 0), Err(CommandError::Syntax)));
        assert!(matches!(parse(&args("SET k v EX 0"), 0), Err(CommandError::InvalidExpire(_))));
        assert!(matches!(parse(&args("SET k v EX x"), 0), Err(CommandError::NotInteger)));
        assert!(matches!(parse(&args("SET k v EX 9223372036854775807"), 0), Err(CommandError::InvalidExpire(_))));
    }
}
