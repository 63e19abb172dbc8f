//! `ECHO message`.

use bytes::Bytes;

use super::CmdResult;
use crate::resp::Reply;

pub fn run(args: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(args[1].clone()))
}
