//! Where a script runs, and what it holds there (issue 22).
//!
//! A script with keys runs at the **deciding owner of its first key**, the node that decides
//! that key's read-modify-writes (the first owner that is up; a stand-in when none is:
//! [`Coordinator::deciders`]). Keys of one hash tag share a preference list, so all of a
//! script's keys of one tag have that decider. There it holds every key it declares
//! ([`KeyLocks::hold`], exclusively, for the whole run), and every read-modify-write decided
//! there waits for the key it changes ([`KeyLocks::shared`]), so no other script and no
//! read-modify-write of those keys lands between two of its calls: a script over keys of one
//! partition is atomic as in Redis, also across nodes (a plain write coordinated by another
//! owner is not held up: it is a concurrent write, as anywhere in kura).
//!
//! Scripts never wait for holds once they run: the calls a script makes skip the holds (the
//! task runs [`in_script`], and a forwarded read-modify-write carries `from_script`), so two
//! scripts whose keys cross partitions cannot wait for each other (they are not atomic
//! across partitions, which is documented); only starting a script waits, for every key at
//! once, in a fixed order.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{CoordError, Coordinator, Result};
use crate::cluster::ClusterError;
use crate::peer::{RemoteError, Request, Response, WireReply};
use crate::ring::NodeId;

/// Stripes of the holds (a key holds its stripe: two keys of one stripe wait for each other).
const STRIPES: usize = 4096;

tokio::task_local! {
    static IN_SCRIPT: ();
}

/// Runs `f` as a script's task: the read-modify-writes it makes do not wait for holds.
pub async fn in_script<F: Future>(f: F) -> F::Output {
    IN_SCRIPT.scope((), f).await
}

/// Whether the current task runs a script.
pub fn is_script() -> bool {
    IN_SCRIPT.try_with(|_| ()).is_ok()
}

/// The holds scripts take on keys at their deciding owner.
pub struct KeyLocks {
    stripes: Box<[RwLock<()>]>,
}

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks { stripes: (0..STRIPES).map(|_| RwLock::new(())).collect() }
    }
}

/// What a script holds while it runs.
pub struct Held<'a> {
    _guards: Vec<RwLockWriteGuard<'a, ()>>,
}

fn stripe(key: &[u8]) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key) % STRIPES as u64) as usize
}

impl KeyLocks {
    /// Holds `keys` (stored keys) exclusively, all at once, in stripe order; waits for the
    /// scripts and read-modify-writes that hold or use them now.
    pub async fn hold(&self, keys: &[Bytes]) -> Held<'_> {
        let mut stripes: Vec<usize> = keys.iter().map(|k| stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.stripes[s].write().await);
        }
        Held { _guards: guards }
    }

    /// Waits until no script holds `key` (a read-modify-write decided here, not a script's),
    /// at most until `deadline`; `None` for a script's own call, which never waits.
    ///
    /// # Errors
    /// [`CoordError::Busy`] at the deadline.
    pub async fn shared(&self, key: &[u8], deadline: tokio::time::Instant) -> Result<Option<RwLockReadGuard<'_, ()>>> {
        if is_script() {
            return Ok(None);
        }
        match tokio::time::timeout_at(deadline, self.stripes[stripe(key)].read()).await {
            Ok(guard) => Ok(Some(guard)),
            Err(_) => Err(CoordError::Busy),
        }
    }
}

/// What a forwarded script came to.
#[derive(Debug)]
pub enum ScriptForward {
    /// The reply of the node it ran at.
    Reply(WireReply),
    /// It certainly never reached that node: the next decider may run it.
    NotSent,
}

/// How often a forward checks that the node running the script is still up.
const CHECK_EVERY: Duration = Duration::from_millis(250);

impl Coordinator {
    /// The nodes that decide `key` now, in order: its owners that are up (in preference
    /// order), then the stand-ins for those that are down. Read-modify-writes and scripts go
    /// to the first (the next only when the first certainly never got the request).
    pub fn deciders(&self, key: &[u8]) -> Vec<NodeId> {
        let (_, targets) = self.targets(key);
        let owners = targets.iter().filter(|t| t.hint_for.is_none());
        let standins = targets.iter().filter(|t| t.hint_for.is_some());
        owners.chain(standins).map(|t| t.node.clone()).collect()
    }

    /// Whether `node` is this node.
    pub fn is_me(&self, node: &str) -> bool {
        node == self.me()
    }

    /// The holds scripts take at this node.
    pub fn key_locks(&self) -> &KeyLocks {
        &self.key_locks
    }

    /// Sends a script (`Request::Script`, the client's request) or a transaction
    /// (`Request::Transaction`) to `node` to run, and waits for its reply for as long as it
    /// runs (a script has no deadline: it runs until it ends or is killed), while `node` is up.
    ///
    /// # Errors
    /// `Unanswered` when it was sent and no reply came (the node went down, or the connection
    /// closed): it may have run.
    pub async fn forward_script(&self, node: &str, request: Request) -> Result<ScriptForward> {
        let call = self.cluster.call_within(node, request, Duration::from_secs(24 * 3600));
        tokio::pin!(call);
        let answer = loop {
            tokio::select! {
                answer = &mut call => break answer,
                _ = tokio::time::sleep(CHECK_EVERY) => {
                    if !self.peers.is_up(node) {
                        return Err(unanswered(node, "the node went down while the script ran".into()));
                    }
                }
            }
        };
        match answer {
            Ok(Response::Script(reply)) => Ok(ScriptForward::Reply(reply)),
            Ok(other) => Err(unanswered(node, format!("unexpected response {other:?}"))),
            Err(e) if e.not_sent() => Ok(ScriptForward::NotSent),
            Err(ClusterError::Remote { error: RemoteError::NotReady, .. }) => Ok(ScriptForward::NotSent),
            Err(e) => Err(unanswered(node, e.to_string())),
        }
    }

    /// Sends SCRIPT KILL (or FUNCTION KILL) to `node`, which runs a script forwarded from here.
    ///
    /// # Errors
    /// The node did not answer.
    pub async fn kill_script_at(&self, node: &str, functions: bool) -> Result<WireReply> {
        match self.cluster.call(node, Request::ScriptKill { functions }).await? {
            Response::Script(reply) => Ok(reply),
            other => Err(unanswered(node, format!("unexpected response {other:?}"))),
        }
    }
}

fn unanswered(peer: &str, reason: String) -> CoordError {
    CoordError::ScriptUnanswered { peer: peer.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read-modify-write waits for a key a script holds, until its deadline (BUSY); a
    /// script's own calls and other keys do not wait.
    #[tokio::test(start_paused = true)]
    async fn read_modify_writes_wait_for_the_keys_a_script_holds() {
        let locks = KeyLocks::default();
        let held = locks.hold(&[Bytes::from_static(b"{t}a"), Bytes::from_static(b"{t}b")]).await;
        let soon = tokio::time::Instant::now() + Duration::from_millis(100);
        assert!(matches!(locks.shared(b"{t}a", soon).await, Err(CoordError::Busy)));
        let other = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| stripe(k.as_bytes()) != stripe(b"{t}a") && stripe(k.as_bytes()) != stripe(b"{t}b"));
        let other = other.expect("a key of another stripe");
        assert!(locks.shared(other.as_bytes(), soon).await.expect("free").is_some());
        assert!(in_script(async { locks.shared(b"{t}a", soon).await }).await.expect("a script's call").is_none());
        drop(held);
        assert!(locks.shared(b"{t}a", soon + Duration::from_secs(1)).await.expect("free").is_some());
    }
}
