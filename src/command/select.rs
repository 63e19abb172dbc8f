//! `SELECT index`: kura has one database, 0.

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError};
use crate::resp::Reply;

pub fn run(args: &[Bytes]) -> CmdResult {
    match parse_i64(&args[1])? {
        0 => Ok(Reply::ok()),
        _ => Err(CommandError::Other("DB index is out of range".into())),
    }
}
