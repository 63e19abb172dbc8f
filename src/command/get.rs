//! `GET key`: the newest sibling (last write wins), or nil.

use bytes::Bytes;

use super::{record_siblings, CmdResult};
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let set = node.coordinator.get(&args[1], None).await?;
    record_siblings(set.len());
    Ok(node.clients.lookup(super::string_value(&set)?).map_or(Reply::Nil, Reply::Bulk))
}
