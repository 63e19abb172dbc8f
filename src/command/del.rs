//! `DEL key [key ...]`: tombstones over what a quorum read saw; returns how many keys existed.

use bytes::Bytes;

use super::CmdResult;
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::Rmw;

/// DEL and UNLINK: each key deleted by a read-modify-write at its first owner (so a key is
/// counted once however many clients delete it at once).
pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let mut removed = 0;
    for key in &args[1..] {
        if super::modify(node, key, Rmw::Del).await?.applied {
            removed += 1;
        }
    }
    Ok(Reply::Int(removed))
}
