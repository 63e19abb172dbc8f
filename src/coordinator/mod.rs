//! The coordinator: the only path from commands to storage (paper sections 4.5 and 4.6).
//!
//! A get asks the key's replicas and answers after R of them, merging their sibling sets; a put
//! makes the new version at the coordinator (a new dot of this node's actor), stores it locally
//! and sends it to the other replicas, answering after W acknowledgements. On a single node the
//! replica set is this node alone and N = R = W = 1; the cluster issue plugs peers into
//! [`Coordinator::replicas`].

pub mod quorum;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::storage::{Storage, StorageError};
use crate::version::{Actor, Context, ContextError, ContextKey, Sibling, SiblingSet, VersionVector};
use quorum::{Progress, Quorum, QuorumError, Tally};

#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Fewer than R (or W) replicas answered in time.
    #[error("{op} needed {needed} replicas, {got} answered")]
    NoQuorum { op: &'static str, needed: usize, got: usize },
}

pub type Result<T> = std::result::Result<T, CoordError>;

/// Who this node is.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    pub node_id: String,
    /// This incarnation's actor: every write this node coordinates is an event of it.
    pub actor: Actor,
}

/// What a write replaces.
#[derive(Clone, Debug)]
pub enum WriteContext {
    /// Exactly the versions this context covers (DPUT, DDEL).
    Given(VersionVector),
    /// Every version the coordinating replica holds (plain SET and DEL).
    Everything,
}

/// The new sibling of a write.
#[derive(Clone, Debug)]
pub struct Write {
    /// `None` writes a tombstone.
    pub value: Option<Bytes>,
    pub expires_ms: Option<u64>,
}

/// One member of a key's replica set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replica {
    Local,
}

pub struct Coordinator {
    storage: Arc<Storage>,
    identity: NodeIdentity,
    context_key: ContextKey,
    quorum: Quorum,
    /// Keys that may become reapable (tombstones and values with an expiry written, or left
    /// unreaped by the last walk); the reaper skips its walk while this is zero. Starts at 1
    /// so the first walk looks at what an earlier run left.
    reap_pending: AtomicU64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Coordinator {
    pub fn new(storage: Arc<Storage>, identity: NodeIdentity, context_key: ContextKey, quorum: Quorum) -> Self {
        Coordinator { storage, identity, context_key, quorum, reap_pending: AtomicU64::new(1) }
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    pub fn configured_quorum(&self) -> Quorum {
        self.quorum
    }

    /// The replica set of `key`, in preference order.
    pub fn replicas(&self, _key: &[u8]) -> Vec<Replica> {
        vec![Replica::Local]
    }

    /// Number of members that can hold replicas.
    pub fn members(&self) -> usize {
        1
    }

    /// Encodes a version vector as a client context.
    pub fn encode_context(&self, vv: &VersionVector) -> String {
        Context::encode(vv, &self.context_key)
    }

    /// Parses a client context.
    ///
    /// # Errors
    /// A context that is corrupt, forged or from another cluster.
    pub fn decode_context(&self, text: &[u8]) -> Result<VersionVector> {
        Ok(Context::decode(text, &self.context_key)?)
    }

    /// Reads `key` at quorum R (the configured one unless `r` overrides it) and returns the
    /// merged sibling set of the replicas that answered (empty if the key is missing).
    ///
    /// # Errors
    /// An R out of range, storage failure, or fewer than R answers.
    pub async fn get(&self, key: &[u8], r: Option<usize>) -> Result<Arc<SiblingSet>> {
        let q = Quorum::resolve(self.quorum, self.members(), r, None)?;
        let replicas = self.replicas(key);
        let mut tally = Tally::new(q.r, replicas.len());
        let mut merged: Option<Arc<SiblingSet>> = None;
        for replica in &replicas {
            match replica {
                Replica::Local => match self.storage.get(key) {
                    Ok(found) => {
                        if let Some(set) = found {
                            merged = Some(match merged {
                                None => set,
                                Some(m) => Arc::new(m.sync(&set)),
                            });
                        }
                        tally.success();
                    }
                    Err(e) => {
                        tracing::warn!("local read of a key failed: {e}");
                        if tally.failure() == Progress::Failed {
                            return Err(e.into());
                        }
                    }
                },
            }
        }
        match tally.progress() {
            Progress::Met => Ok(merged.unwrap_or_default()),
            _ => Err(CoordError::NoQuorum { op: "read", needed: q.r, got: tally.successes() }),
        }
    }

    /// Writes `write` to `key` superseding what `context` covers, at quorum W. Returns the
    /// sibling set after the write at the coordinator.
    ///
    /// # Errors
    /// A W out of range, storage failure, or fewer than W acknowledgements (the write may
    /// still have landed on fewer replicas).
    pub async fn put(
        &self,
        key: &[u8],
        context: WriteContext,
        write: Write,
        w: Option<usize>,
    ) -> Result<Arc<SiblingSet>> {
        let q = Quorum::resolve(self.quorum, self.members(), None, w)?;
        let replicas = self.replicas(key);
        let mut tally = Tally::new(q.w, replicas.len());
        if write.value.is_none() || write.expires_ms.is_some() {
            self.reap_pending.fetch_add(1, Ordering::Relaxed);
        }
        let sibling = Sibling {
            value: write.value,
            written_ms: now_ms(),
            origin: self.identity.actor,
            expires_ms: write.expires_ms,
        };
        // The new version is made where it is first stored: at this node, under the key's lock.
        let written = self.storage.update::<CoordError>(key, |current| {
            let empty = SiblingSet::new();
            let current = current.unwrap_or(&empty);
            let ctx = match &context {
                WriteContext::Given(vv) => vv.clone(),
                WriteContext::Everything => current.context(),
            };
            Ok(current.update(&ctx, sibling).0)
        })?;
        tally.success();
        match tally.progress() {
            Progress::Met => Ok(written),
            _ => Err(CoordError::NoQuorum { op: "write", needed: q.w, got: tally.successes() }),
        }
    }

    /// A mark covering every write made so far (see [`Storage::write_mark`]).
    pub fn write_mark(&self) -> u64 {
        self.storage.write_mark()
    }

    /// Makes the writes up to `mark` durable; the server calls it before it sends the replies
    /// that acknowledge them. Lets other connections add their writes to the same flush first.
    ///
    /// # Errors
    /// Storage failure: the batch's writes must not be acknowledged.
    pub async fn commit(&self, mark: u64) -> Result<()> {
        if self.storage.is_committed(mark) {
            return Ok(());
        }
        // Like Redis's beforeSleep: every connection that is ready runs its batch first, and one
        // journal flush then covers all their writes.
        tokio::task::yield_now().await;
        Ok(self.storage.commit_upto(mark)?)
    }

    /// Counts the keys that read as a value now (DBSIZE). Walks the local store.
    ///
    /// # Errors
    /// Storage failure.
    pub fn count_live_keys(&self) -> Result<u64> {
        let now = now_ms();
        let mut n = 0;
        self.storage.for_each(|_, set| {
            if matches!(set, Ok(s) if s.get(now).is_some()) {
                n += 1;
            }
        })?;
        Ok(n)
    }

    /// Removes keys whose every sibling is a tombstone or expired since at least `grace_ms`.
    /// On one node every replica has them, so they can go (design.md section 2).
    ///
    /// # Errors
    /// Storage failure.
    pub fn reap_dead(&self, grace_ms: u64) -> Result<u64> {
        if self.members() > 1 {
            // With replicas elsewhere a tombstone may only go once every replica has it; that
            // needs anti-entropy's view of the replicas, which this node alone does not have.
            return Ok(0);
        }
        let now = now_ms();
        let settled = |s: &SiblingSet| {
            s.is_dead(now)
                && s.siblings().all(|sib| {
                    let dead_since = sib.expires_ms.filter(|_| sib.value.is_some()).unwrap_or(sib.written_ms);
                    dead_since.saturating_add(grace_ms) <= now
                })
        };
        if self.reap_pending.swap(0, Ordering::AcqRel) == 0 {
            return Ok(0);
        }
        let mut candidates = Vec::new();
        let mut later = 0;
        let walked = self.storage.for_each(|k, set| match &set {
            Ok(s) if settled(s) => candidates.push(k.to_vec()),
            Ok(s) if s.is_dead(now) || s.siblings().any(|sib| sib.expires_ms.is_some()) => later += 1,
            _ => {}
        });
        self.reap_pending.fetch_add(later + u64::from(walked.is_err()), Ordering::AcqRel);
        walked?;
        let mut reaped = 0;
        for k in candidates {
            if self.storage.remove_if(&k, settled)? {
                reaped += 1;
            }
        }
        Ok(reaped)
    }
}
