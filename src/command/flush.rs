//! `FLUSHDB [ASYNC|SYNC]` and `FLUSHALL [ASYNC|SYNC]`: every live key of the connection's
//! database (or of all of them) deleted, through the whole cluster. A flush is a walk of the
//! keys and a DEL of each (a read-modify-write at the key's first owner, whose quorum read
//! sees every write acknowledged before), so it costs O(keys) writes, and like DEL it covers
//! what those reads saw: a write acknowledged only by stand-ins whose owners were unreachable
//! during the flush may come back when its hint is delivered. ASYNC and SYNC both answer once
//! every key is deleted.

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::{CmdResult, CommandError};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::Rmw;

/// Deletes at once per flush.
const CONCURRENCY: usize = 64;

/// `db`: the database to flush, `None` for all.
pub async fn run(node: &Node, db: Option<u32>, args: &[Bytes]) -> CmdResult {
    match &args[1..] {
        [] => {}
        [mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {}
        _ => return Err(CommandError::Syntax),
    }
    let mut cursor = 0;
    loop {
        let (keys, next) = node.coordinator.scan(cursor, 1000).await?;
        let mine: Vec<Bytes> =
            keys.into_iter().filter(|k| db.is_none_or(|db| super::db::user(db, k).is_some())).collect();
        let deletes = stream::iter(mine).map(|k| async move { node.coordinator.modify(&k, Rmw::GetDel).await });
        let results: Vec<_> = deletes.buffer_unordered(CONCURRENCY).collect().await;
        for r in results {
            r?;
        }
        if next == 0 {
            return Ok(Reply::ok());
        }
        cursor = next;
    }
}
