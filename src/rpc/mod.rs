//! Peer connections (design.md section 5): length-prefixed frames of a compact binary form
//! (postcard), one reused connection per peer carrying many requests at once, a timeout on every
//! request, and a handshake that checks protocol version, cluster name and, through an HMAC over
//! fresh nonces from both sides, the cluster secret. Outgoing connections bind to this node's
//! own cluster IP, so a firewall rule between two addresses cuts exactly those two nodes apart.
//!
//! This module moves typed requests and responses; it does not know what they mean. The
//! server side hands every request to a [`Handler`] and sends back what it returns.

pub(crate) mod frame;
pub(crate) mod handshake;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

pub use handshake::Identity;

/// The largest frame limit (`--max-frame-bytes`), and its default: a value (at most
/// `--max-value-bytes`) plus its clock, or a bounded batch of them.
pub const MAX_FRAME: usize = 256 << 20;
/// The smallest frame limit a node accepts.
pub const MIN_FRAME: usize = 64 << 10;

static FRAME_LIMIT: AtomicUsize = AtomicUsize::new(MAX_FRAME);

/// The largest frame this node sends or accepts (`--max-frame-bytes`).
pub fn max_frame() -> usize {
    FRAME_LIMIT.load(Ordering::Relaxed)
}

/// Sets the frame limit (`--max-frame-bytes`, at start), clamped to `MIN_FRAME..=MAX_FRAME`.
pub fn set_max_frame(bytes: usize) {
    FRAME_LIMIT.store(bytes.clamp(MIN_FRAME, MAX_FRAME), Ordering::Relaxed);
}

/// How long an incoming peer connection may stay silent before the server closes it.
const IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("TLS with {addr} failed: {source}")]
    Tls { addr: SocketAddr, source: std::io::Error },
    #[error("handshake with {addr} failed: {source}")]
    Handshake { addr: SocketAddr, source: handshake::HandshakeError },
    #[error("request to {0} timed out")]
    Timeout(SocketAddr),
    #[error("connection to {0} closed")]
    Closed(SocketAddr),
    /// The connection failed before the request was handed to it: the peer never saw it.
    #[error("connection to {0} closed before the request was sent")]
    NotSent(SocketAddr),
    #[error("bad frame: {0}")]
    Frame(String),
    /// The node at `addr` is not the one the request was for (it was replaced, or the address
    /// was reused): nothing was sent.
    #[error("the node at {addr} is {found}, not {expected}")]
    WrongPeer { addr: SocketAddr, expected: String, found: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The request needs protocol `needs`, and the connection to `addr` agreed on an older
    /// one (a peer not yet upgraded): nothing was sent. The caller sends an older form.
    #[error("{addr} speaks protocol {agreed}, the request needs {needs}")]
    Unsupported { addr: SocketAddr, needs: u16, agreed: u16 },
}

impl RpcError {
    /// Whether the peer certainly never received the request (it failed while connecting, in
    /// the handshake, or before it was queued on the connection), so that it may be sent
    /// elsewhere even when it must never be applied twice. Any failure after the request was
    /// sent (a timeout, a connection closed while waiting) may have been applied there.
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            RpcError::Connect { .. }
                | RpcError::Handshake { .. }
                | RpcError::NotSent(_)
                | RpcError::Frame(_)
                | RpcError::WrongPeer { .. }
                | RpcError::Unsupported { .. }
        )
    }
}

/// A connection on which nothing at all arrived for this long while a request waited on it is
/// closed when that request times out (a partition drops every packet and TCP backs off for
/// minutes); heartbeats answer several times a second on a live one.
const SILENT_CLOSE: Duration = Duration::from_secs(1);

/// A request that may need a newer protocol version than the oldest this build speaks: it is
/// sent only over a connection whose agreed version has it (`handshake::agree`).
pub trait Message {
    /// The oldest protocol version that carries this request (0: every version).
    fn protocol(&self) -> u16 {
        0
    }
}

#[cfg(test)]
impl Message for u64 {}

/// Answers requests on the server side.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    /// Handles one request from the peer that authenticated as `from` (its node id).
    fn handle(&self, from: Arc<str>, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send + '_>>;
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) id: u64,
    pub(crate) body: T,
}

/// One live connection to a peer: a writer task fed by a channel, a reader task that completes
/// pending requests by id.
struct Conn<Resp> {
    addr: SocketAddr,
    /// The node id the peer proved in the handshake.
    peer: String,
    /// The protocol version the two sides agreed on in the handshake.
    agreed: u16,
    outgoing: mpsc::Sender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Resp>>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Frames received so far: a connection that answers anything is alive.
    received: AtomicU64,
    /// When the connection was made, and when its last frame arrived (ms after `opened`).
    opened: tokio::time::Instant,
    last_frame_ms: AtomicU64,
}

impl<Resp> Conn<Resp> {
    /// Frames received so far.
    fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }

    /// How long nothing has arrived on the connection (since it was made, if nothing has).
    fn silent_for(&self) -> Duration {
        let last = self.opened + Duration::from_millis(self.last_frame_ms.load(Ordering::Acquire));
        tokio::time::Instant::now().saturating_duration_since(last)
    }

    /// Closes the connection: its tasks stop, the socket closes, waiting requests fail.
    fn close(&self) {
        self.alive.store(false, Ordering::Release);
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        self.pending.lock().clear();
    }
}

/// Where a peer's connection lives: empty until connected, or after it failed. The async lock
/// makes concurrent callers wait for one connect instead of racing.
type Slot<Resp> = Arc<tokio::sync::Mutex<Option<Arc<Conn<Resp>>>>>;

/// The client side: a pool of connections to peers, one per address.
pub struct Client<Req, Resp> {
    identity: Arc<Identity>,
    /// Mutual TLS to peers (`--tls-cluster yes`).
    tls: Option<Arc<crate::tls::Tls>>,
    local_ip: IpAddr,
    connect_timeout: Duration,
    conns: Mutex<HashMap<SocketAddr, Slot<Resp>>>,
    _req: PhantomData<fn(Req)>,
}

impl<Req, Resp> Client<Req, Resp>
where
    Req: Serialize + Message + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    pub fn new(identity: Arc<Identity>, local_ip: IpAddr, connect_timeout: Duration) -> Self {
        Client { identity, tls: None, local_ip, connect_timeout, conns: Mutex::new(HashMap::new()), _req: PhantomData }
    }

    /// Connects to peers over mutual TLS with `tls`'s certificates (when given).
    #[must_use]
    pub fn with_tls(mut self, tls: Option<Arc<crate::tls::Tls>>) -> Self {
        self.tls = tls;
        self
    }

    /// Sends `req` to the peer at `addr` and waits at most `timeout` for its response
    /// (connecting first if needed, within the same deadline).
    ///
    /// A request that times out fails alone: the connection, which carries other requests,
    /// is closed only if nothing at all arrived on it since this request was sent and for
    /// [`SILENT_CLOSE`] (a partition drops every packet and TCP backs off for minutes; a slow
    /// answer is not a dead link).
    ///
    /// # Errors
    /// Connection, handshake, timeout, or the connection closing before the response. A
    /// failure to connect within `timeout` is a `Connect` error: the request was not sent
    /// ([`RpcError::not_sent`]).
    pub async fn call(&self, addr: SocketAddr, req: &Req, timeout: Duration) -> Result<Resp, RpcError> {
        self.call_to(addr, None, req, timeout).await
    }

    /// [`Client::call`] to node `to` at `addr`: refused unless the peer there proved that id in
    /// the handshake (`WrongPeer`; its proof covers its id).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_to(
        &self,
        addr: SocketAddr,
        to: Option<&str>,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let connect = || async {
            match tokio::time::timeout_at(deadline, self.connection(addr)).await {
                Ok(c) => c,
                Err(_) => Err(RpcError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() }),
            }
        };
        let mut conn = connect().await?;
        if to.is_some_and(|to| to != conn.peer) && conn.silent_for() >= SILENT_CLOSE {
            // A silent cached connection may be to a node that has since gone (a crash sends
            // no FIN): connect again once before deciding. (A live one is another node's,
            // which other requests use.)
            conn.close();
            conn = connect().await?;
        }
        if let Some(to) = to.filter(|to| *to != conn.peer) {
            return Err(RpcError::WrongPeer { addr, expected: to.to_owned(), found: conn.peer.clone() });
        }
        if req.protocol() > conn.agreed {
            return Err(RpcError::Unsupported { addr, needs: req.protocol(), agreed: conn.agreed });
        }
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode(&Envelope { id, body: req }).map_err(|e| RpcError::Frame(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(id, tx);
        // Forget the request however this future ends (answered, timed out, dropped).
        let _guard = PendingGuard { conn: &conn, id };
        let received_before = conn.received();
        let exchange = async {
            if conn.outgoing.send(bytes).await.is_err() {
                return Err(RpcError::NotSent(addr));
            }
            rx.await.map_err(|_| RpcError::Closed(addr))
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(r) => r,
            Err(_) => {
                if conn.received() == received_before && conn.silent_for() >= SILENT_CLOSE {
                    tracing::debug!("peer connection to {addr} silent for a whole request: closing it");
                    conn.close();
                }
                Err(RpcError::Timeout(addr))
            }
        }
    }

    /// Closes the connection to `addr`, if there is one.
    pub fn close(&self, addr: SocketAddr) {
        let slot = self.conns.lock().get(&addr).cloned();
        if let Some(slot) = slot {
            if let Ok(mut slot) = slot.try_lock() {
                if let Some(c) = slot.take() {
                    c.close();
                }
            }
        }
    }

    /// The live connection to `addr`, connecting (and shaking hands) if there is none.
    async fn connection(&self, addr: SocketAddr) -> Result<Arc<Conn<Resp>>, RpcError> {
        let slot = self.conns.lock().entry(addr).or_default().clone();
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.alive.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
        }
        *slot = None;
        let (stream, peer, agreed) = self.connect(addr).await?;
        let conn = Self::start(addr, peer, agreed, stream);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// A new connection to `addr`, its handshake done; the peer's node id and the protocol
    /// version agreed on.
    async fn connect(&self, addr: SocketAddr) -> Result<(PeerStream, String, u16), RpcError> {
        let socket = match self.local_ip {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|source| RpcError::Connect { addr, source })?;
        if !self.local_ip.is_unspecified() {
            socket.bind(SocketAddr::new(self.local_ip, 0)).map_err(|source| RpcError::Connect { addr, source })?;
        }
        // Closing a connection (silent through a partition, or dropped) resets it: what is
        // still queued in it is never sent, so no request arrives after its sender gave up
        // when the partition heals (a late copy of a key could undo a reaping).
        // (Deprecated because a non-zero linger blocks the thread on drop; zero never does.)
        #[allow(deprecated)]
        let _ = socket.set_linger(Some(Duration::ZERO));
        let stream = tokio::time::timeout(self.connect_timeout, socket.connect(addr))
            .await
            .map_err(|_| RpcError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() })?
            .map_err(|source| RpcError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let timed_out = || RpcError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() };
        let connector = self.tls.as_ref().and_then(|t| t.peer_connector());
        let mut stream = match connector {
            None => PeerStream::Plain(stream),
            Some(connector) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(crate::tls::peer_name(addr.ip()), stream),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(|source| RpcError::Tls { addr, source })?;
                PeerStream::Tls(Box::new(tls))
            }
        };
        let shake = async {
            match &mut stream {
                PeerStream::Plain(s) => handshake::client(s, &self.identity).await,
                PeerStream::Tls(s) => handshake::client(s, &self.identity).await,
                PeerStream::ServerTls(s) => handshake::client(s, &self.identity).await,
            }
        };
        let (peer, agreed) = tokio::time::timeout(self.connect_timeout, shake)
            .await
            .map_err(|_| timed_out())?
            .map_err(|source| RpcError::Handshake { addr, source })?;
        Ok((stream, peer, agreed))
    }

    fn start(addr: SocketAddr, peer: String, agreed: u16, stream: PeerStream) -> Arc<Conn<Resp>> {
        match stream {
            PeerStream::Plain(s) => {
                let (read, write) = s.into_split();
                Self::start_halves(addr, peer, agreed, read, write)
            }
            PeerStream::Tls(s) => {
                let (read, write) = tokio::io::split(*s);
                Self::start_halves(addr, peer, agreed, read, write)
            }
            PeerStream::ServerTls(s) => {
                let (read, write) = tokio::io::split(*s);
                Self::start_halves(addr, peer, agreed, read, write)
            }
        }
    }

    fn start_halves<R, W>(addr: SocketAddr, peer: String, agreed: u16, read: R, write: W) -> Arc<Conn<Resp>>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(1024);
        let conn = Arc::new(Conn {
            addr,
            peer,
            agreed,
            outgoing: tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            tasks: Mutex::new(Vec::new()),
            received: AtomicU64::new(0),
            opened: tokio::time::Instant::now(),
            last_frame_ms: AtomicU64::new(0),
        });
        let writer = tokio::spawn(write_loop(write, rx)).abort_handle();
        let reader = conn.clone();
        let read_task = tokio::spawn(async move {
            let mut read = tokio::io::BufReader::new(read);
            loop {
                match frame::read::<_, Envelope<Resp>>(&mut read).await {
                    Ok(env) => {
                        let at = reader.opened.elapsed().as_millis() as u64;
                        reader.last_frame_ms.store(at, Ordering::Release);
                        reader.received.fetch_add(1, Ordering::AcqRel);
                        if let Some(tx) = reader.pending.lock().remove(&env.id) {
                            let _ = tx.send(env.body);
                        }
                    }
                    Err(e) => {
                        tracing::debug!("peer connection to {} ended: {e}", reader.addr);
                        break;
                    }
                }
            }
            reader.alive.store(false, Ordering::Release);
            // Dropping the senders fails every request still waiting on this connection.
            reader.pending.lock().clear();
        })
        .abort_handle();
        conn.tasks.lock().extend([writer, read_task]);
        conn
    }
}

struct PendingGuard<'a, Resp> {
    conn: &'a Conn<Resp>,
    id: u64,
}

impl<Resp> Drop for PendingGuard<'_, Resp> {
    fn drop(&mut self) {
        self.conn.pending.lock().remove(&self.id);
    }
}

/// Writes queued frames, flushing when the queue runs dry (many frames per syscall under load).
async fn write_loop<W: AsyncWrite + Unpin>(write: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut w = BufWriter::with_capacity(64 * 1024, write);
    while let Some(bytes) = rx.recv().await {
        if w.write_all(&bytes).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if w.write_all(&more).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}

/// Serves peers on `listener` until `shutdown` turns true: shakes hands, then answers each
/// request with `handler` concurrently, responses in whatever order they finish.
pub async fn serve<Req, Resp, H>(
    listener: TcpListener,
    identity: Arc<Identity>,
    tls: Option<Arc<crate::tls::Tls>>,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("peer accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let (identity, handler, shutdown) = (identity.clone(), handler.clone(), shutdown.clone());
        let acceptor = tls.as_ref().and_then(|t| t.peer_acceptor());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            // The TLS and peer handshakes together get a few seconds: a stranger holds nothing
            // for longer.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let mut stream = match acceptor {
                None => PeerStream::Plain(stream),
                Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => PeerStream::ServerTls(Box::new(tls)),
                    Ok(Err(e)) => {
                        crate::metrics::peer_error("tls");
                        tracing::warn!("refused peer {addr}: TLS: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!("peer {addr} did not finish the TLS handshake");
                        return;
                    }
                },
            };
            let shake = async {
                match &mut stream {
                    PeerStream::Plain(s) => handshake::server(s, &identity).await,
                    PeerStream::Tls(s) => handshake::server(s, &identity).await,
                    PeerStream::ServerTls(s) => handshake::server(s, &identity).await,
                }
                .map(|(peer, _agreed)| peer)
            };
            let peer = match tokio::time::timeout_at(deadline, shake).await {
                Ok(Ok(peer)) => Arc::<str>::from(peer),
                Ok(Err(reason)) => {
                    crate::metrics::peer_error("handshake");
                    tracing::warn!("refused peer {addr}: {reason}");
                    return;
                }
                Err(_) => {
                    tracing::warn!("peer {addr} did not finish the handshake");
                    return;
                }
            };
            match stream {
                PeerStream::Plain(s) => {
                    let (read, write) = s.into_split();
                    serve_peer(peer, addr, read, write, handler, shutdown).await;
                }
                PeerStream::Tls(s) => {
                    let (read, write) = tokio::io::split(*s);
                    serve_peer(peer, addr, read, write, handler, shutdown).await;
                }
                PeerStream::ServerTls(s) => {
                    let (read, write) = tokio::io::split(*s);
                    serve_peer(peer, addr, read, write, handler, shutdown).await;
                }
            }
        });
    }
}

/// A peer connection, plain or TLS (`Tls` when this node connected, `ServerTls` when it
/// accepted).
enum PeerStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Answers one peer's requests until it disconnects, goes silent or the node shuts down.
async fn serve_peer<Req, Resp, H, R, W>(
    peer: Arc<str>,
    addr: SocketAddr,
    read: R,
    write: W,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Vec<u8>>(1024);
    tokio::spawn(write_loop(write, rx));
    let mut read = tokio::io::BufReader::new(read);
    loop {
        // Peers send a heartbeat every second: a connection silent for longer than
        // IDLE is dead (its peer crashed or is cut off) and is closed.
        let env = tokio::select! {
            r = tokio::time::timeout(IDLE, frame::read::<_, Envelope<Req>>(&mut read)) => match r {
                Ok(Ok(env)) => env,
                Ok(Err(e)) => {
                    tracing::debug!("peer {peer} at {addr} disconnected: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("peer {peer} at {addr} was silent for {IDLE:?}: closing");
                    return;
                }
            },
            _ = shutdown.changed() => return,
        };
        let (handler, tx, peer) = (handler.clone(), tx.clone(), peer.clone());
        let mut answer = Box::pin(async move {
            let body = handler.handle(peer, env.body).await;
            match frame::encode(&Envelope { id: env.id, body }) {
                Ok(bytes) => {
                    let _ = tx.send(bytes).await;
                }
                Err(e) => tracing::error!("cannot encode a response: {e}"),
            }
        });
        // Most requests (reads, heartbeats, hashes) are answered without waiting: do
        // those here; only one that has to wait gets a task of its own.
        if futures::FutureExt::now_or_never(&mut answer).is_none() {
            tokio::spawn(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `ms` after waiting that many milliseconds.
    struct Sleeper;

    impl Handler<u64, u64> for Sleeper {
        fn handle(&self, _from: Arc<str>, ms: u64) -> Pin<Box<dyn Future<Output = u64> + Send + '_>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ms
            })
        }
    }

    /// Issue 10 item 6: one request's timeout fails that request only; the others in flight on
    /// the same connection (which keeps answering) are answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_request_does_not_fail_the_others_on_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let identity = Arc::new(Identity::new("server", "test", None));
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(serve::<u64, u64, _>(listener, identity, None, Arc::new(Sleeper), stopped));
        let client = Arc::new(Client::<u64, u64>::new(
            Arc::new(Identity::new("client", "test", None)),
            "127.0.0.1".parse().unwrap(),
            Duration::from_secs(5),
        ));
        assert_eq!(client.call(addr, &0, Duration::from_secs(5)).await.unwrap(), 0);
        // A slow request (answered after 1.5 s) that the caller waits 2 s for ...
        let slow = {
            let client = client.clone();
            tokio::spawn(async move { client.call(addr, &1500, Duration::from_secs(2)).await })
        };
        // ... and a hopeless one that times out after 300 ms, while quick ones keep answering.
        let quick = {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    client.call(addr, &0, Duration::from_secs(2)).await.expect("quick request");
                    tokio::time::sleep(Duration::from_millis(25)).await; // pacing, not waiting
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await; // let the quick ones start
        let hopeless = client.call(addr, &10_000, Duration::from_millis(300)).await;
        assert!(matches!(hopeless, Err(RpcError::Timeout(_))), "{hopeless:?}");
        quick.await.unwrap();
        assert_eq!(slow.await.unwrap().expect("the slow request survives the other's timeout"), 1500);
    }

    /// A request of a newer protocol than the connection agreed on (a peer not yet upgraded)
    /// is refused unsent, as `not_sent`, and the connection goes on carrying the others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_the_peers_protocol_lacks_is_not_sent() {
        /// A request that needs protocol 15 when it is odd.
        #[derive(Serialize, Deserialize)]
        struct Req(u64);
        impl Message for Req {
            fn protocol(&self) -> u16 {
                if self.0 % 2 == 1 {
                    15
                } else {
                    0
                }
            }
        }
        struct Echo;
        impl Handler<Req, u64> for Echo {
            fn handle(&self, _from: Arc<str>, req: Req) -> Pin<Box<dyn Future<Output = u64> + Send + '_>> {
                Box::pin(async move { req.0 })
            }
        }
        let serve_at = |newest: u16, oldest: u16| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = watch::channel(false);
            let identity = Arc::new(Identity::new("s", "t", None).speaking(newest, oldest));
            tokio::spawn(serve::<Req, u64, _>(listener, identity, None, Arc::new(Echo), stopped));
            (addr, stop)
        };
        let client = Client::<Req, u64>::new(
            Arc::new(Identity::new("c", "t", None).speaking(15, 14)),
            "127.0.0.1".parse().unwrap(),
            Duration::from_secs(5),
        );
        let (old, _stop_old) = serve_at(14, 14).await;
        let refused = client.call(old, &Req(1), Duration::from_secs(5)).await;
        assert!(matches!(refused, Err(RpcError::Unsupported { needs: 15, agreed: 14, .. })), "{refused:?}");
        assert!(refused.unwrap_err().not_sent());
        assert_eq!(client.call(old, &Req(2), Duration::from_secs(5)).await.unwrap(), 2);
        let (new, _stop_new) = serve_at(15, 14).await;
        assert_eq!(client.call(new, &Req(1), Duration::from_secs(5)).await.unwrap(), 1);
    }

    /// A connection on which nothing arrives during a whole request is closed (a partition);
    /// the next request connects afresh.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_connection_is_closed_on_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(serve::<u64, u64, _>(
            listener,
            Arc::new(Identity::new("s", "t", None)),
            None,
            Arc::new(Sleeper),
            stopped,
        ));
        let client = Client::<u64, u64>::new(
            Arc::new(Identity::new("c", "t", None)),
            "127.0.0.1".parse().unwrap(),
            Duration::from_secs(5),
        );
        assert_eq!(client.call(addr, &0, Duration::from_secs(5)).await.unwrap(), 0);
        let first = client.connection(addr).await.unwrap();
        // A short silence (a heartbeat's timeout on a busy peer) does not close it ...
        assert!(matches!(client.call(addr, &5_000, Duration::from_millis(200)).await, Err(RpcError::Timeout(_))));
        assert!(first.alive.load(Ordering::Acquire), "closed after a silence of 200 ms");
        // ... a whole second of it does.
        assert!(matches!(client.call(addr, &5_000, Duration::from_millis(1100)).await, Err(RpcError::Timeout(_))));
        assert!(!first.alive.load(Ordering::Acquire), "a silent connection is closed");
        assert_eq!(client.call(addr, &0, Duration::from_secs(5)).await.unwrap(), 0);
    }
}
