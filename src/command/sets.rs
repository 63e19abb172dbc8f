//! The set commands: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SRANDMEMBER, SPOP,
//! SMOVE, SINTER, SUNION, SDIFF and their STORE forms, SINTERCARD, SSCAN.
//!
//! A set is an observed-remove set (`version::OrMap`): SADD and SREM are read-modify-writes
//! at the key's first owner like INCR; concurrent adds and removes on both sides of a
//! partition merge (a removal removes the members it observed; a concurrent add wins). Reads
//! join the siblings' sets. Members are listed in byte order (Redis lists a small set in
//! insertion order and a large one in hash order; neither is promised). Commands over several
//! keys read them one by one: in a cluster they are not a snapshot.

use std::sync::Arc;

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError};
use crate::coordinator::{now_ms, CoordError};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::{hash_of, set_of, Copied, Rmw, RmwError};
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

/// The set at `key` (empty when missing).
///
/// # Errors
/// WRONGTYPE when the key holds another type.
pub(super) async fn read(node: &Node, key: &[u8]) -> Result<View<OrSet>, CommandError> {
    view(node, key).await
}

fn bulks<'a>(members: impl Iterator<Item = &'a Bytes>) -> Vec<Reply> {
    members.map(|m| Reply::Bulk(m.clone())).collect()
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

pub async fn sadd(node: &Node, args: &[Bytes]) -> CmdResult {
    let members = args[2..].iter().map(|m| super::value_to_store(node, m)).collect::<Result<_, _>>()?;
    Ok(Reply::Int(node.coordinator.modify(&args[1], Rmw::SAdd { members }).await?.int))
}

pub async fn srem(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(node.coordinator.modify(&args[1], Rmw::SRem { members: args[2..].to_vec() }).await?.int))
}

pub async fn smembers(node: &Node, args: &[Bytes]) -> CmdResult {
    let set = read(node, &args[1]).await?;
    bounded(node, set.len())?;
    Ok(Reply::Set(bulks(set.members())))
}

pub async fn sismember(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(i64::from(read(node, &args[1]).await?.contains(&args[2]))))
}

pub async fn smismember(node: &Node, args: &[Bytes]) -> CmdResult {
    let set = read(node, &args[1]).await?;
    Ok(Reply::Array(args[2..].iter().map(|m| Reply::Int(i64::from(set.contains(m)))).collect()))
}

pub async fn scard(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read(node, &args[1]).await?.len() as i64))
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

pub async fn srandmember(node: &Node, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = args.get(2).map(|c| count_arg(c)).transpose()?;
    let set = read(node, &args[1]).await?;
    let members: Vec<&Bytes> = set.members().collect();
    Ok(match count {
        None => pick(members.len(), 1, true).first().map_or(Reply::Nil, |&i| Reply::Bulk(members[i].clone())),
        Some(n) => {
            let wanted = if n >= 0 { n.unsigned_abs().min(members.len() as u64) } else { n.unsigned_abs() };
            bounded(node, usize::try_from(wanted).unwrap_or(usize::MAX))?;
            let picked = pick(members.len(), wanted as usize, n >= 0);
            Reply::Array(picked.into_iter().map(|i| Reply::Bulk(members[i].clone())).collect())
        }
    })
}

pub async fn spop(node: &Node, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = match args.get(2) {
        None => None,
        Some(c) => {
            let n = count_arg(c).map_err(|_| CommandError::Other("value is out of range, must be positive".into()))?;
            Some(u64::try_from(n).map_err(|_| CommandError::Other("value is out of range, must be positive".into()))?)
        }
    };
    // A count over the bound is checked against the set's size (one more read, only then).
    if let Some(n) = count.and_then(|n| usize::try_from(n).ok()).filter(|&n| n > node.config.max_reply_members) {
        bounded(node, n.min(read(node, &args[1]).await?.len()))?;
    }
    let op = Rmw::SPop { count, seed: crate::random::u64() };
    let outcome = node.coordinator.modify(&args[1], op).await?;
    Ok(match count {
        None => outcome.members.into_iter().next().map_or(Reply::Nil, Reply::Bulk),
        Some(_) => Reply::Set(outcome.members.into_iter().map(Reply::Bulk).collect()),
    })
}

/// `SMOVE source destination member`: atomic on a node alone (it holds the node's gate); in
/// a cluster two writes: the add to the destination first, then the removal from the source,
/// so a failure between them leaves the member in both sets, never in neither.
pub async fn smove(node: &Node, args: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let source = read(node, src).await?;
    if source.is_empty() {
        return Ok(Reply::Int(0));
    }
    // The destination's type is checked before anything moves, as Redis does.
    read(node, dst).await?;
    if src == dst || !source.contains(member) {
        return Ok(Reply::Int(i64::from(source.contains(member))));
    }
    node.coordinator.modify(dst, Rmw::SAdd { members: vec![member.clone()] }).await?;
    node.coordinator.modify(src, Rmw::SRem { members: vec![member.clone()] }).await?;
    Ok(Reply::Int(1))
}

#[derive(Clone, Copy)]
pub enum Algebra {
    Inter,
    Union,
    Diff,
}

/// The members of the sets at `keys` combined by `op` (missing keys are empty sets).
async fn combine(node: &Node, keys: &[Bytes], op: Algebra) -> Result<Vec<Bytes>, CommandError> {
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        sets.push(read(node, key).await?);
    }
    let Some((first, rest)) = sets.split_first() else { return Ok(Vec::new()) };
    Ok(match op {
        Algebra::Inter => first.members().filter(|m| rest.iter().all(|s| s.contains(m))).cloned().collect(),
        Algebra::Diff => first.members().filter(|m| !rest.iter().any(|s| s.contains(m))).cloned().collect(),
        Algebra::Union => {
            let all: std::collections::BTreeSet<&Bytes> = sets.iter().flat_map(|s| s.members()).collect();
            all.into_iter().cloned().collect()
        }
    })
}

pub async fn algebra(node: &Node, args: &[Bytes], op: Algebra) -> CmdResult {
    let members = combine(node, &args[1..], op).await?;
    bounded(node, members.len())?;
    Ok(Reply::Set(members.into_iter().map(Reply::Bulk).collect()))
}

/// SINTERSTORE, SUNIONSTORE, SDIFFSTORE: the result replaces the destination (an empty one
/// deletes it); the reply is its size.
pub async fn store(node: &Node, args: &[Bytes], op: Algebra) -> CmdResult {
    let members = combine(node, &args[2..], op).await?;
    let n = members.len() as i64;
    let op = Rmw::Store { value: Copied::Set(members), expires_ms: None, nx: false };
    node.coordinator.modify(&args[1], op).await?;
    Ok(Reply::Int(n))
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`.
pub async fn sintercard(node: &Node, args: &[Bytes]) -> CmdResult {
    let numkeys = parse_i64(&args[1])?;
    if numkeys <= 0 {
        return Err(CommandError::Other("numkeys should be greater than 0".into()));
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 2 {
        return Err(CommandError::Other("Number of keys can't be greater than number of args".into()));
    }
    let mut limit = 0;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"LIMIT") && i + 1 < args.len() {
            let l = parse_i64(&args[i + 1])?;
            if l < 0 {
                return Err(CommandError::Other("LIMIT can't be negative".into()));
            }
            limit = l as usize;
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let n = combine(node, &args[2..2 + numkeys], Algebra::Inter).await?.len();
    Ok(Reply::Int(if limit > 0 { n.min(limit) } else { n } as i64))
}

/// The options of SSCAN and HSCAN: `cursor [MATCH pattern] [COUNT count]`.
pub(super) struct ScanArgs {
    pub cursor: usize,
    pub pattern: Option<Bytes>,
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
            b"MATCH" => pattern = Some(value.clone()),
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

pub async fn sscan(node: &Node, args: &[Bytes]) -> CmdResult {
    scan_cursor(args)?;
    let set = read(node, &args[1]).await?;
    if set.is_empty() {
        return Ok(empty_scan());
    }
    let a = scan_options(node, args)?;
    let members: Vec<&Bytes> = set.members().collect();
    let (range, next) = page(members.len(), &a);
    let keep = |m: &&&Bytes| a.pattern.as_ref().is_none_or(|p| super::glob::matches(p, m));
    let found = members[range].iter().filter(keep).map(|m| Reply::Bulk((*m).clone())).collect();
    Ok(Reply::Array(vec![Reply::Bulk(Bytes::from(next.to_string())), Reply::Array(found)]))
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
