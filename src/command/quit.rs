//! `QUIT`: `+OK`, then the connection closes.

use super::{CmdResult, Session};
use crate::resp::Reply;

pub fn run(session: &mut Session) -> CmdResult {
    session.quit = true;
    Ok(Reply::ok())
}
