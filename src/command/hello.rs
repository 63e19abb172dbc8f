//! `HELLO [protover [AUTH username password] [SETNAME clientname]]`: switches between RESP2 and
//! RESP3 and answers with the server's properties.

use bytes::Bytes;

use super::{auth, parse_i64, CmdResult, CommandError, Session};
use crate::node::Node;
use crate::resp::{Protocol, Reply};

pub fn run(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    let mut protocol = session.protocol;
    let mut name = None;
    if let Some(v) = args.get(1) {
        protocol = match parse_i64(v)
            .map_err(|_| CommandError::Other("Protocol version is not an integer or out of range".into()))?
        {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(CommandError::Coded("NOPROTO unsupported protocol version".into())),
        };
    }
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"AUTH" if i + 2 < args.len() => {
                auth::check(node, &args[i + 1], &args[i + 2])?;
                session.authenticated = true;
                i += 3;
            }
            b"SETNAME" if i + 1 < args.len() => {
                name = Some(String::from_utf8_lossy(&args[i + 1]).into_owned());
                i += 2;
            }
            _ => {
                return Err(CommandError::Other(format!(
                    "Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&args[i])
                )))
            }
        }
    }
    if !session.authenticated {
        return Err(CommandError::Coded("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into()));
    }
    session.protocol = protocol;
    let resp = if protocol == Protocol::Resp3 { 3 } else { 2 };
    session.client.set_resp(resp);
    if name.is_some() {
        session.client.set_name(name);
    }
    Ok(Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(super::info::REDIS_COMPAT_VERSION)),
        (Reply::bulk("proto"), Reply::Int(resp as i64)),
        (Reply::bulk("id"), Reply::Int(session.id() as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(vec![])),
    ]))
}
