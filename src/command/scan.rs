//! `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`, `KEYS pattern`, `RANDOMKEY` and
//! `DBSIZE`: the whole cluster's live keys (see `coordinator/scan.rs` for the cursor and
//! what a walk promises). MATCH and TYPE filter after the keys are fetched, as in Redis, so a
//! call may answer fewer than COUNT keys (or none) with a cursor that is not 0.
//!
//! No walk holds a runtime worker for long: the storage is read on the blocking pool a batch
//! at a time (`Coordinator::live_keys`), and a pattern is matched there too (a pattern's
//! match is bounded, `glob.rs`, but a long one over many keys still takes a while).

use std::sync::Arc;

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError};
use crate::glob::Pattern;
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
            b"MATCH" => pattern = Some(Arc::new(Pattern::new(value))),
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
    for (key, user) in matching(keys, db, pattern).await? {
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
    let pattern = Some(Arc::new(Pattern::new(&args[1])));
    let (mut out, mut cursor) = (Vec::new(), 0);
    loop {
        let (keys, next) = node.coordinator.scan(cursor, 1000).await?;
        out.extend(matching(keys, db, pattern.clone()).await?.into_iter().map(|(_, user)| Reply::Bulk(user)));
        if next == 0 {
            return Ok(Reply::Array(out));
        }
        cursor = next;
    }
}

/// The stored keys of database `db` that match `pattern`, each with its user key. A pattern
/// other than `*` is matched on the blocking pool.
async fn matching(
    keys: Vec<Bytes>,
    db: u32,
    pattern: Option<Arc<Pattern>>,
) -> Result<Vec<(Bytes, Bytes)>, CommandError> {
    let mine = move |keys: Vec<Bytes>, pattern: Option<&Pattern>| -> Vec<(Bytes, Bytes)> {
        keys.into_iter()
            .filter_map(|k| super::db::user(db, &k).map(|u| (k, u)))
            .filter(|(_, u)| pattern.is_none_or(|p| p.matches(u)))
            .collect()
    };
    match pattern {
        Some(p) if !p.is_all() => tokio::task::spawn_blocking(move || mine(keys, Some(&p)))
            .await
            .map_err(|e| CommandError::Coordinator(e.into())),
        _ => Ok(mine(keys, None)),
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
