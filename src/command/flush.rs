//! `FLUSHDB [ASYNC|SYNC]` and `FLUSHALL [ASYNC|SYNC]`: a flush is a write of its own, a mark
//! "everything of this database (or of all) written up to now is gone" (`flushes.rs`). The
//! node saves it (in force at once: reads and writes apply it; its stored copies are purged in
//! the background), and takes it to every other member: it answers `OK` once each holds it,
//! `-NOQUORUM ... it may have been applied` when one does not confirm in time (gossip takes it
//! there later). Every node drops what the mark covers from whatever it reads or receives, so
//! no key written before the flush comes back through a hint, read repair, anti-entropy or a
//! transfer. ASYNC and SYNC both answer once that is done.

use bytes::Bytes;

use super::{CmdResult, CommandError};
use crate::cluster::ClusterError;
use crate::coordinator::CoordError;
use crate::node::Node;
use crate::resp::Reply;

/// `db`: the database to flush, `None` for all.
pub async fn run(node: &Node, db: Option<u32>, args: &[Bytes]) -> CmdResult {
    match &args[1..] {
        [] => {}
        [mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {}
        _ => return Err(CommandError::Syntax),
    }
    match node.coordinator.cluster().flush(db).await {
        Ok(()) => Ok(Reply::ok()),
        Err(e @ ClusterError::Unconfirmed { .. }) => Err(CommandError::Coded(format!("NOQUORUM {e}"))),
        Err(e) => Err(CoordError::from(e).into()),
    }
}
