//! What the set and hash commands share: a read of a key's set or hash that copies nothing
//! when one sibling holds it ([`View`]), the bound on what one reply lists
//! (`--max-reply-members`), random picks, and the cursor of SSCAN and HSCAN.

use std::sync::Arc;

use bytes::Bytes;

use super::{parse_i64, CommandError};
use crate::coordinator::{now_ms, CoordError};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::{hash_of, list_of, set_of, zset_of, RmwError};
use crate::version::{OrHash, OrList, OrSet, SiblingSet, Value, ZSet};

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

impl Collection for OrList {
    fn of(value: &Value) -> Option<&OrList> {
        value.as_list()
    }

    fn from(value: Option<Value>) -> Result<OrList, RmwError> {
        list_of(value)
    }
}

impl Collection for ZSet {
    fn of(value: &Value) -> Option<&ZSet> {
        value.as_zset()
    }

    fn from(value: Option<Value>) -> Result<ZSet, RmwError> {
        zset_of(value)
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
    pub cursor: u64,
    pub pattern: Option<crate::glob::Pattern>,
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
            b"MATCH" => pattern = Some(crate::glob::Pattern::new(value)),
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
    Ok(ScanArgs { cursor, pattern, count, whole: SCAN_WHOLE })
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

/// A member's place in the order of a SSCAN/HSCAN of more than [`SCAN_WHOLE`] members: a
/// 64-bit hash of it, never 0 (cursor 0 is the start).
pub(super) fn scan_position(member: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(member).max(1)
}

/// One page of a SSCAN/HSCAN over `members` (`len` of them, in their order): the members it
/// answers and the next cursor (0 at the end).
///
/// Up to [`SCAN_WHOLE`] members are answered whole, in their order. A larger set is scanned in
/// the order of [`scan_position`]: a cursor is the position of the next member to return, and
/// a call answers the `count` members of the smallest positions at or after it (in position
/// order, never splitting members of one position between calls). A call answers every
/// member then present between its cursor and the next, so a member present from the first
/// call to the last is answered, whatever else was added or removed meanwhile (Redis's
/// guarantee). One pass, O(len log count), the set is not sorted.
pub(super) fn page<'a>(members: impl Iterator<Item = &'a Bytes>, len: usize, a: &ScanArgs) -> (Vec<&'a Bytes>, u64) {
    page_by(members, len, a, scan_position)
}

/// [`page`] in the order of `position` (tests use one with many collisions).
fn page_by<'a>(
    members: impl Iterator<Item = &'a Bytes>,
    len: usize,
    a: &ScanArgs,
    position: impl Fn(&[u8]) -> u64,
) -> (Vec<&'a Bytes>, u64) {
    if len <= a.whole {
        return (members.collect(), 0);
    }
    let count = a.count.max(1);
    // The `count` smallest positions at or after the cursor (a max-heap), and of those left
    // out the smallest position with its members and the next one after it.
    let mut kept = std::collections::BinaryHeap::with_capacity(count.min(len));
    let mut out: Option<(u64, Vec<&'a Bytes>)> = None;
    let mut beyond: Option<u64> = None;
    for m in members {
        let h = position(m);
        if h < a.cursor {
            continue;
        }
        if kept.len() < count {
            kept.push((h, m));
            continue;
        }
        let left = match kept.peek_mut() {
            Some(mut top) if h < top.0 => std::mem::replace(&mut *top, (h, m)),
            _ => (h, m),
        };
        match &mut out {
            Some((at, members)) if left.0 == *at => members.push(left.1),
            Some((at, members)) if left.0 < *at => {
                beyond = Some(*at);
                *at = left.0;
                *members = vec![left.1];
            }
            Some(_) => beyond = Some(beyond.map_or(left.0, |b| b.min(left.0))),
            None => out = Some((left.0, vec![left.1])),
        }
    }
    // Whatever was left out comes at or after the last position kept: members of that same
    // position (a hash collision) are answered with it.
    let last = kept.peek().map_or(0, |top| top.0);
    let mut found = kept.into_vec();
    let next = match out {
        None => 0,
        Some((at, members)) if at == last => {
            found.extend(members.into_iter().map(|m| (at, m)));
            beyond.unwrap_or(0)
        }
        Some((at, _)) => at,
    };
    found.sort_unstable();
    (found.into_iter().map(|(_, m)| m).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cursor: u64, count: usize) -> ScanArgs {
        ScanArgs { cursor, pattern: None, count, whole: SCAN_WHOLE }
    }

    fn members(ids: impl Iterator<Item = usize>) -> std::collections::BTreeSet<Bytes> {
        ids.map(|i| Bytes::from(format!("m{i}"))).collect()
    }

    #[test]
    fn pages_cover_every_member_once() {
        let small = members(0..10);
        let (found, next) = page(small.iter(), small.len(), &args(0, 3));
        assert_eq!((found.len(), next), (10, 0), "a small set in one call");
        let set = members(0..1000);
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let (found, next) = page(set.iter(), set.len(), &args(cursor, 300));
            assert!(found.len() <= 300, "a page holds at most COUNT members");
            seen.extend(found.into_iter().cloned());
            if next == 0 {
                break;
            }
            assert!(next > cursor, "the cursor moves forward");
            cursor = next;
        }
        seen.sort();
        assert_eq!(seen, set.into_iter().collect::<Vec<_>>(), "every member once");
    }

    /// Scan steps interleaved with adds and removes (seeded; `KURA_SCAN_SEEDS` runs more): a
    /// member present from the first call to the last is returned.
    #[test]
    fn a_scan_returns_every_member_present_throughout() {
        scan_while_changing(&scan_position);
        // Positions of 40 values: members of one position (collisions) are never split.
        scan_while_changing(&|m: &[u8]| 1 + scan_position(m) % 40);
    }

    fn scan_while_changing(position: &dyn Fn(&[u8]) -> u64) {
        use rand::{Rng, SeedableRng};
        use std::collections::HashSet;
        let seeds: u64 = std::env::var("KURA_SCAN_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
        for seed in 0..seeds {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut set = members(0..rng.gen_range(0..700));
            let initial = set.clone();
            let mut fresh = 1_000_000;
            let mut removed = HashSet::new();
            let mut returned = HashSet::new();
            let count = rng.gen_range(1..200);
            let (mut cursor, mut calls) = (0, 0);
            loop {
                let (found, next) = page_by(set.iter(), set.len(), &args(cursor, count), position);
                assert!(found.iter().all(|m| set.contains(*m)), "seed {seed}: only present members");
                returned.extend(found.into_iter().cloned());
                if next == 0 {
                    break;
                }
                assert!(next > cursor, "seed {seed}: the cursor moves forward");
                cursor = next;
                calls += 1;
                assert!(calls < 10_000, "seed {seed}: the scan ends");
                for _ in 0..rng.gen_range(0..30) {
                    if set.is_empty() {
                        break;
                    }
                    let victim = set.iter().nth(rng.gen_range(0..set.len())).cloned().expect("not empty");
                    set.remove(&victim);
                    removed.insert(victim);
                }
                for _ in 0..rng.gen_range(0..30) {
                    // New members, and now and then one removed before (not present throughout).
                    let m = if rng.gen_bool(0.2) && !removed.is_empty() {
                        removed.iter().next().cloned().expect("not empty")
                    } else {
                        fresh += 1;
                        Bytes::from(format!("m{fresh}"))
                    };
                    set.insert(m);
                }
            }
            for m in initial.iter().filter(|m| !removed.contains(*m)) {
                assert!(returned.contains(m), "seed {seed}: {m:?} was present throughout the scan and never returned");
            }
        }
    }

    #[test]
    fn picks_are_distinct_or_repeated_as_asked() {
        let p = pick(5, 10, true);
        assert_eq!(p, vec![0, 1, 2, 3, 4]);
        assert_eq!(pick(5, 10, false).len(), 10);
        assert!(pick(0, 3, false).is_empty());
    }
}
