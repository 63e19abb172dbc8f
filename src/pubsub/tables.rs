//! This node's subscription tables: who subscribed to which channel, pattern and shard
//! channel (Redis's `server.pubsub_channels`, `pubsub_patterns` and `pubsubshard_channels`),
//! and the local delivery of a message to them. Owned by the [`Broker`](super::Broker), behind
//! its lock; each connection keeps its own list in its [`Subscriber`](super::Subscriber).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{Delivery, Kind, Mailbox};
use crate::glob::Pattern;

/// The subscribers of one name, in the order they subscribed (Redis delivers in that order).
type Subscribers = Vec<Arc<Mailbox>>;

#[derive(Default)]
pub(super) struct Tables {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, (Pattern, Subscribers)>,
    shard: HashMap<Bytes, Subscribers>,
}

impl Tables {
    /// Adds `mailbox` as a subscriber of `name` (the caller knows it was not one yet).
    pub fn add(&mut self, kind: Kind, name: &Bytes, mailbox: &Arc<Mailbox>) {
        match kind {
            Kind::Channel => self.channels.entry(name.clone()).or_default().push(mailbox.clone()),
            Kind::Shard => self.shard.entry(name.clone()).or_default().push(mailbox.clone()),
            Kind::Pattern => {
                let entry = self.patterns.entry(name.clone()).or_insert_with(|| (Pattern::new(name), Vec::new()));
                entry.1.push(mailbox.clone());
            }
        }
    }

    /// Removes connection `client` from the subscribers of `name`; a name left without any is
    /// forgotten.
    pub fn remove(&mut self, kind: Kind, name: &[u8], client: u64) {
        fn from(subs: &mut Subscribers, client: u64) -> bool {
            subs.retain(|m| m.client_id() != client);
            subs.is_empty()
        }
        let empty = match kind {
            Kind::Channel => self.channels.get_mut(name).is_some_and(|s| from(s, client)),
            Kind::Shard => self.shard.get_mut(name).is_some_and(|s| from(s, client)),
            Kind::Pattern => self.patterns.get_mut(name).is_some_and(|(_, s)| from(s, client)),
        };
        if empty {
            match kind {
                Kind::Channel => self.channels.remove(name),
                Kind::Shard => self.shard.remove(name),
                Kind::Pattern => self.patterns.remove(name).map(|(_, s)| s),
            };
        }
    }

    /// Queues a message for this node's subscribers, as Redis's `pubsubPublishMessage`: to
    /// those of the channel, then to those of every pattern it matches (a shard message only
    /// to the shard channel's). Returns how many there were (one that is over its limit
    /// counts too: Redis counts it and then closes it).
    pub fn deliver(&self, channel: &Bytes, message: &Bytes, sharded: bool, limit: usize) -> usize {
        let mut receivers = 0;
        if sharded {
            for m in self.shard.get(channel).into_iter().flatten() {
                m.push(Delivery::SMessage { channel: channel.clone(), message: message.clone() }, limit);
                receivers += 1;
            }
            return receivers;
        }
        for m in self.channels.get(channel).into_iter().flatten() {
            m.push(Delivery::Message { channel: channel.clone(), message: message.clone() }, limit);
            receivers += 1;
        }
        for (pattern, (matcher, subs)) in &self.patterns {
            if !matcher.matches_exactly(channel) {
                continue;
            }
            for m in subs {
                let delivery =
                    Delivery::PMessage { pattern: pattern.clone(), channel: channel.clone(), message: message.clone() };
                m.push(delivery, limit);
                receivers += 1;
            }
        }
        receivers
    }

    /// The channels (or shard channels) with a subscriber, those `pattern` matches if given.
    pub fn channels(&self, pattern: Option<&[u8]>, sharded: bool) -> Vec<Bytes> {
        let table = if sharded { &self.shard } else { &self.channels };
        let matcher = pattern.map(Pattern::new);
        table.keys().filter(|c| matcher.as_ref().is_none_or(|p| p.matches_exactly(c))).cloned().collect()
    }

    /// The subscribers of each channel (or shard channel).
    pub fn numsub(&self, channels: &[Bytes], sharded: bool) -> Vec<u64> {
        let table = if sharded { &self.shard } else { &self.channels };
        channels.iter().map(|c| table.get(c).map_or(0, |s| s.len() as u64)).collect()
    }

    /// The patterns with a subscriber.
    pub fn patterns(&self) -> Vec<Bytes> {
        self.patterns.keys().cloned().collect()
    }

    /// How many channels, patterns and shard channels have a subscriber (INFO).
    pub fn sizes(&self) -> [usize; 3] {
        [self.channels.len(), self.patterns.len(), self.shard.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailboxes(n: usize) -> Vec<Arc<Mailbox>> {
        let clients = crate::clients::Clients::new(0);
        let (addr, laddr) = ("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:6379".parse().unwrap());
        (0..n).map(|_| Arc::new(Mailbox::new(clients.connect(addr, laddr, -1)))).collect()
    }

    #[test]
    fn channels_patterns_and_shards_deliver_as_redis() {
        let mut t = Tables::default();
        let [a, b] = <[_; 2]>::try_from(mailboxes(2)).expect("two");
        let name = |s: &'static str| Bytes::from_static(s.as_bytes());
        t.add(Kind::Channel, &name("news"), &a);
        t.add(Kind::Pattern, &name("n*"), &a);
        t.add(Kind::Pattern, &name("*"), &b);
        t.add(Kind::Shard, &name("news"), &b);
        assert_eq!(t.deliver(&name("news"), &name("hi"), false, 0), 3);
        assert_eq!(t.deliver(&name("news"), &name("s"), true, 0), 1);
        // `*` does not match the empty channel (stringmatchlen, without KEYS's special case).
        assert_eq!(t.deliver(&name(""), &name("e"), false, 0), 0);
        let (got, _) = a.take();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Delivery::Message { channel: name("news"), message: name("hi") });
        let (got, _) = b.take();
        assert_eq!(
            got,
            vec![
                Delivery::PMessage { pattern: name("*"), channel: name("news"), message: name("hi") },
                Delivery::SMessage { channel: name("news"), message: name("s") },
            ]
        );
        assert_eq!(t.numsub(&[name("news"), name("x")], false), vec![1, 0]);
        assert_eq!(t.numsub(&[name("news")], true), vec![1]);
        assert_eq!(t.channels(Some(b"n?ws"), false), vec![name("news")]);
        assert_eq!(t.channels(Some(b"x*"), false), Vec::<Bytes>::new());
        assert_eq!(t.sizes(), [1, 2, 1]);
        t.remove(Kind::Pattern, b"*", b.client_id());
        t.remove(Kind::Channel, b"news", b.client_id()); // not a subscriber: nothing changes
        assert_eq!(t.sizes(), [1, 1, 1]);
        t.remove(Kind::Channel, b"news", a.client_id());
        assert_eq!(t.sizes(), [0, 1, 1]);
        assert_eq!(t.patterns(), vec![name("n*")]);
    }
}
