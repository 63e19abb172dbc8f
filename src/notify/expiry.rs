//! `expired` events: keys this node finds expired, while `notify-keyspace-events` has `x`.
//!
//! kura's values carry their expiry and read as missing once it passed; nothing is deleted
//! then (the reaper purges them later). So a key "expires" at a time, and this node notices
//! it two ways, as Redis's active and lazy expiry do:
//! - **actively**: every 100 ms (Redis's `hz 10`) a round looks at the keys whose stored copy
//!   died since the last round (the storage's reap index, `Storage::dying`) and reports those
//!   that died because a value expired (not a DEL's tombstone);
//! - **on a write**: a write over a copy that expired since the last round (which moves the
//!   key in the index, so the round would not see it) reports it at once, before the write's
//!   own events; a write that stores an already expired value (SET ... PXAT in the past) is
//!   reported by the next round, after the write's events.
//!
//! Each expiry is reported once (`emitted` guards the two paths meeting on one key), and only
//! by the node that decides the key (its first owner that is up), so in a cluster every
//! expiry is published once, by one node, to that node's subscribers. Keys that expired while
//! `x` was off are not reported when it is turned on; keys given a TTL before are.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use super::{Class, Notifier};
use crate::clock::now_ms;
use crate::storage::{ExpiryWatch, Storage};
use crate::version::{SiblingSet, Value};

/// How often the active round runs (Redis's default `hz`).
const ROUND: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(super) struct Expiries {
    state: Mutex<State>,
    /// Wakes the round loop when `x` is turned on.
    woken: Notify,
}

#[derive(Default)]
struct State {
    /// Whether `x` is on (the round runs, writes are watched).
    on: bool,
    /// The rounds looked at every death up to this time (ms).
    cursor: u64,
    /// Expiries reported after `cursor`: (key, time).
    emitted: HashSet<(Vec<u8>, u64)>,
    /// Keys written already expired, at or before `cursor`: the next round reports them.
    pending: Vec<Vec<u8>>,
}

impl Expiries {
    pub(super) fn flags_changed(&self, was: bool, now: bool) {
        if was == now {
            return;
        }
        let mut s = self.state.lock();
        s.on = now;
        s.cursor = now_ms();
        s.emitted.clear();
        s.pending.clear();
        drop(s);
        if now {
            self.woken.notify_one();
        }
    }
}

/// The time `set` stopped being live because a value in it expired: when its last sibling
/// died, if that was a value's expiry (not a tombstone's write).
pub fn expired_at(set: &SiblingSet) -> Option<u64> {
    let at = crate::storage::dead_at(set)?;
    set.siblings().any(|s| s.value.as_ref().is_some_and(Value::exists) && s.expires_ms == Some(at)).then_some(at)
}

impl Notifier {
    /// Reports that `key` expired at `at`, unless it was already, or (`lazy`: found by a
    /// write) the rounds already looked at that time, or this node does not decide the key.
    fn expired(&self, key: &[u8], at: u64, lazy: bool) {
        {
            let mut s = self.expiry.state.lock();
            if !s.on || (lazy && at <= s.cursor) || !s.emitted.insert((key.to_vec(), at)) {
                return;
            }
        }
        if self.decides(key) {
            self.report(Class::Expired, "expired", key);
        }
    }

    /// One active round: what was written already expired, then every key whose copy died
    /// since the last round because it expired.
    fn round(&self, storage: &Storage) {
        let (from, pending) = {
            let mut s = self.expiry.state.lock();
            if !s.on {
                return;
            }
            (s.cursor, std::mem::take(&mut s.pending))
        };
        for key in pending {
            if self.decides(&key) {
                self.report(Class::Expired, "expired", &key);
            }
        }
        let until = now_ms();
        for (at, key) in storage.dying(from, until) {
            match storage.get(&key) {
                Ok(Some(set)) if expired_at(&set) == Some(at) => self.expired(&key, at, false),
                Ok(_) => {}
                Err(e) => tracing::debug!("an expiry's key could not be read: {e}"),
            }
        }
        let mut s = self.expiry.state.lock();
        if s.on && s.cursor == from {
            s.cursor = until;
            s.emitted.retain(|(_, at)| *at > until);
        }
    }

    /// Runs the active rounds while `x` is on, until `stop` turns true.
    pub async fn run_expiries(self: Arc<Self>, storage: Arc<Storage>, mut stop: watch::Receiver<bool>) {
        loop {
            let on = self.expiry.state.lock().on;
            let wait = async {
                if on {
                    tokio::time::sleep(ROUND).await;
                } else {
                    self.expiry.woken.notified().await;
                }
            };
            tokio::select! {
                () = wait => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            self.round(&storage);
        }
    }
}

impl ExpiryWatch for Notifier {
    fn stored(&self, key: &[u8], old: Option<&SiblingSet>, next: &SiblingSet) {
        if !self.flags().wants(Class::Expired) {
            return;
        }
        let now = now_ms();
        let was = old.and_then(expired_at).filter(|&t| t <= now);
        let will = expired_at(next).filter(|&t| t <= now);
        // A write over a copy that expired since the last round: the round will not see it
        // (the key's entry in the index moved).
        if let Some(t) = was.filter(|&t| will != Some(t)) {
            self.expired(key, t, true);
        }
        // A value written already expired, too long ago for the next round to see.
        if let Some(t) = will.filter(|&t| was != Some(t)) {
            let mut s = self.expiry.state.lock();
            if s.on && t <= s.cursor {
                s.pending.push(key.to_vec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::version::{Actor, Sibling, VersionVector};

    fn set_of(siblings: &[(Option<&str>, u64, Option<u64>)]) -> SiblingSet {
        let mut set = SiblingSet::new();
        for &(value, written_ms, expires_ms) in siblings {
            let sibling = Sibling {
                value: value.map(|v| Bytes::from(v.to_owned()).into()),
                written_ms,
                origin: Actor(1),
                expires_ms,
                resets: Vec::new(),
                flush_seen: None,
            };
            // No context: each is a sibling of the others.
            set = set.update(&VersionVector::default(), sibling).0;
        }
        set
    }

    #[test]
    fn a_key_expired_only_when_a_value_ran_out() {
        assert_eq!(expired_at(&set_of(&[(Some("v"), 1, Some(50))])), Some(50));
        assert_eq!(expired_at(&set_of(&[(Some("v"), 1, None)])), None, "never dies");
        assert_eq!(expired_at(&set_of(&[(None, 70, None)])), None, "a DEL");
        assert_eq!(expired_at(&set_of(&[(Some("v"), 1, Some(50)), (None, 70, None)])), None, "deleted after");
        assert_eq!(expired_at(&set_of(&[(Some("v"), 1, Some(90)), (None, 70, None)])), Some(90));
        assert_eq!(expired_at(&set_of(&[(Some("v"), 1, Some(50)), (Some("w"), 2, None)])), None);
    }
}
