//! Commands over several keys that Redis runs atomically: `MSETNX`, `RENAME`, `RENAMENX` and
//! `COPY`. On a node alone they run exclusively (they hold the node's gate like EXEC, see
//! `multi.rs`), so they are as atomic as in Redis. In a cluster all but COPY run at the first
//! key's deciding owner holding every key (`multi::place_one`): atomic over keys of one hash
//! tag against transactions, scripts and read-modify-writes; across partitions (and COPY) a
//! read and then writes key by key (another client may see a RENAME half done).

use bytes::Bytes;

use super::{value_to_store, CmdResult, CommandError};
use crate::coordinator::{now_ms, Write, WriteContext};
use crate::node::Node;
use crate::notify::Class;
use crate::resp::Reply;
use crate::rmw::{Copied, Rmw};

/// The live value of `key` (as a copy of it makes it anew) and its expiry.
async fn live(node: &Node, key: &[u8]) -> Result<Option<(Copied, Option<u64>)>, CommandError> {
    let set = node.coordinator.get(key, None).await?;
    let now = now_ms();
    Ok(set.resolve(now).map(|r| (Copied::of(&r.value), r.expires_ms)))
}

/// Writes a copy at `key` (with `nx` only if it is missing); whether it wrote.
async fn store(
    node: &Node,
    key: &[u8],
    value: Copied,
    expires_ms: Option<u64>,
    nx: bool,
) -> Result<bool, CommandError> {
    Ok(node.coordinator.modify(key, Rmw::Store { value, expires_ms, nx }).await?.applied)
}

async fn put(node: &Node, key: &[u8], value: Bytes, expires_ms: Option<u64>) -> Result<(), CommandError> {
    let write = Write { value: Some(value.into()), expires_ms };
    node.coordinator.put(key, WriteContext::Everything, write, None).await?;
    Ok(())
}

pub async fn msetnx(node: &Node, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("msetnx".into()));
    }
    let values = args[2..].iter().step_by(2).map(|v| value_to_store(node, v)).collect::<Result<Vec<_>, _>>()?;
    for key in args[1..].iter().step_by(2) {
        if node.coordinator.get(key, None).await?.resolve(now_ms()).is_some() {
            return Ok(Reply::Int(0));
        }
    }
    for (key, value) in args[1..].iter().step_by(2).zip(values) {
        put(node, key, value, None).await?;
        super::set::written(node, key, false);
    }
    Ok(Reply::Int(1))
}

/// RENAME (`nx` false) and RENAMENX (`nx` true).
pub async fn rename(node: &Node, args: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    let Some((value, expires_ms)) = live(node, src).await? else {
        return Err(CommandError::Other("no such key".into()));
    };
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::ok() });
    }
    if !store(node, dst, value, expires_ms, nx).await? && nx {
        return Ok(Reply::Int(0));
    }
    node.coordinator.modify(src, Rmw::Del).await?;
    // Redis reports no `del` of a destination the rename replaced.
    node.notify.report(Class::Generic, "rename_from", src);
    node.notify.report(Class::Generic, "rename_to", dst);
    Ok(if nx { Reply::Int(1) } else { Reply::ok() })
}

/// `COPY source destination [DB index] [REPLACE]`, from the connection's database `db`
/// (`args` carry its keys already in their stored form).
pub async fn copy(node: &Node, db: u32, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut target = db;
    let mut i = 3;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"REPLACE" => replace = true,
            b"DB" if i + 1 < args.len() => {
                i += 1;
                target = u32::try_from(super::parse_i64(&args[i])?)
                    .ok()
                    .filter(|t| *t < node.config.databases)
                    .ok_or_else(|| CommandError::Other("DB index is out of range".into()))?;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    let src = &args[1];
    let dst = match super::db::user(db, &args[2]) {
        Some(user_key) => super::db::internal(target, &user_key),
        None => args[2].clone(),
    };
    if *src == dst {
        return Err(CommandError::Other("source and destination objects are the same".into()));
    }
    let Some((value, expires_ms)) = live(node, src).await? else { return Ok(Reply::Int(0)) };
    let copied = store(node, &dst, value, expires_ms, !replace).await?;
    if copied {
        node.notify.report(Class::Generic, "copy_to", &dst);
    }
    Ok(Reply::Int(i64::from(copied)))
}

/// `TIME`: the server's clock as `[seconds, microseconds]`.
pub fn time() -> CmdResult {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(now.as_secs().to_string())),
        Reply::Bulk(Bytes::from(now.subsec_micros().to_string())),
    ]))
}
