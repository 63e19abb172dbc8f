//! **combine**: the read-modify-writes of one key waiting for its decider are decided together
//! (issue 23).
//!
//! The first operation to arrive for a key leads. It takes its own operation and the ones
//! queued behind it (at most [`MAX_BATCH`]), has them decided in one pass, and answers each.
//! On a node alone that pass is one store. In a cluster it is one quorum read, one store and one
//! replication, where each operation used to cost all three.
//!
//! Then the leader hands the lead to the first operation still waiting, or leaves. So a hot
//! key's operations wait as tasks, never as runtime threads blocked on the key's lock, and each
//! leader decides one batch: its own caller waits for nothing else.
//!
//! The pass applies the operations one after another, each seeing the ones before it and made
//! with its own dot (`Replica::modify_many`). So the outcome is the one they would have had one
//! at a time, in the order they arrived.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{CoordError, Result};
use crate::rmw::{Outcome, Rmw};

/// The most operations one pass decides: it bounds the pass's time, its patch and the
/// replication message that carries it.
pub const MAX_BATCH: usize = 128;

/// Stripes of the map of keys being decided.
const SHARDS: usize = 64;

/// An operation waiting for its turn.
struct Waiting {
    op: Rmw,
    deadline: Instant,
    /// Where its answer goes; `None` for the leader's own operation (and for one told to lead).
    turn: Option<oneshot::Sender<Turn>>,
}

/// What a waiting operation is told.
enum Turn {
    Done(Box<Result<Outcome>>),
    /// Lead: its operation is at the front of the queue.
    Lead,
}

/// The keys whose read-modify-writes are being decided, each with the operations queued for it.
pub struct Combiner {
    shards: Box<[Mutex<Queues>]>,
}

/// Each key being decided, with the operations queued for it (the front one leads).
type Queues = HashMap<Bytes, Vec<Waiting>>;

impl Default for Combiner {
    fn default() -> Self {
        Combiner { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

/// What entering the queue of a key came to.
pub enum Entered<'a> {
    /// Another leader decided the operation: its outcome.
    Done(Result<Outcome>),
    /// This caller leads: it takes the batch, has it decided and answers it.
    Lead(Lead<'a>),
}

impl Combiner {
    fn shard(&self, key: &[u8]) -> &Mutex<Queues> {
        &self.shards[xxhash_rust::xxh3::xxh3_64(key) as usize % SHARDS]
    }

    /// Queues `op` on `key`; returns its outcome once a leader decided it, or the lead.
    pub async fn enter(&self, key: &[u8], op: Rmw, deadline: Instant) -> Entered<'_> {
        let rx = {
            let mut shard = self.shard(key).lock();
            match shard.get_mut(key) {
                Some(queue) => {
                    let (tx, rx) = oneshot::channel();
                    queue.push(Waiting { op, deadline, turn: Some(tx) });
                    rx
                }
                None => {
                    let key = Bytes::copy_from_slice(key);
                    shard.insert(key.clone(), vec![Waiting { op, deadline, turn: None }]);
                    return Entered::Lead(Lead { combiner: self, key, answers: Vec::new() });
                }
            }
        };
        match rx.await {
            Ok(Turn::Done(outcome)) => Entered::Done(*outcome),
            Ok(Turn::Lead) => {
                Entered::Lead(Lead { combiner: self, key: Bytes::copy_from_slice(key), answers: Vec::new() })
            }
            // The leader was cancelled (its caller went away) while it decided this one.
            Err(_) => Entered::Done(Err(CoordError::Cancelled)),
        }
    }

    /// The operations queued on `key` (the leader's own included).
    #[cfg(test)]
    fn queued(&self, key: &[u8]) -> usize {
        self.shard(key).lock().get(key).map_or(0, Vec::len)
    }
}

/// The lead of a key: [`Lead::take`] the batch, decide it, [`Lead::answer`] it. Dropped, it
/// hands the lead on (a cancelled leader leaves no key stuck).
pub struct Lead<'a> {
    combiner: &'a Combiner,
    key: Bytes,
    /// Where the answers of the batch taken go, in its order (`None`: the leader's own).
    answers: Vec<Option<oneshot::Sender<Turn>>>,
}

impl Lead<'_> {
    /// Takes the batch: the leader's own operation first, then those queued behind it, each
    /// with its deadline.
    pub fn take(&mut self) -> Vec<(Rmw, Instant)> {
        let mut shard = self.combiner.shard(&self.key).lock();
        let Some(queue) = shard.get_mut(&self.key) else { return Vec::new() };
        let n = queue.len().min(MAX_BATCH);
        let mut batch = Vec::with_capacity(n);
        for w in queue.drain(..n) {
            self.answers.push(w.turn);
            batch.push((w.op, w.deadline));
        }
        batch
    }

    /// Answers the batch taken with `outcomes` (in its order); returns the leader's own.
    pub fn answer(mut self, outcomes: Vec<Result<Outcome>>) -> Result<Outcome> {
        let mut own = Err(CoordError::Cancelled);
        for (turn, outcome) in std::mem::take(&mut self.answers).into_iter().zip(outcomes) {
            match turn {
                // A waiter that went away is not told (what it asked for was decided).
                Some(turn) => drop(turn.send(Turn::Done(Box::new(outcome)))),
                None => own = outcome,
            }
        }
        own
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut shard = self.combiner.shard(&self.key).lock();
        let Some(queue) = shard.get_mut(&self.key) else { return };
        // The next still waiting leads; one whose caller went away is dropped undecided.
        while let Some(first) = queue.first_mut() {
            match first.turn.take().map(|turn| turn.send(Turn::Lead)) {
                Some(Ok(())) => return,
                _ => {
                    queue.remove(0);
                }
            }
        }
        shard.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rmw::Rmw;
    use std::time::Duration;

    fn op(n: i64) -> Rmw {
        Rmw::IncrBy { by: n }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Issue 23: operations queued behind a leader are decided in its batch, in the order they
    /// arrived, each answered with its own outcome; then the key is free.
    #[tokio::test]
    async fn the_queued_operations_are_decided_in_one_batch_in_order() {
        let c = Combiner::default();
        let Entered::Lead(mut lead) = c.enter(b"k", op(1), later()).await else { panic!("the first leads") };
        let waiting: Vec<_> = (2..=4)
            .map(|n| {
                let c = &c;
                async move {
                    match c.enter(b"k", op(n), later()).await {
                        Entered::Done(outcome) => outcome,
                        Entered::Lead(_) => panic!("{n} was queued"),
                    }
                }
            })
            .collect();
        let waiting = futures::future::join_all(waiting);
        tokio::pin!(waiting);
        // Let them queue.
        assert!(futures::poll!(&mut waiting).is_pending());
        assert_eq!(c.queued(b"k"), 4);
        let batch = lead.take();
        let ns: Vec<i64> = batch
            .iter()
            .map(|(op, _)| match op {
                Rmw::IncrBy { by } => *by,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ns, [1, 2, 3, 4]);
        let outcomes = ns.iter().map(|n| Ok(Outcome { len: *n as u64, ..Outcome::default() })).collect();
        assert_eq!(lead.answer(outcomes).expect("own").len, 1);
        let answers = waiting.await;
        let lens: Vec<u64> = answers.into_iter().map(|a| a.expect("answered").len).collect();
        assert_eq!(lens, [2, 3, 4]);
        assert_eq!(c.queued(b"k"), 0, "the key is left");
    }

    /// A leader hands the lead to the first still waiting when it is done (or cancelled), and
    /// skips one that went away; a batch holds at most `MAX_BATCH`.
    #[tokio::test]
    async fn the_lead_passes_to_the_next_waiting() {
        // Polled by hand, many times in one turn: outside tokio's cooperative budget.
        tokio::task::unconstrained(async {
            let c = Combiner::default();
            let Entered::Lead(mut first) = c.enter(b"k", op(0), later()).await else { panic!("the first leads") };
            let mut told = Box::pin(c.enter(b"k", op(100), later()));
            assert!(futures::poll!(&mut told).is_pending());
            assert_eq!(first.take().len(), 2);
            // One that will go away, then MAX_BATCH + 1 more.
            let mut gone = Box::pin(c.enter(b"k", op(-1), later()));
            assert!(futures::poll!(&mut gone).is_pending());
            let mut next = Box::pin(c.enter(b"k", op(1), later()));
            assert!(futures::poll!(&mut next).is_pending());
            let mut rest: Vec<_> =
                (2..=MAX_BATCH as i64 + 1).map(|n| Box::pin(c.enter(b"k", op(n), later()))).collect();
            for f in &mut rest {
                assert!(futures::poll!(f).is_pending());
            }
            drop(gone);
            // Cancelled before it answered: its batch is told so, the lead passes on.
            drop(first);
            assert!(matches!(told.await, Entered::Done(Err(CoordError::Cancelled))));
            let Entered::Lead(mut second) = next.await else { panic!("the next waiting leads") };
            let batch = second.take();
            assert_eq!(batch.len(), MAX_BATCH, "at most MAX_BATCH in a batch");
            assert!(matches!(batch[0].0, Rmw::IncrBy { by: 1 }), "its own first");
            drop(second.answer(batch.iter().map(|_| Ok(Outcome::default())).collect()));
            // The one left over leads next, alone.
            let mut left: Vec<_> = Vec::new();
            for mut f in rest {
                match futures::poll!(&mut f) {
                    std::task::Poll::Ready(Entered::Done(r)) => assert!(r.is_ok()),
                    std::task::Poll::Ready(Entered::Lead(l)) => left.push(l),
                    std::task::Poll::Pending => panic!("every one is answered or leads"),
                }
            }
            assert_eq!(left.len(), 1);
            let mut last = left.pop().expect("one leads");
            assert_eq!(last.take().len(), 1);
            drop(last);
            assert_eq!(c.queued(b"k"), 0);
        })
        .await
    }
}
