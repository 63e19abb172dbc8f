//! `DBSIZE`: keys that hold a value in this node's store (a walk of the store, O(keys)).

use super::CmdResult;
use crate::node::Node;
use crate::resp::Reply;

pub fn run(node: &Node) -> CmdResult {
    let n = node.coordinator.count_live_keys()?;
    Ok(Reply::Int(n as i64))
}
