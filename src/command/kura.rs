//! `KURA MEMBERS | RING | PREFLIST key | LOCAL key | HINTS | HELP`: the cluster as this node sees it
//! (design.md section 3).

use bytes::Bytes;

use super::{CmdResult, CommandError};
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;

fn arity(args: &[Bytes], n: usize, sub: &str) -> Result<(), CommandError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(CommandError::WrongArity(format!("kura|{sub}")))
    }
}

pub fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_uppercase();
    let cluster = node.coordinator.cluster();
    let view = cluster.view();
    let addr_of = |id: &str| view.addr(id).map_or_else(|| id.to_owned(), |a| a.to_string());
    match sub.as_slice() {
        b"MEMBERS" => {
            arity(args, 2, "members")?;
            let Some(state) = &view.state else { return Ok(Reply::Array(Vec::new())) };
            let members = state
                .live_members()
                .map(|m| {
                    let reachable = if cluster.is_up(&m.id) { "up" } else { "down" };
                    let fields = [
                        ("id", m.id.clone()),
                        ("addr", m.addr.to_string()),
                        ("client", m.client.to_string()),
                        ("status", m.status.as_str().to_owned()),
                        ("reachable", reachable.to_owned()),
                        ("zone", m.zone.clone().unwrap_or_default()),
                        ("partitions", state.ring.partitions.iter().filter(|p| p.owner == m.id).count().to_string()),
                    ];
                    Reply::Array(fields.into_iter().flat_map(|(k, v)| [Reply::bulk(k), Reply::bulk(v)]).collect())
                })
                .collect();
            Ok(Reply::Array(members))
        }
        b"RING" => {
            arity(args, 2, "ring")?;
            let Some(state) = &view.state else { return Ok(Reply::Array(Vec::new())) };
            let parts = state
                .ring
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut row =
                        vec![Reply::Int(i as i64), Reply::bulk(addr_of(&p.owner)), Reply::bulk(p.owner.clone())];
                    if let Some(next) = &p.next {
                        row.push(Reply::bulk(addr_of(next)));
                    }
                    Reply::Array(row)
                })
                .collect();
            Ok(Reply::Array(parts))
        }
        b"PREFLIST" => {
            arity(args, 3, "preflist")?;
            Ok(Reply::Array(view.preference_list(&args[2]).iter().map(|id| Reply::bulk(addr_of(id))).collect()))
        }
        b"LOCAL" => {
            arity(args, 3, "local")?;
            let set = node.coordinator.local(&args[2])?.unwrap_or_default();
            let context = node.coordinator.encode_context(&set.context())?;
            let values = set.live_values(now_ms()).into_iter().map(Reply::Bulk).collect();
            Ok(Reply::Array(vec![Reply::bulk(context), Reply::Array(values)]))
        }
        b"HINTS" => {
            arity(args, 2, "hints")?;
            Ok(Reply::Int(node.coordinator.storage().hint_count() as i64))
        }
        b"HELP" => Ok(Reply::Array(
            ["KURA MEMBERS", "KURA RING", "KURA PREFLIST <key>", "KURA LOCAL <key>", "KURA HINTS"]
                .into_iter()
                .map(Reply::Simple)
                .collect(),
        )),
        _ => Err(CommandError::UnknownSubcommand { cmd: "KURA", sub: String::from_utf8_lossy(&args[1]).into_owned() }),
    }
}
