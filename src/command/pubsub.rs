//! `SUBSCRIBE`, `UNSUBSCRIBE`, `PSUBSCRIBE`, `PUNSUBSCRIBE`, `SSUBSCRIBE`, `SUNSUBSCRIBE`,
//! `PUBLISH`, `SPUBLISH` and `PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB |
//! HELP`, over the node's broker (`crate::pubsub`; docs/pubsub.md). Confirmations are
//! pushes (arrays in RESP2) with Redis 7.0's counts: SUBSCRIBE and PSUBSCRIBE count channels
//! and patterns together, SSUBSCRIBE shard channels alone.

use bytes::Bytes;

use super::{CmdResult, CommandError, Session};
use crate::node::Node;
use crate::peer::{Published, PubsubAnswer, PubsubQuery};
use crate::pubsub::{Kind, Subscriber};
use crate::resp::{Protocol, Reply};

/// The confirmation's first element, for a subscription or its end.
fn word(kind: Kind, subscribe: bool) -> &'static str {
    match (kind, subscribe) {
        (Kind::Channel, true) => "subscribe",
        (Kind::Pattern, true) => "psubscribe",
        (Kind::Shard, true) => "ssubscribe",
        (Kind::Channel, false) => "unsubscribe",
        (Kind::Pattern, false) => "punsubscribe",
        (Kind::Shard, false) => "sunsubscribe",
    }
}

fn confirm(kind: Kind, subscribe: bool, name: Option<&Bytes>, count: usize) -> Reply {
    let name = name.map_or(Reply::Nil, |n| Reply::Bulk(n.clone()));
    Reply::Push(vec![Reply::bulk(word(kind, subscribe)), name, Reply::Int(count as i64)])
}

/// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE name [name ...]: one confirmation per name.
pub fn subscribe(node: &Node, session: &mut Session, args: &[Bytes], kind: Kind) -> CmdResult {
    // Redis lets a transaction subscribe (for old clients' sake) but not to shard channels.
    if kind == Kind::Shard && session.in_exec {
        return Err(CommandError::Other("SSUBSCRIBE isn't allowed for a DENY BLOCKING client".into()));
    }
    let client = session.client.clone();
    let sub = session.pubsub.get_or_insert_with(|| Subscriber::new(node.pubsub.clone(), client));
    let replies = args[1..]
        .iter()
        .map(|name| {
            sub.subscribe(kind, name);
            confirm(kind, true, Some(name), sub.count(kind))
        })
        .collect();
    Ok(Reply::Seq(replies))
}

/// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE [name ...]: one confirmation per name (those
/// named whether subscribed or not; with none, every one of the kind, or a single
/// confirmation with a nil name when there is none).
pub fn unsubscribe(session: &mut Session, args: &[Bytes], kind: Kind) -> CmdResult {
    let Some(sub) = session.pubsub.as_mut() else {
        let replies = if args.len() == 1 {
            vec![confirm(kind, false, None, 0)]
        } else {
            args[1..].iter().map(|name| confirm(kind, false, Some(name), 0)).collect()
        };
        return Ok(Reply::Seq(replies));
    };
    let names = if args.len() == 1 { sub.names(kind) } else { args[1..].to_vec() };
    if names.is_empty() {
        return Ok(Reply::Seq(vec![confirm(kind, false, None, sub.count(kind))]));
    }
    let replies = names
        .iter()
        .map(|name| {
            sub.unsubscribe(kind, name);
            confirm(kind, false, Some(name), sub.count(kind))
        })
        .collect();
    Ok(Reply::Seq(replies))
}

/// PUBLISH / SPUBLISH channel message: the receivers across the cluster (docs/pubsub.md).
pub async fn publish(node: &Node, args: &[Bytes], sharded: bool) -> CmdResult {
    let published = Published { channel: args[1].clone(), message: args[2].clone(), sharded };
    Ok(Reply::Int(node.pubsub.publish(published).await as i64))
}

/// PING in RESP2 subscribed mode: `["pong", message or ""]`, as Redis answers there.
pub fn ping(args: &[Bytes]) -> CmdResult {
    let message = args.get(1).cloned().unwrap_or_default();
    Ok(Reply::Array(vec![Reply::bulk("pong"), Reply::Bulk(message)]))
}

/// Whether a RESP2 connection is in subscribed mode (it has a subscription).
pub fn subscribed_mode(session: &Session) -> bool {
    session.protocol == Protocol::Resp2 && session.pubsub.as_ref().is_some_and(Subscriber::subscribed)
}

/// PUBSUB's subcommands, answered for the whole cluster (docs/pubsub.md).
pub async fn pubsub(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_uppercase();
    let syntax = || {
        CommandError::Other(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&args[1])
        ))
    };
    let names = |answer: PubsubAnswer| match answer {
        PubsubAnswer::Names(names) => names,
        PubsubAnswer::Counts(_) => Vec::new(),
    };
    match sub.as_slice() {
        b"CHANNELS" | b"SHARDCHANNELS" => {
            if args.len() > 3 {
                return Err(syntax());
            }
            let q = PubsubQuery::Channels { pattern: args.get(2).cloned(), sharded: sub.starts_with(b"SHARD") };
            Ok(Reply::Array(names(node.pubsub.query(q).await).into_iter().map(Reply::Bulk).collect()))
        }
        b"NUMSUB" | b"SHARDNUMSUB" => {
            let channels = args[2..].to_vec();
            let q = PubsubQuery::NumSub { channels: channels.clone(), sharded: sub.starts_with(b"SHARD") };
            let counts = match node.pubsub.query(q).await {
                PubsubAnswer::Counts(c) => c,
                PubsubAnswer::Names(_) => Vec::new(),
            };
            let pairs = channels.into_iter().zip(counts.into_iter().chain(std::iter::repeat(0)));
            Ok(Reply::Array(pairs.flat_map(|(c, n)| [Reply::Bulk(c), Reply::Int(n as i64)]).collect()))
        }
        b"NUMPAT" => Ok(Reply::Int(names(node.pubsub.query(PubsubQuery::Patterns).await).len() as i64)),
        b"HELP" => Ok(Reply::Array(
            [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Prints this help.",
            ]
            .into_iter()
            .map(Reply::Simple)
            .collect(),
        )),
        _ => Err(syntax()),
    }
}
