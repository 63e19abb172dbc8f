//! `INCR`, `DECR`, `INCRBY`, `DECRBY`: a convergent counter (`version::Counter`): increments
//! made through different nodes, or on both sides of a partition, all count. `INCRBYFLOAT`
//! rewrites the value (last write wins between concurrent ones: not convergent).
//!
//! Each is a read-modify-write at the key's first owner that is up, forwarded there once and
//! never re-sent, so kura never applies one increment twice; `-NOQUORUM` means it may have
//! been applied.

use bytes::Bytes;

use super::{CmdResult, CommandError};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::{redis_i64, Rmw};

async fn incr_by(node: &Node, key: &[u8], by: i64) -> CmdResult {
    Ok(Reply::Int(super::modify(node, key, Rmw::IncrBy { by }).await?.int))
}

fn amount(arg: &[u8]) -> Result<i64, CommandError> {
    redis_i64(arg).ok_or(CommandError::NotInteger)
}

pub async fn incr(node: &Node, args: &[Bytes]) -> CmdResult {
    incr_by(node, &args[1], 1).await
}

pub async fn decr(node: &Node, args: &[Bytes]) -> CmdResult {
    incr_by(node, &args[1], -1).await
}

pub async fn incrby(node: &Node, args: &[Bytes]) -> CmdResult {
    incr_by(node, &args[1], amount(&args[2])?).await
}

pub async fn decrby(node: &Node, args: &[Bytes]) -> CmdResult {
    let by = amount(&args[2])?;
    let negated = by.checked_neg().ok_or_else(|| CommandError::Other("decrement would overflow".into()))?;
    incr_by(node, &args[1], negated).await
}

pub async fn incrbyfloat(node: &Node, args: &[Bytes]) -> CmdResult {
    // The key's type is checked first, then its value, then the increment (Redis's order).
    let outcome = super::modify(node, &args[1], Rmw::IncrByFloat { by: args[2].clone() }).await?;
    Ok(Reply::Bulk(outcome.new.unwrap_or_default()))
}
