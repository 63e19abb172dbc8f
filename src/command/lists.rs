//! The list commands: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP, LLEN, LRANGE, LINDEX, LSET,
//! LINSERT, LREM, LTRIM, LPOS, LMOVE, RPOPLPUSH, LMPOP.
//!
//! A list is a sequence CRDT (`version::list`): pushes and pops are read-modify-writes at the
//! key's first owner like INCR, so while it is up a pop returns each element once; across a
//! partition both sides may pop the same element (at least once, never lost), and concurrent
//! pushes all survive in one order every replica agrees on. LMOVE and RPOPLPUSH are a pop and
//! a push: atomic on a node alone (they hold the node's gate), two writes in a cluster.

use bytes::Bytes;

use super::collection::{bounded, view, View};
use super::{parse_i64, CmdResult, CommandError};
use crate::node::Node;
use crate::notify::Effect;
use crate::resp::Reply;
use crate::rmw::{range_bounds, Rmw};
use crate::version::OrList;

async fn read(node: &Node, key: &[u8]) -> Result<View<OrList>, CommandError> {
    view(node, key).await
}

/// LPUSH, RPUSH, LPUSHX, RPUSHX.
pub async fn push(node: &Node, args: &[Bytes], head: bool, existing: bool) -> CmdResult {
    let elements = args[2..].iter().map(|e| super::value_to_store(node, e)).collect::<Result<_, _>>()?;
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::Push { elements, head, existing }).await?.int))
}

pub(super) fn positive_count(arg: &[u8]) -> Result<u64, CommandError> {
    let n = parse_i64(arg).map_err(|_| CommandError::Other("value is out of range, must be positive".into()))?;
    u64::try_from(n).map_err(|_| CommandError::Other("value is out of range, must be positive".into()))
}

/// LPOP, RPOP `key [count]`.
pub async fn pop(node: &Node, args: &[Bytes], head: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = args.get(2).map(|c| positive_count(c)).transpose()?;
    let outcome = super::modify(node, &args[1], Rmw::Pop { head, count }).await?;
    Ok(match count {
        None => outcome.members.into_iter().next().map_or(Reply::Nil, Reply::Bulk),
        Some(_) if outcome.len == 0 => Reply::NilArray,
        Some(_) => Reply::Array(outcome.members.into_iter().map(Reply::Bulk).collect()),
    })
}

pub async fn llen(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read(node, &args[1]).await?.len() as i64))
}

/// The elements of `list` from index `a` to `b` (both within it), walking from the nearer
/// end.
fn slice(list: &OrList, a: usize, b: usize) -> Vec<Bytes> {
    let len = list.len();
    if a > len - 1 - b {
        let mut out: Vec<Bytes> = list.iter().rev().skip(len - 1 - b).take(b - a + 1).map(|(_, e)| e.value).collect();
        out.reverse();
        out
    } else {
        list.iter().skip(a).take(b - a + 1).map(|(_, e)| e.value).collect()
    }
}

pub async fn lrange(node: &Node, args: &[Bytes]) -> CmdResult {
    let (start, stop) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
    let list = read(node, &args[1]).await?;
    let Some((a, b)) = range_bounds(start, stop, list.len()) else { return Ok(Reply::Array(Vec::new())) };
    bounded(node, b - a + 1)?;
    Ok(Reply::Array(slice(&list, a, b).into_iter().map(Reply::Bulk).collect()))
}

pub async fn lindex(node: &Node, args: &[Bytes]) -> CmdResult {
    // Redis looks the key up before it reads the index.
    let list = read(node, &args[1]).await?;
    if list.is_empty() {
        return Ok(Reply::Nil);
    }
    let index = parse_i64(&args[2])?;
    let len = list.len() as i64;
    let i = if index < 0 { len + index } else { index };
    if i < 0 || i >= len {
        return Ok(Reply::Nil);
    }
    Ok(slice(&list, i as usize, i as usize).into_iter().next().map_or(Reply::Nil, Reply::Bulk))
}

pub async fn lset(node: &Node, args: &[Bytes]) -> CmdResult {
    // Redis looks the key up (and checks its type) before it reads the index.
    let index = match parse_i64(&args[2]) {
        Ok(i) => i,
        Err(e) if read(node, &args[1]).await?.is_empty() => {
            drop(e);
            return Err(CommandError::Other("no such key".into()));
        }
        Err(e) => return Err(e),
    };
    let element = super::value_to_store(node, &args[3])?;
    super::modify(node, &args[1], Rmw::LSet { index, element }).await?;
    Ok(Reply::ok())
}

pub async fn linsert(node: &Node, args: &[Bytes]) -> CmdResult {
    let before = if args[2].eq_ignore_ascii_case(b"BEFORE") {
        true
    } else if args[2].eq_ignore_ascii_case(b"AFTER") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    let element = super::value_to_store(node, &args[4])?;
    let op = Rmw::LInsert { before, pivot: args[3].clone(), element };
    Ok(Reply::Int(super::modify(node, &args[1], op).await?.int))
}

pub async fn lrem(node: &Node, args: &[Bytes]) -> CmdResult {
    let count = parse_i64(&args[2])?;
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::LRem { count, element: args[3].clone() }).await?.int))
}

pub async fn ltrim(node: &Node, args: &[Bytes]) -> CmdResult {
    let (start, stop) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
    super::modify(node, &args[1], Rmw::LTrim { start, stop }).await?;
    Ok(Reply::ok())
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
pub async fn lpos(node: &Node, args: &[Bytes]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else { return Err(CommandError::Syntax) };
        let opt = &args[i];
        if opt.eq_ignore_ascii_case(b"RANK") {
            rank = parse_i64(v)?;
            if rank == 0 || rank == i64::MIN {
                return Err(CommandError::Other(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list".into(),
                ));
            }
        } else if opt.eq_ignore_ascii_case(b"COUNT") {
            let n = parse_i64(v).ok().and_then(|n| usize::try_from(n).ok());
            count = Some(n.ok_or_else(|| CommandError::Other("COUNT can't be negative".into()))?);
        } else if opt.eq_ignore_ascii_case(b"MAXLEN") {
            let n = parse_i64(v).ok().and_then(|n| usize::try_from(n).ok());
            maxlen = n.ok_or_else(|| CommandError::Other("MAXLEN can't be negative".into()))?;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    let list = read(node, &args[1]).await?;
    let len = list.len();
    let scan = if maxlen == 0 { len } else { maxlen.min(len) };
    let wanted = match count {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 1,
    };
    let skip = (rank.unsigned_abs() - 1) as usize;
    let element = &args[2];
    let hits: Vec<i64> = if rank > 0 {
        let it = list.iter().take(scan).enumerate().filter(|(_, (_, e))| e.value == *element);
        it.skip(skip).take(wanted).map(|(i, _)| i as i64).collect()
    } else {
        let it = list.iter().rev().take(scan).enumerate().filter(|(_, (_, e))| e.value == *element);
        it.skip(skip).take(wanted).map(|(i, _)| (len - 1 - i) as i64).collect()
    };
    Ok(match count {
        None => hits.first().map_or(Reply::Nil, |&i| Reply::Int(i)),
        Some(_) => Reply::Array(hits.into_iter().map(Reply::Int).collect()),
    })
}

fn side(arg: &[u8]) -> Result<bool, CommandError> {
    if arg.eq_ignore_ascii_case(b"LEFT") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"RIGHT") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

/// Pops one element of `src` at `from` (the head when true) and pushes it to `dst` at `to`.
/// The source's type and then the destination's are checked first, as Redis does; a push that fails puts the element
/// back where it was, so a failure loses nothing.
async fn move_one(node: &Node, src: &Bytes, dst: &Bytes, from: bool, to: bool) -> CmdResult {
    if read(node, src).await?.is_empty() {
        return Ok(Reply::Nil);
    }
    if src != dst {
        read(node, dst).await?;
    }
    let mut popped = node.coordinator.modify(src, Rmw::Pop { head: from, count: None }).await?;
    let Some(element) = popped.members.first().cloned() else { return Ok(Reply::Nil) };
    let push = Rmw::Push { elements: vec![element.clone()], head: to, existing: false };
    let pushed = match node.coordinator.modify(dst, push).await {
        Ok(pushed) => pushed,
        Err(e) => {
            let back = Rmw::Push { elements: vec![element], head: from, existing: false };
            node.coordinator.modify(src, back).await?;
            return Err(e.into());
        }
    };
    // Redis pushes before it pops, so its events come in that order, and a list moved onto
    // itself is never emptied.
    if src == dst {
        popped.len += 1;
    }
    node.notify.effects(dst, Effect::Push { head: to }, &pushed);
    node.notify.effects(src, Effect::Pop { head: from }, &popped);
    Ok(Reply::Bulk(element))
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`.
pub async fn lmove(node: &Node, args: &[Bytes]) -> CmdResult {
    let (from, to) = (side(&args[3])?, side(&args[4])?);
    move_one(node, &args[1], &args[2], from, to).await
}

pub async fn rpoplpush(node: &Node, args: &[Bytes]) -> CmdResult {
    move_one(node, &args[1], &args[2], false, true).await
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`: pops from the first key that holds
/// a list; `[key, [elements]]`, or nil when none does.
pub async fn lmpop(node: &Node, args: &[Bytes]) -> CmdResult {
    let (keys, rest) = numkeys(args, 1)?;
    let Some(dir) = rest.first() else { return Err(CommandError::Syntax) };
    let head = side(dir)?;
    let count = mpop_count(&rest[1..])?;
    for key in keys {
        let outcome = super::modify(node, key, Rmw::Pop { head, count: Some(count) }).await?;
        if !outcome.members.is_empty() {
            let elements = outcome.members.into_iter().map(Reply::Bulk).collect();
            return Ok(Reply::Array(vec![Reply::Bulk(shown(key)), Reply::Array(elements)]));
        }
    }
    Ok(Reply::NilArray)
}

/// LMPOP's and ZMPOP's `[COUNT count]` (1 without it).
pub(super) fn mpop_count(opts: &[Bytes]) -> Result<u64, CommandError> {
    match opts {
        [] => Ok(1),
        [opt, n] if opt.eq_ignore_ascii_case(b"COUNT") => {
            let n = parse_i64(n).ok().filter(|&n| n > 0);
            Ok(n.ok_or_else(|| CommandError::Other("count should be greater than 0".into()))? as u64)
        }
        _ => Err(CommandError::Syntax),
    }
}

/// A key as its client named it (without its database's prefix).
pub(super) fn shown(key: &Bytes) -> Bytes {
    super::db::user(super::db::db_of(key), key).unwrap_or_else(|| key.clone())
}

/// The keys of a command that gives their number at `args[at]`, and the arguments after them.
pub(super) fn numkeys(args: &[Bytes], at: usize) -> Result<(&[Bytes], &[Bytes]), CommandError> {
    let n = parse_i64(&args[at]).map_err(|_| CommandError::Other("numkeys should be greater than 0".into()))?;
    if n <= 0 {
        return Err(CommandError::Other("numkeys should be greater than 0".into()));
    }
    let n = n as usize;
    if n > args.len() - at - 1 {
        return Err(CommandError::Syntax);
    }
    Ok((&args[at + 1..at + 1 + n], &args[at + 1 + n..]))
}
