//! `DDEL key context [W w]`: a tombstone superseding what `context` saw.

use bytes::Bytes;

use super::{delete, quorum_option, CmdResult};
use crate::coordinator::WriteContext;
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let w = quorum_option(args, 3, "W")?;
    let context = node.coordinator.decode_context(&args[2])?;
    delete(node, &args[1], WriteContext::Given(context), w).await?;
    node.notify.report(crate::notify::Class::Generic, "del", &args[1]);
    Ok(Reply::ok())
}
