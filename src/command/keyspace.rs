//! `TYPE key` (string, set, hash or none), `TOUCH key...` and `UNLINK key...` (DEL's non-blocking twin; every delete is
//! a tombstone write here, so the two are the same).

use bytes::Bytes;

use super::CmdResult;
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;

pub async fn type_of(node: &Node, args: &[Bytes]) -> CmdResult {
    let set = node.coordinator.get(&args[1], None).await?;
    Ok(Reply::Simple(set.resolve(now_ms()).map_or("none", |r| r.value.type_name())))
}

/// TOUCH: how many of the keys exist (kura keeps no access times).
pub async fn touch(node: &Node, args: &[Bytes]) -> CmdResult {
    super::exists::run(node, args).await
}
