//! `DEL key [key ...]`: tombstones over what a quorum read saw; returns how many keys existed.

use bytes::Bytes;

use super::{delete, CmdResult};
use crate::coordinator::{now_ms, WriteContext};
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let mut removed = 0;
    for key in &args[1..] {
        let current = node.coordinator.get(key, None).await?;
        if current.get(now_ms()).is_some() {
            delete(node, key, WriteContext::Given(current.context()), None).await?;
            removed += 1;
        }
    }
    Ok(Reply::Int(removed))
}
