//! `AUTH [username] password`: the only user is `default`, with `--requirepass`.

use bytes::Bytes;

use super::{CmdResult, CommandError, Session};
use crate::node::Node;
use crate::resp::Reply;

/// Checks a username/password pair against `--requirepass`.
pub(super) fn check(node: &Node, user: &[u8], password: &[u8]) -> Result<(), CommandError> {
    match &*node.requirepass.read() {
        None => Err(CommandError::Other(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into(),
        )),
        Some(p) if user == b"default" && p.as_bytes() == password => Ok(()),
        Some(_) => Err(CommandError::WrongPass),
    }
}

pub fn run(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    let (user, password) = match args {
        [_, password] => (&b"default"[..], password),
        [_, user, password] => (&user[..], password),
        _ => return Err(CommandError::Syntax),
    };
    check(node, user, password)?;
    session.authenticated = true;
    Ok(Reply::ok())
}
