//! `PING [message]`.

use bytes::Bytes;

use super::{CmdResult, CommandError};
use crate::resp::Reply;

pub fn run(args: &[Bytes]) -> CmdResult {
    match args {
        [_] => Ok(Reply::Simple("PONG")),
        [_, msg] => Ok(Reply::Bulk(msg.clone())),
        _ => Err(CommandError::WrongArity("ping".into())),
    }
}
