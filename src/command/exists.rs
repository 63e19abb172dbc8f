//! `EXISTS key [key ...]`: how many of the keys hold a value (repeats count again, as in Redis).

use bytes::Bytes;

use super::CmdResult;
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for key in &args[1..] {
        if node.coordinator.get(key, None).await?.get(now_ms()).is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}
