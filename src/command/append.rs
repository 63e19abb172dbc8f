//! `APPEND key value`: appends (creating the key), answers the new length.

use bytes::Bytes;

use super::{value_to_store, CmdResult};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::Rmw;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let value = value_to_store(node, &args[2])?;
    let outcome = super::modify(node, &args[1], Rmw::Append { value }).await?;
    Ok(Reply::Int(outcome.len as i64))
}
