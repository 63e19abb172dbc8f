//! `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT key time [NX | XX | GT | LT]` and `PERSIST
//! key`: read-modify-writes of the key's expiry at its first owner. A time not in the future
//! deletes the key (Redis's rule); 1 when the expiry was set (or removed), else 0.

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError};
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::{ExpireCond, Rmw};

/// How the time argument is read.
#[derive(Clone, Copy)]
pub struct Form {
    pub unit_ms: i64,
    pub absolute: bool,
    pub name: &'static str,
}

pub const EXPIRE: Form = Form { unit_ms: 1000, absolute: false, name: "expire" };
pub const PEXPIRE: Form = Form { unit_ms: 1, absolute: false, name: "pexpire" };
pub const EXPIREAT: Form = Form { unit_ms: 1000, absolute: true, name: "expireat" };
pub const PEXPIREAT: Form = Form { unit_ms: 1, absolute: true, name: "pexpireat" };

fn condition(opts: &[Bytes]) -> Result<ExpireCond, CommandError> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in opts {
        match o.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => return Err(CommandError::Other(format!("Unsupported option {}", String::from_utf8_lossy(o)))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError::Other("NX and XX, GT or LT options at the same time are not compatible".into()));
    }
    if gt && lt {
        return Err(CommandError::Other("GT and LT options at the same time are not compatible".into()));
    }
    Ok(ExpireCond { nx, xx, gt, lt })
}

/// The absolute expiry in ms (negative times clamp to 0: already expired).
fn deadline(arg: &[u8], form: Form, now: u64) -> Result<u64, CommandError> {
    let n = parse_i64(arg)?;
    let invalid = || CommandError::InvalidExpire(form.name);
    let ms = n.checked_mul(form.unit_ms).ok_or_else(invalid)?;
    let at = if form.absolute { ms } else { ms.checked_add(now as i64).ok_or_else(invalid)? };
    Ok(at.max(0) as u64)
}

pub async fn run(node: &Node, args: &[Bytes], form: Form) -> CmdResult {
    // Redis reads the options before the time.
    let cond = condition(&args[3..])?;
    let at = deadline(&args[2], form, now_ms())?;
    let outcome = super::modify(node, &args[1], Rmw::Expire { at_ms: Some(at), cond }).await?;
    Ok(Reply::Int(i64::from(outcome.applied)))
}

pub async fn persist(node: &Node, args: &[Bytes]) -> CmdResult {
    let outcome = super::modify(node, &args[1], Rmw::Expire { at_ms: None, cond: ExpireCond::default() }).await?;
    Ok(Reply::Int(i64::from(outcome.applied)))
}

/// `EXPIRETIME` / `PEXPIRETIME`: the absolute expiry in seconds or ms; -1 none, -2 missing.
pub async fn time(node: &Node, args: &[Bytes], unit_ms: u64) -> CmdResult {
    let set = node.coordinator.get(&args[1], None).await?;
    let now = now_ms();
    Ok(Reply::Int(match set.resolve(now) {
        None => -2,
        Some(r) => r.expires_ms.map_or(-1, |at| (at / unit_ms) as i64),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> Vec<Bytes> {
        s.split_whitespace().map(|a| Bytes::from(a.to_owned())).collect()
    }

    #[test]
    fn options_and_times() {
        assert_eq!(condition(&opts("")).unwrap(), ExpireCond::default());
        assert_eq!(condition(&opts("xx gt")).unwrap(), ExpireCond { xx: true, gt: true, ..Default::default() });
        assert!(condition(&opts("NX XX")).is_err());
        assert!(condition(&opts("GT LT")).is_err());
        assert!(matches!(condition(&opts("FOO")), Err(CommandError::Other(m)) if m == "Unsupported option FOO"));
        assert_eq!(deadline(b"10", EXPIRE, 5).unwrap(), 10_005);
        assert_eq!(deadline(b"-10", EXPIRE, 5).unwrap(), 0);
        assert_eq!(deadline(b"7", PEXPIREAT, 5).unwrap(), 7);
        assert!(matches!(deadline(b"9223372036854775807", EXPIRE, 5), Err(CommandError::InvalidExpire("expire"))));
    }
}
