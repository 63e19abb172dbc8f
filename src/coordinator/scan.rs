//! **scan**: the live keys of the whole cluster in ring order, behind a stateless cursor (the
//! ring position to go on from; 0 starts and ends a walk). Each partition is asked of every
//! replica that is up and their answers are united, so a key that is on any replica reached
//! is found; a key present for a whole walk is returned at least once, as Redis promises,
//! also across a ring change (partitions are fixed ranges of positions, whoever owns them).
//! Keys whose 64-bit ring prefixes collide may be missed by a walk whose COUNT is not larger
//! than how many share the prefix (2^-64 per pair; 2^-32 per pair of keys of one hash tag,
//! which share their top 32 bits).

use std::collections::BTreeSet;

use bytes::Bytes;

use super::{CoordError, Coordinator, Result};
use crate::clock::now_ms;
use crate::peer::{Request, Response};
use crate::ring;
use crate::storage::LiveKeys;

impl Coordinator {
    /// About `count` live keys from `cursor` on, and the cursor to go on from (0: done).
    ///
    /// # Errors
    /// Storage failure, or no replica of a partition answering.
    pub async fn scan(&self, cursor: u64, count: usize) -> Result<(Vec<Bytes>, u64)> {
        let count = count.max(1);
        if self.cluster.view().single(self.me()) {
            let (keys, next) = self.live_keys(cursor, u64::MAX, count, now_ms()).await?;
            return Ok((keys.into_iter().map(|(_, k)| k).collect(), next.unwrap_or(0)));
        }
        let q = self.cluster.view().partitions();
        let mut out = Vec::new();
        let mut pos = cursor;
        loop {
            let p = ring::partition_of(u128::from(pos) << 64, q);
            let (_, end) = ring::partition_prefix_range(p, q);
            let (keys, next) = self.scan_range(p, pos, end, count - out.len()).await?;
            out.extend(keys);
            pos = match next.or_else(|| end.checked_add(1)) {
                Some(n) => n,
                None => return Ok((out, 0)),
            };
            if out.len() >= count {
                return Ok((out, pos));
            }
        }
    }

    /// This node's live keys in `from..=to` (`Storage::live_keys`), read on the blocking pool:
    /// a walk reads up to 16 records per key it returns (up to 100,000 keys for SCAN's
    /// largest COUNT), and the runtime's workers go on serving other connections meanwhile.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn live_keys(&self, from: u64, to: u64, limit: usize, now: u64) -> Result<LiveKeys> {
        let storage = self.replica.storage().clone();
        Ok(tokio::task::spawn_blocking(move || storage.live_keys(from, to, limit, now)).await??)
    }

    /// The union of partition `p`'s replicas' live keys in `from..=to`: those before the
    /// first point where some replica stopped, and that point.
    async fn scan_range(&self, p: u32, from: u64, to: u64, limit: usize) -> Result<(Vec<Bytes>, Option<u64>)> {
        let replicas = self.cluster.view().partition_replicas(p);
        let now = now_ms();
        let asks = replicas.iter().filter(|r| *r == self.me() || self.peers.is_up(r)).map(|r| async move {
            if r == self.me() {
                return self.live_keys(from, to, limit, now).await.ok();
            }
            let req = Request::Keys { from, to, limit: limit.min(u32::MAX as usize) as u32 };
            match self.peers.call(r, req).await {
                Ok(Response::Keys { keys, next }) => Some((keys, next)),
                _ => None,
            }
        });
        let answers: Vec<_> = futures::future::join_all(asks).await.into_iter().flatten().collect();
        if answers.is_empty() {
            return Err(CoordError::NoQuorum { op: "read", needed: 1, got: 0 });
        }
        // Past the first point where a replica stopped, its keys are unknown: stop there.
        let mut frontier = answers.iter().filter_map(|(_, next)| *next).min();
        if frontier == Some(from) {
            // Every key a replica sent shares the first prefix: take them and move past it.
            frontier = from.checked_add(1);
        }
        let keys: BTreeSet<(u64, Bytes)> = answers
            .into_iter()
            .flat_map(|(keys, _)| keys)
            .filter(|(prefix, _)| frontier.is_none_or(|f| *prefix < f))
            .collect();
        Ok((keys.into_iter().map(|(_, k)| k).collect(), frontier))
    }
}
