//! **modify**: a read-modify-write (SET NX/XX/GET, GETDEL, APPEND, EXPIRE ...; see `rmw.rs`)
//! evaluated under the key's lock at ONE node: the key's first owner that is up. On a single
//! node that makes it exactly as atomic as Redis. In a cluster every such operation on a key
//! meets at that owner while it is up; it first merges a quorum read into its copy (so it
//! sees what other coordinators wrote), decides, and replicates the result like a put.
//! A forward is sent once, never hedged or re-sent elsewhere: it may have been applied. Only a
//! forward that certainly never reached its decider (the connection failed before it was sent)
//! or that it refused unapplied (its disk is in trouble: `RemoteError::DiskRefused`) goes to
//! the next owner. A forward that may have been applied and got no outcome (the
//! decider missed W, the connection dropped after sending, no answer in time) answers
//! `NoQuorum`/`Unanswered`, "may have been applied", never an error a client would retry on.
//! When no owner is up the first node of the ring walk that is up (a stand-in) decides.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::combine::Entered;
use super::quorum::{Quorum, Target};
use super::{CoordError, Coordinator, Result};
use crate::cluster::ClusterError;
use crate::metrics as m;
use crate::peer::{RemoteError, Request, Response};
use crate::replica::Batch;
use crate::rmw::{Outcome, Rmw};

/// What a decider keeps of a forwarded request's time for its answer to travel back (at most
/// a quarter of it): its NOQUORUM then reaches the sender before the sender gives up.
const REPLY_MARGIN: Duration = Duration::from_millis(100);

/// What a forward of a read-modify-write came to. (Built once per forward and matched at
/// once: the size of the answer's variant costs nothing worth a box.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Forwarded {
    /// The decider's answer: its outcome, or its error (its NOQUORUM stays NOQUORUM), or no
    /// answer to a request it may have applied.
    Answer(Result<Outcome>),
    /// The request certainly never reached the decider: the next owner may decide.
    NotSent,
}

/// Reads a forward's outcome (`peer` is the decider it went to).
fn forwarded(peer: &str, answer: std::result::Result<Response, ClusterError>) -> Forwarded {
    let unanswered = |reason: String| Forwarded::Answer(Err(CoordError::Unanswered { peer: peer.to_owned(), reason }));
    match answer {
        Ok(Response::Modified(outcome)) => Forwarded::Answer(Ok(outcome)),
        Ok(other) => unanswered(format!("unexpected response {other:?}")),
        Err(ClusterError::Remote { error: RemoteError::Rmw(e), .. }) => Forwarded::Answer(Err(CoordError::Rmw(e))),
        Err(ClusterError::Remote { error: RemoteError::Busy, .. }) => Forwarded::Answer(Err(CoordError::Busy)),
        Err(ClusterError::Remote { error: RemoteError::NoQuorum { op, needed, got }, .. }) => {
            let op = if op == "read" { "read" } else { "write" };
            Forwarded::Answer(Err(CoordError::NoQuorum { op, needed, got }))
        }
        // Refused unapplied by a decider whose disk is in trouble: as if it never got it.
        Err(e) if e.not_sent() || e.is_disk_refused() => Forwarded::NotSent,
        // Refused there unapplied (arrived after its deadline, the node not ready ...).
        Err(e @ ClusterError::Remote { .. }) => Forwarded::Answer(Err(CoordError::Cluster(e))),
        // Sent, and then no answer: a timeout, the connection closed while waiting.
        Err(e) => unanswered(e.to_string()),
    }
}

impl Coordinator {
    /// Runs `op` on `key` at the key's first reachable owner; returns what its reply is made
    /// of once the write (if it made one) has W copies.
    ///
    /// # Errors
    /// The operation's own error, storage failure, or fewer than R answers to the read or W
    /// to the write in time (`NoQuorum`: the operation may have been applied; `Unanswered`
    /// when the decider it was forwarded to did not answer).
    pub async fn modify(&self, key: &[u8], op: Rmw) -> Result<Outcome> {
        let deadline = tokio::time::Instant::now() + self.cluster.settings().timeout;
        self.modify_as(key, op, false, deadline).await
    }

    /// A read-modify-write another node forwarded here: run it here, within `budget` (what is
    /// left of the client's request at the sender), answering a little before it runs out.
    /// `from_script`: a script's call, which does not wait for the keys scripts hold here.
    pub async fn modify_forwarded(&self, key: &[u8], op: Rmw, budget: Duration, from_script: bool) -> Result<Outcome> {
        let budget = budget.min(self.cluster.settings().timeout);
        let deadline = tokio::time::Instant::now() + budget.saturating_sub(REPLY_MARGIN.min(budget / 4));
        if from_script {
            return super::scripts::in_script(self.modify_as(key, op, true, deadline)).await;
        }
        self.modify_as(key, op, true, deadline).await
    }

    /// Sends `op` to `node` to decide, once, and waits for it until `deadline`.
    async fn forward_modify(&self, node: &str, key: &[u8], op: &Rmw, deadline: tokio::time::Instant) -> Forwarded {
        let deadline_ms = crate::peer::deadline_ms(deadline);
        let from_script = super::scripts::is_script();
        let req = Request::Modify { key: bytes::Bytes::copy_from_slice(key), op: op.clone(), deadline_ms, from_script };
        match tokio::time::timeout_at(deadline, self.peers.call(node, req)).await {
            Ok(answer) => forwarded(node, answer),
            Err(_) => Forwarded::Answer(Err(CoordError::Unanswered {
                peer: node.to_owned(),
                reason: "no answer within the request timeout".to_owned(),
            })),
        }
    }

    async fn modify_as(&self, key: &[u8], op: Rmw, forwarded: bool, deadline: tokio::time::Instant) -> Result<Outcome> {
        if self.cluster.view().single(self.me()) {
            return self.combined(key, op, deadline, &Deciding::Alone).await;
        }
        let (prefs, targets) = self.targets(key);
        if prefs.is_empty() {
            return Err(CoordError::NotReady);
        }
        let q = Quorum::resolve(self.quorum, prefs.len(), None, None)?;
        let here = || Target {
            node: self.me().to_owned(),
            hint_for: (!prefs.iter().any(|p| p == self.me())).then(|| prefs[0].clone()),
        };
        // The decider: the first owner that is up, else the first stand-in. A forward that
        // certainly never reached it goes to the next one; any other outcome is the answer.
        let deciders =
            targets.iter().filter(|t| t.hint_for.is_none()).chain(targets.iter().filter(|t| t.hint_for.is_some()));
        let role = if forwarded {
            deciders.take(1).find(|t| t.node == self.me()).cloned().unwrap_or_else(here)
        } else {
            let mut role = None;
            for t in deciders {
                if t.node == self.me() {
                    role = Some(t.clone());
                    break;
                }
                match self.forward_modify(&t.node, key, &op, deadline).await {
                    Forwarded::Answer(answer) => return answer,
                    Forwarded::NotSent => {
                        tracing::debug!(node = %t.node, "a read-modify-write never reached its decider: the next decides")
                    }
                }
            }
            role.unwrap_or_else(here)
        };
        let deciding = Deciding::Cluster { role, prefs, targets, q };
        self.combined(key, op, deadline, &deciding).await
    }

    /// Decides `op` on `key` here, with the operations on the key queued meanwhile
    /// (`combine.rs`). A script's calls are decided alone: the script holds the key.
    async fn combined(&self, key: &[u8], op: Rmw, deadline: tokio::time::Instant, how: &Deciding) -> Result<Outcome> {
        if super::scripts::is_script() {
            let mut outcomes = self.decide(key, vec![op], deadline, how).await;
            return outcomes.pop().unwrap_or(Err(CoordError::Cancelled));
        }
        let mut lead = match self.combiner.enter(key, op, deadline).await {
            Entered::Done(outcome) => return outcome,
            Entered::Lead(lead) => lead,
        };
        let batch = lead.take();
        // In a cluster an operation whose request ran out of time is not decided (its sender
        // has given up, or will); the pass waits no longer than the earliest deadline left.
        let now = tokio::time::Instant::now();
        let expired = |d: &tokio::time::Instant| matches!(how, Deciding::Cluster { .. }) && *d <= now;
        let deadline = batch.iter().map(|(_, d)| *d).filter(|d| !expired(d)).min().unwrap_or(deadline);
        let mut live = Vec::with_capacity(batch.len());
        let mut gone = Vec::with_capacity(batch.len());
        for (op, d) in batch {
            gone.push(expired(&d));
            if !expired(&d) {
                live.push(op);
            }
        }
        let mut decided = self.decide(key, live, deadline, how).await.into_iter();
        let outcomes = gone
            .into_iter()
            .map(
                |gone| if gone { Err(how.out_of_time()) } else { decided.next().unwrap_or(Err(CoordError::Cancelled)) },
            )
            .collect();
        lead.answer(outcomes)
    }

    /// Decides `ops` on `key` here in one pass: each one's outcome, in order. A failure of
    /// the pass (its quorum read, its store, its replication) is every operation's.
    async fn decide(
        &self,
        key: &[u8],
        ops: Vec<Rmw>,
        deadline: tokio::time::Instant,
        how: &Deciding,
    ) -> Vec<Result<Outcome>> {
        let n = ops.len();
        if n == 0 {
            return Vec::new();
        }
        metrics::counter!(m::RMW_PASSES_TOTAL).increment(1);
        if n > 1 {
            metrics::counter!(m::RMW_COMBINED_TOTAL).increment(n as u64);
        }
        match self.decide_all(key, ops, deadline, how).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let mut outcomes: Vec<_> = (1..n).map(|_| Err(e.copy())).collect();
                outcomes.insert(0, Err(e));
                outcomes
            }
        }
    }

    async fn decide_all(
        &self,
        key: &[u8],
        mut ops: Vec<Rmw>,
        deadline: tokio::time::Instant,
        how: &Deciding,
    ) -> Result<Vec<Result<Outcome>>> {
        let own = |outcomes: Vec<std::result::Result<Outcome, crate::replica::ModifyError>>| -> Vec<Result<Outcome>> {
            outcomes.into_iter().map(|o| o.map_err(CoordError::from)).collect()
        };
        let Deciding::Cluster { role, prefs, targets, q } = how else {
            return Ok(own(self.replica.modify_many(key, &ops, None)?.outcomes));
        };
        // A script running here holds the key: wait for it (not a script's own call).
        let _free = self.key_locks.shared(key, deadline).await?;
        // See what the other coordinators wrote: a quorum read merged into this copy. Replicas
        // holding the version this owner holds answer so by its digest (no set moves).
        let mine = match role.hint_for {
            None => {
                let (set, digest) = self.replica.local_with_digest(key)?;
                digest.map(|d| (set, d))
            }
            Some(_) => None,
        };
        let read = self.get_as(key, None, mine, deadline, super::get::Reader::Decider).await?;
        self.replica.merge(key, &read, role.hint_for.as_deref())?;
        let started = Instant::now();
        // The key's home gives Redis's stream IDs; any other decider its own tagged ones.
        let tag = if prefs[0] == self.me() { 0 } else { crate::version::writer_tag(self.me()) };
        for op in &mut ops {
            op.decided_by(tag);
        }
        let Batch { written, patch, outcomes } = self.replica.modify_many(key, &ops, role.hint_for.as_deref())?;
        let mut outcomes = own(outcomes);
        if let Some(written) = written {
            let patch = patch.map(Arc::new);
            let replicated =
                self.replicate(key, written, patch, true, role.clone(), prefs, targets, q.w, started, deadline).await;
            if let Err(e) = replicated {
                // Each operation saw the write: each shares its failure ("may have been applied").
                for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                    *outcome = Err(e.copy());
                }
            }
        }
        Ok(outcomes)
    }
}

/// Where this node decides a key's read-modify-writes.
enum Deciding {
    /// On a node alone: one store.
    Alone,
    /// As the key's decider in a cluster (`role`: as an owner, or as a stand-in), with the
    /// key's preference list, the nodes it writes to and the quorum.
    Cluster { role: Target, prefs: Arc<[crate::ring::NodeId]>, targets: Vec<Target>, q: Quorum },
}

impl Deciding {
    /// The answer to an operation whose request ran out of time before its turn (nothing
    /// was read for it, nothing written).
    fn out_of_time(&self) -> CoordError {
        let needed = match self {
            Deciding::Cluster { q, .. } => q.r,
            Deciding::Alone => 1,
        };
        CoordError::NoQuorum { op: "read", needed, got: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::RpcError;

    fn rpc(e: RpcError) -> std::result::Result<Response, ClusterError> {
        Err(ClusterError::Rpc(e))
    }

    fn remote(error: RemoteError) -> std::result::Result<Response, ClusterError> {
        Err(ClusterError::Remote { peer: "d".into(), error })
    }

    /// Issue 20 item 9: what a client hears of a forwarded read-modify-write. Only a request
    /// that never left this node may go to the next owner; the decider's NOQUORUM stays one,
    /// and a request sent and then not answered (timed out, or its connection dropped) is
    /// `Unanswered` (NOQUORUM, "may have been applied"), never an error a client retries on.
    #[test]
    fn a_forward_answers_noquorum_unless_it_certainly_never_arrived() {
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for never_sent in [
            rpc(RpcError::Connect { addr, source: refused() }),
            rpc(RpcError::NotSent(addr)),
            Err(ClusterError::UnknownMember("d".into())),
            remote(RemoteError::DiskRefused("No space left on device".into())),
        ] {
            assert!(matches!(forwarded("d", never_sent), Forwarded::NotSent));
        }
        for dropped in [rpc(RpcError::Closed(addr)), rpc(RpcError::Timeout(addr)), Ok(Response::Ack)] {
            match forwarded("d", dropped) {
                Forwarded::Answer(Err(e @ CoordError::Unanswered { .. })) => {
                    assert!(e.to_string().contains("did not answer"), "{e}")
                }
                other => panic!("{other:?}"),
            }
        }
        let missed_w = remote(RemoteError::NoQuorum { op: "write".into(), needed: 3, got: 2 });
        assert!(matches!(
            forwarded("d", missed_w),
            Forwarded::Answer(Err(CoordError::NoQuorum { op: "write", needed: 3, got: 2 }))
        ));
        let wrong_type = remote(RemoteError::Rmw(crate::rmw::RmwError::NotInteger));
        assert!(matches!(forwarded("d", wrong_type), Forwarded::Answer(Err(CoordError::Rmw(_)))));
        // Refused unapplied by the decider: an error of its own.
        assert!(matches!(
            forwarded("d", remote(RemoteError::Expired)),
            Forwarded::Answer(Err(CoordError::Cluster(ClusterError::Remote { .. })))
        ));
    }
}
