//! The RESP listener: one task per connection, pipelined requests answered in order with one
//! write per batch (after the writes it acknowledges are durable: the commands' ticket), a
//! semaphore bounding connections, and a shutdown signal. It knows neither the storage nor the
//! ring: `command::run_pipeline` runs the requests, `Node::durable` waits for their ticket.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::command::{self, CommandMetrics, Session};
use crate::metrics as m;
use crate::node::{Node, Ticket};
use crate::resp::{self, Limits, Reply};

/// Redis's `tcp-backlog` default: connections the kernel queues before they are accepted.
pub const BACKLOG: u32 = 511;

/// The client listener: address reuse (a restart binds at once) and Redis's backlog.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Serves clients on `listener` until `shutdown` turns true; over TLS with `tls`'s current
/// certificates when given (the `--tls-port` listener).
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    tls: Option<Arc<crate::tls::Tls>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let metrics = Arc::new(CommandMetrics::register());
    let slots = node.client_slots.clone();
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
            // (A TLS client gets no plaintext error: the connection just closes.)
            if tls.is_none() {
                let mut socket = socket;
                let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
            }
            continue;
        };
        let (node, metrics) = (node.clone(), metrics.clone());
        let shutdown = shutdown.clone();
        let acceptor = tls.as_ref().map(|t| t.client_acceptor());
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let laddr = socket.local_addr().unwrap_or(addr);
            let fd = i64::from(socket.as_raw_fd());
            match acceptor {
                None => client(&node, &metrics, socket, (addr, laddr, fd), limits, shutdown).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(socket)).await {
                    Ok(Ok(socket)) => client(&node, &metrics, socket, (addr, laddr, fd), limits, shutdown).await,
                    Ok(Err(e)) => {
                        metrics::counter!(m::TLS_HANDSHAKE_FAILURES_TOTAL).increment(1);
                        tracing::debug!("TLS handshake with {addr} failed: {e}");
                    }
                    Err(_) => {
                        metrics::counter!(m::TLS_HANDSHAKE_FAILURES_TOTAL).increment(1);
                        tracing::debug!("{addr} did not finish its TLS handshake");
                    }
                },
            }
            if node.take_owed_slot() {
                permit.forget();
            } else {
                drop(permit);
            }
        });
    }
}

/// A client's connection from its registration (CLIENT LIST) to its end; `at` is its address,
/// the local address and the socket's descriptor.
async fn client<S: Socket>(
    node: &Node,
    metrics: &CommandMetrics,
    socket: S,
    at: (std::net::SocketAddr, std::net::SocketAddr, i64),
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let (addr, laddr, fd) = at;
    let client = node.clients.connect(addr, laddr, fd);
    metrics::gauge!(m::CONNECTED_CLIENTS).increment(1.0);
    let session = Session::new(client.clone(), node.requirepass.read().is_none());
    if let Err(e) = connection(node, metrics, socket, session, limits, shutdown).await {
        tracing::debug!("connection {addr} ended: {e}");
    }
    node.clients.disconnect(client.id);
    metrics::gauge!(m::CONNECTED_CLIENTS).decrement(1.0);
}

/// A client's byte stream: TCP, or TLS over it.
trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Socket for S {}

/// Replies are written out once a batch's pass this many bytes, before the rest of it runs:
/// a connection never holds more replies than this and one reply (in a cluster, one wave of
/// at most 32) waiting for its socket, and
/// while the socket does not take them nothing more of its requests is read or run
/// (backpressure, where Redis would buffer them up to `client-output-buffer-limit`).
pub const FLUSH_AT: usize = 256 << 10;

/// A connection's buffer that a large request or reply grew past this is dropped for a small
/// one once it is empty (as Redis shrinks an idle client's query buffer).
const SHRINK_ABOVE: usize = 1 << 20;

/// The first capacity of a connection's buffers, and the room made for each read.
const BUFFER: usize = 16 * 1024;

/// Reads requests, runs every complete one in the buffer, then writes all their replies at once.
async fn connection<S: Socket>(
    node: &Node,
    metrics: &CommandMetrics,
    mut socket: S,
    mut session: Session,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(BUFFER);
    let mut output = BytesMut::with_capacity(BUFFER);
    let mut parser = resp::Parser::new(limits);
    let mut batch: Vec<Vec<Bytes>> = Vec::new();
    // MONITOR's feed, once the connection asked for it.
    let mut monitor: Option<crate::clients::Subscription> = None;
    loop {
        // A connection CLIENT KILL picked runs nothing it reads after (Redis closes it before
        // it serves another command), whichever of the two a wake-up saw first.
        if session.client.is_killed() {
            return Ok(());
        }
        let mut ticket = Ticket::NONE;
        let mut protocol_error = None;
        // A request was taken before AUTH: more may be waiting in `input`.
        let mut parse_on = false;
        loop {
            match parser.next_command(&mut input, session.authenticated) {
                Ok(Some(args)) => {
                    batch.push(args);
                    // Before AUTH each request runs before the next is parsed (as Redis runs
                    // each as it parses it), so the limits for unauthenticated clients apply
                    // exactly to the requests before a successful AUTH.
                    if !session.authenticated {
                        parse_on = true;
                        break;
                    }
                    if batch.len() >= command::MAX_BATCH {
                        let mut out = Out {
                            socket: &mut socket,
                            output: &mut output,
                            ticket: &mut ticket,
                            monitor: &mut monitor,
                        };
                        let go_on = run_batch(node, &mut session, metrics, &batch, &mut input, &mut out).await?;
                        batch.clear();
                        if !go_on {
                            return Ok(());
                        }
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
        let read_before = input.len();
        let mut out = Out { socket: &mut socket, output: &mut output, ticket: &mut ticket, monitor: &mut monitor };
        let go_on = run_batch(node, &mut session, metrics, &batch, &mut input, &mut out).await?;
        batch.clear();
        if !go_on {
            return Ok(());
        }
        // Requests that arrived while a blocking command waited are parsed before reading on.
        let read_ahead = input.len() > read_before;
        if let Some(e) = protocol_error.filter(|_| !session.quit) {
            metrics::counter!(m::PROTOCOL_ERRORS_TOTAL).increment(1);
            Reply::Error(format!("ERR {e}")).encode(session.protocol, out.output);
            session.quit = true;
        }
        // Messages that arrived after the batch's last request.
        session.drain_messages(out.output);
        if !out.flush(node, &mut session).await? {
            return Ok(());
        }
        if session.quit {
            return Ok(());
        }
        if read_ahead || parse_on {
            continue;
        }
        // An empty buffer means no request is in progress (the parser is between requests).
        if input.is_empty() && input.capacity() > SHRINK_ABOVE {
            input = BytesMut::with_capacity(BUFFER);
        }
        input.reserve(BUFFER);
        session.client.set_query_buffer(input.len());
        // Idle connections close after `timeout` (not a monitoring or subscribed one, as in
        // Redis).
        let idle = node.clients.idle_timeout().filter(|_| monitor.is_none() && !session.client.is_pubsub());
        let mailbox = session.pubsub.as_ref().map(|s| s.mailbox().clone());
        let read = loop {
            tokio::select! {
                biased;
                () = session.client.killed() => return Ok(()),
                _ = shutdown.changed() => return Ok(()),
                r = socket.read_buf(&mut input) => break r?,
                () = sleep_or_never(idle) => return Ok(()),
                line = next_line(&mut monitor) => {
                    if let Some(line) = line {
                        socket.write_all(&line).await?;
                        socket.flush().await?;
                    }
                }
                () = messages(&mailbox) => {
                    session.drain_messages(&mut output);
                    let mut out = Out { socket: &mut socket, output: &mut output, ticket: &mut ticket, monitor: &mut monitor };
                    if !out.flush(node, &mut session).await? {
                        return Ok(());
                    }
                }
            }
        };
        if read == 0 {
            return Ok(());
        }
        session.client.set_query_buffer(input.len());
        node.clients.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
    }
}

/// Where a connection's replies go: the socket, the replies not yet written, the ticket of
/// the writes they acknowledge, and the MONITOR feed to join before a MONITOR's `+OK` leaves.
struct Out<'a, S> {
    socket: &'a mut S,
    output: &'a mut BytesMut,
    ticket: &'a mut Ticket,
    monitor: &'a mut Option<crate::clients::Subscription>,
}

impl<S: Socket> Out<'_, S> {
    /// Writes the replies, once the writes they acknowledge are durable: whether the
    /// connection goes on (not when a commit failed or it was killed during the write).
    async fn flush(&mut self, node: &Node, session: &mut Session) -> std::io::Result<bool> {
        // MONITOR's feed is joined before its +OK leaves: a request another client sends once
        // it has the +OK must show (a feed joined after the write missed some).
        if self.monitor.is_none() && session.client.is_monitor() {
            *self.monitor = Some(node.clients.monitor());
        }
        if self.output.is_empty() {
            return Ok(true);
        }
        // No reply leaves before the writes it acknowledges are durable.
        if let Err(e) = node.durable(std::mem::replace(self.ticket, Ticket::NONE)).await {
            tracing::error!("commit failed, closing the connection unacknowledged: {e}");
            return Ok(false);
        }
        session.client.set_pending_output(self.output.len());
        let written = write(self.socket, self.output, session).await;
        session.client.set_pending_output(0);
        if !written? {
            return Ok(false);
        }
        node.clients.net_output_bytes.fetch_add(self.output.len() as u64, Ordering::Relaxed);
        self.output.clear();
        if self.output.capacity() > SHRINK_ABOVE {
            *self.output = BytesMut::with_capacity(BUFFER);
        }
        session.written();
        Ok(true)
    }
}

/// Runs a batch of requests, writing the replies out whenever they pass [`FLUSH_AT`] bytes
/// (the rest of the batch waits until the socket took them): whether the connection goes on.
/// It does not when it closed while a blocking command waited, when it was killed, or when
/// its replies passed its class's hard `client-output-buffer-limit` (closed without them, as
/// Redis closes such a client).
async fn run_batch<S: Socket>(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    batch: &[Vec<Bytes>],
    input: &mut BytesMut,
    out: &mut Out<'_, S>,
) -> std::io::Result<bool> {
    let mut done = 0;
    while done < batch.len() && !session.quit {
        if out.output.len() >= FLUSH_AT && !out.flush(node, session).await? {
            return Ok(false);
        }
        if session.client.is_killed() {
            // What ran before the kill may still go out (a connection that killed itself).
            let _ = out.flush(node, session).await;
            return Ok(false);
        }
        let (ticket, ran, closed) =
            run_some(node, session, metrics, &batch[done..], out.output, out.socket, input).await;
        *out.ticket = (*out.ticket).max(ticket);
        done += ran;
        if closed {
            return Ok(false);
        }
        let limit = node.clients.output_limit(session.client.client_type());
        if limit > 0 && out.output.len() > limit {
            tracing::warn!(
                "client {} closed for overcoming of output buffer limits ({} bytes of replies, limit {limit})",
                session.client.addr,
                out.output.len()
            );
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs requests of a batch until their replies pass [`FLUSH_AT`] bytes: the ticket of their
/// writes, how many ran, and whether the connection closed. While a blocking command of the
/// batch waits, the socket is read on: a closed connection interrupts the wait (nothing is
/// popped for a client that is gone, as in Redis) and the answer is `closed`; requests that
/// arrive meanwhile wait in `input` (up to a limit, then the socket is left unread until the
/// batch ends).
async fn run_some<S: Socket>(
    node: &Node,
    session: &mut Session,
    metrics: &CommandMetrics,
    batch: &[Vec<Bytes>],
    output: &mut BytesMut,
    socket: &mut S,
    input: &mut BytesMut,
) -> (Ticket, usize, bool) {
    if !batch.iter().any(|args| command::blocks(args)) {
        let (ticket, ran) = command::run_pipeline(node, session, metrics, batch, output, FLUSH_AT).await;
        return (ticket, ran, false);
    }
    let client = session.client.clone();
    let run = command::run_pipeline(node, session, metrics, batch, output, FLUSH_AT);
    tokio::pin!(run);
    let (mut reading, mut closed) = (true, false);
    loop {
        tokio::select! {
            (ticket, ran) = &mut run => return (ticket, ran, closed),
            read = socket.read_buf(input), if reading => match read {
                Ok(0) | Err(_) => {
                    (reading, closed) = (false, true);
                    client.interrupt(crate::clients::Interrupt::Gone);
                }
                Ok(_) => reading = input.len() < READ_AHEAD_LIMIT,
            },
        }
    }
}

/// At most this much input is read ahead while a blocking command waits.
const READ_AHEAD_LIMIT: usize = 1 << 20;
/// Writes `bytes`, unless the connection is killed while the socket does not take them (a
/// subscriber over its output limit that stopped reading never would): whether they were
/// written. A write the socket takes at once goes out even when killed: a connection that
/// killed itself (CLIENT KILL ... SKIPME no) gets its reply, as in Redis.
async fn write<S: Socket>(socket: &mut S, bytes: &[u8], session: &Session) -> std::io::Result<bool> {
    // TLS keeps what it encrypted until flushed (TCP's flush does nothing).
    let all = async {
        socket.write_all(bytes).await?;
        socket.flush().await
    };
    tokio::select! {
        biased;
        r = all => r.map(|()| true),
        () = session.client.killed() => Ok(false),
    }
}

/// Resolves when a subscribed connection's mailbox may hold messages; never without one.
async fn messages(mailbox: &Option<std::sync::Arc<crate::pubsub::Mailbox>>) {
    match mailbox {
        Some(m) => m.ready().await,
        None => std::future::pending().await,
    }
}

async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// The next line of a MONITOR feed (`None` when lines were skipped: the connection fell
/// behind by more than the feed holds); never resolves without a feed.
async fn next_line(feed: &mut Option<crate::clients::Subscription>) -> Option<Bytes> {
    match feed {
        Some(sub) => match sub.lines.recv().await {
            Ok(line) => Some(line),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
