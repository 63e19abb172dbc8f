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
//! order its members were written in. Builds before this layout stored such a key whole, and
//! the digest of that record differs from the header's for the same state (anti-entropy
//! then repaired the key forever): the store rewrites those in parts when a build that writes
//! the layout marker first opens it ([`Storage::store_in_parts`]), so a key's layout, and with
//! it its digest, depends on its state only.

use bytes::Bytes;
use fjall::OwnedWriteBatch as WriteBatch;

use super::expiry::DueMove;
use super::{digest, Result, Storage, StorageError};
use crate::version::{SiblingSet, Value};

/// The first byte of a header (a whole record starts with `SiblingSet`'s own format byte,
/// 0xC2 or 0xC4, or a legacy record's postcard).
const HEADER: u8 = 0xC3;

/// Whether a `data` record is a header (the key stored in parts), not a whole sibling set.
pub(super) fn is_header(record: &[u8]) -> bool {
    record.first() == Some(&HEADER)
}

/// What the cache knows of a key stored in parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Parts {
    /// XOR of [`record_digest`] over the member records (kept in the header).
    pub xor: u64,
    /// Bytes of the member records (keys and values), for the cache's weight.
    pub bytes: u64,
}

/// Where the member records of the key stored under `stored_key` (its ring prefix, then the
/// key: `Storage::data_key`) start.
fn members_prefix(stored_key: &[u8]) -> Vec<u8> {
    let (ring_prefix, key) = stored_key.split_at(stored_key.len().min(8));
    let mut p = Vec::with_capacity(12 + key.len());
    p.extend_from_slice(ring_prefix);
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
    /// Records the write put or removed, and their bytes (keys and values).
    pub records: u64,
    pub written: u64,
    /// The write as a patch of the version before (when both are in parts).
    pub patch: Option<Patch>,
}

/// A write of a set or a hash stored in parts, as a change of the version before it: what a
/// replica holding that version (its digest `base`) applies instead of merging the whole
/// set (`coordinator::replicate`). `header` is the new version's header; `changes` are the
/// member records it changed (`None`: removed).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Patch {
    pub base: u64,
    pub header: SiblingSet,
    pub changes: Vec<(Bytes, Option<Bytes>)>,
}

impl Storage {
    /// The set a `data` record (stored under `stored_key`) holds, with its member records when
    /// it is a header, and its parts.
    ///
    /// # Errors
    /// Engine failure or a record (header or member) that does not decode.
    pub(super) fn decode_data(&self, stored_key: &[u8], bytes: &[u8]) -> Result<(SiblingSet, Option<Parts>)> {
        self.decode_members(stored_key, bytes, usize::MAX)
    }

    /// The set a `data` record holds with at most one member of a set or hash stored in
    /// parts: what it is, whether it lives (an emptied set reads as missing) and when it
    /// expires, without reading a large set's members. For walks (SCAN, DBSIZE, INFO
    /// keyspace, the walk at open that upgrades an older store); never stored, compared or
    /// sent.
    ///
    /// # Errors
    /// As [`Storage::decode_data`].
    pub(super) fn decode_data_sketch(&self, stored_key: &[u8], bytes: &[u8]) -> Result<SiblingSet> {
        Ok(self.decode_members(stored_key, bytes, 1)?.0)
    }

    /// [`Storage::decode_data`] with at most `limit` member records (the parts' size counts
    /// those read).
    fn decode_members(&self, stored_key: &[u8], bytes: &[u8], limit: usize) -> Result<(SiblingSet, Option<Parts>)> {
        let key = stored_key.get(8..).unwrap_or_default();
        let Some((&HEADER, rest)) = bytes.split_first() else { return Ok((Self::decode(key, bytes)?, None)) };
        let (xor, header) = rest.split_at_checked(8).ok_or_else(|| corrupt(key, "short header"))?;
        let xor = u64::from_le_bytes(xor.try_into().map_err(|_| corrupt(key, "short header"))?);
        let header = Self::decode(key, header)?;
        let prefix = members_prefix(stored_key);
        let mut records = Vec::new();
        let mut total = 0;
        for guard in self.members.prefix(&prefix).take(limit) {
            let (k, v) = guard.into_inner()?;
            let member = Bytes::copy_from_slice(&k[prefix.len()..]);
            total += record_bytes(&prefix, &member, &v);
            records.push((member, v));
        }
        let set = header.with_members(records.iter().map(|(m, v)| (m.clone(), &v[..]))).map_err(|e| corrupt(key, e))?;
        Ok((set, Some(Parts { xor, bytes: total })))
    }

    /// Writes `next` as the state of the key stored under `stored_key`, over `old` (stored in
    /// `old_parts` when in parts): a whole record, or a header and the member records that
    /// changed, in one batch, which also moves the key's reap index record when the time the
    /// stored set dies changes (`expiry.rs`).
    ///
    /// # Errors
    /// Engine failure (the engine may or may not have taken the write).
    pub(super) fn store(
        &self,
        stored_key: &[u8],
        old: Option<&SiblingSet>,
        old_digest: u64,
        old_parts: Option<Parts>,
        next: &SiblingSet,
    ) -> Result<Stored> {
        let key = stored_key.get(8..).unwrap_or_default();
        let due = DueMove::new(old, Some(next));
        let Some(collection) = next.collection() else {
            let encoded = next.encode();
            let written = (stored_key.len() + encoded.len()) as u64;
            let mut stored = Stored {
                digest: digest(&encoded),
                parts: None,
                bytes: encoded.len(),
                records: 1,
                written,
                patch: None,
            };
            if old_parts.is_some() || due.moves() {
                let mut batch = self.db.batch();
                if old_parts.is_some() {
                    stored.written += self.remove_members(&mut batch, stored_key, None)?;
                }
                batch.insert(&self.data, stored_key, encoded);
                stored.records = batch.len() as u64;
                self.move_due(&mut batch, key, &due);
                batch.commit().map_err(|e| self.write_failed("a write", &e))?;
            } else {
                // The common write (no member records, no reap index record to move): one insert.
                self.data.insert(stored_key, encoded).map_err(|e| self.write_failed("a write", &e))?;
            }
            return Ok(stored);
        };
        let mut batch = self.db.batch();
        let prefix = members_prefix(stored_key);
        let mut parts = old_parts.unwrap_or_default();
        let mut written = 0;
        let mut patched = None;
        let older = old_parts.and(old.and_then(SiblingSet::collection));
        match older.and_then(|o| collection.changed_records(o)) {
            Some(changes) => {
                let mut patch = Vec::with_capacity(changes.len());
                for (member, before, after) in changes {
                    // The patch shares the record's bytes (no copy of it per write).
                    let after = after.map(Bytes::from);
                    patch.push((member.clone(), after.clone()));
                    if let Some(before) = before {
                        parts.xor ^= record_digest(member, &before);
                        parts.bytes = parts.bytes.saturating_sub(record_bytes(&prefix, member, &before));
                    }
                    match after {
                        Some(after) => {
                            parts.xor ^= record_digest(member, &after);
                            parts.bytes += record_bytes(&prefix, member, &after);
                            written += record_bytes(&prefix, member, &after);
                            batch.insert(&self.members, member_key(&prefix, member), &after[..]);
                        }
                        None => {
                            written += (prefix.len() + member.len()) as u64;
                            batch.remove(&self.members, member_key(&prefix, member));
                        }
                    }
                }
                patched = Some(patch);
            }
            // Stored whole before (or as another type): every member is written anew.
            None => {
                if old_parts.is_some() {
                    written += self.remove_members(&mut batch, stored_key, Some(collection))?;
                }
                parts = Parts::default();
                for (member, record) in collection.records().unwrap_or_default() {
                    parts.xor ^= record_digest(&member, &record);
                    parts.bytes += record_bytes(&prefix, &member, &record);
                    written += record_bytes(&prefix, &member, &record);
                    batch.insert(&self.members, member_key(&prefix, &member), record);
                }
            }
        }
        let header = next.without_members();
        let encoded = header.encode();
        let mut record = Vec::with_capacity(9 + encoded.len());
        record.push(HEADER);
        record.extend_from_slice(&parts.xor.to_le_bytes());
        record.extend_from_slice(&encoded);
        batch.insert(&self.data, stored_key, &record);
        let stored = Stored {
            digest: digest(&record),
            parts: Some(parts),
            bytes: record.len() + parts.bytes as usize,
            records: batch.len() as u64,
            written: written + (stored_key.len() + record.len()) as u64,
            patch: patched.map(|changes| Patch { base: old_digest, header, changes }),
        };
        self.move_due(&mut batch, key, &due);
        batch.commit().map_err(|e| self.write_failed("a write", &e))?;
        Ok(stored)
    }

    /// Rewrites in parts the keys stored under `stored_keys` whose record is a whole sibling
    /// set with one set or hash sibling (as builds before this layout stored them): the state
    /// stays, its digest becomes the one every replica storing that state in parts has. Run
    /// when a store without the layout marker opens (before anything reads or observes it).
    /// Returns how many it rewrote.
    ///
    /// # Errors
    /// Engine failure, or a record that does not decode.
    pub(super) fn store_in_parts(&self, stored_keys: &[Vec<u8>]) -> Result<u64> {
        let mut rewritten = 0;
        for stored_key in stored_keys {
            let key = stored_key.get(8..).unwrap_or_default();
            let _guard = self.lock(stored_key);
            let Some(bytes) = self.data.get(stored_key)? else { continue };
            if is_header(&bytes) {
                continue;
            }
            let set = Self::decode(key, &bytes)?;
            if set.collection().is_none() {
                continue;
            }
            self.health.admit()?;
            // As from other parts (none expected): any member record it does not hold goes.
            // (With no old set, a set that dies has its reap index record written again: the
            // same record.)
            let stored = self.store(stored_key, None, digest(&bytes), Some(Parts::default()), &set)?;
            self.note_write();
            self.records.fetch_add(stored.records, std::sync::atomic::Ordering::Relaxed);
            self.record_bytes.fetch_add(stored.written, std::sync::atomic::Ordering::Relaxed);
            self.cache.remove(key);
            rewritten += 1;
        }
        if rewritten > 0 {
            self.commit()?;
            tracing::info!(keys = rewritten, "stored in parts the sets and hashes an older build stored whole");
        }
        Ok(rewritten)
    }

    /// Writes `set` as the whole record of `key`, as builds before the parts layout stored
    /// every key (tests: what such a build left on disk, without the layout marker).
    #[cfg(test)]
    pub(crate) fn put_whole(&self, key: &[u8], set: &SiblingSet) {
        self.data.insert(Self::data_key(key), set.encode()).expect("a write");
        self.as_older_build();
    }

    /// [`Storage::apply_patch`], waiting until `deadline` for the patch's base version when it
    /// is not here yet: a decider's patches of one key may arrive out of order (each is a
    /// request of its own), and the one before is then usually in flight. A write of the key
    /// wakes the wait; `false` at the deadline (the sender then sends the whole set).
    ///
    /// # Errors
    /// As [`Storage::apply_patch`].
    pub async fn apply_patch_when_based(
        &self,
        key: &[u8],
        patch: &Patch,
        deadline: tokio::time::Instant,
    ) -> Result<bool> {
        let stored_key = Self::data_key(key);
        let stripe = &self.written_keys[Self::stripe(&stored_key)];
        loop {
            // Registered before the check, so a write between the two is not missed.
            let written = stripe.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.apply_patch_at(key, &stored_key, patch)? {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, written).await.is_err() {
                return Ok(false);
            }
        }
    }

    /// Applies a patch a replication sent (see [`Patch`]) when this node holds its base
    /// version of `key`: then the write costs what it changed, as where it was made. Returns
    /// whether it applied; when not, the sender sends the whole set.
    ///
    /// # Errors
    /// Engine failure, or a patch that does not apply to a set it matches by digest.
    pub fn apply_patch(&self, key: &[u8], patch: &Patch) -> Result<bool> {
        self.apply_patch_at(key, &Self::data_key(key), patch)
    }

    fn apply_patch_at(&self, key: &[u8], stored_key: &[u8], patch: &Patch) -> Result<bool> {
        let _guard = self.lock(stored_key);
        let cached = self.load_locked(key, stored_key)?;
        let base = match (&cached.set, cached.parts) {
            (Some(set), Some(_)) if cached.digest == patch.base => set.clone(),
            _ => return Ok(false),
        };
        let changes = patch.changes.iter().map(|(m, r)| (m.clone(), r.as_deref()));
        let Some(next) = base.patched(&patch.header, changes).map_err(|e| corrupt(key, e))? else {
            return Ok(false);
        };
        self.write_locked(key, stored_key, cached, next)?;
        Ok(true)
    }

    /// Puts into `batch` the removal of the member records of the key stored under
    /// `stored_key`, except those of members `keep` holds (which the batch rewrites: one batch
    /// must not both remove and insert a record). Returns the bytes of the keys removed.
    ///
    /// # Errors
    /// Engine failure while listing them.
    pub(super) fn remove_members(
        &self,
        batch: &mut WriteBatch,
        stored_key: &[u8],
        keep: Option<&Value>,
    ) -> Result<u64> {
        let prefix = members_prefix(stored_key);
        let mut bytes = 0;
        for guard in self.members.prefix(&prefix) {
            let k = guard.key()?;
            if !keep.is_some_and(|v| v.has_member(&k[prefix.len()..])) {
                bytes += k.len() as u64;
                batch.remove(&self.members, k);
            }
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::super::{FsyncPolicy, Storage, StorageError};
    use crate::version::{Actor, Dot, Sibling, SiblingSet, Value, VersionVector};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A write over everything `key` holds by `actor`, as `Replica::modify` makes it: the set's
    /// members after `add` and `remove`, under the write's dot.
    fn write_set(s: &Storage, key: &[u8], actor: u64, add: &[String], remove: &[&str]) -> Arc<SiblingSet> {
        s.update::<StorageError>(key, |cur| {
            let cur = cur.cloned().unwrap_or_default();
            let mut set = cur.resolve(0).and_then(|r| r.value.as_set().cloned()).unwrap_or_default();
            let counter = cur.counters().find(|&(a, _)| a == Actor(actor)).map_or(0, |(_, n)| n) + 1;
            let dot = Dot { actor: Actor(actor), counter };
            for m in add {
                set.insert(b(m), dot, ());
            }
            for m in remove {
                set.remove(m.as_bytes());
            }
            set.witness(&cur.context());
            let sibling = Sibling {
                value: Some(Value::Set(set)),
                written_ms: counter,
                origin: Actor(actor),
                expires_ms: None,
                resets: Vec::new(),
                flush_seen: None,
            };
            Ok(cur.update(&cur.context(), sibling).0)
        })
        .expect("write")
    }

    fn member_records(s: &Storage) -> usize {
        s.members.iter().count()
    }

    fn members_of(set: &SiblingSet) -> Vec<Bytes> {
        set.resolve(0).and_then(|r| r.value.as_set().map(|s| s.members().cloned().collect())).unwrap_or_default()
    }

    fn digest_of(s: &Storage, key: &[u8]) -> u64 {
        let mut found = 0;
        s.for_each_digest(|_, k, d| {
            if k == key {
                found = d;
            }
        })
        .expect("digests");
        found
    }

    /// Item 6 of issue 13: an update of a large set writes its header and the members it
    /// changed, not the set; the parts read back as the set after a restart.
    #[test]
    fn an_update_of_a_large_set_writes_its_header_and_the_members_it_changed() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let many: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
        let before = {
            let s = Storage::open(dir.path(), FsyncPolicy::Never).expect("storage");
            write_set(&s, b"big", 1, &many, &[]);
            assert_eq!(member_records(&s), 1000);
            let written = s.stats().records_written;
            write_set(&s, b"big", 1, &["new".to_owned()], &[]);
            assert_eq!(s.stats().records_written - written, 2, "header and one member");
            write_set(&s, b"big", 1, &[], &["m7"]);
            assert_eq!(s.stats().records_written - written, 4, "header and one removal");
            // Re-adding a member it holds: the member's record changes (its new dot).
            let last = write_set(&s, b"big", 2, &["m8".to_owned()], &[]);
            assert_eq!(s.stats().records_written - written, 6);
            assert_eq!(member_records(&s), 1000);
            s.commit().expect("commit");
            (last, digest_of(&s, b"big"))
        };
        let s = Storage::open(dir.path(), FsyncPolicy::Never).expect("storage");
        let read = s.get(b"big").expect("read").expect("stored");
        assert_eq!(*read, *before.0, "the parts make the set again");
        assert_eq!(digest_of(&s, b"big"), before.1);
        let members = members_of(&read);
        assert!(members.contains(&b("new")) && !members.contains(&b("m7")) && members.len() == 1000);
    }

    /// Equal states have equal digests (anti-entropy compares them) whatever history stored
    /// them, and a different member makes a different digest.
    #[test]
    fn digests_of_sets_in_parts_depend_on_the_state_only() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let one = Storage::open(&dir.path().join("1"), FsyncPolicy::Never).expect("storage");
        let two = Storage::open(&dir.path().join("2"), FsyncPolicy::Never).expect("storage");
        let names = |r: std::ops::Range<u32>| r.map(|i| format!("m{i}")).collect::<Vec<_>>();
        // One node writes it in steps; the other receives the result in one merge.
        write_set(&one, b"k", 1, &names(0..50), &[]);
        write_set(&one, b"k", 1, &names(50..60), &["m3"]);
        let state = write_set(&one, b"k", 1, &names(60..61), &[]);
        two.merge(b"k", &SiblingSet::new()).expect("merge nothing");
        two.merge(b"k", &state).expect("merge");
        assert_eq!(digest_of(&one, b"k"), digest_of(&two, b"k"));
        assert_ne!(digest_of(&one, b"k"), 0);
        write_set(&two, b"k", 2, &["other".to_owned()], &[]);
        assert_ne!(digest_of(&one, b"k"), digest_of(&two, b"k"));
    }

    /// Item 12 of issue 20: a set an older build stored whole (one record) and the same set
    /// stored in parts have one digest once the store opens, wherever digests are read (the
    /// startup scan, a Merkle leaf's keys, reads), so anti-entropy finds nothing to repair;
    /// the rewritten key then takes patches like any other in parts.
    #[test]
    fn a_set_an_older_build_stored_whole_has_the_digest_of_the_same_set_in_parts() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let open = |n: &str| Storage::open(&dir.path().join(n), FsyncPolicy::Never).expect("storage");
        let parts = open("parts");
        let names: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        write_set(&parts, b"k", 1, &names, &[]);
        let state = write_set(&parts, b"k", 1, &[], &["m5"]);
        {
            let old = open("whole");
            old.put_whole(b"k", &state);
            assert_eq!(member_records(&old), 0, "stored whole");
        }
        let whole = open("whole");
        assert_eq!(*whole.get(b"k").expect("read").expect("stored"), *state);
        assert_eq!(digest_of(&whole, b"k"), digest_of(&parts, b"k"), "the startup scan's digests");
        let (_, read) = whole.get_with_digest(b"k").expect("read");
        assert_eq!(read, parts.get_with_digest(b"k").expect("read").1, "a read's digest");
        assert_eq!(whole.digests_in(0, u64::MAX).expect("keys"), parts.digests_in(0, u64::MAX).expect("keys"));
        assert_eq!(member_records(&whole), 99, "stored in parts now");
        // A write's patch on the node in parts applies on the rewritten one (same base digest).
        let (written, patch) = add_patched(&parts, b"k", "new");
        assert!(whole.apply_patch(b"k", &patch).expect("apply"));
        assert_eq!(*whole.get(b"k").expect("read").expect("stored"), *written);
        assert_eq!(digest_of(&whole, b"k"), digest_of(&parts, b"k"));
        // Opened again, nothing is rewritten and the state is kept.
        drop(whole);
        let whole = open("whole");
        assert_eq!(*whole.get(b"k").expect("read").expect("stored"), *written);
        assert_eq!(digest_of(&whole, b"k"), digest_of(&parts, b"k"));
    }

    /// A write made on one node, applied as its patch on a node holding the version before:
    /// the same set and digest as there; a node holding another version refuses it.
    #[test]
    fn a_patch_applies_to_its_base_version_only() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let open = |n: &str| Storage::open(&dir.path().join(n), FsyncPolicy::Never).expect("storage");
        let (here, there, behind) = (open("here"), open("there"), open("behind"));
        let names: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
        let base = write_set(&here, b"k", 1, &names, &[]);
        there.merge(b"k", &base).expect("merge");
        behind.merge(b"k", &SiblingSet::new()).expect("nothing");
        let older = write_set(&behind, b"k", 1, &names[..10], &[]);
        assert_ne!(*older, *base);
        // The next write on `here`, as `Replica::modify` makes it, with its patch.
        let (written, patch) = here
            .update_patched::<StorageError>(b"k", |cur| {
                let cur = cur.cloned().unwrap_or_default();
                let mut set = cur.resolve(0).and_then(|r| r.value.as_set().cloned()).unwrap_or_default();
                let dot = Dot { actor: Actor(1), counter: 2 };
                set.insert(b("new"), dot, ());
                set.remove(b"m5");
                set.witness(&cur.context());
                let sibling = Sibling {
                    value: Some(Value::Set(set)),
                    written_ms: 2,
                    origin: Actor(1),
                    expires_ms: None,
                    resets: Vec::new(),
                    flush_seen: None,
                };
                Ok(cur.update(&cur.context(), sibling).0)
            })
            .expect("write");
        let patch = patch.expect("a write of a set in parts is a patch");
        assert_eq!(patch.changes.len(), 2, "one member added, one removed");
        let written_before = there.stats().bytes_written;
        assert!(there.apply_patch(b"k", &patch).expect("apply"));
        assert!(there.stats().bytes_written - written_before < 1_000, "a patch writes what it changed");
        assert_eq!(*there.get(b"k").expect("read").expect("stored"), *written);
        assert_eq!(digest_of(&there, b"k"), digest_of(&here, b"k"));
        // Applied twice, or to another version: refused (the sender sends the whole set).
        assert!(!there.apply_patch(b"k", &patch).expect("apply"));
        assert!(!behind.apply_patch(b"k", &patch).expect("apply"));
        assert_eq!(*behind.get(b"k").expect("read").expect("stored"), *older);
        // After a restart the patched copy reads the same.
        drop(there);
        let there = open("there");
        assert_eq!(*there.get(b"k").expect("read").expect("stored"), *written);
    }

    /// `here`'s next write of `key`: `member` added by actor 1, and the write as a patch.
    fn add_patched(here: &Storage, key: &[u8], member: &str) -> (Arc<SiblingSet>, super::Patch) {
        let (written, patch) = here
            .update_patched::<StorageError>(key, |cur| {
                let cur = cur.cloned().unwrap_or_default();
                let mut set = cur.resolve(0).and_then(|r| r.value.as_set().cloned()).unwrap_or_default();
                let counter = cur.counters().find(|&(a, _)| a == Actor(1)).map_or(0, |(_, n)| n) + 1;
                set.insert(b(member), Dot { actor: Actor(1), counter }, ());
                set.witness(&cur.context());
                let sibling = Sibling {
                    value: Some(Value::Set(set)),
                    written_ms: counter,
                    origin: Actor(1),
                    expires_ms: None,
                    resets: Vec::new(),
                    flush_seen: None,
                };
                Ok(cur.update(&cur.context(), sibling).0)
            })
            .expect("write");
        (written, patch.expect("a patch"))
    }

    /// Two patches that arrive out of order: the second waits for the first (its base) and
    /// then applies; one whose base never comes is refused at its deadline.
    #[tokio::test]
    async fn a_patch_waits_for_the_version_it_applies_to() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let open = |n: &str| Storage::open(&dir.path().join(n), FsyncPolicy::Never).expect("storage");
        let (here, there) = (open("here"), open("there"));
        let names: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        there.merge(b"k", &write_set(&here, b"k", 1, &names, &[])).expect("merge");
        let (_, first) = add_patched(&here, b"k", "x");
        let (second_version, second) = add_patched(&here, b"k", "y");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let waiting = tokio::spawn({
            let there = there.clone();
            async move { there.apply_patch_when_based(b"k", &second, deadline).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "its base is not there yet");
        assert!(there.apply_patch(b"k", &first).expect("apply"));
        assert!(waiting.await.expect("the task").expect("apply"), "applied once its base came");
        assert_eq!(*there.get(b"k").expect("read").expect("stored"), *second_version);
        // A base that never comes: refused at the deadline.
        let (_, skipped) = add_patched(&here, b"k", "z");
        let (_, after_skipped) = add_patched(&here, b"k", "w");
        let _ = skipped;
        let soon = tokio::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(!there.apply_patch_when_based(b"k", &after_skipped, soon).await.expect("apply"));
        assert_eq!(*there.get(b"k").expect("read").expect("stored"), *second_version);
    }

    /// A key moves between the layouts: two set siblings (concurrent writes merged) are stored
    /// whole, one again in parts, a string whole; a removal takes every record with it.
    #[test]
    fn a_key_changes_layout_without_leaving_member_records_behind() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let s = Storage::open(dir.path(), FsyncPolicy::Never).expect("storage");
        let base = write_set(&s, b"k", 1, &["a".to_owned(), "b".to_owned()], &[]);
        assert_eq!(member_records(&s), 2);
        // A concurrent write from another coordinator (it saw `base`) merges in: two siblings.
        let mut theirs = base.collection().and_then(Value::as_set).cloned().unwrap_or_default();
        theirs.insert(b("c"), Dot { actor: Actor(9), counter: 1 }, ());
        let concurrent = SiblingSet::new().update(
            &VersionVector::default(),
            Sibling {
                value: Some(Value::Set(theirs)),
                written_ms: 5,
                origin: Actor(9),
                expires_ms: None,
                resets: Vec::new(),
                flush_seen: None,
            },
        );
        let merged = s.merge(b"k", &base.sync(&concurrent.0)).expect("merge");
        assert!(merged.collection().is_none() && merged.len() == 2);
        assert_eq!(member_records(&s), 0, "stored whole");
        // The next write over both makes one sibling again: in parts.
        let one = write_set(&s, b"k", 1, &["d".to_owned()], &[]);
        assert_eq!(members_of(&one), vec![b("a"), b("b"), b("c"), b("d")]);
        assert_eq!(member_records(&s), 4);
        assert_eq!(*s.get(b"k").expect("read").expect("stored"), *one);
        // A string written over it: stored whole, no member record left.
        s.update::<StorageError>(b"k", |cur| {
            let cur = cur.cloned().unwrap_or_default();
            let sib = Sibling {
                value: Some(Value::from("text")),
                written_ms: 9,
                origin: Actor(1),
                expires_ms: None,
                resets: Vec::new(),
                flush_seen: None,
            };
            Ok(cur.update(&cur.context(), sib).0)
        })
        .expect("write");
        assert_eq!(member_records(&s), 0);
        // In parts again, then removed (as the reaper and a handoff remove keys).
        write_set(&s, b"k", 1, &["x".to_owned(), "y".to_owned()], &[]);
        write_set(&s, b"j", 1, &["x".to_owned()], &[]);
        assert_eq!(member_records(&s), 3);
        assert!(s.remove_if(b"k", |_| true).expect("remove"));
        assert_eq!(member_records(&s), 1, "only j's member is left");
        assert!(s.get(b"k").expect("read").is_none());
        assert_eq!(members_of(&s.get(b"j").expect("read").expect("stored")), vec![b("x")]);
        // A set of a key that starts like another key's members stays apart from them.
        write_set(&s, b"jx", 1, &["y".to_owned()], &[]);
        assert_eq!(members_of(&s.get(b"j").expect("read").expect("stored")), vec![b("x")]);
        let mut walked = Vec::new();
        s.for_each(|k, set| walked.push((k.to_vec(), members_of(&set.expect("decodes"))))).expect("walk");
        walked.sort();
        assert_eq!(walked, vec![(b"j".to_vec(), vec![b("x")]), (b"jx".to_vec(), vec![b("y")])]);
    }

    /// Walks (SCAN, DBSIZE, INFO keyspace, the reap index) read one member of a set in parts,
    /// enough to tell whether it lives; an emptied set is missing to them as to reads.
    #[test]
    fn a_walk_reads_one_member_of_a_large_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(dir.path(), FsyncPolicy::Never).expect("open");
        let many: Vec<String> = (0..1000).map(|i| format!("m{i:04}")).collect();
        write_set(&s, b"big", 1, &many, &[]);
        write_set(&s, b"gone", 1, &["a".to_owned(), "b".to_owned()], &[]);
        write_set(&s, b"gone", 1, &[], &["a", "b"]);
        let mut walked = Vec::new();
        s.for_each(|k, set| walked.push((k.to_vec(), members_of(&set.expect("decodes"))))).expect("walk");
        walked.sort();
        assert_eq!(walked, vec![(b"big".to_vec(), vec![b("m0000")]), (b"gone".to_vec(), vec![])]);
        let live: Vec<Bytes> = s.live_keys(0, u64::MAX, 10, 0).expect("keys").0.into_iter().map(|(_, k)| k).collect();
        assert_eq!(live, vec![b("big")]);
        assert_eq!(members_of(&s.get(b"big").expect("read").expect("stored")).len(), 1000, "reads get every member");
    }

    /// Issue 22: a key with a hash tag that a build before tags stored at its whole key's
    /// ring position (a set in parts: its header and member records) moves to its tag's
    /// position when the store opens, whole, and is listed for the node to hand on.
    #[test]
    fn a_tagged_key_stored_at_its_whole_keys_position_moves_to_its_tags() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let members: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
        let (key, plain) = (&b"{user1}.set"[..], &b"plain{}"[..]);
        let old_prefix = md5::compute(key).0[..8].to_vec();
        let written = {
            let s = Storage::open(dir.path(), FsyncPolicy::Never).expect("open");
            let written = write_set(&s, key, 1, &members, &[]);
            write_set(&s, plain, 1, &members[..3], &[]);
            // Move its records where the older build had them.
            let new_key = Storage::data_key(key);
            assert_ne!(new_key[..8], old_prefix[..]);
            let mut old_key = old_prefix.clone();
            old_key.extend_from_slice(key);
            let header = s.data.get(&new_key).expect("read").expect("a header");
            s.data.remove(new_key.clone()).expect("remove");
            s.data.insert(old_key, header).expect("insert");
            let prefix = super::members_prefix(&new_key);
            let records: Vec<(Vec<u8>, Vec<u8>)> = s
                .members
                .prefix(&prefix)
                .map(|g| {
                    let (k, v) = g.into_inner().expect("a record");
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            assert_eq!(records.len(), 300);
            for (k, v) in records {
                s.members.remove(k.clone()).expect("remove");
                let mut moved = old_prefix.clone();
                moved.extend_from_slice(&k[8..]);
                s.members.insert(moved, v).expect("insert");
            }
            s.as_older_build();
            s.cache.remove(key);
            assert!(s.get(key).expect("read").is_none(), "not found where the tag places it");
            written
        };
        let s = Storage::open(dir.path(), FsyncPolicy::Never).expect("reopen");
        let read = s.get(key).expect("read").expect("moved");
        assert_eq!(members_of(&read), members_of(&written));
        assert_eq!(s.take_relocated(), vec![b("{user1}.set")], "only the misplaced key");
        assert!(s.take_relocated().is_empty(), "once");
        assert_eq!(member_records(&s), 303, "no member record left behind at the old place");
        let mut keys = Vec::new();
        s.for_each(|k, _| keys.push(k.to_vec())).expect("walk");
        keys.sort();
        assert_eq!(keys, vec![plain.to_vec(), key.to_vec()]);
        drop(s);
        let s = Storage::open(dir.path(), FsyncPolicy::Never).expect("reopen again");
        assert!(s.take_relocated().is_empty(), "nothing to move any more");
        assert_eq!(members_of(&s.get(key).expect("read").expect("stored")), members_of(&written));
    }
}
