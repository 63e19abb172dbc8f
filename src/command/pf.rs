//! `PFADD key [element ...]`, `PFCOUNT key [key ...]`, `PFMERGE destkey [sourcekey ...]`:
//! HyperLogLogs as Redis computes them (`version::Hll`), whose registers merge by maximum, so
//! adds through different nodes or on both sides of a partition all count. GET of such a key
//! answers Redis's dense encoding (Redis answers its sparse one while the HLL is small); a
//! string in either Redis encoding is read as an HLL.

use bytes::Bytes;

use super::{CmdResult, CommandError};
use crate::clock::now_ms;
use crate::coordinator::CoordError;
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::{hll_of, Rmw};
use crate::version::Hll;

pub async fn pfadd(node: &Node, args: &[Bytes]) -> CmdResult {
    let outcome = super::modify(node, &args[1], Rmw::PfAdd { elements: args[2..].to_vec() }).await?;
    Ok(Reply::Int(i64::from(outcome.applied)))
}

/// The union of the HyperLogLogs at `keys` (missing keys add nothing).
async fn union(node: &Node, keys: &[Bytes]) -> Result<Hll, CommandError> {
    let mut all = Hll::default();
    for key in keys {
        if let Some(r) = node.coordinator.get(key, None).await?.resolve(now_ms()) {
            all.merge(&hll_of(&r.value).map_err(CoordError::Rmw)?);
        }
    }
    Ok(all)
}

pub async fn pfcount(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(union(node, &args[1..]).await?.count() as i64))
}

pub async fn pfmerge(node: &Node, args: &[Bytes]) -> CmdResult {
    let sources = union(node, &args[2..]).await?;
    super::modify(node, &args[1], Rmw::PfMerge { sources }).await?;
    Ok(Reply::ok())
}
