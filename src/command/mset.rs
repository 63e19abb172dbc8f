//! `MSET key value [key value ...]`: plain SETs key by key (not atomic).

use bytes::Bytes;

use super::{check_value, CmdResult, CommandError};
use crate::coordinator::{Write, WriteContext};
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    if args.len() % 2 == 0 {
        return Err(CommandError::WrongArity("mset".into()));
    }
    // Check every value before writing any, so an oversized one leaves nothing half-done.
    for pair in args[1..].chunks(2) {
        check_value(node, &pair[1])?;
    }
    for pair in args[1..].chunks(2) {
        let write = Write { value: Some(pair[1].clone()), expires_ms: None };
        node.coordinator.put(&pair[0], WriteContext::Everything, write, None).await?;
    }
    Ok(Reply::ok())
}
