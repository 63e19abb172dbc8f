//! Running the requests of one pipelined batch, in order, and the durability ticket their
//! replies wait for.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};

use super::{concurrent_keys, execute, execute_shared, Cmd, CommandMetrics, Session};
use crate::node::{Node, Ticket};
use crate::resp::Reply;
use std::future::Future;

/// Requests run per batch (the rest of a long pipeline waits for the next).
pub const MAX_BATCH: usize = 512;

/// Runs the requests of a pipeline and encodes their replies in order into `out`, stopping
/// after the request whose reply brings `out` to `stop_at` bytes (the caller writes them out
/// before it runs the rest: replies waiting for a slow reader stay bounded). Returns the
/// ticket the replies wait for (the writes they acknowledge; [`Ticket::NONE`] when nothing was
/// written meanwhile) and how many requests ran.
///
/// In a cluster, where each request waits for its replicas, consecutive requests on distinct
/// keys run at once (a *wave*); a request on a key already in the wave, or one that changes
/// the connection, starts a new one, so every request still sees the effects of those before.
/// The most requests of a pipeline run at once in a cluster (a wave); its replies are held
/// until all are done. 32 covers redis-benchmark's `-P 16` and keeps a wave of 1 MiB replies
/// at 32 MiB.
const MAX_WAVE: usize = 32;

pub async fn run_pipeline(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    batch: &[Vec<Bytes>],
    out: &mut BytesMut,
    stop_at: usize,
) -> (Ticket, usize) {
    let before = node.ticket();
    let monitored = node.clients.monitored();
    let concurrent = batch.len() > 1 && !node.alone();
    let mut i = 0;
    // At least one request runs, whatever `out` holds: every call makes progress.
    while i < batch.len() && !session.quit && (i == 0 || out.len() < stop_at) {
        // A subscribed connection runs its requests one by one: its messages go between them.
        if concurrent && session.multi.is_none() && !session.has_mailbox() {
            let end = i + batch[i..].iter().take_while(|args| is_publish(args)).count();
            if end - i > 1 {
                feed(node, session, &batch[i..end], monitored);
                for reply in publish_wave(node, session, metrics, &batch[i..end]).await {
                    reply.encode(session.protocol, out);
                }
                i = end;
                continue;
            }
        }
        if concurrent && session.multi.is_none() && session.db == 0 && !session.has_mailbox() {
            let mut keys: HashSet<&[u8]> = HashSet::new();
            let mut end = i;
            // A wave is bounded (`MAX_WAVE`): its replies are all held before any is written,
            // so a wave of large replies must not overshoot `stop_at` by much.
            while let Some(ks) = batch.get(end).filter(|_| end - i < MAX_WAVE).and_then(|args| concurrent_keys(args)) {
                if ks.iter().any(|k| keys.contains(k)) {
                    break;
                }
                keys.extend(ks);
                end += 1;
            }
            if end - i > 1 {
                feed(node, session, &batch[i..end], monitored);
                let shared: &Session = session;
                let wave = batch[i..end].iter().map(|args| execute_shared(node, shared, metrics, args));
                for reply in futures::future::join_all(wave).await {
                    reply.encode(session.protocol, out);
                }
                i = end;
                continue;
            }
        }
        feed(node, session, &batch[i..=i], monitored);
        let reply = execute(node, session, metrics, &batch[i]).await;
        // Messages queued meanwhile go before the reply: a PUBLISH to the connection's own
        // channel answers after the message it received (as Redis writes them).
        session.drain_messages(out);
        reply.encode(session.protocol, out);
        i += 1;
    }
    session.client.set_multi(session.multi.as_ref().map(|q| q.requests.len()));
    let after = node.ticket();
    (if after == before { Ticket::NONE } else { after }, i)
}

/// Feeds the requests about to run to MONITOR (when anyone is monitoring).
fn feed(node: &Node, session: &Session, requests: &[Vec<Bytes>], monitored: bool) {
    if monitored {
        for args in requests {
            monitor(node, session, args);
        }
    }
}

/// Whether a request is a PUBLISH or an SPUBLISH (of the right arity).
fn is_publish(args: &[Bytes]) -> bool {
    args.len() == 3 && matches!(Cmd::lookup(&args[0]), Some(Cmd::Publish | Cmd::Spublish))
}

/// Consecutive PUBLISHes of a pipeline, in a cluster: each queues its message for the other
/// nodes when it is first polled (`Broker::publish`), then waits for their counts of
/// receivers. Polled once each, in order, here, their messages go out in the pipeline's order,
/// in one batch per peer; then their counts are awaited together (one peer round trip for the
/// wave instead of one per PUBLISH).
async fn publish_wave(node: &Node, session: &Session, metrics: &CommandMetrics, batch: &[Vec<Bytes>]) -> Vec<Reply> {
    let mut wave: Vec<_> = batch
        .iter()
        // Unconstrained: tokio's cooperative budget would otherwise make a later PUBLISH of a
        // long wave yield before it queued its message, and it would go out of order.
        .map(|args| {
            let publish = tokio::task::unconstrained(execute_shared(node, session, metrics, args));
            futures::future::maybe_done(Box::pin(publish))
        })
        .collect();
    {
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        for publish in &mut wave {
            let _ = std::pin::Pin::new(publish).poll(&mut cx);
        }
    }
    futures::future::join_all(wave.iter_mut()).await;
    wave.iter_mut().map(|p| std::pin::Pin::new(p).take_output().unwrap_or(Reply::Nil)).collect()
}

/// Feeds a request to MONITOR as Redis does: not administrative commands, and AUTH's and
/// HELLO's arguments redacted.
fn monitor(node: &Node, session: &Session, args: &[Bytes]) {
    let cmd = Cmd::lookup(&args[0]);
    if cmd.is_some_and(|c| c.hidden_from_monitor(args)) {
        return;
    }
    if matches!(cmd, Some(Cmd::Auth | Cmd::Hello)) && args.len() > 1 {
        let redacted: Vec<Bytes> = std::iter::once(args[0].clone())
            .chain(args[1..].iter().map(|_| Bytes::from_static(b"(redacted)")))
            .collect();
        node.clients.feed(session.db, session.client.addr, &redacted);
        return;
    }
    node.clients.feed(session.db, session.client.addr, args);
}
