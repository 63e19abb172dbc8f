//! Sets and hashes stored in parts (issue 13, item 6; Riak's "bigsets"): when exactly one
//! sibling of a key holds a set or a hash ([`SiblingSet::collection`]), the key's record in
//! `data` is a *header* (the sibling set with that value's members taken out, its clock kept)
//! and every member is a record of its own in the `members` keyspace, under the key's ring
//! prefix: `prefix(8) | key length (4) | key | member -> dots and value`. An update then writes
//! the header and the members it changed, found by comparing the two versions of the set
//! without visiting what they share (`OrMap::changed_records`), so its cost does not grow with
//! the set. One write batch holds them all: a crash leaves the old parts or the new ones.
//!
//! Everything above storage still sees one key with one sibling set: reads assemble it (once:
//! the cache keeps it), and replication, anti-entropy, transfers and hints move it whole. The
//! header carries the XOR of the member records' digests, so the key's digest (the header's)
//! covers its members and is the same on every replica holding the same state, whatever
//! order its members were written in.

use bytes::Bytes;
use fjall::OwnedWriteBatch as WriteBatch;

use super::{digest, Result, Storage, StorageError};
use crate::version::{SiblingSet, Value};

/// The first byte of a header (a whole record starts with `SiblingSet`'s own format byte).
const HEADER: u8 = 0xC3;

/// What the cache knows of a key stored in parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Parts {
    /// XOR of [`record_digest`] over the member records (kept in the header).
    pub xor: u64,
    /// Bytes of the member records (keys and values), for the cache's weight.
    pub bytes: u64,
}

/// Where a key's member records start.
fn members_prefix(key: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + key.len());
    p.extend_from_slice(&crate::ring::position(key).to_be_bytes()[..8]);
    p.extend_from_slice(&(key.len() as u32).to_be_bytes());
    p.extend_from_slice(key);
    p
}

fn member_key(prefix: &[u8], member: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + member.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(member);
    k
}

/// A member record's digest: of its member and its record, unambiguously.
fn record_digest(member: &[u8], record: &[u8]) -> u64 {
    let mut buf = Vec::with_capacity(4 + member.len() + record.len());
    buf.extend_from_slice(&(member.len() as u32).to_le_bytes());
    buf.extend_from_slice(member);
    buf.extend_from_slice(record);
    digest(&buf)
}

fn record_bytes(prefix: &[u8], member: &[u8], record: &[u8]) -> u64 {
    (prefix.len() + member.len() + record.len()) as u64
}

fn corrupt(key: &[u8], reason: impl ToString) -> StorageError {
    StorageError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), reason: reason.to_string() }
}

/// A key's stored state after a write: the digest of its `data` record, its parts when it is
/// stored in parts, and the bytes it takes (the cache's weight).
pub(super) struct Stored {
    pub digest: u64,
    pub parts: Option<Parts>,
    pub bytes: usize,
}

impl Storage {
    /// The set a `data` record holds (with its member records when it is a header), and its
    /// parts.
    ///
    /// # Errors
    /// Engine failure or a record (header or member) that does not decode.
    pub(super) fn decode_data(&self, key: &[u8], bytes: &[u8]) -> Result<(SiblingSet, Option<Parts>)> {
        let Some((&HEADER, rest)) = bytes.split_first() else { return Ok((Self::decode(key, bytes)?, None)) };
        let (xor, header) = rest.split_at_checked(8).ok_or_else(|| corrupt(key, "short header"))?;
        let xor = u64::from_le_bytes(xor.try_into().map_err(|_| corrupt(key, "short header"))?);
        let header = Self::decode(key, header)?;
        let prefix = members_prefix(key);
        let mut records = Vec::new();
        let mut total = 0;
        for guard in self.members.prefix(&prefix) {
            let (k, v) = guard.into_inner()?;
            let member = Bytes::copy_from_slice(&k[prefix.len()..]);
            total += record_bytes(&prefix, &member, &v);
            records.push((member, v));
        }
        let set = header.with_members(records.iter().map(|(m, v)| (m.clone(), &v[..]))).map_err(|e| corrupt(key, e))?;
        Ok((set, Some(Parts { xor, bytes: total })))
    }

    /// Writes `next` as `key`'s state, over `old` (stored in `old_parts` when in parts): a
    /// whole record, or a header and the member records that changed, in one batch.
    ///
    /// # Errors
    /// Engine failure (the engine may or may not have taken the write).
    pub(super) fn store(
        &self,
        key: &[u8],
        stored_key: &[u8],
        old: Option<&SiblingSet>,
        old_parts: Option<Parts>,
        next: &SiblingSet,
    ) -> Result<Stored> {
        let Some(collection) = next.collection() else {
            let encoded = next.encode();
            let stored = Stored { digest: digest(&encoded), parts: None, bytes: encoded.len() };
            if old_parts.is_some() {
                let mut batch = self.db.batch();
                self.remove_members(&mut batch, key, None)?;
                batch.insert(&self.data, stored_key, encoded);
                batch.commit()?;
            } else {
                self.data.insert(stored_key, encoded)?;
            }
            return Ok(stored);
        };
        let mut batch = self.db.batch();
        let prefix = members_prefix(key);
        let mut parts = old_parts.unwrap_or_default();
        let older = old_parts.and(old.and_then(SiblingSet::collection));
        match older.and_then(|o| collection.changed_records(o)) {
            Some(changes) => {
                for (member, before, after) in changes {
                    if let Some(before) = before {
                        parts.xor ^= record_digest(member, &before);
                        parts.bytes = parts.bytes.saturating_sub(record_bytes(&prefix, member, &before));
                    }
                    match after {
                        Some(after) => {
                            parts.xor ^= record_digest(member, &after);
                            parts.bytes += record_bytes(&prefix, member, &after);
                            batch.insert(&self.members, member_key(&prefix, member), after);
                        }
                        None => batch.remove(&self.members, member_key(&prefix, member)),
                    }
                }
            }
            // Stored whole before (or as another type): every member is written anew.
            None => {
                if old_parts.is_some() {
                    self.remove_members(&mut batch, key, Some(collection))?;
                }
                parts = Parts::default();
                for (member, record) in collection.records().unwrap_or_default() {
                    parts.xor ^= record_digest(&member, &record);
                    parts.bytes += record_bytes(&prefix, &member, &record);
                    batch.insert(&self.members, member_key(&prefix, &member), record);
                }
            }
        }
        let header = next.without_members().encode();
        let mut record = Vec::with_capacity(9 + header.len());
        record.push(HEADER);
        record.extend_from_slice(&parts.xor.to_le_bytes());
        record.extend_from_slice(&header);
        let stored = Stored { digest: digest(&record), parts: Some(parts), bytes: record.len() + parts.bytes as usize };
        batch.insert(&self.data, stored_key, record);
        batch.commit()?;
        Ok(stored)
    }

    /// Puts into `batch` the removal of `key`'s member records, except those of members
    /// `keep` holds (which the batch rewrites: one batch must not both remove and insert a
    /// record).
    ///
    /// # Errors
    /// Engine failure while listing them.
    pub(super) fn remove_members(&self, batch: &mut WriteBatch, key: &[u8], keep: Option<&Value>) -> Result<()> {
        let prefix = members_prefix(key);
        for guard in self.members.prefix(&prefix) {
            let k = guard.key()?;
            if !keep.is_some_and(|v| v.has_member(&k[prefix.len()..])) {
                batch.remove(&self.members, k);
            }
        }
        Ok(())
    }
}
