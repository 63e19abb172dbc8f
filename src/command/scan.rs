//! `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`, `KEYS pattern`, `RANDOMKEY` and
//! `DBSIZE`: the whole cluster's live keys (see `coordinator/scan.rs` for the cursor and
//! what a walk promises). MATCH and TYPE filter after the keys are fetched, as in Redis, so a
//! call may answer fewer than COUNT keys (or none) with a cursor that is not 0.

use bytes::Bytes;

use super::glob;
use super::{parse_i64, CmdResult, CommandError};
use crate::node::Node;
use crate::resp::Reply;

pub async fn scan(node: &Node, db: u32, args: &[Bytes]) -> CmdResult {
    let cursor: u64 = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CommandError::Other("invalid cursor".into()))?;
    let (mut pattern, mut count, mut kind) = (None, 10usize, None);
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        let value = args.get(i + 1).ok_or(CommandError::Syntax)?;
        match opt.as_slice() {
            b"MATCH" => pattern = Some(value.clone()),
            b"COUNT" => {
                let n = parse_i64(value)?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                count = n.min(100_000) as usize;
            }
            b"TYPE" => kind = Some(value.to_ascii_lowercase()),
            _ => return Err(CommandError::Syntax),
        }
        i += 2;
    }
    let (keys, next) = node.coordinator.scan(cursor, count).await?;
    let mut out = Vec::new();
    for key in keys {
        let Some(user) = super::db::user(db, &key) else { continue };
        if !pattern.as_ref().is_none_or(|p| glob::matches(p, &user)) {
            continue;
        }
        // TYPE reads each key the walk found (as Redis looks each one up).
        if let Some(t) = &kind {
            let set = node.coordinator.get(&key, None).await?;
            if set.resolve(crate::coordinator::now_ms()).is_none_or(|r| r.value.type_name().as_bytes() != &t[..]) {
                continue;
            }
        }
        out.push(Reply::Bulk(user));
    }
    Ok(Reply::Array(vec![Reply::Bulk(Bytes::from(next.to_string())), Reply::Array(out)]))
}

/// Every live key matching the pattern (a whole walk: as in Redis, not for production use on
/// a large keyspace).
pub async fn keys(node: &Node, db: u32, args: &[Bytes]) -> CmdResult {
    let (mut out, mut cursor) = (Vec::new(), 0);
    loop {
        let (keys, next) = node.coordinator.scan(cursor, 1000).await?;
        let mine = keys.into_iter().filter_map(|k| super::db::user(db, &k));
        out.extend(mine.filter(|k| glob::matches(&args[1], k)).map(Reply::Bulk));
        if next == 0 {
            return Ok(Reply::Array(out));
        }
        cursor = next;
    }
}

/// A key from a random point of the ring (nil when there is none).
pub async fn randomkey(node: &Node, db: u32) -> CmdResult {
    let start = crate::random::u64();
    let mut cursor = start;
    let mut wrapped = false;
    loop {
        let (keys, next) = node.coordinator.scan(cursor, 1).await?;
        if let Some(k) = keys.into_iter().find_map(|k| super::db::user(db, &k)) {
            return Ok(Reply::Bulk(k));
        }
        if next == 0 {
            if wrapped || start == 0 {
                return Ok(Reply::Nil);
            }
            wrapped = true;
        } else if wrapped && next >= start {
            return Ok(Reply::Nil);
        }
        cursor = next;
    }
}

/// The live keys of database `db` in the whole cluster (a walk).
pub async fn dbsize(node: &Node, db: u32) -> CmdResult {
    let (mut n, mut cursor) = (0, 0);
    loop {
        let (keys, next) = node.coordinator.scan(cursor, 1000).await?;
        n += keys.iter().filter(|k| super::db::user(db, k).is_some()).count();
        if next == 0 {
            return Ok(Reply::Int(n as i64));
        }
        cursor = next;
    }
}
