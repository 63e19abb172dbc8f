//! `COMMAND`, `COMMAND COUNT`, `COMMAND INFO [name ...]`, `COMMAND DOCS [name ...]`,
//! `COMMAND LIST`: the command table in Redis 7's reply shapes.

use bytes::Bytes;

use super::{Cmd, CmdResult, CommandError, Spec, SPECS};
use crate::resp::Reply;

fn info(spec: &Spec) -> Reply {
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Int(spec.arity.into()),
        Reply::Array(spec.flags.iter().map(|f| Reply::Simple(f)).collect()),
        Reply::Int(spec.first_key.into()),
        Reply::Int(spec.last_key.into()),
        Reply::Int(spec.step.into()),
        Reply::Array(vec![Reply::Simple(if spec.flags.contains(&"write") { "@write" } else { "@read" })]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn docs(spec: &Spec) -> Reply {
    Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk("1.0.0")),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
    ])
}

/// The specs named in `args[2..]`, or all of them when none is named.
fn selected(args: &[Bytes]) -> Vec<Option<&'static Spec>> {
    if args.len() <= 2 {
        SPECS.iter().map(Some).collect()
    } else {
        args[2..].iter().map(|n| Cmd::lookup(n).map(Cmd::spec)).collect()
    }
}

pub fn run(args: &[Bytes]) -> CmdResult {
    let Some(sub) = args.get(1) else {
        return Ok(Reply::Array(SPECS.iter().map(info).collect()));
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" => Ok(Reply::Int(SPECS.len() as i64)),
        b"INFO" => Ok(Reply::Array(selected(args).into_iter().map(|s| s.map_or(Reply::Nil, info)).collect())),
        b"DOCS" => {
            Ok(Reply::Map(selected(args).into_iter().flatten().map(|s| (Reply::bulk(s.name), docs(s))).collect()))
        }
        b"LIST" => Ok(Reply::Array(SPECS.iter().map(|s| Reply::bulk(s.name)).collect())),
        _ => Err(CommandError::UnknownSubcommand { cmd: "COMMAND", sub: String::from_utf8_lossy(sub).into_owned() }),
    }
}
