//! `SETNX key value`: SET NX with an integer reply (1 set, 0 not).

use bytes::Bytes;

use super::set::{apply, Condition, Options};
use super::CmdResult;
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let reply =
        apply(node, &args[1], &args[2], Options { condition: Condition::IfMissing, ..Options::default() }).await?;
    Ok(Reply::Int(i64::from(reply != Reply::Nil)))
}
