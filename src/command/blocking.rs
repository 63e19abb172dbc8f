//! The blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP; and
//! the wait of XREAD and XREADGROUP with BLOCK (`streams.rs`).
//!
//! Each is its non-blocking command tried again until it finds something, its timeout passes
//! (a null array, as Redis answers), or the client leaves (CLIENT UNBLOCK, CLIENT KILL, a
//! closed connection: nothing is popped then). Between tries the client waits on its keys in
//! [`Wakeups`](crate::wakeups::Wakeups), which the replica layer tells of every write it
//! stores: clients blocked here on one key are served first blocked, first served.
//!
//! In a cluster a key's writes are stored on its replicas, which need not include this node:
//! before each try the node asks the nodes a write of each key reaches to tell it of their
//! next write of it (`Request::Watch`), so a push through any node wakes a client blocked
//! through any other. The watch is set before the try, so a write between the two is never
//! missed. Each try is the command's own pop, decided at the key's first owner: a pop through
//! a blocked wait is exactly once while that owner is reachable (at least once across a
//! partition, as LPOP). Clients blocked on one key through different nodes race for each
//! element (the order is first blocked, first served per node, not across nodes). Should
//! every watched node fail before the write comes, a try every [`RETRY`] finds it.
//!
//! Inside MULTI (and EXEC) and in a script a blocking command does not block: one try, then
//! the timeout's reply, as in Redis.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::lists::{self, numkeys};
use super::table::Cmd;
use super::{zsets, CmdResult, CommandError, Session};
use crate::clients::Interrupt;
use crate::node::Node;
use crate::resp::Reply;

/// How often a client blocked in a cluster tries again without a wake-up.
const RETRY: Duration = Duration::from_secs(1);

/// A blocking command's timeout: seconds as a float, 0 = forever (Redis's
/// `getTimeoutFromObjectOrReply`, which rounds up to the millisecond).
fn timeout(arg: &[u8]) -> Result<Option<Duration>, CommandError> {
    let secs: f64 = std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|v: &f64| !v.is_nan())
        .ok_or_else(|| CommandError::Other("timeout is not a float or out of range".into()))?;
    let ms = (secs * 1000.0).ceil();
    // An infinite or overflowing timeout turns negative in Redis's conversion.
    if !ms.is_finite() || ms >= i64::MAX as f64 || ms < 0.0 {
        return Err(CommandError::Other("timeout is negative".into()));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// What a blocking command tries and waits on.
struct Blocking<'a> {
    /// The keys it waits on (it pops from these).
    keys: &'a [Bytes],
    timeout: Option<Duration>,
    /// The non-blocking command each try runs, and its arguments.
    inner: Cmd,
    args: Vec<Bytes>,
}

fn parse(cmd: Cmd, args: &[Bytes]) -> Result<Blocking<'_>, CommandError> {
    let last = args.len() - 1;
    Ok(match cmd {
        Cmd::Blpop | Cmd::Brpop | Cmd::Bzpopmin | Cmd::Bzpopmax => {
            let inner = match cmd {
                Cmd::Blpop => Cmd::Lpop,
                Cmd::Brpop => Cmd::Rpop,
                Cmd::Bzpopmin => Cmd::Zpopmin,
                _ => Cmd::Zpopmax,
            };
            Blocking { keys: &args[1..last], timeout: timeout(&args[last])?, inner, args: Vec::new() }
        }
        Cmd::Blmove | Cmd::Brpoplpush => {
            let inner = if cmd == Cmd::Blmove { Cmd::Lmove } else { Cmd::Rpoplpush };
            let mut inner_args = args[..last].to_vec();
            inner_args[0] = Bytes::from_static(if cmd == Cmd::Blmove { b"lmove" } else { b"rpoplpush" });
            Blocking { keys: &args[1..2], timeout: timeout(&args[last])?, inner, args: inner_args }
        }
        // BLMPOP timeout numkeys key ... : LMPOP numkeys key ... each try.
        _ => {
            let timeout = timeout(&args[1])?;
            let (keys, _) = numkeys(args, 2)?;
            let inner = if cmd == Cmd::Blmpop { Cmd::Lmpop } else { Cmd::Zmpop };
            let mut inner_args = vec![Bytes::from_static(if cmd == Cmd::Blmpop { b"lmpop" } else { b"zmpop" })];
            inner_args.extend_from_slice(&args[2..]);
            Blocking { keys, timeout, inner, args: inner_args }
        }
    })
}

/// One try: the reply when it popped something, `None` when every key was empty.
async fn attempt(node: &Node, b: &Blocking<'_>) -> Result<Option<Reply>, CommandError> {
    let found = |r: Reply| (!matches!(r, Reply::Nil | Reply::NilArray)).then_some(r);
    match b.inner {
        Cmd::Lpop | Cmd::Rpop => {
            for key in b.keys {
                let args = [Bytes::new(), key.clone()];
                if let Reply::Bulk(element) = lists::pop(node, &args, b.inner == Cmd::Lpop).await? {
                    return Ok(Some(Reply::Array(vec![Reply::Bulk(lists::shown(key)), Reply::Bulk(element)])));
                }
            }
            Ok(None)
        }
        Cmd::Zpopmin | Cmd::Zpopmax => {
            for key in b.keys {
                let args = [Bytes::new(), key.clone()];
                if let Reply::Array(pair) = zsets::zpop(node, &args, b.inner == Cmd::Zpopmax).await? {
                    if !pair.is_empty() {
                        let mut reply = vec![Reply::Bulk(lists::shown(key))];
                        reply.extend(pair);
                        return Ok(Some(Reply::Array(reply)));
                    }
                }
            }
            Ok(None)
        }
        Cmd::Lmove => Ok(found(lists::lmove(node, &b.args).await?)),
        Cmd::Rpoplpush => Ok(found(lists::rpoplpush(node, &b.args).await?)),
        Cmd::Lmpop => Ok(found(lists::lmpop(node, &b.args).await?)),
        _ => Ok(found(zsets::zmpop(node, &b.args).await?)),
    }
}

/// One try under the node's gate (as the command would run unblocked: alone on a node alone
/// for the moves and multi-key pops, see `Cmd::exclusive`).
async fn gated_attempt(node: &Node, b: &Blocking<'_>, in_exec: bool) -> Result<Option<Reply>, CommandError> {
    if in_exec {
        return attempt(node, b).await;
    }
    if b.inner.exclusive() && node.alone() {
        let _gate = node.exec_gate.write().await;
        attempt(node, b).await
    } else {
        let _gate = node.exec_gate.read().await;
        attempt(node, b).await
    }
}

/// Runs a blocking command for `session`'s client (see the module's text).
pub async fn run(node: &Node, session: &Session, cmd: Cmd, args: &[Bytes]) -> CmdResult {
    let b = parse(cmd, args)?;
    // Inside EXEC or a script (which hold the gate) a blocking command never blocks.
    if session.in_exec || session.in_script {
        return Ok(gated_attempt(node, &b, true).await?.unwrap_or(Reply::NilArray));
    }
    wait(node, session, b.keys, b.timeout, || gated_attempt(node, &b, false)).await
}

/// Tries `attempt` until it finds something, waiting on `keys` between tries (see the
/// module's text); the timeout's reply is a null array. XREAD and XREADGROUP wait here too.
pub(super) async fn wait<F, Fut>(
    node: &Node,
    session: &Session,
    keys: &[Bytes],
    timeout: Option<Duration>,
    mut attempt: F,
) -> CmdResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Reply>, CommandError>>,
{
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let client = &session.client;
    // Subscribed before the first try: an interruption from then on is seen.
    let mut interrupts = client.interrupts();
    let registration = node.coordinator.replica().wakeups().register(keys);
    let alone = node.coordinator.cluster().view().single(&node.coordinator.identity().node_id);
    let _blocked = client.blocked();
    loop {
        node.coordinator.watch(keys).await;
        if let Some(reply) = attempt().await? {
            // The key may hold more: the next client blocked on it tries too.
            drop(registration);
            return Ok(reply);
        }
        let retry = (!alone).then_some(RETRY);
        tokio::select! {
            () = registration.woken() => {}
            () = sleep_until(deadline) => return Ok(Reply::NilArray),
            () = sleep_for(retry) => {}
            why = next_interrupt(&mut interrupts) => match why {
                Interrupt::Error => {
                    return Err(CommandError::Coded("UNBLOCKED client unblocked via CLIENT UNBLOCK".into()))
                }
                // A timeout now, or a client that is gone (its reply is never read).
                _ => return Ok(Reply::NilArray),
            },
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn sleep_for(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn next_interrupt(rx: &mut tokio::sync::watch::Receiver<(u64, Interrupt)>) -> Interrupt {
    match rx.changed().await {
        Ok(()) => rx.borrow_and_update().1,
        // The client is being dropped: as good as gone.
        Err(_) => Interrupt::Gone,
    }
}

/// Sends the node's `Touched` messages (writes of keys other nodes watch here) until `stop`.
pub async fn tell_watchers(
    node: Arc<Node>,
    mut outbox: mpsc::UnboundedReceiver<(Arc<str>, Bytes)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            message = outbox.recv() => match message {
                Some((to, key)) => {
                    let node = node.clone();
                    tokio::spawn(async move { node.coordinator.tell_touched(&to, key).await });
                }
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_redis_parses_them() {
        assert_eq!(timeout(b"0").unwrap(), None);
        assert_eq!(timeout(b"0.0001").unwrap(), Some(Duration::from_millis(1)));
        assert_eq!(timeout(b"1.5").unwrap(), Some(Duration::from_millis(1500)));
        assert_eq!(timeout(b"0.3e-1").unwrap(), Some(Duration::from_millis(30)));
        let text = |r: Result<Option<Duration>, CommandError>| match r.unwrap_err().to_reply() {
            Reply::Error(text) => text,
            other => panic!("not an error: {other:?}"),
        };
        assert_eq!(text(timeout(b"x")), "ERR timeout is not a float or out of range");
        assert_eq!(text(timeout(b"nan")), "ERR timeout is not a float or out of range");
        assert_eq!(text(timeout(b"-1")), "ERR timeout is negative");
        assert_eq!(text(timeout(b"inf")), "ERR timeout is negative");
        assert_eq!(text(timeout(b"1e400")), "ERR timeout is negative");
    }
}
