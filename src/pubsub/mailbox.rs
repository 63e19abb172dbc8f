//! A subscribed connection's queue of messages not yet written to its socket: bounded by
//! bytes (Redis's `client-output-buffer-limit pubsub`, the hard limit), so that a subscriber
//! that stops reading costs at most that much, and a publisher never waits for it: a push
//! over the limit closes the connection instead (as Redis does) and the queue is dropped.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clients::Client;
use crate::resp::Reply;

/// One message for one subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// To a subscriber of the channel (SUBSCRIBE).
    Message { channel: Bytes, message: Bytes },
    /// To a subscriber of a pattern the channel matches (PSUBSCRIBE).
    PMessage { pattern: Bytes, channel: Bytes, message: Bytes },
    /// To a subscriber of the shard channel (SSUBSCRIBE).
    SMessage { channel: Bytes, message: Bytes },
}

impl Delivery {
    /// The push Redis writes for it: `message`, `pmessage` or `smessage`.
    pub fn to_reply(&self) -> Reply {
        match self {
            Delivery::Message { channel, message } => {
                Reply::Push(vec![Reply::bulk("message"), Reply::Bulk(channel.clone()), Reply::Bulk(message.clone())])
            }
            Delivery::PMessage { pattern, channel, message } => Reply::Push(vec![
                Reply::bulk("pmessage"),
                Reply::Bulk(pattern.clone()),
                Reply::Bulk(channel.clone()),
                Reply::Bulk(message.clone()),
            ]),
            Delivery::SMessage { channel, message } => {
                Reply::Push(vec![Reply::bulk("smessage"), Reply::Bulk(channel.clone()), Reply::Bulk(message.clone())])
            }
        }
    }

    /// What it costs in the output buffer: about its encoded size.
    pub fn size(&self) -> usize {
        const FRAMING: usize = 40;
        match self {
            Delivery::Message { channel, message } | Delivery::SMessage { channel, message } => {
                channel.len() + message.len() + FRAMING
            }
            Delivery::PMessage { pattern, channel, message } => pattern.len() + channel.len() + message.len() + FRAMING,
        }
    }
}

#[derive(Default)]
struct Queue {
    messages: Vec<Delivery>,
    /// Bytes queued or taken and not yet written.
    bytes: usize,
    /// Over the limit once: the connection is closing and takes nothing more.
    closed: bool,
}

/// The queue between publishers (any task) and one connection (the only reader).
pub struct Mailbox {
    client: Arc<Client>,
    queue: Mutex<Queue>,
    ready: Notify,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").field("client", &self.client.id).finish_non_exhaustive()
    }
}

impl Mailbox {
    pub fn new(client: Arc<Client>) -> Mailbox {
        Mailbox { client, queue: Mutex::new(Queue::default()), ready: Notify::new() }
    }

    /// The connection's id.
    pub fn client_id(&self) -> u64 {
        self.client.id
    }

    /// Queues `delivery` unless that takes the queue over `limit` bytes (0: no limit); then
    /// the connection is closed (CLIENT KILL's way: it runs nothing more and its socket
    /// closes at once, also in the middle of a write) and nothing more is queued. Never waits.
    /// Returns whether it was queued.
    pub fn push(&self, delivery: Delivery, limit: usize) -> bool {
        let size = delivery.size();
        let mut q = self.queue.lock();
        if q.closed {
            return false;
        }
        if limit > 0 && q.bytes + size > limit {
            q.closed = true;
            q.messages = Vec::new();
            let queued = q.bytes;
            drop(q);
            tracing::warn!(
                client = self.client.id,
                addr = %self.client.addr,
                queued,
                limit,
                "closing a subscriber over the pubsub output buffer limit"
            );
            metrics::counter!(crate::metrics::PUBSUB_SUBSCRIBERS_CLOSED_TOTAL).increment(1);
            self.client.kill();
            return false;
        }
        q.bytes += size;
        q.messages.push(delivery);
        let first = q.messages.len() == 1;
        drop(q);
        if first {
            self.ready.notify_one();
        }
        true
    }

    /// Takes every queued message, and the bytes they count for: they still count until the
    /// connection reports them [`written`](Mailbox::written).
    pub fn take(&self) -> (Vec<Delivery>, usize) {
        let mut q = self.queue.lock();
        let messages = std::mem::take(&mut q.messages);
        let bytes = messages.iter().map(Delivery::size).sum();
        (messages, bytes)
    }

    /// Messages of `bytes` that [`take`](Mailbox::take) gave out are written to the socket.
    pub fn written(&self, bytes: usize) {
        let mut q = self.queue.lock();
        q.bytes = q.bytes.saturating_sub(bytes);
    }

    /// Resolves when messages may be waiting (at once if some arrived since the last wait).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Arc<Client> {
        let clients = crate::clients::Clients::new(0);
        clients.connect("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:6379".parse().unwrap(), -1)
    }

    fn msg(n: usize) -> Delivery {
        Delivery::Message { channel: Bytes::from_static(b"c"), message: Bytes::from(vec![b'x'; n]) }
    }

    #[test]
    fn a_queue_over_its_limit_closes_the_connection_and_takes_nothing_more() {
        let client = client();
        let mailbox = Mailbox::new(client.clone());
        let size = msg(100).size();
        assert!(mailbox.push(msg(100), size * 3));
        assert!(mailbox.push(msg(100), size * 3));
        // Taken but not written still counts.
        let (taken, bytes) = mailbox.take();
        assert_eq!((taken.len(), bytes), (2, 2 * size));
        assert!(mailbox.push(msg(100), size * 3));
        assert!(!client.is_killed());
        assert!(!mailbox.push(msg(100), size * 3), "a fourth is over the limit");
        assert!(client.is_killed());
        mailbox.written(bytes);
        assert!(!mailbox.push(msg(1), size * 3), "a closed mailbox takes nothing");
        assert_eq!(mailbox.take().0, Vec::new());
    }

    #[test]
    fn written_messages_make_room() {
        let mailbox = Mailbox::new(client());
        let size = msg(10).size();
        for _ in 0..10 {
            assert!(mailbox.push(msg(10), size * 2));
            assert!(mailbox.push(msg(10), size * 2));
            let (taken, bytes) = mailbox.take();
            assert_eq!(taken.len(), 2);
            mailbox.written(bytes);
        }
    }

    #[test]
    fn deliveries_are_redis_pushes() {
        let mut out = bytes::BytesMut::new();
        let p = Delivery::PMessage {
            pattern: Bytes::from_static(b"c*"),
            channel: Bytes::from_static(b"ch"),
            message: Bytes::from_static(b"hi"),
        };
        p.to_reply().encode(crate::resp::Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        out.clear();
        msg(1).to_reply().encode(crate::resp::Protocol::Resp3, &mut out);
        assert_eq!(&out[..], b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n");
    }
}
