//! What the set and hash commands share: a read of a key's set or hash that copies nothing
//! when one sibling holds it ([`View`]), the bound on what one reply lists
//! (`--max-reply-members`), random picks, and the cursor of SSCAN and HSCAN.

use std::sync::Arc;

use bytes::Bytes;

use super::{parse_i64, CommandError};
use crate::coordinator::{now_ms, CoordError};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::{hash_of, set_of, RmwError};
use crate::version::{OrHash, OrSet, SiblingSet, Value};

/// A set or a hash as a read found it: borrowed from the key's one sibling when one holds it
/// (a read of a large set copies nothing), or the join of several siblings' states.
pub(super) struct View<T> {
    siblings: Arc<SiblingSet>,
    joined: Option<T>,
    empty: T,
}

/// What a [`View`] can hold: a set or a hash.
pub(super) trait Collection: Default + Sized {
    fn of(value: &Value) -> Option<&Self>;
    fn from(value: Option<Value>) -> Result<Self, RmwError>;
}

impl Collection for OrSet {
    fn of(value: &Value) -> Option<&OrSet> {
        value.as_set()
    }

    fn from(value: Option<Value>) -> Result<OrSet, RmwError> {
        set_of(value)
    }
}

impl Collection for OrHash {
    fn of(value: &Value) -> Option<&OrHash> {
        value.as_hash()
    }

    fn from(value: Option<Value>) -> Result<OrHash, RmwError> {
        hash_of(value)
    }
}

impl<T: Collection> std::ops::Deref for View<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.joined {
            Some(joined) => joined,
            None => {
                self.siblings.siblings().next().and_then(|s| s.value.as_ref()).and_then(T::of).unwrap_or(&self.empty)
            }
        }
    }
}

/// The set or hash at `key` (empty when missing).
///
/// # Errors
/// WRONGTYPE when the key holds another type.
pub(super) async fn view<T: Collection>(node: &Node, key: &[u8]) -> Result<View<T>, CommandError> {
    let siblings = node.coordinator.get(key, None).await?;
    let now = now_ms();
    let alone = siblings.len() == 1
        && siblings.siblings().next().is_some_and(|s| s.is_live(now) && s.value.as_ref().and_then(T::of).is_some());
    let joined =
        if alone { None } else { Some(T::from(siblings.resolve(now).map(|r| r.value)).map_err(CoordError::Rmw)?) };
    Ok(View { siblings, joined, empty: T::default() })
}

/// Refuses a reply of more than `--max-reply-members` members or fields (a huge set is read
/// with SSCAN or HSCAN instead).
///
/// # Errors
/// The bound's error.
pub(super) fn bounded(node: &Node, n: usize) -> Result<(), CommandError> {
    let max = node.config.max_reply_members;
    if n > max {
        return Err(CommandError::Other(format!(
            "reply too large: {n} members or fields, more than --max-reply-members ({max}); use SSCAN or HSCAN"
        )));
    }
    Ok(())
}

/// A count argument of SRANDMEMBER and HRANDFIELD (Redis refuses the one i64 whose negation
/// is out of range).
pub(super) fn count_arg(arg: &[u8]) -> Result<i64, CommandError> {
    match parse_i64(arg)? {
        i64::MIN => Err(CommandError::Other(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807".into(),
        )),
        n => Ok(n),
    }
}

/// `n` indexes below `len` picked at random: distinct when `distinct`, else with repeats.
pub(super) fn pick(len: usize, n: usize, distinct: bool) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    if distinct {
        let mut rng = rand::thread_rng();
        let mut picked = rand::seq::index::sample(&mut rng, len, n.min(len)).into_vec();
        picked.sort_unstable();
        picked
    } else {
        (0..n).map(|_| (crate::random::u64() % len as u64) as usize).collect()
    }
}

/// The options of SSCAN and HSCAN: `cursor [MATCH pattern] [COUNT count]`.
pub(super) struct ScanArgs {
    pub cursor: usize,
    pub pattern: Option<super::glob::Pattern>,
    pub count: usize,
    /// Up to this many members a call answers whole (see [`SCAN_WHOLE`]).
    pub whole: usize,
}

/// The cursor of SSCAN/HSCAN (Redis reads it before it looks the key up; the options after).
pub(super) fn scan_cursor(args: &[Bytes]) -> Result<u64, CommandError> {
    std::str::from_utf8(&args[2])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CommandError::Other("invalid cursor".into()))
}

/// The reply of a scan of a missing key (whatever the options).
pub(super) fn empty_scan() -> Reply {
    Reply::Array(vec![Reply::bulk("0"), Reply::Array(Vec::new())])
}

fn scan_args(args: &[Bytes]) -> Result<ScanArgs, CommandError> {
    let cursor = scan_cursor(args)?;
    let (mut pattern, mut count) = (None, 10usize);
    let mut i = 3;
    while i < args.len() {
        let value = args.get(i + 1).ok_or(CommandError::Syntax)?;
        match args[i].to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(super::glob::Pattern::new(value)),
            b"COUNT" => {
                let n = parse_i64(value)?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                count = n as usize;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 2;
    }
    Ok(ScanArgs { cursor: usize::try_from(cursor).unwrap_or(usize::MAX), pattern, count, whole: SCAN_WHOLE })
}

/// The options of a SSCAN/HSCAN, its pages held within `--max-reply-members`.
pub(super) fn scan_options(node: &Node, args: &[Bytes]) -> Result<ScanArgs, CommandError> {
    let mut a = scan_args(args)?;
    a.count = a.count.min(node.config.max_reply_members);
    a.whole = a.whole.min(node.config.max_reply_members);
    Ok(a)
}

/// Up to this many members a scan answers in one call with cursor 0 (as Redis does for a set
/// or hash in its compact encodings).
pub(super) const SCAN_WHOLE: usize = 128;

/// One page of a SSCAN/HSCAN over `len` members in their order: the index range and the next
/// cursor. The cursor is the position in byte order: members present from the first call to
/// the last are all returned (some maybe twice when others are removed meanwhile).
pub(super) fn page(len: usize, a: &ScanArgs) -> (std::ops::Range<usize>, usize) {
    if len <= a.whole {
        return (0..len, 0);
    }
    let start = a.cursor.min(len);
    let end = start.saturating_add(a.count).min(len);
    (start..end, if end >= len { 0 } else { end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_member_once() {
        let a = |cursor, count| ScanArgs { cursor, pattern: None, count, whole: SCAN_WHOLE };
        assert_eq!(page(10, &a(0, 3)), (0..10, 0), "a small set in one call");
        let mut seen = 0;
        let mut cursor = 0;
        loop {
            let (r, next) = page(1000, &a(cursor, 300));
            seen += r.len();
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen, 1000);
    }

    #[test]
    fn picks_are_distinct_or_repeated_as_asked() {
        let p = pick(5, 10, true);
        assert_eq!(p, vec![0, 1, 2, 3, 4]);
        assert_eq!(pick(5, 10, false).len(), 10);
        assert!(pick(0, 3, false).is_empty());
    }
}
