//! `DPUT key context value [W w]`: writes `value` superseding exactly what `context` saw
//! (`""`: no history, the value becomes one more sibling). Returns the new context.

use bytes::Bytes;

use super::{quorum_option, value_to_store, CmdResult};
use crate::coordinator::{Write, WriteContext};
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let w = quorum_option(args, 4, "W")?;
    let context = node.coordinator.decode_context(&args[2])?;
    let value = value_to_store(node, &args[3])?;
    let write = Write { value: Some(value.into()), expires_ms: None };
    let written = node.coordinator.put(&args[1], WriteContext::Given(context), write, w).await?;
    super::set::written(node, &args[1], false);
    Ok(Reply::bulk(node.coordinator.encode_context(&written.context())?))
}
