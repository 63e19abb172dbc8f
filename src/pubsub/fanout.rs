//! Messages to the other nodes: one ordered sender per peer. A published message is queued
//! for every other member that is up, at once and in publish order (the publisher never waits
//! to queue it); each peer's task sends what is queued as one `Publish` batch, waits for its
//! answer and only then sends the next, so a peer receives one node's messages in the order
//! they were published, whatever the connection does (a batch that fails is not sent again:
//! at most once). A peer's queue is bounded ([`PEER_QUEUE_BYTES`]): past it, messages for
//! that peer are dropped (counted in `kura_pubsub_dropped_total`).
//!
//! The receiving side numbers the batches it takes from each sending process (`stream`,
//! `seq`) and drops one that is not newer than the last, so a duplicate or a straggler is
//! never delivered, nor delivered after a later one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::Cluster;
use crate::metrics as m;
use crate::peer::{Published, Request, Response};
use crate::ring::NodeId;

/// Bytes of messages one peer's queue may hold (more are dropped for that peer).
pub const PEER_QUEUE_BYTES: usize = 64 << 20;
/// The most messages, and about the most bytes, of one batch.
const BATCH_MESSAGES: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;

fn size(p: &Published) -> usize {
    p.channel.len() + p.message.len() + 16
}

struct Outgoing {
    published: Published,
    /// Where the peer's count of receivers goes (dropped: it counts 0).
    answer: oneshot::Sender<u32>,
}

struct PeerQueue {
    tx: mpsc::UnboundedSender<Outgoing>,
    bytes: AtomicUsize,
}

pub(super) struct Fanout {
    cluster: Arc<Cluster>,
    /// This process's stream id (`Request::Publish`).
    stream: u64,
    queues: Mutex<HashMap<NodeId, Arc<PeerQueue>>>,
    /// Per peer, the last batch number sent and which queue may send: it outlives the peer's
    /// queue (dropped while the peer is down), so a new queue goes on numbering where the old
    /// one stopped (the peer would refuse its batches as old otherwise), and the old one sends
    /// nothing once the new one exists (what it still holds would arrive after newer
    /// messages).
    senders: Mutex<HashMap<NodeId, Arc<Mutex<Sender>>>>,
}

/// Which of a peer's queues may send ([`Fanout::senders`]).
#[derive(Default)]
struct Sender {
    seq: u64,
    generation: u64,
}

impl Fanout {
    pub fn new(cluster: Arc<Cluster>) -> Fanout {
        Fanout {
            cluster,
            stream: crate::random::u64(),
            queues: Mutex::new(HashMap::new()),
            senders: Mutex::new(HashMap::new()),
        }
    }

    /// Queues `published` for every other member that is up; returns where each one's count
    /// of receivers will arrive. Never waits.
    pub fn send(&self, published: &Published) -> Vec<oneshot::Receiver<u32>> {
        let peers = self.cluster.peers_up();
        let mut queues = self.queues.lock();
        if queues.len() > peers.len() {
            // Members that left or went down: their tasks end with their queues.
            queues.retain(|id, _| peers.contains(id));
        }
        let bytes = size(published);
        let mut answers = Vec::with_capacity(peers.len());
        for id in peers {
            let queue = queues.entry(id.clone()).or_insert_with(|| self.start(id.clone()));
            if queue.bytes.load(Ordering::Relaxed) + bytes > PEER_QUEUE_BYTES {
                metrics::counter!(m::PUBSUB_DROPPED_TOTAL, "reason" => "queue_full").increment(1);
                continue;
            }
            let (answer, count) = oneshot::channel();
            queue.bytes.fetch_add(bytes, Ordering::Relaxed);
            if queue.tx.send(Outgoing { published: published.clone(), answer }).is_ok() {
                answers.push(count);
            }
        }
        answers
    }

    fn start(&self, id: NodeId) -> Arc<PeerQueue> {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(PeerQueue { tx, bytes: AtomicUsize::new(0) });
        let sender = self.senders.lock().entry(id.clone()).or_default().clone();
        let generation = {
            let mut s = sender.lock();
            s.generation += 1;
            s.generation
        };
        tokio::spawn(run(self.cluster.clone(), id, (self.stream, sender, generation), queue.clone(), rx));
        queue
    }
}

/// One peer's sender: a batch at a time, in queue order, until its queue is dropped.
async fn run(
    cluster: Arc<Cluster>,
    id: NodeId,
    (stream, sender, generation): (u64, Arc<Mutex<Sender>>, u64),
    queue: Arc<PeerQueue>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(first) = rx.recv().await {
        let mut bytes = size(&first.published);
        let mut batch = vec![first];
        while batch.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
            match rx.try_recv() {
                Ok(more) => {
                    bytes += size(&more.published);
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        queue.bytes.fetch_sub(bytes, Ordering::Relaxed);
        let n = batch.len();
        if !cluster.is_up(&id) {
            metrics::counter!(m::PUBSUB_DROPPED_TOTAL, "reason" => "peer_down").increment(n as u64);
            continue;
        }
        let seq = {
            let mut s = sender.lock();
            if s.generation != generation {
                // A newer queue took over (the peer went down and came back): drop the rest.
                metrics::counter!(m::PUBSUB_DROPPED_TOTAL, "reason" => "peer_down").increment(n as u64);
                return;
            }
            s.seq += 1;
            s.seq
        };
        let (messages, answers): (Vec<_>, Vec<_>) = batch.into_iter().map(|o| (o.published, o.answer)).unzip();
        match cluster.call(&id, Request::Publish { stream, seq, messages }).await {
            Ok(Response::Delivered(counts)) if counts.len() == n => {
                for (answer, count) in answers.into_iter().zip(counts) {
                    let _ = answer.send(count);
                }
            }
            Ok(other) => {
                tracing::warn!(peer = %id, "unexpected answer to Publish: {other:?}");
                metrics::counter!(m::PUBSUB_DROPPED_TOTAL, "reason" => "peer_error").increment(n as u64);
            }
            Err(e) => {
                tracing::debug!(peer = %id, "publishing {n} messages failed: {e}");
                metrics::counter!(m::PUBSUB_DROPPED_TOTAL, "reason" => "peer_error").increment(n as u64);
            }
        }
    }
}

/// The receiving side's record of the batches taken from each sending process.
#[derive(Default)]
pub(super) struct Inbound {
    last: HashMap<u64, u64>,
}

/// Sending processes remembered at most (a restarted node is a new stream; the oldest are
/// forgotten, which at worst lets a straggler of a long-gone process through).
const STREAMS: usize = 4096;

impl Inbound {
    /// Whether batch `seq` of `stream` is newer than every batch taken from it so far (then it
    /// is taken).
    pub fn take(&mut self, stream: u64, seq: u64) -> bool {
        if self.last.len() >= STREAMS && !self.last.contains_key(&stream) {
            self.last.clear();
        }
        let last = self.last.entry(stream).or_insert(0);
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_stragglers_are_dropped() {
        let mut inbound = Inbound::default();
        assert!(inbound.take(7, 1));
        assert!(!inbound.take(7, 1), "a duplicate");
        assert!(inbound.take(7, 3), "a gap is a lost batch: at most once");
        assert!(!inbound.take(7, 2), "a straggler after a later batch");
        assert!(inbound.take(8, 1), "another sender");
    }
}
