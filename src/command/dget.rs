//! `DGET key [R r]`: `[context, [value, ...]]`, every live sibling (newest first) and the context
//! to write a merge back with. A missing key gives `[context, []]`; a set or a hash WRONGTYPE (a
//! counter shows each sibling's own count, a HyperLogLog each sibling's registers).

use bytes::Bytes;

use super::{quorum_option, record_siblings, CmdResult};
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let r = quorum_option(args, 2, "R")?;
    let set = node.coordinator.get(&args[1], r).await?;
    record_siblings(set.len());
    // DGET and DPUT are for strings: a set's or a hash's siblings are joined, never shown.
    super::string_value(&set)?;
    let context = node.coordinator.encode_context(&set.context())?;
    let values = set.live_values(now_ms()).into_iter().map(Reply::Bulk).collect();
    Ok(Reply::Array(vec![Reply::bulk(context), Reply::Array(values)]))
}
