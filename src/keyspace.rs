//! Databases as key namespaces (`SELECT 0..N-1`). Database 0's keys are stored as given;
//! another database's keys carry a prefix that no client key is expected to start with
//! (`\0kura:db:<n>:`), so every layer below sees ordinary keys and every mechanism
//! (replication, hints, anti-entropy, transfers) works for them unchanged. A key of database 0
//! that starts with that prefix would be read as another database's: documented.

use bytes::{Bytes, BytesMut};

const MAGIC: &[u8] = b"\0kura:db:";

fn prefix(db: u32) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(db.to_string().as_bytes());
    p.push(b':');
    p
}

/// The stored key of the cluster's scripts: a hash of SHA1 -> body (`command/eval.rs`). It
/// is under the databases' prefix, so no database's KEYS, SCAN or DBSIZE shows it, and
/// flushes leave it alone ([`is_reserved`]): SCRIPT FLUSH removes it.
pub const SCRIPTS: &[u8] = b"\0kura:db:scripts";

/// The stored key of the cluster's function libraries: a hash of library name -> code
/// (`command/functions.rs`), reserved as [`SCRIPTS`] is.
pub const FUNCTIONS: &[u8] = b"\0kura:db:functions";

/// Whether a stored key is kura's own (the scripts, the function libraries), not a client's.
pub fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(SCRIPTS) || key.starts_with(FUNCTIONS)
}

/// The stored form of `key` of database `db`.
pub fn internal(db: u32, key: &[u8]) -> Bytes {
    if db == 0 {
        return Bytes::copy_from_slice(key);
    }
    let p = prefix(db);
    let mut k = BytesMut::with_capacity(p.len() + key.len());
    k.extend_from_slice(&p);
    k.extend_from_slice(key);
    k.freeze()
}

/// The client's key, if the stored key `internal` belongs to database `db`.
pub fn user(db: u32, internal: &Bytes) -> Option<Bytes> {
    if db == 0 {
        return (!internal.starts_with(MAGIC)).then(|| internal.clone());
    }
    let p = prefix(db);
    internal.starts_with(&p).then(|| internal.slice(p.len()..))
}

/// The database a stored key belongs to.
pub fn db_of(internal: &[u8]) -> u32 {
    internal
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.iter().position(|&b| b == b':').map(|end| &rest[..end]))
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_stay_apart() {
        let k = Bytes::from_static(b"user:1");
        assert_eq!(internal(0, &k), k);
        let in3 = internal(3, &k);
        assert_eq!(user(3, &in3), Some(k.clone()));
        assert_eq!(user(0, &in3), None);
        assert_eq!(user(30, &in3), None);
        assert_eq!(user(0, &k), Some(k.clone()));
        assert_eq!(user(3, &k), None);
        assert_eq!((db_of(&in3), db_of(&k), db_of(&internal(15, &k))), (3, 0, 15));
    }
}
