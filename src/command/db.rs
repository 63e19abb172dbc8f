//! Databases (`SELECT 0..N-1`, `--databases`): separate namespaces of keys, stored under a
//! prefix (see [`crate::keyspace`]); here, the commands' keys moved into their database.

use bytes::Bytes;

pub use crate::keyspace::{db_of, internal, user};

use super::Spec;

/// `args` with the keys (as the command's spec places them) moved into database `db`.
pub fn map_keys(db: u32, spec: &Spec, args: &[Bytes]) -> Vec<Bytes> {
    let mut out = args.to_vec();
    if db == 0 {
        return out;
    }
    for i in super::table::key_positions(spec, args) {
        if let Some(k) = out.get_mut(i) {
            *k = internal(db, k);
        }
    }
    out
}
