//! `GETDEL key`: the value, and the key deleted (a read-modify-write at the key's first owner).

use bytes::Bytes;

use super::CmdResult;
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::Rmw;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let outcome = super::modify(node, &args[1], Rmw::GetDel).await?;
    Ok(outcome.old.map_or(Reply::Nil, Reply::Bulk))
}
