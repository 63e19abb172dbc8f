//! Small connection and server commands: `RESET`, `SLOWLOG`, `LATENCY` (no latency monitor:
//! no events).

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError, Session};
use crate::node::Node;
use crate::resp::{Protocol, Reply};

/// RESET: the connection as new: no transaction or WATCH, database 0, RESP2, no name, no
/// subscriptions, and unauthenticated when a password is required.
pub fn reset(node: &Node, session: &mut Session) -> CmdResult {
    session.multi = None;
    session.watched.clear();
    session.db = 0;
    session.protocol = Protocol::Resp2;
    session.authenticated = node.requirepass.read().is_none();
    session.client.set_db(0);
    session.client.set_name(None);
    session.client.set_resp(2);
    session.client.set_multi(None);
    session.cluster_client = false;
    if let Some(sub) = session.pubsub.as_mut() {
        sub.clear();
    }
    Ok(Reply::Simple("RESET"))
}

pub fn slowlog(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_uppercase();
    let unknown = || {
        CommandError::Other(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            String::from_utf8_lossy(&args[1])
        ))
    };
    match (sub.as_slice(), args.len()) {
        (b"GET", 2 | 3) => {
            let count = match args.get(2) {
                None => Some(10),
                Some(n) => match parse_i64(n)? {
                    -1 => None,
                    n if n < 0 => {
                        return Err(CommandError::Other("count should be greater than or equal to -1".into()));
                    }
                    n => Some(n as usize),
                },
            };
            let entries = node.slowlog.get(count).into_iter().map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.unix_secs as i64),
                    Reply::Int(e.micros as i64),
                    Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                    Reply::Bulk(Bytes::from(e.client_addr)),
                    Reply::Bulk(Bytes::from(e.client_name)),
                ])
            });
            Ok(Reply::Array(entries.collect()))
        }
        (b"LEN", 2) => Ok(Reply::Int(node.slowlog.len() as i64)),
        (b"RESET", 2) => {
            node.slowlog.reset();
            Ok(Reply::ok())
        }
        (b"HELP", 2) => Ok(Reply::Array(
            [
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Simple(l))
            .collect(),
        )),
        (b"GET" | b"LEN" | b"RESET" | b"HELP", _) => Err(unknown()),
        _ => {
            Err(CommandError::UnknownSubcommand { cmd: "SLOWLOG", sub: String::from_utf8_lossy(&args[1]).into_owned() })
        }
    }
}

pub fn latency(args: &[Bytes]) -> CmdResult {
    let arity = |sub: &str| CommandError::WrongArity(format!("latency|{sub}"));
    match args[1].to_ascii_uppercase().as_slice() {
        b"LATEST" if args.len() == 2 => Ok(Reply::Array(Vec::new())),
        b"LATEST" => Err(arity("latest")),
        b"HISTORY" if args.len() == 3 => Ok(Reply::Array(Vec::new())),
        b"HISTORY" => Err(arity("history")),
        b"RESET" => Ok(Reply::Int(0)),
        b"HELP" if args.len() == 2 => Ok(Reply::Array(
            ["LATENCY <subcommand>: no latency monitor events are recorded (latency-monitor-threshold 0)."]
                .iter()
                .map(|l| Reply::Simple(l))
                .collect(),
        )),
        _ => {
            Err(CommandError::UnknownSubcommand { cmd: "LATENCY", sub: String::from_utf8_lossy(&args[1]).into_owned() })
        }
    }
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`: the node stops as on SIGTERM (the journal
/// is synced: every acknowledged write is on disk either way, so SAVE and NOSAVE are the same).
/// No reply: the client sees the connection close, as with Redis.
pub fn shutdown(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    let (mut save, mut nosave, mut abort) = (false, false, false);
    for a in &args[1..] {
        match a.to_ascii_uppercase().as_slice() {
            b"SAVE" => save = true,
            b"NOSAVE" => nosave = true,
            b"NOW" | b"FORCE" => {}
            b"ABORT" => abort = true,
            _ => return Err(CommandError::Syntax),
        }
    }
    if (save && nosave) || (abort && args.len() > 2) {
        return Err(CommandError::Syntax);
    }
    if abort {
        return Err(CommandError::Other("No shutdown in progress.".into()));
    }
    tracing::info!("SHUTDOWN from {}", session.client.addr);
    node.shutdown.notify_one();
    session.quit = true;
    Ok(Reply::Nothing)
}
