//! `CLIENT ID | SETNAME name | GETNAME | INFO | LIST [TYPE t] [ID id ...] | KILL ... |
//! SETINFO attr value | NO-EVICT | NO-TOUCH | HELP`, over the node's registry (`clients.rs`).

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError, Session};
use crate::clients::{ClientType, Interrupt, KillFilter};
use crate::node::Node;
use crate::resp::Reply;

/// Client types Redis knows; `master` and `replica` connections do not exist here.
fn client_type(name: &[u8]) -> Result<ClientType, CommandError> {
    match name.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(ClientType::Normal),
        b"pubsub" => Ok(ClientType::Pubsub),
        b"master" | b"replica" | b"slave" => Ok(ClientType::Replication),
        _ => Err(CommandError::Other(format!("Unknown client type '{}'", String::from_utf8_lossy(name)))),
    }
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| b > b' ' && b <= b'~')
}

pub fn run(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_uppercase();
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(CommandError::WrongArity(format!("client|{}", String::from_utf8_lossy(&sub).to_lowercase())))
        }
    };
    match sub.as_slice() {
        b"ID" => {
            arity(2)?;
            Ok(Reply::Int(session.id() as i64))
        }
        b"SETNAME" => {
            arity(3)?;
            let name = String::from_utf8_lossy(&args[2]).into_owned();
            if !printable(&name) {
                return Err(CommandError::Other(
                    "Client names cannot contain spaces, newlines or special characters.".into(),
                ));
            }
            session.client.set_name((!name.is_empty()).then_some(name));
            Ok(Reply::ok())
        }
        b"GETNAME" => {
            arity(2)?;
            Ok(session.client.name().map_or(Reply::Nil, Reply::bulk))
        }
        b"INFO" => {
            arity(2)?;
            Ok(Reply::Text(session.client.describe()))
        }
        b"LIST" => list(node, args),
        b"KILL" => kill(node, session, args),
        // kura evicts nothing and keeps no access times: both flags are accepted and change nothing.
        b"NO-EVICT" | b"NO-TOUCH" => {
            arity(3)?;
            match args[2].to_ascii_uppercase().as_slice() {
                b"ON" | b"OFF" => Ok(Reply::ok()),
                _ => Err(CommandError::Syntax),
            }
        }
        b"SETINFO" => {
            arity(4)?;
            let attr = args[2].to_ascii_lowercase();
            let is_name = match attr.as_slice() {
                b"lib-name" => true,
                b"lib-ver" => false,
                _ => {
                    return Err(CommandError::Other(format!(
                        "Unrecognized option '{}'",
                        String::from_utf8_lossy(&args[2])
                    )))
                }
            };
            let value = String::from_utf8_lossy(&args[3]).into_owned();
            if !printable(&value) && !value.is_empty() {
                return Err(CommandError::Other(format!(
                    "{} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(&attr)
                )));
            }
            session.client.set_lib(is_name, value);
            Ok(Reply::ok())
        }
        b"UNBLOCK" => {
            if args.len() > 4 {
                return Err(CommandError::Other(
                    "unknown subcommand or wrong number of arguments for 'unblock'. Try CLIENT HELP.".into(),
                ));
            }
            let id = parse_i64(&args[2])?;
            let why = match args.get(3).map(|a| a.to_ascii_uppercase()) {
                None => Interrupt::Timeout,
                Some(m) if m == b"TIMEOUT" => Interrupt::Timeout,
                Some(m) if m == b"ERROR" => Interrupt::Error,
                Some(_) => return Err(CommandError::Other("CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into())),
            };
            let unblocked = node.clients.list().iter().any(|c| c.id as i64 == id && c.interrupt(why));
            Ok(Reply::Int(i64::from(unblocked)))
        }
        b"HELP" => Ok(Reply::Array(
            [
                "CLIENT ID",
                "CLIENT SETNAME <name>",
                "CLIENT GETNAME",
                "CLIENT INFO",
                "CLIENT LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <id> [<id> ...]]",
                "CLIENT KILL <ip:port>",
                "CLIENT KILL <option> <value> [<option> <value> [...]]: ID, TYPE, USER, ADDR, LADDR, SKIPME",
                "CLIENT SETINFO <LIB-NAME|LIB-VER> <value>",
                "CLIENT UNBLOCK <clientid> [TIMEOUT|ERROR]",
                "CLIENT NO-EVICT (ON|OFF)",
                "CLIENT NO-TOUCH (ON|OFF)",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        )),
        _ => {
            Err(CommandError::UnknownSubcommand { cmd: "CLIENT", sub: String::from_utf8_lossy(&args[1]).into_owned() })
        }
    }
}

/// `CLIENT LIST [TYPE type] [ID id ...]`.
fn list(node: &Node, args: &[Bytes]) -> CmdResult {
    let mut kind = None;
    let mut ids: Option<Vec<u64>> = None;
    match &args[2..] {
        [] => {}
        [opt, t] if opt.eq_ignore_ascii_case(b"TYPE") => kind = Some(client_type(t)?),
        [opt, rest @ ..] if opt.eq_ignore_ascii_case(b"ID") && !rest.is_empty() => {
            let parsed: Result<Vec<u64>, _> = rest
                .iter()
                .map(|a| parse_i64(a).ok().and_then(|n| u64::try_from(n).ok()).filter(|&n| n > 0))
                .map(|n| n.ok_or(()))
                .collect();
            ids = Some(parsed.map_err(|()| CommandError::Other("Invalid client ID".into()))?);
        }
        _ => return Err(CommandError::Syntax),
    }
    let lines: String = node
        .clients
        .list()
        .iter()
        .filter(|c| kind.is_none_or(|k| k == c.client_type()) && ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .map(|c| c.describe())
        .collect();
    Ok(Reply::Text(lines))
}

/// `CLIENT KILL ip:port` (OK, or an error when no such client) or `CLIENT KILL <filter> <value>
/// ...` (how many were closed; the asking connection is skipped unless `SKIPME no`).
fn kill(node: &Node, session: &Session, args: &[Bytes]) -> CmdResult {
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(&args[2]).into_owned();
        let filter = KillFilter { addr: Some(addr), ..Default::default() };
        return match node.clients.kill(&filter) {
            0 => Err(CommandError::Other("No such client".into())),
            _ => Ok(Reply::ok()),
        };
    }
    if args.len() < 3 || !args.len().is_multiple_of(2) {
        return Err(if args.len() < 3 { CommandError::WrongArity("client|kill".into()) } else { CommandError::Syntax });
    }
    let mut filter = KillFilter { skip: Some(session.id()), ..Default::default() };
    for pair in args[2..].chunks(2) {
        let (opt, value) = (pair[0].to_ascii_uppercase(), &pair[1]);
        let text = || String::from_utf8_lossy(value).into_owned();
        match opt.as_slice() {
            b"ID" => {
                let id = parse_i64(value).ok().filter(|&n| n > 0);
                let id = id.ok_or_else(|| CommandError::Other("client-id should be greater than 0".into()))?;
                filter.id = Some(id as u64);
            }
            b"TYPE" => filter.kind = Some(client_type(value)?),
            b"USER" => {
                if text() != "default" {
                    return Err(CommandError::Other(format!("No such user '{}'", text())));
                }
                filter.user = Some(text());
            }
            b"ADDR" => filter.addr = Some(text()),
            b"LADDR" => filter.laddr = Some(text()),
            b"SKIPME" => match value.to_ascii_lowercase().as_slice() {
                b"yes" => filter.skip = Some(session.id()),
                b"no" => filter.skip = None,
                _ => return Err(CommandError::Syntax),
            },
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(Reply::Int(node.clients.kill(&filter) as i64))
}
