//! Who waits for a key to change: the clients blocked in BLPOP, BZPOPMIN and the like on this
//! node, and the nodes that asked to hear of a key's writes here (their clients are blocked on
//! it). The replica layer calls [`Wakeups::touched`] after every write it stores, whatever its
//! origin (a client here, a peer's replication or patch, a transfer); the blocking commands
//! (`command/blocking.rs`) wait on a [`Registration`].
//!
//! Clients blocked on one key are served first blocked, first served (Redis's rule): a write
//! wakes only the first waiter of the key; a waiter that then pops something wakes the next
//! (the key may hold more), and one that leaves without popping (timeout, CLIENT UNBLOCK, a
//! closed connection) wakes the next too, in case the wake-up it had was meant for it.
//!
//! A node that watches a key here is told once (a message in the [`Wakeups::outbox`], which
//! the node sends on) and must ask again to hear of the next write.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

/// At most this many nodes watch one key here, and this many keys are watched by other nodes
/// (a watch beyond either is refused: the watcher then finds writes by its periodic retry).
const MAX_WATCHERS_PER_KEY: usize = 256;
const MAX_WATCHED_KEYS: usize = 100_000;

pub struct Wakeups {
    inner: Mutex<Inner>,
    /// Keys with a waiter or a watcher: `touched`'s fast path when there are none.
    watched: AtomicUsize,
    next_id: AtomicU64,
    /// (node, key): a write of a key that node watched (at most one per watch).
    tell: mpsc::UnboundedSender<Touch>,
    outbox: Mutex<Option<mpsc::UnboundedReceiver<Touch>>>,
}

/// A node to tell of a write, and the key written.
pub type Touch = (Arc<str>, Bytes);

impl Default for Wakeups {
    fn default() -> Wakeups {
        let (tell, outbox) = mpsc::unbounded_channel();
        Wakeups {
            inner: Mutex::default(),
            watched: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            tell,
            outbox: Mutex::new(Some(outbox)),
        }
    }
}

#[derive(Default)]
struct Inner {
    local: HashMap<Bytes, VecDeque<Arc<Waiter>>>,
    remote: HashMap<Bytes, HashSet<Arc<str>>>,
}

impl Inner {
    fn count(&self) -> usize {
        self.local.len() + self.remote.len()
    }
}

struct Waiter {
    id: u64,
    notify: Notify,
}

impl Wakeups {
    pub fn new() -> Wakeups {
        Wakeups::default()
    }

    /// The messages to other nodes (node, key) that [`Wakeups::touched`] queues: taken once,
    /// by the task that sends them.
    pub fn outbox(&self) -> Option<mpsc::UnboundedReceiver<Touch>> {
        self.outbox.lock().take()
    }

    /// A write of `key` was stored here: wakes its first waiter, and tells the nodes that
    /// watched it (once each).
    pub fn touched(&self, key: &[u8]) {
        if self.watched.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(first) = inner.local.get(key).and_then(|q| q.front()) {
            first.notify.notify_one();
        }
        if let Some((key, nodes)) = inner.remote.remove_entry(key) {
            for node in nodes {
                // The receiver is gone only while the node shuts down.
                let _ = self.tell.send((node, key.clone()));
            }
        }
        self.watched.store(inner.count(), Ordering::Release);
    }

    /// Another node says `key` was written there: wakes its first waiter here.
    pub fn wake_local(&self, key: &[u8]) {
        if self.watched.load(Ordering::Acquire) == 0 {
            return;
        }
        let inner = self.inner.lock();
        if let Some(first) = inner.local.get(key).and_then(|q| q.front()) {
            first.notify.notify_one();
        }
    }

    /// Another node's client is blocked on `key`: tell `node` of its next write here.
    pub fn watch(&self, key: Bytes, node: Arc<str>) -> bool {
        let mut inner = self.inner.lock();
        if !inner.remote.contains_key(&key) && inner.remote.len() >= MAX_WATCHED_KEYS {
            return false;
        }
        let watchers = inner.remote.entry(key).or_default();
        let ok = watchers.len() < MAX_WATCHERS_PER_KEY || watchers.contains(&node);
        if ok {
            watchers.insert(node);
        }
        self.watched.store(inner.count(), Ordering::Release);
        ok
    }

    /// Queues a waiter on `keys` (behind those already waiting on each).
    pub fn register(self: &Arc<Self>, keys: &[Bytes]) -> Registration {
        let waiter = Arc::new(Waiter { id: self.next_id.fetch_add(1, Ordering::Relaxed), notify: Notify::new() });
        let mut keys: Vec<Bytes> = keys.to_vec();
        keys.sort();
        keys.dedup();
        let mut inner = self.inner.lock();
        for key in &keys {
            inner.local.entry(key.clone()).or_default().push_back(waiter.clone());
        }
        self.watched.store(inner.count(), Ordering::Release);
        Registration { wakeups: self.clone(), waiter, keys }
    }

    /// Wakes the first waiter of each of `keys`.
    fn wake_first(&self, keys: &[Bytes]) {
        let inner = self.inner.lock();
        for key in keys {
            if let Some(first) = inner.local.get(key).and_then(|q| q.front()) {
                first.notify.notify_one();
            }
        }
    }
}

/// A client's place in the queues of the keys it is blocked on; leaving them (drop) wakes
/// the waiter after it on each key.
pub struct Registration {
    wakeups: Arc<Wakeups>,
    waiter: Arc<Waiter>,
    keys: Vec<Bytes>,
}

impl Registration {
    /// Resolves when a write of one of the keys reached this waiter (at once if one did since
    /// the last call).
    pub async fn woken(&self) {
        self.waiter.notify.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        {
            let mut inner = self.wakeups.inner.lock();
            for key in &self.keys {
                if let Some(queue) = inner.local.get_mut(key) {
                    queue.retain(|w| w.id != self.waiter.id);
                    if queue.is_empty() {
                        inner.local.remove(key);
                    }
                }
            }
            self.wakeups.watched.store(inner.count(), Ordering::Release);
        }
        self.wakeups.wake_first(&self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_write_wakes_the_first_waiter_and_leaving_wakes_the_next() {
        let w = Arc::new(Wakeups::new());
        let first = w.register(&[key("a")]);
        let second = w.register(&[key("a"), key("b")]);
        w.touched(b"a");
        assert!(first.woken().now_or_never().is_some(), "the first waiter is woken");
        assert!(second.woken().now_or_never().is_none(), "the second is not");
        w.touched(b"b");
        assert!(second.woken().now_or_never().is_some(), "first on b");
        w.touched(b"a");
        drop(first);
        assert!(second.woken().now_or_never().is_some(), "leaving passes the wake-up on");
        drop(second);
        assert_eq!(w.watched.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_watching_node_is_told_once() {
        let w = Wakeups::new();
        let mut outbox = w.outbox().unwrap();
        assert!(w.watch(key("k"), Arc::from("n2")));
        assert!(w.watch(key("k"), Arc::from("n2")));
        assert!(w.watch(key("k"), Arc::from("n3")));
        w.touched(b"k");
        w.touched(b"k");
        let mut told = Vec::new();
        while let Ok((node, k)) = outbox.try_recv() {
            assert_eq!(k, key("k"));
            told.push(node);
        }
        told.sort();
        assert_eq!(told, vec![Arc::<str>::from("n2"), Arc::from("n3")]);
        assert_eq!(w.watched.load(Ordering::Acquire), 0);
    }
}
