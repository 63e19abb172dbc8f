//! Transactions: `MULTI`, `EXEC`, `DISCARD`, `WATCH key...`, `UNWATCH`, with Redis's queueing
//! rules (requests after MULTI answer QUEUED; an unknown command or a wrong argument count
//! refuses the transaction: EXEC answers EXECABORT, and so does a command flagged `no_multi`,
//! SHUTDOWN, which is refused instead of queued; MULTI inside MULTI and WATCH inside MULTI are
//! errors that do not; MONITOR inside EXEC is an error, as for Redis's DENY BLOCKING client).
//!
//! On a node alone, EXEC runs its queue isolated from every other client (it holds the node's
//! gate, which every other request shares) and checks the WATCHed keys inside it, so a
//! check-and-set is atomic as in Redis.
//!
//! In a cluster a transaction of data commands with keys runs where a script over the same
//! keys would (`eval::place`, `coordinator/scripts.rs`): at the deciding owner of its first
//! key, holding every key of its commands and every WATCHed key while it checks the WATCHed
//! versions and runs its queue. Over keys of one partition (one hash tag) it is then isolated
//! from every other transaction, script and read-modify-write of those keys, as in Redis; a
//! plain write (SET) coordinated elsewhere is not held up, and keys of other partitions are
//! written key by key (docs/differences.md). A transaction with other commands (SELECT, CLIENT
//! ..., a subscribed RESP3 connection's) runs its queue in order where it arrived. The commands
//! Redis runs atomically over several keys (MSET, MSETNX, RENAME, RENAMENX, SMOVE) are placed
//! the same way, as a transaction of one command ([`place_one`]); COPY is not (its DB option
//! may name another database).

use bytes::Bytes;

use super::eval::{place, Placed};
use super::{execute_in, CmdResult, CommandError, CommandMetrics, Conn, Queued, Session};
use crate::coordinator::scripts::in_script;
use crate::node::Node;
use crate::peer::Request;
use crate::resp::{Protocol, Reply};

pub fn multi(session: &mut Session) -> CmdResult {
    if session.multi.is_some() {
        return Err(CommandError::Other("MULTI calls can not be nested".into()));
    }
    session.multi = Some(Queued::default());
    Ok(Reply::ok())
}

pub fn discard(session: &mut Session) -> CmdResult {
    if session.multi.take().is_none() {
        return Err(CommandError::Other("DISCARD without MULTI".into()));
    }
    session.watched.clear();
    Ok(Reply::ok())
}

pub fn unwatch(session: &mut Session) -> CmdResult {
    session.watched.clear();
    Ok(Reply::ok())
}

/// The version of `key` a WATCH compares: the digest of its sibling set as a read sees it.
/// WATCH's own read is `settled` at W replicas (`get_settled`), so that the client's reads
/// after it do not see an older one; EXEC's check, at the key's decider, needs no more than a
/// quorum read (the decider's own copy holds every transaction decided there).
async fn version(node: &Node, key: &[u8], settled: bool) -> Result<u64, CommandError> {
    let set = if settled { node.coordinator.get_settled(key).await? } else { node.coordinator.get(key, None).await? };
    Ok(if set.is_empty() { 0 } else { crate::storage::digest(&set.encode()) })
}

pub async fn watch(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    if session.multi.is_some() {
        return Err(CommandError::Other("WATCH inside MULTI is not allowed".into()));
    }
    for key in &args[1..] {
        let v = version(node, key, true).await?;
        session.watched.push((key.clone(), v));
    }
    Ok(Reply::ok())
}

pub async fn exec(node: &Node, session: &mut Session, metrics: &CommandMetrics) -> CmdResult {
    let Some(queued) = session.multi.take() else {
        return Err(CommandError::Other("EXEC without MULTI".into()));
    };
    let watched = std::mem::take(&mut session.watched);
    if queued.refused {
        return Err(CommandError::Coded("EXECABORT Transaction discarded because of previous errors.".into()));
    }
    if node.alone() {
        let _isolated = node.exec_gate.write().await;
        return run_queue(node, session, metrics, &watched, &queued.requests).await;
    }
    let subscribed = session.pubsub.as_ref().is_some_and(crate::pubsub::Subscriber::subscribed);
    let Some(keys) = placed_keys(&queued.requests, &watched).filter(|_| !subscribed) else {
        return run_queue(node, session, metrics, &watched, &queued.requests).await;
    };
    let (db, resp3) = (session.db, session.protocol == Protocol::Resp3);
    let request = || Request::Transaction { db, resp3, watched: watched.clone(), requests: queued.requests.clone() };
    match place(node, db, &keys, request, false).await? {
        Placed::Elsewhere(reply) => Ok(reply),
        Placed::Here(_held) => in_script(run_queue(node, session, metrics, &watched, &queued.requests)).await,
    }
}

/// The keys a transaction is placed by (its first decides where it runs): every key of its
/// queued commands, then its WATCHed keys. `None` when a command is not a data command (it
/// uses its connection) or there is no key: the queue then runs where it arrived.
fn placed_keys(requests: &[Vec<Bytes>], watched: &[(Bytes, u64)]) -> Option<Vec<Bytes>> {
    let mut keys = Vec::new();
    for args in requests {
        keys.extend(super::table::concurrent_keys(args)?.into_iter().map(Bytes::copy_from_slice));
    }
    if keys.is_empty() {
        return None;
    }
    keys.extend(watched.iter().map(|(k, _)| k.clone()));
    Some(keys)
}

/// Checks the WATCHed versions (nil if one changed) and runs the queue: EXEC's reply.
async fn run_queue(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    watched: &[(Bytes, u64)],
    requests: &[Vec<Bytes>],
) -> CmdResult {
    for (key, seen) in watched {
        if version(node, key, false).await? != *seen {
            return Ok(Reply::NilArray);
        }
    }
    let mut replies = Vec::with_capacity(requests.len());
    session.in_exec = true;
    for args in requests {
        let reply = Box::pin(execute_in(node, Conn::Mut(session), metrics, args)).await;
        // Messages the transaction published to the connection's own subscriptions go before
        // the reply of the command that published them, inside EXEC's array (as Redis writes
        // them).
        let mut messages = session.take_messages();
        replies.push(if messages.is_empty() {
            reply
        } else {
            messages.push(reply);
            Reply::Seq(messages)
        });
    }
    session.in_exec = false;
    Ok(Reply::Array(replies))
}

/// In a cluster, places a command Redis runs atomically over several keys (`Cmd::exclusive`:
/// MSET, RENAME ...) as a transaction of that one command: at the deciding owner of its first
/// key, holding its keys. `None` when it runs here as usual, holding nothing (on a node alone,
/// inside a transaction or a script, with fewer than two keys); `Here` when this node decides
/// it (run it holding that, as a script's task: `in_script`).
pub(super) async fn place_one<'a>(
    node: &'a Node,
    db: u32,
    resp3: bool,
    args: &[Bytes],
) -> Option<Result<Placed<'a>, CommandError>> {
    if node.alone() || crate::coordinator::scripts::is_script() {
        return None;
    }
    let keys = placed_keys(std::slice::from_ref(&args.to_vec()), &[])?;
    if keys.len() < 2 {
        return None;
    }
    let request = || Request::Transaction { db, resp3, watched: Vec::new(), requests: vec![args.to_vec()] };
    Some(match place(node, db, &keys, request, false).await {
        Ok(Placed::Elsewhere(Reply::Array(mut replies))) if replies.len() == 1 => {
            Ok(Placed::Elsewhere(replies.pop().unwrap_or(Reply::Nil)))
        }
        other => other,
    })
}

/// Runs a transaction another node forwarded here (`Request::Transaction`), as a client of
/// this node, holding its keys: EXEC's reply.
pub async fn forwarded_transaction(
    node: &Node,
    db: u32,
    resp3: bool,
    watched: Vec<(Bytes, u64)>,
    requests: Vec<Vec<Bytes>>,
    from: std::net::SocketAddr,
) -> Reply {
    let Some(keys) = placed_keys(&requests, &watched) else {
        return CommandError::Other("a forwarded transaction has no keys".into()).to_reply();
    };
    let never = || Request::Transaction { db, resp3, watched: Vec::new(), requests: Vec::new() };
    let _held = match place(node, db, &keys, never, true).await {
        Ok(Placed::Here(held)) => held,
        Ok(Placed::Elsewhere(reply)) => return reply,
        Err(e) => return e.to_reply(),
    };
    let metrics = super::forwarded_metrics();
    let client = node.clients.connect(from, from, -1);
    let mut session = Session::new(client.clone(), true);
    session.db = db;
    if resp3 {
        session.protocol = Protocol::Resp3;
    }
    let reply = in_script(run_queue(node, &mut session, metrics, &watched, &requests)).await;
    node.clients.disconnect(client.id);
    reply.unwrap_or_else(|e| e.to_reply())
}
