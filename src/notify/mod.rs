//! Keyspace notifications (Redis's `notify-keyspace-events`, docs/pubsub.md): events of the
//! writes this node coordinates and of the keys it finds expired, published to this node's
//! own subscribers on `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>`.
//!
//! Commands report what they did through [`Notifier::report`] (or, for a read-modify-write,
//! [`Notifier::effects`]: the events follow from the operation and its outcome, see
//! `events.rs`) once the write succeeded; the notifier checks the flags before it builds
//! anything, so with `notify-keyspace-events` empty (the default) a report costs one atomic
//! load. Expiries are noticed by `expiry.rs`. Messages go only to this node's subscribers,
//! never to peers: a subscriber sees the writes made through its own node and the expiries of
//! the keys its node decides, as a Redis Cluster shard notifies for its own keys.
//!
//! Stream commands report through [`Notifier::stream`] (see there for Redis's events).

mod events;
mod expiry;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;

pub use events::{stored, Class, Effect, Flags, INVALID};

use crate::cluster::Cluster;
use crate::pubsub::Broker;
use crate::rmw::Outcome;

pub struct Notifier {
    /// `notify-keyspace-events` (Redis's bits).
    flags: AtomicU32,
    broker: Arc<Broker>,
    cluster: Arc<Cluster>,
    expiry: expiry::Expiries,
}

impl Notifier {
    pub fn new(broker: Arc<Broker>, cluster: Arc<Cluster>) -> Arc<Notifier> {
        Arc::new(Notifier { flags: AtomicU32::new(0), broker, cluster, expiry: expiry::Expiries::default() })
    }

    pub fn flags(&self) -> Flags {
        Flags(self.flags.load(Ordering::Relaxed))
    }

    /// CONFIG SET notify-keyspace-events.
    pub fn set_flags(&self, flags: Flags) {
        let was = Flags(self.flags.swap(flags.0, Ordering::AcqRel));
        self.expiry.flags_changed(was.wants(Class::Expired), flags.wants(Class::Expired));
    }

    /// Whether anything is published at all (one of `K` and `E`, and a class).
    pub fn enabled(&self) -> bool {
        let f = self.flags();
        f.0 & (events::KEYSPACE | events::KEYEVENT) != 0 && f.0 & !(events::KEYSPACE | events::KEYEVENT) != 0
    }

    /// A write of `key` (its stored form: the database's prefix tells the database) did
    /// `event` of `class`: published to this node's subscribers if that class is on.
    pub fn report(&self, class: Class, event: &'static str, key: &[u8]) {
        let flags = self.flags();
        if flags.wants(class) {
            self.publish(flags, event, key);
        }
    }

    /// The hook of the stream commands: `event` of class `t` on `key`, once the write
    /// succeeded. Redis 7.0's events: `xadd` (then `xtrim` when XADD's MAXLEN/MINID trimmed
    /// something), `xtrim`, `xdel`, `xsetid`, `xgroup-create`, `xgroup-createconsumer` (also
    /// when XREADGROUP, XCLAIM or XAUTOCLAIM make a consumer), `xgroup-delconsumer`,
    /// `xgroup-destroy`, `xgroup-setid`; an XTRIM or XDEL that removes nothing reports
    /// nothing, as in Redis. A stream read-modify-write's `Effect` is `Effect::Own`: its
    /// command reports here.
    pub fn stream(&self, event: &'static str, key: &[u8]) {
        self.report(Class::Stream, event, key);
    }

    /// The events of a read-modify-write of `key` of kind `effect` that came to `outcome`.
    pub fn effects(&self, key: &[u8], effect: Effect, outcome: &Outcome) {
        if !self.enabled() {
            return;
        }
        for (class, event) in effect.events(outcome) {
            self.report(class, event, key);
        }
    }

    fn publish(&self, flags: Flags, event: &'static str, key: &[u8]) {
        // kura's own keys (the cluster's scripts) are no client's.
        if crate::keyspace::is_reserved(key) {
            return;
        }
        let db = crate::keyspace::db_of(key);
        let stored = Bytes::copy_from_slice(key);
        let Some(key) = crate::keyspace::user(db, &stored) else { return };
        for (channel, message) in events::messages(flags, event, db, &key) {
            self.broker.publish_local(channel, message);
        }
    }

    /// Whether this node decides `key` (its first owner that is up, as this node sees it):
    /// the one node that notifies the key's expiry.
    fn decides(&self, key: &[u8]) -> bool {
        let view = self.cluster.view();
        let me = self.cluster.me();
        if view.single(me) {
            return true;
        }
        view.preference_list(key).iter().find(|n| self.cluster.is_up(n)).is_some_and(|n| n == me)
    }
}
