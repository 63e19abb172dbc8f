//! `SETEX key seconds value` and `PSETEX key milliseconds value`: SET with EX / PX.

use bytes::Bytes;

use super::set::{apply, expiry_after, Options};
use super::CmdResult;
use crate::coordinator::now_ms;
use crate::node::Node;

pub async fn run(node: &Node, args: &[Bytes], unit_ms: u64, name: &'static str) -> CmdResult {
    let expires_ms = Some(expiry_after(&args[2], unit_ms, now_ms(), name)?);
    apply(node, &args[1], &args[3], Options { expires_ms, ..Options::default() }).await
}
