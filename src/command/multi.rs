//! Transactions: `MULTI`, `EXEC`, `DISCARD`, `WATCH key...`, `UNWATCH`, with Redis's queueing
//! rules (requests after MULTI answer QUEUED; an unknown command or a wrong argument count
//! refuses the transaction: EXEC answers EXECABORT, and so does a command flagged `no_multi`,
//! SHUTDOWN, which is refused instead of queued; MULTI inside MULTI and WATCH inside MULTI are
//! errors that do not; MONITOR inside EXEC is an error, as for Redis's DENY BLOCKING client).
//!
//! On a node alone, EXEC runs its queue isolated from every other client (it holds the node's
//! gate, which every other request shares) and checks the WATCHed keys inside it, so a
//! check-and-set is atomic as in Redis. In a cluster EXEC runs the queue in order with no
//! isolation across nodes, and aborts (nil) when a WATCHed key's version changed since WATCH.

use bytes::Bytes;

use super::{execute_in, CmdResult, CommandError, CommandMetrics, Conn, Queued, Session};
use crate::node::Node;
use crate::resp::Reply;

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
async fn version(node: &Node, key: &[u8]) -> Result<u64, CommandError> {
    let set = node.coordinator.get(key, None).await?;
    Ok(if set.is_empty() { 0 } else { crate::storage::digest(&set.encode()) })
}

pub async fn watch(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    if session.multi.is_some() {
        return Err(CommandError::Other("WATCH inside MULTI is not allowed".into()));
    }
    for key in &args[1..] {
        let v = version(node, key).await?;
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
    let _isolated = if node.alone() { Some(node.exec_gate.write().await) } else { None };
    for (key, seen) in &watched {
        if version(node, key).await? != *seen {
            return Ok(Reply::NilArray);
        }
    }
    let mut replies = Vec::with_capacity(queued.requests.len());
    session.in_exec = true;
    for args in &queued.requests {
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
