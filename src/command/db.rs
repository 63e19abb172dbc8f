//! Databases (`SELECT 0..N-1`, `--databases`): separate namespaces of keys, stored under a
//! prefix (see [`crate::keyspace`]); here, the commands' keys moved into their database.

use bytes::Bytes;

pub use crate::keyspace::{db_of, internal, user};

use super::Spec;

/// `args` with the keys (as the command's spec places them) moved into database `db`.
pub fn map_keys(db: u32, spec: &Spec, args: &[Bytes]) -> Vec<Bytes> {
    let mut out = args.to_vec();
    if db == 0 || spec.first_key <= 0 {
        return out;
    }
    let last = if spec.last_key < 0 { args.len() as i32 + spec.last_key } else { spec.last_key };
    let step = spec.step.max(1) as usize;
    for i in (spec.first_key as usize..=last.max(0) as usize).step_by(step) {
        if let Some(k) = out.get_mut(i) {
            *k = internal(db, k);
        }
    }
    out
}
