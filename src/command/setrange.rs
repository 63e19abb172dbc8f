//! `SETRANGE key offset value`: overwrites from `offset` (zero-padding), answers the length.

use bytes::Bytes;

use super::{parse_i64, value_to_store, CmdResult, CommandError};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::Rmw;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let offset = parse_i64(&args[2])?;
    if offset < 0 {
        return Err(CommandError::Other("offset is out of range".into()));
    }
    // The size is checked after the key's type, where the value is made (`rmw::apply`); an
    // empty value changes nothing and is never too large (Redis answers the length).
    let value = value_to_store(node, &args[3])?;
    let outcome = super::modify(node, &args[1], Rmw::SetRange { offset: offset as u64, value }).await?;
    Ok(Reply::Int(outcome.len as i64))
}
