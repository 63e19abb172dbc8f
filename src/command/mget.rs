//! `MGET key [key ...]`: each key's value or nil, read key by key.

use bytes::Bytes;

use super::{record_siblings, CmdResult};
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        let set = node.coordinator.get(key, None).await?;
        record_siblings(set.len());
        // A key of another type than string reads as nil, as in Redis.
        out.push(node.clients.lookup(super::string_value(&set).ok().flatten()).map_or(Reply::Nil, Reply::Bulk));
    }
    Ok(Reply::Array(out))
}
