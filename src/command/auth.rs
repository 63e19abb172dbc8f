//! `AUTH [username] password`: the only user is `default`, with `--requirepass`.

use bytes::Bytes;

use super::{CmdResult, CommandError, Session};
use crate::node::Node;
use crate::resp::Reply;

/// Checks a username/password pair as Redis 7's ACL does with only the `default` user: without
/// `--requirepass` it is `nopass` (any password is accepted), with one it needs that password;
/// any other user does not exist.
pub(super) fn check(node: &Node, user: &[u8], password: &[u8]) -> Result<(), CommandError> {
    if user != b"default" {
        return Err(CommandError::WrongPass);
    }
    match &*node.requirepass.read() {
        None => Ok(()),
        Some(p) if p.as_bytes() == password => Ok(()),
        Some(_) => Err(CommandError::WrongPass),
    }
}

pub fn run(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    let (user, password) = match args {
        // The one-argument form is refused outright when no password is set (Redis's hint
        // that the configuration is probably not what the client expects).
        [_, _] if node.requirepass.read().is_none() => {
            return Err(CommandError::Other(
                "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into(),
            ))
        }
        [_, password] => (&b"default"[..], password),
        [_, user, password] => (&user[..], password),
        _ => return Err(CommandError::Syntax),
    };
    check(node, user, password)?;
    session.authenticated = true;
    Ok(Reply::ok())
}
