//! `MSET key value [key value ...]`: plain SETs key by key (in a cluster placed at the first
//! key's decider holding every key, `multi::place_one`: atomic over keys of one hash tag).

use bytes::Bytes;

use super::{value_to_store, CmdResult, CommandError};
use crate::coordinator::{Write, WriteContext};
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("mset".into()));
    }
    // Check every value before writing any, so an oversized one leaves nothing half-done.
    let values = args[2..].iter().step_by(2).map(|v| value_to_store(node, v)).collect::<Result<Vec<_>, _>>()?;
    for (key, value) in args[1..].iter().step_by(2).zip(values) {
        let write = Write { value: Some(value.into()), expires_ms: None };
        node.coordinator.put(key, WriteContext::Everything, write, None).await?;
        super::set::written(node, key, false);
    }
    Ok(Reply::ok())
}
