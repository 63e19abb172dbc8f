//! `STRLEN key`: the length of the value GET returns (0 when missing).

use bytes::Bytes;

use super::CmdResult;
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let set = node.coordinator.get(&args[1], None).await?;
    Ok(Reply::Int(super::string_value(&set)?.map_or(0, |v| v.len() as i64)))
}
