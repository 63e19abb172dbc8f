//! Reaping (design.md section 2): keys whose every sibling is deleted or expired are removed
//! once every replica holds the same dead set as its data and no node holds a hint of the key
//! (one could bring back what the tombstone deleted).

use bytes::Bytes;

use super::{Coordinator, Result};
use crate::clock::now_ms;
use crate::metrics as m;
use crate::peer::{Request, Response};
use crate::ring::NodeId;
use crate::version::SiblingSet;

/// Keys looked at per reaper round at most (the rest stay due for the next).
const REAP_BATCH: usize = 10_000;
/// Keys reaped between two asks of the admission gate (the foreground comes first).
const GATE_EVERY: usize = 256;

impl Coordinator {
    /// Removes keys whose every sibling is a tombstone or expired since at least `grace_ms`
    /// (design.md section 2). On one node that is all. In a cluster a key goes only when every
    /// replica of it is up and holds the same set (or none): then this node drops its copy and
    /// tells the others to drop theirs if unchanged, so anti-entropy never finds an old value
    /// on one replica with nothing on the others to resurrect it from.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn reap_dead(&self, grace_ms: u64) -> Result<u64> {
        let now = now_ms();
        let settled = |s: &SiblingSet| {
            s.is_dead(now)
                && s.siblings().all(|sib| {
                    let holds = sib.value.as_ref().is_some_and(crate::version::Value::exists);
                    let dead_since = sib.expires_ms.filter(|_| holds).unwrap_or(sib.written_ms);
                    dead_since.saturating_add(grace_ms) <= now
                })
        };
        // Only the keys the reap index says died at least `grace_ms` ago (`storage/expiry.rs`):
        // the cost is what died, not what is stored. A key taken too early (a stale entry) is
        // put back at the time its stored set dies, if it ever does (a write meanwhile may
        // have indexed it already: that entry stays).
        let storage = self.replica.storage();
        let due = storage.take_due(now.saturating_sub(grace_ms), REAP_BATCH);
        let single = self.cluster.view().single(self.me());
        let (mut reaped, mut failed) = (0, None);
        let mut gate = self.replica.admission().gate();
        for (i, k) in due.into_iter().enumerate() {
            if i % GATE_EVERY == 0 {
                gate.admit().await;
            }
            let set = match storage.get(&k) {
                Ok(Some(set)) => set,
                Ok(None) => continue,
                Err(e) => {
                    // Tried again next round.
                    storage.due_again(&k, now.saturating_sub(grace_ms));
                    failed = Some(e);
                    continue;
                }
            };
            if !settled(&set) {
                if let Some(at) = crate::storage::dead_at(&set) {
                    storage.due_again(&k, at);
                }
                continue;
            }
            let done = if single {
                self.replica.remove_if(&k, settled).map_err(Into::into)
            } else {
                self.reap_everywhere(&k, &settled).await
            };
            match done {
                Ok(true) => reaped += 1,
                Ok(false) if single => {}
                other => {
                    metrics::counter!(m::REAP_DEFERRED_TOTAL).increment(1);
                    if let Some(at) = crate::storage::dead_at(&set) {
                        storage.due_again(&k, at);
                    }
                    if let Err(e) = other {
                        tracing::debug!("reaping a key failed, tried again later: {e}");
                    }
                }
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(reaped),
        }
    }

    /// Drops `key` here and on its other replicas if every replica holds the same dead set.
    ///
    /// Every other member is asked too, not only the replicas (a leaving one included): a stand-in may
    /// hold a hint of a value the tombstone superseded, and delivered after the reaping that
    /// value would come back to life. While any node that could hold such a hint is down,
    /// holds something else or holds a hint of the key at all, the tombstone stays (it is
    /// tried again later, after hinted handoff has delivered the hint).
    async fn reap_everywhere(&self, key: &[u8], settled: &(dyn Fn(&SiblingSet) -> bool + Sync)) -> Result<bool> {
        // The stored digest (none when a flush this node knows of cuts the copy: tried again
        // once the purge has rewritten it), which the others' stored copies are compared with.
        let (Some(mine), Some(stored)) = self.replica.storage().get_with_digest(key)? else { return Ok(false) };
        if !self.replica.storage().hints_of(key)?.is_empty() {
            tracing::debug!("not reaping a key this node holds a hint of");
            return Ok(false);
        }
        let view = self.cluster.view();
        if view.state.as_ref().is_none_or(|s| s.ring.in_transition()) {
            tracing::debug!("not reaping during a ring transition");
            return Ok(false);
        }
        let prefs = view.preference_list(key);
        // Every member, not only the ring walk: a leaving member holds its place while it has
        // hints (`Member::holds_hints`), and one of them may be a hint of this key.
        let members: Vec<NodeId> = view
            .state
            .as_ref()
            .map(|s| s.live_members().map(|m| m.id.clone()).filter(|id| id != self.me()).collect())
            .unwrap_or_default();
        drop(view);
        let others: Vec<&NodeId> = prefs.iter().filter(|n| *n != self.me()).collect();
        let everyone: Vec<&NodeId> = members.iter().collect();
        if let Some(down) = everyone.iter().find(|n| !self.peers.is_up(n)) {
            tracing::debug!(node = %down, "not reaping while a node that may hold a copy is down");
            return Ok(false);
        }
        let key = Bytes::copy_from_slice(key);
        // Each node must hold exactly this set as its data and no hint of the key, or nothing
        // at all. Not "its copy (data merged with hints) equals this set": a hint of an older
        // version (a stand-in's copy for an owner from before the DEL, kept by a node that
        // has the tombstone as data or in another hint) vanishes in that merge, the tombstone
        // superseding it, yet the reap drops only the owners' data; the hint, delivered
        // afterwards to an owner that has nothing left to supersede it, brings the deleted
        // value back (the nemesis: a re-created counter's round that a SET had observed).
        // `ReadUnlessSame` with `exact` answers `Same` only for a copy that is stored data with
        // this digest and no hint beside it, and the copy otherwise (`None`: it holds nothing).
        let flushed_to = self.replica.storage().flush_cutoff(&key);
        for node in &everyone {
            let read = Request::ReadUnlessSame {
                key: key.clone(),
                digest: stored,
                seen: mine.context(),
                flushed_to,
                exact: true,
            };
            match self.peers.call(node, read).await {
                Ok(Response::Same | Response::Value(None)) => {}
                other => {
                    tracing::debug!(node = %node, "not reaping a key another node holds differently: {other:?}");
                    return Ok(false);
                }
            }
        }
        let digest = crate::storage::digest(&mine.encode());
        if !self.replica.remove_if(&key, |s| *s == *mine && settled(s))? {
            return Ok(false);
        }
        for node in others {
            if let Err(e) = self.peers.call(node, Request::Reap { key: key.clone(), digest }).await {
                tracing::debug!(node = %node, "asking a replica to reap failed: {e}");
            }
        }
        Ok(true)
    }

    /// Another replica reaped `key`: drop this copy too if it is still the set it saw.
    ///
    /// # Errors
    /// Storage failure.
    pub fn reap_replica(&self, key: &[u8], digest: u64) -> Result<()> {
        if self.replica.remove_if(key, |s| crate::storage::digest(&s.encode()) == digest)? {
            metrics::counter!(m::REAPED_KEYS_TOTAL).increment(1);
        }
        Ok(())
    }
}
