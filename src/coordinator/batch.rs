//! Requests to one peer made in the same moment travel together (issue 23): the replication
//! and quorum reads of a pipeline's keys, and those of every connection served in the same
//! turn of the runtime, become one `Request::Batch` per peer, one frame, one task and one
//! journal flush there, and one answer, instead of one of each per key.
//!
//! The first request queued for a peer schedules a flush and the others join its queue; the
//! flush runs once the runtime has polled what was ready (a task that yields first), so a
//! pipeline's wave, which queues all its requests in one poll, always leaves as one batch.
//! Nothing waits for a timer: a lone request leaves as soon as the runtime gets to it.
//!
//! A peer that speaks an older protocol (a rolling upgrade), or a batch too large for a
//! frame, gets the requests one by one, as before.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{BoxFuture, Peers};
use crate::cluster::ClusterError;
use crate::metrics as m;
use crate::peer::{Request, Response};
use crate::rpc::RpcError;

/// The most requests in one batch (a longer queue leaves as several).
pub const MAX_BATCH: usize = 64;

type Answer = std::result::Result<Response, ClusterError>;

/// A request waiting in a peer's queue, and where its answer goes.
struct Queued {
    req: Request,
    answer: oneshot::Sender<Answer>,
}

/// [`Peers`] that batch what [`Request::batchable`] allows; everything else passes through.
pub struct Batching {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Arc<dyn Peers>,
    peers: Mutex<HashMap<String, Peer>>,
}

/// What the batcher keeps of one peer.
#[derive(Default)]
struct Peer {
    /// The requests waiting for its next flush (not empty while a flush is scheduled).
    queue: Vec<Queued>,
    /// It answered a batch: its batches are sent without a copy of their requests kept for
    /// sending them one by one (a peer of protocol 14 refuses a batch unsent). A peer started
    /// again on an older build fails the requests of one batch, then gets copies again.
    takes_batches: bool,
}

impl Batching {
    pub fn new(inner: Arc<dyn Peers>) -> Self {
        Batching { shared: Arc::new(Shared { inner, peers: Mutex::new(HashMap::new()) }) }
    }
}

impl Peers for Batching {
    fn call<'a>(&'a self, node: &'a str, req: Request) -> BoxFuture<'a, Answer> {
        if !req.batchable() {
            return self.shared.inner.call(node, req);
        }
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut peers = self.shared.peers.lock();
            let peer = match peers.get_mut(node) {
                Some(peer) => peer,
                None => peers.entry(node.to_owned()).or_default(),
            };
            peer.queue.push(Queued { req, answer: tx });
            peer.queue.len() == 1
        };
        if first {
            let (shared, node) = (self.shared.clone(), node.to_owned());
            tokio::spawn(async move {
                // Let every task that is ready queue its requests first.
                tokio::task::yield_now().await;
                shared.flush(node).await;
            });
        }
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(ClusterError::Unexpected(node.to_owned()))) })
    }

    fn is_up(&self, node: &str) -> bool {
        self.shared.inner.is_up(node)
    }
}

impl Shared {
    /// Sends what is queued for `node`, in batches of at most [`MAX_BATCH`] at once, and hands
    /// each request its answer.
    async fn flush(&self, node: String) {
        let (queued, takes_batches) = match self.peers.lock().get_mut(&node) {
            Some(peer) => (std::mem::take(&mut peer.queue), peer.takes_batches),
            None => return,
        };
        let mut batches = Vec::new();
        let mut queued = queued.into_iter().peekable();
        while queued.peek().is_some() {
            batches.push(queued.by_ref().take(MAX_BATCH).collect::<Vec<_>>());
        }
        futures::future::join_all(batches.into_iter().map(|b| self.send(&node, b, takes_batches))).await;
    }

    /// Records whether `node` takes batches.
    fn takes_batches(&self, node: &str, takes: bool) {
        if let Some(peer) = self.peers.lock().get_mut(node) {
            peer.takes_batches = takes;
        }
    }

    async fn send(&self, node: &str, batch: Vec<Queued>, takes_batches: bool) {
        if batch.len() == 1 {
            for Queued { req, answer } in batch {
                let _ = answer.send(self.inner.call(node, req).await);
            }
            return;
        }
        metrics::counter!(m::PEER_BATCHES_TOTAL).increment(1);
        metrics::counter!(m::PEER_BATCHED_REQUESTS_TOTAL).increment(batch.len() as u64);
        let (requests, answers): (Vec<Request>, Vec<_>) = batch.into_iter().map(|q| (q.req, q.answer)).unzip();
        // Kept to send one by one if the peer cannot take the batch (it was not sent), until
        // it has taken one.
        let singles = (!takes_batches).then(|| requests.clone());
        match self.inner.call(node, Request::Batch(requests)).await {
            Ok(Response::Batch(responses)) if responses.len() == answers.len() => {
                if !takes_batches {
                    self.takes_batches(node, true);
                }
                for (answer, response) in answers.into_iter().zip(responses) {
                    let _ = answer.send(match response {
                        Response::Error(error) => Err(ClusterError::Remote { peer: node.to_owned(), error }),
                        body => Ok(body),
                    });
                }
            }
            Err(e @ ClusterError::Rpc(RpcError::Unsupported { .. } | RpcError::Frame(_))) => {
                self.takes_batches(node, false);
                let Some(singles) = singles else {
                    for answer in answers {
                        let _ = answer.send(Err(copy_of(&e, node)));
                    }
                    return;
                };
                let calls = singles.into_iter().map(|req| self.inner.call(node, req));
                for (answer, response) in answers.into_iter().zip(futures::future::join_all(calls).await) {
                    let _ = answer.send(response);
                }
            }
            Ok(_) => {
                for answer in answers {
                    let _ = answer.send(Err(ClusterError::Unexpected(node.to_owned())));
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(copy_of(&e, node)));
                }
            }
        }
    }
}

/// The failure of a batch, for each of its requests: a remote error as it is, a failure to
/// reach the peer as `Unexpected` (callers of batchable requests only tell success from
/// failure; the failure detector saw the batch's).
fn copy_of(e: &ClusterError, node: &str) -> ClusterError {
    match e {
        ClusterError::Remote { peer, error } => ClusterError::Remote { peer: peer.clone(), error: error.clone() },
        ClusterError::UnknownMember(n) => ClusterError::UnknownMember(n.clone()),
        _ => ClusterError::Unexpected(node.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers every `Read` with the key's length as a `Keys` answer's `next` (so that each
    /// request's answer is its own), and a `Batch` with each part's answer; counts the calls
    /// it gets. With `old`, refuses batches as a peer of protocol 14 would.
    #[derive(Default)]
    struct Fake {
        calls: AtomicUsize,
        batches: Mutex<Vec<usize>>,
        old: std::sync::atomic::AtomicBool,
    }

    fn answer(req: &Request) -> Response {
        match req {
            Request::Read { key } => Response::Keys { keys: vec![], next: Some(key.len() as u64) },
            _ => Response::Error(crate::peer::RemoteError::NotReady),
        }
    }

    impl Peers for Fake {
        fn call<'a>(&'a self, _node: &'a str, req: Request) -> BoxFuture<'a, Answer> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                match req {
                    Request::Batch(_) if self.old.load(Ordering::SeqCst) => {
                        Err(ClusterError::Rpc(RpcError::Unsupported {
                            addr: "127.0.0.1:1".parse().unwrap(),
                            needs: 15,
                            agreed: 14,
                        }))
                    }
                    Request::Batch(parts) => {
                        self.batches.lock().push(parts.len());
                        Ok(Response::Batch(parts.iter().map(answer).collect()))
                    }
                    req => match answer(&req) {
                        Response::Error(error) => Err(ClusterError::Remote { peer: "n".into(), error }),
                        r => Ok(r),
                    },
                }
            })
        }

        fn is_up(&self, _node: &str) -> bool {
            true
        }
    }

    fn read(len: usize) -> Request {
        Request::Read { key: Bytes::from(vec![b'k'; len]) }
    }

    /// What a wave of `n` reads of keys 1..=n bytes long answers, each its own.
    async fn wave(peers: &Batching, n: usize) {
        let calls = (1..=n).map(|len| peers.call("n2", read(len)));
        for (len, answer) in (1..=n).zip(futures::future::join_all(calls).await) {
            match answer {
                Ok(Response::Keys { next: Some(got), .. }) => assert_eq!(got, len as u64, "answers out of order"),
                other => panic!("read {len}: {other:?}"),
            }
        }
    }

    /// A pipeline's wave of requests to one peer leaves as one batch (the first is sent alone
    /// only when nothing joins it), and each request gets its own answer.
    #[tokio::test(flavor = "current_thread")]
    async fn requests_made_together_leave_as_one_batch_and_get_their_own_answers() {
        let fake = Arc::new(Fake::default());
        let peers = Batching::new(fake.clone());
        wave(&peers, 16).await;
        assert_eq!(*fake.batches.lock(), vec![16]);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        // More than a batch holds leaves as several, all answered.
        wave(&peers, 2 * MAX_BATCH + 3).await;
        assert_eq!(*fake.batches.lock(), vec![16, MAX_BATCH, MAX_BATCH, 3]);
        // A lone request goes as itself.
        wave(&peers, 1).await;
        assert_eq!(fake.calls.load(Ordering::SeqCst), 5);
        // Requests that may wait are never batched.
        let put = Request::Ping;
        assert!(!put.batchable());
        assert!(peers.call("n2", put).await.is_err());
        assert_eq!(fake.calls.load(Ordering::SeqCst), 6);
    }

    /// A peer of the older protocol (a rolling upgrade) gets the requests one by one.
    #[tokio::test(flavor = "current_thread")]
    async fn a_peer_without_batches_gets_the_requests_one_by_one() {
        let fake = Arc::new(Fake { old: true.into(), ..Fake::default() });
        let peers = Batching::new(fake.clone());
        wave(&peers, 5).await;
        assert!(fake.batches.lock().is_empty());
        assert_eq!(fake.calls.load(Ordering::SeqCst), 6, "one refused batch, then five single requests");
        wave(&peers, 5).await;
        assert_eq!(fake.calls.load(Ordering::SeqCst), 12, "and so on while it does not take batches");
    }

    /// A peer that took a batch gets the next ones without copies kept: if it is started
    /// again on an older build, the requests of one batch fail, and the next go one by one.
    #[tokio::test(flavor = "current_thread")]
    async fn a_peer_that_took_batches_and_went_back_fails_one_batch_only() {
        let fake = Arc::new(Fake::default());
        let peers = Batching::new(fake.clone());
        wave(&peers, 3).await;
        fake.old.store(true, Ordering::SeqCst);
        let calls = (1..=3).map(|len| peers.call("n2", read(len)));
        let failed = futures::future::join_all(calls).await;
        assert!(failed.iter().all(|a| matches!(a, Err(ClusterError::Unexpected(_)))), "{failed:?}");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "no request sent one by one without its copy");
        wave(&peers, 3).await;
        assert_eq!(fake.calls.load(Ordering::SeqCst), 6, "one refused batch, then three single requests");
    }

    /// A remote error of one request in a batch fails that request only.
    #[tokio::test(flavor = "current_thread")]
    async fn one_requests_error_in_a_batch_is_its_own() {
        let fake = Arc::new(Fake::default());
        let peers = Batching::new(fake.clone());
        let reap = Request::Replicate { key: Bytes::from_static(b"x"), set: Default::default(), hint_for: None };
        let (a, b, c) = tokio::join!(peers.call("n2", read(3)), peers.call("n2", reap), peers.call("n2", read(4)));
        assert!(matches!(a, Ok(Response::Keys { next: Some(3), .. })), "{a:?}");
        assert!(matches!(b, Err(ClusterError::Remote { error: crate::peer::RemoteError::NotReady, .. })), "{b:?}");
        assert!(matches!(c, Ok(Response::Keys { next: Some(4), .. })), "{c:?}");
        assert_eq!(*fake.batches.lock(), vec![3]);
    }
}
