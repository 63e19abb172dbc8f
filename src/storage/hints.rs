//! The `hints` keyspace: copies this node keeps as a stand-in for other owners (paper 4.6),
//! stored under `owner 0 key`, counted exactly (a leaving node announces whether it holds any).

use std::sync::atomic::Ordering;

use super::{Result, Storage, StorageError};
use crate::version::SiblingSet;

impl Storage {
    /// The stored key of the hint for `owner` of `key`: hints of one key sort together.
    fn hint_key(owner: &str, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(4 + key.len() + owner.len());
        k.extend_from_slice(&(key.len() as u32).to_be_bytes());
        k.extend_from_slice(key);
        k.extend_from_slice(owner.as_bytes());
        k
    }

    /// Splits a stored hint key into (owner, key).
    fn split_hint_key(stored: &[u8]) -> Option<(String, Vec<u8>)> {
        let len = u32::from_be_bytes(stored.get(..4)?.try_into().ok()?) as usize;
        let key = stored.get(4..4 + len)?.to_vec();
        let owner = String::from_utf8(stored.get(4 + len..)?.to_vec()).ok()?;
        Some((owner, key))
    }

    /// Hint records held for other nodes.
    pub fn hint_count(&self) -> u64 {
        self.hint_count.load(Ordering::Acquire)
    }

    /// Read-modify-write of the hint this node holds for `owner` of `key` (hinted handoff):
    /// `f` sees the stored hint and returns the one to store. Durable once
    /// [`Storage::commit`] returns, like data.
    ///
    /// # Errors
    /// Engine failure, a corrupt record, or `f`'s error.
    pub fn hint_update<E>(
        &self,
        owner: &str,
        key: &[u8],
        f: impl FnOnce(Option<&SiblingSet>) -> std::result::Result<SiblingSet, E>,
    ) -> std::result::Result<SiblingSet, E>
    where
        E: From<StorageError>,
    {
        let stored_key = Self::hint_key(owner, key);
        let _guard = self.lock(&stored_key);
        let current = match self.hints.get(&stored_key).map_err(StorageError::from)? {
            Some(bytes) => Some(self.decode_unflushed(key, &bytes)?),
            None => None,
        };
        let next = f(current.as_ref())?;
        let next = self.flushes.load().apply(key, &next).unwrap_or(next);
        self.health.admit().map_err(StorageError::from)?;
        self.hints.insert(stored_key, next.encode()).map_err(|e| self.write_failed("a hint's write", &e))?;
        self.note_write();
        if current.is_none() {
            self.hint_count.fetch_add(1, Ordering::AcqRel);
        }
        Ok(next)
    }

    /// Whether a hint for `key` is held (for any owner).
    ///
    /// # Errors
    /// Engine failure.
    pub fn has_hints_of(&self, key: &[u8]) -> Result<bool> {
        if self.hint_count() == 0 {
            return Ok(false);
        }
        let mut prefix = Vec::with_capacity(4 + key.len());
        prefix.extend_from_slice(&(key.len() as u32).to_be_bytes());
        prefix.extend_from_slice(key);
        Ok(self.hints.prefix(&prefix).next().map(fjall::Guard::key).transpose()?.is_some())
    }

    /// Every hint held for `key`, whoever it is for.
    ///
    /// # Errors
    /// Engine failure or a corrupt record.
    pub fn hints_of(&self, key: &[u8]) -> Result<Vec<(String, SiblingSet)>> {
        if self.hint_count() == 0 {
            return Ok(Vec::new());
        }
        let mut prefix = Vec::with_capacity(4 + key.len());
        prefix.extend_from_slice(&(key.len() as u32).to_be_bytes());
        prefix.extend_from_slice(key);
        let mut out = Vec::new();
        for guard in self.hints.prefix(&prefix) {
            let (k, v) = guard.into_inner()?;
            if let Some((owner, _)) = Self::split_hint_key(&k) {
                out.push((owner, self.decode_unflushed(key, &v)?));
            }
        }
        Ok(out)
    }

    /// Visits hints, (owner, key, set), until `f` returns false. Corrupt records are reported
    /// as errors.
    ///
    /// # Errors
    /// Engine failure while iterating.
    pub fn for_each_hint(&self, mut f: impl FnMut(&str, &[u8], Result<SiblingSet>) -> bool) -> Result<()> {
        for guard in self.hints.iter() {
            let (k, v) = guard.into_inner()?;
            let more = match Self::split_hint_key(&k) {
                Some((owner, key)) => f(&owner, &key, Self::decode(&key, &v)),
                None => f("", &k, Err(StorageError::Corrupt { key: "hint".into(), reason: "bad hint key".into() })),
            };
            if !more {
                break;
            }
        }
        Ok(())
    }

    /// Removes the hint for `owner` of `key` if it still satisfies `delivered` (checked under
    /// its lock: a hinted write that arrived after the delivery keeps the hint). Returns
    /// whether it was removed.
    ///
    /// # Errors
    /// Engine failure or a corrupt record.
    pub fn remove_hint_if(&self, owner: &str, key: &[u8], delivered: impl FnOnce(&SiblingSet) -> bool) -> Result<bool> {
        let stored_key = Self::hint_key(owner, key);
        let _guard = self.lock(&stored_key);
        let Some(bytes) = self.hints.get(&stored_key)? else { return Ok(false) };
        if !delivered(&Self::decode(key, &bytes)?) {
            return Ok(false);
        }
        self.health.admit()?;
        self.forget(key);
        self.hints.remove(stored_key).map_err(|e| self.write_failed("a hint's removal", &e))?;
        self.note_write();
        self.hint_count.fetch_sub(1, Ordering::AcqRel);
        Ok(true)
    }
}
