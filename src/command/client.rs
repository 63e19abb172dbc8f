//! `CLIENT ID | SETNAME name | GETNAME | INFO | LIST | SETINFO attr value | HELP`.

use bytes::Bytes;

use super::{CmdResult, CommandError, Session};
use crate::node::{ClientInfo, Node};
use crate::resp::Reply;

fn describe(id: u64, c: &ClientInfo) -> String {
    format!(
        "id={id} addr={} laddr={} name={} age={} db={} resp={}\n",
        c.addr,
        c.laddr,
        c.name.as_deref().unwrap_or(""),
        c.connected.elapsed().as_secs(),
        c.db,
        c.resp
    )
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
            Ok(Reply::Int(session.id as i64))
        }
        b"SETNAME" => {
            arity(3)?;
            let name = String::from_utf8_lossy(&args[2]).into_owned();
            if name.bytes().any(|b| b <= b' ' || b > b'~') {
                return Err(CommandError::Other(
                    "Client names cannot contain spaces, newlines or special characters.".into(),
                ));
            }
            let stored = (!name.is_empty()).then_some(name);
            session.name = stored.clone();
            node.update_client(session.id, |c| c.name = stored);
            Ok(Reply::ok())
        }
        b"GETNAME" => {
            arity(2)?;
            Ok(session.name.clone().map_or(Reply::Nil, Reply::bulk))
        }
        b"INFO" => {
            arity(2)?;
            let line = node.clients().into_iter().find(|(id, _)| *id == session.id).map(|(id, c)| describe(id, &c));
            Ok(Reply::Text(line.unwrap_or_default()))
        }
        b"LIST" => Ok(Reply::Text(node.clients().iter().map(|(id, c)| describe(*id, c)).collect())),
        // Client libraries announce themselves with this; there is nothing to keep.
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
            Ok(Reply::ok())
        }
        b"HELP" => Ok(Reply::Array(
            [
                "CLIENT ID",
                "CLIENT SETNAME <name>",
                "CLIENT GETNAME",
                "CLIENT INFO",
                "CLIENT LIST",
                "CLIENT SETINFO <attr> <value>",
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
