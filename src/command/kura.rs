//! `KURA MEMBERS | RING | PREFLIST key | LOCAL key | HINTS | TRANSFERS | AAE | JOIN addr | LEAVE |
//! REMOVE id | HELP`: the cluster as this node sees it, and changes to its membership
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

/// Transfers of the ring's transition that involve this node (as sender or receiver) and are
/// not done yet.
pub fn transfers_here(node: &Node) -> usize {
    let cluster = node.coordinator.cluster();
    let view = cluster.view();
    let Some(state) = &view.state else { return 0 };
    let n = cluster.settings().n;
    let me = cluster.me();
    state
        .pending_transfers(n)
        .iter()
        .filter(|t| &t.to == me || state.transfer_source(t.partition, n, &|id| cluster.is_up(id)).as_ref() == Some(me))
        .count()
}

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
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
                    // `other`: the node at this member's address answers as a node of another
                    // cluster (founded anew after it lost its data dir): refused, and down.
                    let of = if &m.id != cluster.me() && cluster.refuses(m.addr) { "other" } else { "same" };
                    let fields = [
                        ("id", m.id.clone()),
                        ("addr", m.addr.to_string()),
                        ("client", m.client.to_string()),
                        ("status", m.status.as_str().to_owned()),
                        ("reachable", reachable.to_owned()),
                        ("zone", m.zone.clone().unwrap_or_default()),
                        ("partitions", state.ring.partitions.iter().filter(|p| p.owner == m.id).count().to_string()),
                        ("cluster", of.to_owned()),
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
        b"AAE" => {
            arity(args, 2, "aae")?;
            node.aae.trigger();
            Ok(Reply::ok())
        }
        b"TRANSFERS" => {
            arity(args, 2, "transfers")?;
            Ok(Reply::Int(transfers_here(node) as i64))
        }
        b"LEAVE" => {
            arity(args, 2, "leave")?;
            drop(view);
            cluster.leave().map_err(|e| CommandError::Other(e.to_string()))?;
            Ok(Reply::ok())
        }
        b"REMOVE" => {
            arity(args, 3, "remove")?;
            let id = String::from_utf8_lossy(&args[2]).into_owned();
            if &id == cluster.me() {
                return Err(CommandError::Other("a node cannot remove itself: use KURA LEAVE".into()));
            }
            drop(view);
            cluster.remove(&id).map_err(|e| CommandError::Other(e.to_string()))?;
            Ok(Reply::ok())
        }
        b"JOIN" => {
            arity(args, 3, "join")?;
            let addr: std::net::SocketAddr = std::str::from_utf8(&args[2])
                .ok()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| CommandError::Other("invalid address: give a peer's cluster address ip:port".into()))?;
            let alone = view.state.as_ref().is_none_or(|s| s.live_members().count() <= 1);
            drop(view);
            if !alone {
                return Err(CommandError::Other("this node is already in a cluster of several nodes".into()));
            }
            let storage = node.coordinator.storage();
            if storage.hint_count() > 0 || !storage.is_empty().map_err(crate::coordinator::CoordError::from)? {
                return Err(CommandError::Other("only an empty node can join a cluster".into()));
            }
            cluster.join_cluster(addr).await.map_err(|e| CommandError::Other(format!("join failed: {e}")))?;
            Ok(Reply::ok())
        }
        b"HELP" => Ok(Reply::Array(
            [
                "KURA MEMBERS",
                "KURA RING",
                "KURA PREFLIST <key>",
                "KURA LOCAL <key>",
                "KURA HINTS",
                "KURA TRANSFERS",
                "KURA AAE",
                "KURA JOIN <cluster-addr>",
                "KURA LEAVE",
                "KURA REMOVE <node-id>",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        )),
        _ => Err(CommandError::UnknownSubcommand { cmd: "KURA", sub: String::from_utf8_lossy(&args[1]).into_owned() }),
    }
}
