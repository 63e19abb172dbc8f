//! One connection's subscriptions (Redis's `c->pubsub_channels`, `pubsub_patterns`,
//! `pubsubshard_channels`), kept by its session in the order they were made, with its
//! [`Mailbox`]. Dropping it (the connection closed) removes them from the broker's tables.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::{Broker, Kind, Mailbox};
use crate::clients::Client;

/// Names in the order they were added, with a set for lookups.
#[derive(Default)]
struct Ordered {
    order: Vec<Bytes>,
    set: HashSet<Bytes>,
}

impl Ordered {
    fn insert(&mut self, name: &Bytes) -> bool {
        if !self.set.insert(name.clone()) {
            return false;
        }
        self.order.push(name.clone());
        true
    }

    fn remove(&mut self, name: &[u8]) -> bool {
        if !self.set.remove(name) {
            return false;
        }
        self.order.retain(|n| n != name);
        true
    }
}

pub struct Subscriber {
    broker: Arc<Broker>,
    client: Arc<Client>,
    mailbox: Arc<Mailbox>,
    /// By [`Kind`]: channels, patterns, shard channels.
    names: [Ordered; 3],
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("client", &self.client.id).field("counts", &self.counts()).finish()
    }
}

impl Subscriber {
    pub fn new(broker: Arc<Broker>, client: Arc<Client>) -> Subscriber {
        let mailbox = Arc::new(Mailbox::new(client.clone()));
        Subscriber { broker, client, mailbox, names: Default::default() }
    }

    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// Subscribes to `name`; false if already subscribed.
    pub fn subscribe(&mut self, kind: Kind, name: &Bytes) -> bool {
        if !self.names[kind as usize].insert(name) {
            return false;
        }
        self.broker.add(kind, name, &self.mailbox);
        self.mirror();
        true
    }

    /// Unsubscribes from `name`; false if not subscribed.
    pub fn unsubscribe(&mut self, kind: Kind, name: &[u8]) -> bool {
        if !self.names[kind as usize].remove(name) {
            return false;
        }
        self.broker.remove(kind, name, self.client.id);
        self.mirror();
        true
    }

    /// The names of `kind`, in the order they were subscribed.
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        self.names[kind as usize].order.clone()
    }

    /// Subscriptions by kind: channels, patterns, shard channels.
    pub fn counts(&self) -> [usize; 3] {
        [self.names[0].order.len(), self.names[1].order.len(), self.names[2].order.len()]
    }

    /// Channels and patterns (what SUBSCRIBE and PSUBSCRIBE count), or shard channels.
    pub fn count(&self, kind: Kind) -> usize {
        let [channels, patterns, shard] = self.counts();
        match kind {
            Kind::Channel | Kind::Pattern => channels + patterns,
            Kind::Shard => shard,
        }
    }

    /// Whether the connection has any subscription (in RESP2 it is then in subscribed mode).
    pub fn subscribed(&self) -> bool {
        self.counts().iter().any(|&n| n > 0)
    }

    /// Unsubscribes from everything (RESET).
    pub fn clear(&mut self) {
        for kind in Kind::ALL {
            for name in self.names(kind) {
                self.unsubscribe(kind, &name);
            }
        }
    }

    fn mirror(&self) {
        self.client.set_subscriptions(self.counts());
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        for kind in Kind::ALL {
            for name in &self.names[kind as usize].order {
                self.broker.remove(kind, name, self.client.id);
            }
        }
    }
}
