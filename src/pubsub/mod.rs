//! Pub/sub across the cluster (issue 22, item 3; docs/pubsub.md).
//!
//! A node's [`Broker`] is the one owner of its subscription tables (`tables.rs`); each
//! subscribed connection has a [`Subscriber`] (its own subscriptions, kept by its session) and
//! a bounded [`Mailbox`] that publishers fill without waiting and the connection drains to its
//! socket. A message published through a node is queued at once for the node's own
//! subscribers and for every other member that is up (`fanout.rs`: one ordered sender per
//! peer), and every peer delivers it to its subscribers: each subscriber anywhere gets it once,
//! in the order its publisher's node sent it. PUBLISH answers the receivers of this node plus
//! those the peers report within `--sloppy-after-ms` (a peer that does not answer in time
//! counts 0); PUBSUB's questions are asked of every member that is up the same way.
//! Delivery is at most once, as in Redis: a peer that is down or cut off misses what is
//! published meanwhile.

mod fanout;
mod mailbox;
mod subscriber;
mod tables;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

pub use mailbox::{Delivery, Mailbox};
pub use subscriber::Subscriber;

use crate::clients::Clients;
use crate::cluster::Cluster;
use crate::metrics as m;
use crate::peer::{Published, PubsubAnswer, PubsubQuery, Request, Response};

/// What a subscription is to: a channel (SUBSCRIBE), a pattern (PSUBSCRIBE) or a shard
/// channel (SSUBSCRIBE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel = 0,
    Pattern = 1,
    Shard = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];
}

pub struct Broker {
    tables: RwLock<tables::Tables>,
    /// The connections, whose `client-output-buffer-limit pubsub` bounds each mailbox.
    clients: Arc<Clients>,
    fanout: fanout::Fanout,
    inbound: Mutex<fanout::Inbound>,
    cluster: Arc<Cluster>,
}

impl Broker {
    pub fn new(cluster: Arc<Cluster>, clients: Arc<Clients>) -> Broker {
        Broker {
            tables: RwLock::new(tables::Tables::default()),
            clients,
            fanout: fanout::Fanout::new(cluster.clone()),
            inbound: Mutex::new(fanout::Inbound::default()),
            cluster,
        }
    }

    pub(crate) fn add(&self, kind: Kind, name: &Bytes, mailbox: &Arc<Mailbox>) {
        self.tables.write().add(kind, name, mailbox);
    }

    pub(crate) fn remove(&self, kind: Kind, name: &[u8], client: u64) {
        self.tables.write().remove(kind, name, client);
    }

    /// Queues a message for this node's subscribers; how many there were.
    fn deliver(&self, p: &Published) -> usize {
        let limit = self.clients.pubsub_limit();
        let n = self.tables.read().deliver(&p.channel, &p.message, p.sharded, limit);
        metrics::counter!(m::PUBSUB_DELIVERIES_TOTAL).increment(n as u64);
        n
    }

    /// Delivers a message to this node's subscribers only (keyspace notifications,
    /// `notify/`); how many received it.
    pub fn publish_local(&self, channel: Bytes, message: Bytes) -> usize {
        self.deliver(&Published { channel, message, sharded: false })
    }

    /// PUBLISH / SPUBLISH: delivers to this node's subscribers and queues the message for
    /// every other member that is up (both before the first wait, so messages published one
    /// after the other leave in that order), then waits at most `--sloppy-after-ms` for the
    /// peers' counts. Returns the receivers counted.
    pub async fn publish(&self, published: Published) -> u64 {
        metrics::counter!(m::PUBSUB_PUBLISHED_TOTAL).increment(1);
        let local = self.deliver(&published) as u64;
        let answers = self.fanout.send(&published);
        if answers.is_empty() {
            return local;
        }
        let deadline = tokio::time::Instant::now() + self.cluster.settings().sloppy_after;
        let counts = answers.into_iter().map(|a| async move {
            match tokio::time::timeout_at(deadline, a).await {
                Ok(Ok(n)) => u64::from(n),
                _ => 0,
            }
        });
        local + futures::future::join_all(counts).await.into_iter().sum::<u64>()
    }

    /// A peer's `Publish`: delivers its messages in order, unless the batch is a duplicate
    /// or older than one already taken from that sender (then none is delivered).
    pub fn receive(&self, stream: u64, seq: u64, messages: &[Published]) -> Vec<u32> {
        let mut inbound = self.inbound.lock();
        if !inbound.take(stream, seq) {
            metrics::counter!(m::PUBSUB_DROPPED_TOTAL, "reason" => "duplicate").increment(messages.len() as u64);
            return vec![0; messages.len()];
        }
        messages.iter().map(|p| self.deliver(p) as u32).collect()
    }

    /// This node's answer to a PUBSUB question.
    pub fn answer(&self, q: &PubsubQuery) -> PubsubAnswer {
        let tables = self.tables.read();
        match q {
            PubsubQuery::Channels { pattern, sharded } => {
                PubsubAnswer::Names(tables.channels(pattern.as_deref(), *sharded))
            }
            PubsubQuery::NumSub { channels, sharded } => PubsubAnswer::Counts(tables.numsub(channels, *sharded)),
            PubsubQuery::Patterns => PubsubAnswer::Names(tables.patterns()),
        }
    }

    /// A PUBSUB question asked of the whole cluster: this node and every other member that is
    /// up, each given until `--sloppy-after-ms` to answer (one that does not is left out).
    /// Names are united (in byte order), counts added up.
    pub async fn query(&self, q: PubsubQuery) -> PubsubAnswer {
        let mine = self.answer(&q);
        let peers = self.cluster.peers_up();
        let deadline = tokio::time::Instant::now() + self.cluster.settings().sloppy_after;
        let asks = peers.iter().map(|id| {
            let q = q.clone();
            async move {
                match tokio::time::timeout_at(deadline, self.cluster.call(id, Request::PubsubQuery(q))).await {
                    Ok(Ok(Response::Pubsub(answer))) => Some(answer),
                    Ok(Ok(other)) => {
                        tracing::warn!(peer = %id, "unexpected answer to PubsubQuery: {other:?}");
                        None
                    }
                    _ => None,
                }
            }
        });
        let theirs = futures::future::join_all(asks).await;
        merge(mine, theirs.into_iter().flatten())
    }

    /// How many channels, patterns and shard channels have a subscriber on this node (INFO).
    pub fn sizes(&self) -> [usize; 3] {
        self.tables.read().sizes()
    }
}

/// Nodes' answers to one question as one: names united in byte order, counts added up.
fn merge(first: PubsubAnswer, rest: impl Iterator<Item = PubsubAnswer>) -> PubsubAnswer {
    match first {
        PubsubAnswer::Names(names) => {
            let mut all: BTreeSet<Bytes> = names.into_iter().collect();
            for answer in rest {
                if let PubsubAnswer::Names(more) = answer {
                    all.extend(more);
                }
            }
            PubsubAnswer::Names(all.into_iter().collect())
        }
        PubsubAnswer::Counts(mut counts) => {
            for answer in rest {
                if let PubsubAnswer::Counts(more) = answer {
                    counts.iter_mut().zip(more).for_each(|(c, n)| *c += n);
                }
            }
            PubsubAnswer::Counts(counts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_merge_as_unions_and_sums() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let names =
            merge(PubsubAnswer::Names(vec![b("b"), b("a")]), [PubsubAnswer::Names(vec![b("c"), b("a")])].into_iter());
        assert_eq!(names, PubsubAnswer::Names(vec![b("a"), b("b"), b("c")]));
        let counts = merge(
            PubsubAnswer::Counts(vec![1, 0]),
            [PubsubAnswer::Counts(vec![2, 3]), PubsubAnswer::Counts(vec![0, 1])].into_iter(),
        );
        assert_eq!(counts, PubsubAnswer::Counts(vec![3, 4]));
    }
}
