//! The RESP listener: one task per connection, pipelined requests answered in order with one
//! write per batch, a semaphore bounding connections, and a shutdown signal.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::command::{self, CommandMetrics, Session};
use crate::metrics as m;
use crate::node::{ClientInfo, Node};
use crate::resp::{self, Limits, Protocol, Reply};

/// Serves clients on `listener` until `shutdown` turns true.
pub async fn serve(node: Arc<Node>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let metrics = Arc::new(CommandMetrics::register());
    let slots = Arc::new(Semaphore::new(node.config.maxclients));
    let limits = Limits { max_request_bytes: node.config.max_request_bytes, ..Limits::default() };
    loop {
        let (socket, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        metrics::counter!(m::CONNECTIONS_TOTAL).increment(1);
        node.total_connections.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            node.rejected_connections.fetch_add(1, Ordering::Relaxed);
            let mut socket = socket;
            let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
            continue;
        };
        let (node, metrics) = (node.clone(), metrics.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let laddr = socket.local_addr().unwrap_or(addr);
            let info = ClientInfo { addr, laddr, name: None, connected: std::time::Instant::now(), resp: 2 };
            let id = node.client_connected(info);
            metrics::gauge!(m::CONNECTED_CLIENTS).increment(1.0);
            let session = Session {
                id,
                protocol: Protocol::Resp2,
                authenticated: node.config.requirepass.is_none(),
                name: None,
                addr,
                laddr,
                quit: false,
            };
            if let Err(e) = connection(&node, &metrics, socket, session, limits, shutdown).await {
                tracing::debug!("connection {addr} ended: {e}");
            }
            node.client_disconnected(id);
            metrics::gauge!(m::CONNECTED_CLIENTS).decrement(1.0);
            drop(permit);
        });
    }
}

/// Reads requests, runs every complete one in the buffer, then writes all their replies at once.
async fn connection(
    node: &Node,
    metrics: &CommandMetrics,
    mut socket: TcpStream,
    mut session: Session,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut batch: Vec<Vec<Bytes>> = Vec::new();
    loop {
        let writes_before = node.coordinator.write_mark();
        let mut protocol_error = None;
        loop {
            match resp::next_command(&mut input, &limits) {
                Ok(Some(args)) => {
                    batch.push(args);
                    if batch.len() >= MAX_BATCH {
                        run_batch(node, &mut session, metrics, &batch, &mut output).await;
                        batch.clear();
                        if session.quit {
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    protocol_error = Some(e);
                    break;
                }
            }
        }
        run_batch(node, &mut session, metrics, &batch, &mut output).await;
        batch.clear();
        if let Some(e) = protocol_error.filter(|_| !session.quit) {
            metrics::counter!(m::PROTOCOL_ERRORS_TOTAL).increment(1);
            Reply::Error(format!("ERR {e}")).encode(session.protocol, &mut output);
            session.quit = true;
        }
        if !output.is_empty() {
            // No reply leaves before the writes it acknowledges are durable. A batch during
            // which nobody wrote has nothing to wait for.
            let mark = node.coordinator.write_mark();
            if mark != writes_before {
                if let Err(e) = node.coordinator.commit(mark).await {
                    tracing::error!("commit failed, closing the connection unacknowledged: {e}");
                    return Ok(());
                }
            }
            socket.write_all(&output).await?;
            output.clear();
        }
        if session.quit {
            return Ok(());
        }
        input.reserve(16 * 1024);
        let read = tokio::select! {
            r = socket.read_buf(&mut input) => r?,
            _ = shutdown.changed() => return Ok(()),
        };
        if read == 0 {
            return Ok(());
        }
    }
}

/// Requests run per batch (the rest of a long pipeline waits for the next).
const MAX_BATCH: usize = 512;

/// Runs the requests of a pipeline and encodes their replies in order. In a cluster, where
/// each request waits for its replicas, consecutive requests on distinct keys run at once
/// (a *wave*); a request on a key already in the wave, or one that changes the connection,
/// starts a new one, so every request still sees the effects of those before it.
async fn run_batch(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    batch: &[Vec<Bytes>],
    out: &mut BytesMut,
) {
    let cluster = node.coordinator.cluster();
    let concurrent = batch.len() > 1 && !cluster.view().single(cluster.me());
    let mut i = 0;
    while i < batch.len() && !session.quit {
        if concurrent {
            let mut keys: HashSet<&[u8]> = HashSet::new();
            let mut end = i;
            while let Some(ks) = batch.get(end).and_then(|args| command::concurrent_keys(args)) {
                if ks.iter().any(|k| keys.contains(k)) {
                    break;
                }
                keys.extend(ks);
                end += 1;
            }
            if end - i > 1 {
                let authenticated = session.authenticated;
                let wave = batch[i..end].iter().map(|args| command::execute_shared(node, authenticated, metrics, args));
                for reply in futures::future::join_all(wave).await {
                    reply.encode(session.protocol, out);
                }
                i = end;
                continue;
            }
        }
        command::execute(node, session, metrics, &batch[i]).await.encode(session.protocol, out);
        i += 1;
    }
}
