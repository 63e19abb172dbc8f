//! `GETSET key value`: SET ... GET (deprecated in Redis 6.2, still answered).

use bytes::Bytes;

use super::set::{apply, Options};
use super::CmdResult;
use crate::node::Node;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    apply(node, &args[1], &args[2], Options { get: true, ..Options::default() }).await
}
