//! Walks of the `data` keyspace in ring order: every key (reaping, DBSIZE), digests (the
//! Merkle trees of anti-entropy), one partition in batches (transfers) and its removal.

use bytes::Bytes;

use super::{digest, Result, Storage};
use crate::version::SiblingSet;

/// Live keys with their ring prefixes, and the prefix to go on from (`None`: range done).
pub type LiveKeys = (Vec<(u64, Bytes)>, Option<u64>);

impl Storage {
    /// Visits every stored key with a sketch of its set (its siblings, with at most one
    /// member of a set or hash stored in parts: what the key is, whether it lives and when it
    /// expires; `Storage::decode_data_sketch`), in ring order. Corrupt records are reported to
    /// `f` as errors rather than stopping the walk.
    ///
    /// # Errors
    /// Engine failure while iterating.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], Result<SiblingSet>)) -> Result<()> {
        for guard in self.data.iter() {
            let (k, v) = guard.into_inner()?;
            let user_key = k.get(8..).unwrap_or_default();
            f(user_key, self.decode_sketch_unflushed(&k, &v));
        }
        Ok(())
    }

    /// Visits every stored key's ring prefix, key and digest (no decoding).
    ///
    /// # Errors
    /// Engine failure while iterating.
    pub fn for_each_digest(&self, f: impl FnMut(u64, &[u8], u64)) -> Result<()> {
        self.for_each_digest_in(&self.db.snapshot(), f)
    }

    /// [`Storage::for_each_digest`] over the store as it was at `snapshot`.
    ///
    /// # Errors
    /// Engine failure while iterating.
    pub fn for_each_digest_in(&self, snapshot: &fjall::Snapshot, mut f: impl FnMut(u64, &[u8], u64)) -> Result<()> {
        use fjall::Readable;
        for guard in snapshot.iter(&self.data) {
            let (k, v) = guard.into_inner()?;
            if let (Some(prefix), Some(key)) = (k.get(..8), k.get(8..)) {
                f(u64::from_be_bytes(prefix.try_into().expect("8 bytes")), key, digest(&v));
            }
        }
        Ok(())
    }

    /// Live keys (a value that is not expired at `now`) with ring prefix in `from..=to`, in
    /// ring order: up to `limit` of them, looking at no more than `limit * 16` records. Returns
    /// them with their prefixes, and the prefix to go on from when the range is not exhausted.
    ///
    /// # Errors
    /// Engine failure while iterating.
    pub fn live_keys(&self, from: u64, to: u64, limit: usize, now: u64) -> Result<LiveKeys> {
        let start = from.to_be_bytes().to_vec();
        let range: Box<dyn Iterator<Item = fjall::Guard>> = match to.checked_add(1) {
            Some(end) => Box::new(self.data.range(start..end.to_be_bytes().to_vec())),
            None => Box::new(self.data.range(start..)),
        };
        let (mut keys, mut looked) = (Vec::new(), 0);
        for guard in range {
            let (k, v) = guard.into_inner()?;
            let (Some(prefix), Some(key)) = (k.get(..8), k.get(8..)) else { continue };
            let prefix = u64::from_be_bytes(prefix.try_into().unwrap_or_default());
            if keys.len() >= limit || looked >= limit.saturating_mul(16) {
                return Ok((keys, Some(prefix)));
            }
            looked += 1;
            // A record that does not decode is skipped here (the reaper reports it). Whether a
            // set lives needs one of its members, not all.
            if self.decode_sketch_unflushed(&k, &v).is_ok_and(|set| set.get(now).is_some()) {
                keys.push((prefix, Bytes::copy_from_slice(key)));
            }
        }
        Ok((keys, None))
    }

    /// The keys and digests of the ring prefix range `lo..=hi` (a Merkle leaf), in order.
    ///
    /// # Errors
    /// Engine failure while iterating.
    pub fn digests_in(&self, lo: u64, hi: u64) -> Result<Vec<(Bytes, u64)>> {
        let start = lo.to_be_bytes().to_vec();
        let range: Box<dyn Iterator<Item = fjall::Guard>> = match hi.checked_add(1) {
            Some(end) => Box::new(self.data.range(start..end.to_be_bytes().to_vec())),
            None => Box::new(self.data.range(start..)),
        };
        let mut out = Vec::new();
        for guard in range {
            let (k, v) = guard.into_inner()?;
            out.push((Bytes::copy_from_slice(k.get(8..).unwrap_or_default()), digest(&v)));
        }
        Ok(out)
    }

    /// Up to `limit` keys (or about `max_bytes` of encoded sets) of ring partition `p` of `q`,
    /// in key order, starting after `after` (a user key returned by the previous call).
    ///
    /// # Errors
    /// Engine failure or a corrupt record.
    pub fn scan_partition(
        &self,
        p: u32,
        q: u32,
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Bytes, SiblingSet)>> {
        Ok(self.scan_partition_sized(p, q, after, limit, max_bytes)?.0)
    }

    /// As `scan_partition`, bounded by what the keys carry: the encoded size of each whole
    /// sibling set, members of a set stored in parts included (its `data` record is only the
    /// header). At least one key (however large) when the range has one, else no more than
    /// `max_bytes` in all. Returns the keys with their sets and that size.
    ///
    /// # Errors
    /// Engine failure or a corrupt record.
    pub fn scan_partition_sized(
        &self,
        p: u32,
        q: u32,
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(Bytes, SiblingSet)>, usize)> {
        let (lo, hi) = crate::ring::partition_prefix_range(p, q);
        let start = match after {
            Some(k) => {
                let mut s = Self::data_key(k);
                s.push(0);
                s
            }
            None => lo.to_be_bytes().to_vec(),
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        let range: Box<dyn Iterator<Item = fjall::Guard>> = match hi.checked_add(1) {
            Some(end) => Box::new(self.data.range(start..end.to_be_bytes().to_vec())),
            None => Box::new(self.data.range(start..)),
        };
        for guard in range {
            let (k, v) = guard.into_inner()?;
            let user_key = k.get(8..).unwrap_or_default();
            let set = self.decode_data_unflushed(&k, &v)?;
            // The whole set's size: a set in parts has a small header here and its members
            // elsewhere (counting the header alone made batches of hundreds of megabytes).
            let size = if max_bytes == usize::MAX { v.len() } else { set.encode().len() } + user_key.len();
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push((Bytes::copy_from_slice(user_key), set));
            if out.len() >= limit || bytes >= max_bytes {
                break;
            }
        }
        Ok((out, bytes))
    }

    /// Deletes every key of ring partition `p` of `q` (after it was handed to its new
    /// replicas). Returns how many keys went.
    ///
    /// # Errors
    /// Engine failure.
    pub fn remove_partition(&self, p: u32, q: u32) -> Result<u64> {
        let mut removed = 0;
        let mut after: Option<Bytes> = None;
        loop {
            let batch = self.scan_partition(p, q, after.as_deref(), 1024, usize::MAX)?;
            let Some((last, _)) = batch.last() else { return Ok(removed) };
            after = Some(last.clone());
            for (key, _) in &batch {
                if self.remove_if(key, |_| true)? {
                    removed += 1;
                }
            }
        }
    }
}
