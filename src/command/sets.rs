//! The set commands: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SRANDMEMBER, SPOP,
//! SMOVE, SINTER, SUNION, SDIFF and their STORE forms, SINTERCARD, SSCAN.
//!
//! A set is an observed-remove set (`version::OrMap`): SADD and SREM are read-modify-writes
//! at the key's first owner like INCR; concurrent adds and removes on both sides of a
//! partition merge (a removal removes the members it observed; a concurrent add wins). Reads
//! join the siblings' sets. Members are listed in byte order (Redis lists a small set in
//! insertion order and a large one in hash order; neither is promised). Commands over several
//! keys read them one by one: in a cluster they are not a snapshot.

use bytes::Bytes;

use super::collection::{bounded, count_arg, empty_scan, page, pick, scan_cursor, scan_options, view, View};
use super::{parse_i64, CmdResult, CommandError};
use crate::node::Node;
use crate::notify::{Class, Effect};
use crate::resp::Reply;
use crate::rmw::{Copied, Rmw};
use crate::version::OrSet;

/// The set at `key` (empty when missing).
///
/// # Errors
/// WRONGTYPE when the key holds another type.
async fn read(node: &Node, key: &[u8]) -> Result<View<OrSet>, CommandError> {
    view(node, key).await
}

fn bulks<'a>(members: impl Iterator<Item = &'a Bytes>) -> Vec<Reply> {
    members.map(|m| Reply::Bulk(m.clone())).collect()
}

pub async fn sadd(node: &Node, args: &[Bytes]) -> CmdResult {
    let members = args[2..].iter().map(|m| super::value_to_store(node, m)).collect::<Result<_, _>>()?;
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::SAdd { members }).await?.int))
}

pub async fn srem(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::SRem { members: args[2..].to_vec() }).await?.int))
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
    let outcome = super::modify(node, &args[1], op).await?;
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
    let added = node.coordinator.modify(dst, Rmw::SAdd { members: vec![member.clone()] }).await?;
    let removed = node.coordinator.modify(src, Rmw::SRem { members: vec![member.clone()] }).await?;
    // Redis's order: the source's events, then the destination's.
    node.notify.effects(src, Effect::SRem, &removed);
    node.notify.effects(dst, Effect::SAdd, &added);
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
    let n = members.len();
    let event = match op {
        Algebra::Inter => "sinterstore",
        Algebra::Union => "sunionstore",
        Algebra::Diff => "sdiffstore",
    };
    super::store_result(node, &args[1], Copied::Set(members), n, Class::Set, event).await?;
    Ok(Reply::Int(n as i64))
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

pub async fn sscan(node: &Node, args: &[Bytes]) -> CmdResult {
    scan_cursor(args)?;
    let set = read(node, &args[1]).await?;
    if set.is_empty() {
        return Ok(empty_scan());
    }
    let a = scan_options(node, args)?;
    let (members, next) = page(set.members(), set.len(), &a);
    let keep = |m: &&Bytes| a.pattern.as_ref().is_none_or(|p| p.matches(m));
    let found = members.into_iter().filter(keep).map(|m| Reply::Bulk(m.clone())).collect();
    Ok(Reply::Array(vec![Reply::Bulk(Bytes::from(next.to_string())), Reply::Array(found)]))
}
