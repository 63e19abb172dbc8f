//! `GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]`: the value, and its expiry changed.

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError};
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::Rmw;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    // The grammar first (an option may repeat; different ones conflict), as Redis does.
    let mut kind: Option<Vec<u8>> = None;
    let mut number: Option<&Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        let compatible = kind.as_ref().is_none_or(|k| *k == opt);
        match opt.as_slice() {
            b"PERSIST" if compatible => kind = Some(opt),
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if compatible && i + 1 < args.len() => {
                i += 1;
                number = Some(&args[i]);
                kind = Some(opt);
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    let Some(kind) = kind else { return super::get::run(node, &args[..2]).await };
    let expiry = match number {
        None => Ok(None),
        Some(n) => expiry_at(&kind, n, now_ms()).map(Some),
    };
    let expiry = match expiry {
        Ok(e) => e,
        // A missing key answers nil before its expiry is read.
        Err(e) => {
            let missing = super::string_value(&*node.coordinator.get(&args[1], None).await?)?.is_none();
            return if missing { Ok(Reply::Nil) } else { Err(e) };
        }
    };
    let outcome = super::modify(node, &args[1], Rmw::GetEx { expiry: Some(expiry) }).await?;
    Ok(outcome.old.map_or(Reply::Nil, Reply::Bulk))
}

/// The absolute expiry in ms that `EX n` (and PX, EXAT, PXAT) asks for.
fn expiry_at(kind: &[u8], n: &[u8], now: u64) -> Result<u64, CommandError> {
    let n = parse_i64(n)?;
    if n <= 0 {
        return Err(CommandError::InvalidExpire("getex"));
    }
    let unit_ms: u64 = if kind.starts_with(b"E") { 1000 } else { 1 };
    let relative = !kind.ends_with(b"AT");
    (n as u64)
        .checked_mul(unit_ms)
        .and_then(|ms| if relative { ms.checked_add(now) } else { Some(ms) })
        .filter(|&t| t < i64::MAX as u64)
        .ok_or(CommandError::InvalidExpire("getex"))
}
