//! The sorted-set commands: ZADD, ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK, ZREVRANK,
//! ZCOUNT, ZLEXCOUNT, ZRANGE (Redis 6.2's form) and its older relatives, ZRANGESTORE, the
//! ZREMRANGEBY* family, ZPOPMIN, ZPOPMAX, ZMPOP, ZRANDMEMBER, ZSCAN, ZUNION, ZINTER, ZDIFF and
//! their STORE forms, ZINTERCARD.
//!
//! A sorted set is an observed-remove map of members to scores (`version::zset`): writes are
//! read-modify-writes at the key's first owner; a ZADD's score is last-write-wins, ZINCRBY
//! increments add up, and a removal removes what it observed. Scores reply as Redis 7.0
//! formats them (`%.17g`; a double in RESP3).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::collection::{bounded, count_arg, empty_scan, page, pick, scan_cursor, scan_options, view, View};
use super::lists::{numkeys, shown};
use super::{parse_i64, CmdResult, CommandError};
use crate::coordinator::{now_ms, CoordError};
use crate::node::Node;
use crate::notify::Class;
use crate::resp::{format_double, Reply};
use crate::rmw::{select, Copied, LexBound, Rmw, RmwError, ScoreBound, ZAddFlags, ZRange};
use crate::version::{Value, ZSet};

async fn read(node: &Node, key: &[u8]) -> Result<View<ZSet>, CommandError> {
    view(node, key).await
}

/// A score argument, as Redis's `getDoubleFromObject` takes it (`inf`, `-inf`, exponents; no
/// spaces, no NaN, nothing out of range).
pub(super) fn parse_score(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let v: f64 = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => lower.parse().ok()?,
        rest if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') => lower.parse().ok()?,
        _ => return None,
    };
    // Out of range: strtod's ERANGE (an overflow, or an underflow to zero).
    let overflow = v.is_infinite() && !lower.contains("inf");
    let underflow =
        v == 0.0 && lower.split(['e']).next().is_some_and(|m| m.bytes().any(|c| (b'1'..=b'9').contains(&c)));
    (!v.is_nan() && !overflow && !underflow).then_some(v)
}

fn score_arg(arg: &[u8]) -> Result<f64, CommandError> {
    parse_score(arg).ok_or_else(|| CommandError::Other("value is not a valid float".into()))
}

fn score_bound(arg: &[u8]) -> Result<ScoreBound, CommandError> {
    let (open, text) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let value = parse_score(text).ok_or_else(|| CommandError::Other("min or max is not a float".into()))?;
    Ok(ScoreBound { value, open })
}

fn lex_bound(arg: &[u8]) -> Result<LexBound, CommandError> {
    match arg {
        b"-" => Ok(LexBound::Min),
        b"+" => Ok(LexBound::Max),
        [b'[', rest @ ..] => Ok(LexBound::Incl(Bytes::copy_from_slice(rest))),
        [b'(', rest @ ..] => Ok(LexBound::Excl(Bytes::copy_from_slice(rest))),
        _ => Err(CommandError::Other("min or max not valid string range item".into())),
    }
}

/// Members with their scores, as a reply: flat pairs in RESP2, pairs in RESP3.
fn with_scores(items: Vec<(Bytes, f64)>) -> Reply {
    Reply::Pairs(items.into_iter().map(|(m, s)| (Reply::Bulk(m), Reply::Double(s))).collect())
}

fn members_only(items: Vec<(Bytes, f64)>) -> Reply {
    Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
pub async fn zadd(node: &Node, args: &[Bytes]) -> CmdResult {
    let mut flags = ZAddFlags::default();
    let mut i = 2;
    while let Some(a) = args.get(i) {
        let f = match a.to_ascii_uppercase().as_slice() {
            b"NX" => &mut flags.nx,
            b"XX" => &mut flags.xx,
            b"GT" => &mut flags.gt,
            b"LT" => &mut flags.lt,
            b"CH" => &mut flags.ch,
            b"INCR" => &mut flags.incr,
            _ => break,
        };
        *f = true;
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(CommandError::Other("XX and NX options at the same time are not compatible".into()));
    }
    if (flags.gt && flags.lt) || (flags.nx && (flags.gt || flags.lt)) {
        return Err(CommandError::Other("GT, LT, and/or NX options at the same time are not compatible".into()));
    }
    if flags.incr && rest.len() > 2 {
        return Err(CommandError::Other("INCR option supports a single increment-element pair".into()));
    }
    let mut members = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks_exact(2) {
        let score = score_arg(&pair[0])?;
        members.push((score, super::value_to_store(node, &pair[1])?));
    }
    let outcome = super::modify(node, &args[1], Rmw::ZAdd { members, flags }).await?;
    Ok(if flags.incr {
        outcome.scores.first().map_or(Reply::Nil, |&s| Reply::Double(s))
    } else {
        Reply::Int(outcome.int)
    })
}

pub async fn zincrby(node: &Node, args: &[Bytes]) -> CmdResult {
    let by = score_arg(&args[2])?;
    let member = super::value_to_store(node, &args[3])?;
    let flags = ZAddFlags { incr: true, ..ZAddFlags::default() };
    let outcome = super::modify(node, &args[1], Rmw::ZAdd { members: vec![(by, member)], flags }).await?;
    Ok(outcome.scores.first().map_or(Reply::Nil, |&s| Reply::Double(s)))
}

pub async fn zrem(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::ZRem { members: args[2..].to_vec() }).await?.int))
}

pub async fn zcard(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read(node, &args[1]).await?.len() as i64))
}

pub async fn zscore(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(read(node, &args[1]).await?.score(&args[2]).map_or(Reply::Nil, Reply::Double))
}

pub async fn zmscore(node: &Node, args: &[Bytes]) -> CmdResult {
    let z = read(node, &args[1]).await?;
    Ok(Reply::Array(args[2..].iter().map(|m| z.score(m).map_or(Reply::Nil, Reply::Double)).collect()))
}

/// ZRANK, ZREVRANK: O(log n) (the score order counts).
pub async fn zrank(node: &Node, args: &[Bytes], rev: bool) -> CmdResult {
    let z = read(node, &args[1]).await?;
    Ok(match z.rank(&args[2]) {
        None => Reply::Nil,
        Some(rank) if rev => Reply::Int((z.len() - 1 - rank) as i64),
        Some(rank) => Reply::Int(rank as i64),
    })
}

/// ZCOUNT: O(log n), the difference of two ranks.
pub async fn zcount(node: &Node, args: &[Bytes]) -> CmdResult {
    let (min, max) = (score_bound(&args[2])?, score_bound(&args[3])?);
    let z = read(node, &args[1]).await?;
    let below_min = z.count_below(min.value, min.open);
    let up_to_max = z.count_below(max.value, !max.open);
    Ok(Reply::Int(up_to_max.saturating_sub(below_min) as i64))
}

pub async fn zlexcount(node: &Node, args: &[Bytes]) -> CmdResult {
    let range = ZRange::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?);
    Ok(Reply::Int(select(&*read(node, &args[1]).await?, &range, false, 0, -1).len() as i64))
}

/// How a range command names its range.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// A parsed range request: the range (min first), REV, LIMIT, WITHSCORES.
struct RangeRequest {
    range: ZRange,
    rev: bool,
    offset: i64,
    count: i64,
    scores: bool,
}

/// Parses `start stop` as `by` names them (given max first when `rev`, except ranks), then
/// the options `opts` (ZRANGE's when `modern`: BYSCORE, BYLEX, REV are read from them).
fn range_request(
    start: &[u8],
    stop: &[u8],
    opts: &[Bytes],
    mut by: By,
    mut rev: bool,
    modern: bool,
    store: bool,
) -> Result<RangeRequest, CommandError> {
    // As Redis's `zrangeGenericCommand` reads them: BYSCORE, BYLEX and REV once each, and
    // only in ZRANGE's own form.
    let (mut offset, mut count, mut scores) = (0, -1, false);
    let (mut by_given, mut rev_given) = (!modern, !modern);
    let mut i = 0;
    while i < opts.len() {
        let o = opts[i].to_ascii_uppercase();
        match o.as_slice() {
            b"WITHSCORES" if !store => scores = true,
            b"LIMIT" if opts.len() - i > 2 => {
                offset = parse_i64(&opts[i + 1])?;
                count = parse_i64(&opts[i + 2])?;
                i += 2;
            }
            b"REV" if !rev_given => (rev, rev_given) = (true, true),
            b"BYSCORE" if !by_given => (by, by_given) = (By::Score, true),
            b"BYLEX" if !by_given => (by, by_given) = (By::Lex, true),
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    if count != -1 && by == By::Rank {
        return Err(CommandError::Other(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX".into(),
        ));
    }
    if scores && by == By::Lex {
        return Err(CommandError::Other("syntax error, WITHSCORES not supported in combination with BYLEX".into()));
    }
    // A rank range takes no offset: Redis ignores `LIMIT offset -1` there.
    if by == By::Rank {
        offset = 0;
    }
    let (lo, hi) = if rev && by != By::Rank { (stop, start) } else { (start, stop) };
    let range = match by {
        By::Rank => ZRange::Rank(parse_i64(start)?, parse_i64(stop)?),
        By::Score => ZRange::Score(score_bound(lo)?, score_bound(hi)?),
        By::Lex => ZRange::Lex(lex_bound(lo)?, lex_bound(hi)?),
    };
    Ok(RangeRequest { range, rev, offset, count, scores })
}

fn run_range(z: &ZSet, r: &RangeRequest) -> Vec<(Bytes, f64)> {
    if r.offset < 0 {
        return Vec::new();
    }
    select(z, &r.range, r.rev, usize::try_from(r.offset).unwrap_or(usize::MAX), r.count)
}

/// ZRANGE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX.
pub async fn zrange(node: &Node, args: &[Bytes], by: By2, rev: bool) -> CmdResult {
    let (by, modern) = match by {
        By2::Modern => (By::Rank, true),
        By2::Rank => (By::Rank, false),
        By2::Score => (By::Score, false),
        By2::Lex => (By::Lex, false),
    };
    let req = range_request(&args[2], &args[3], &args[4..], by, rev, modern, false)?;
    let z = read(node, &args[1]).await?;
    let items = run_range(&z, &req);
    bounded(node, items.len())?;
    Ok(if req.scores { with_scores(items) } else { members_only(items) })
}

/// Which range command (ZRANGE itself reads BYSCORE and BYLEX from its options).
#[derive(Clone, Copy)]
pub enum By2 {
    Modern,
    Rank,
    Score,
    Lex,
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`.
pub async fn zrangestore(node: &Node, args: &[Bytes]) -> CmdResult {
    let req = range_request(&args[3], &args[4], &args[5..], By::Rank, false, true, true)?;
    let items = run_range(&*read(node, &args[2]).await?, &req);
    let n = items.len();
    super::store_result(node, &args[1], Copied::ZSet(items), n, Class::Zset, "zrangestore").await?;
    Ok(Reply::Int(n as i64))
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX.
pub async fn zremrange(node: &Node, args: &[Bytes], by: By2) -> CmdResult {
    let range = match by {
        By2::Score => ZRange::Score(score_bound(&args[2])?, score_bound(&args[3])?),
        By2::Lex => ZRange::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?),
        _ => ZRange::Rank(parse_i64(&args[2])?, parse_i64(&args[3])?),
    };
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::ZRemRange { range }).await?.int))
}

/// ZPOPMIN, ZPOPMAX `key [count]`.
pub async fn zpop(node: &Node, args: &[Bytes], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = match args.get(2) {
        None => None,
        Some(c) => Some(super::lists::positive_count(c)?),
    };
    let outcome = super::modify(node, &args[1], Rmw::ZPop { max, count: count.unwrap_or(1) }).await?;
    let items: Vec<(Bytes, f64)> = outcome.members.into_iter().zip(outcome.scores).collect();
    Ok(match count {
        None => Reply::Array(items.into_iter().flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)]).collect()),
        Some(_) => with_scores(items),
    })
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`.
pub async fn zmpop(node: &Node, args: &[Bytes]) -> CmdResult {
    let (keys, rest) = numkeys(args, 1)?;
    let Some(dir) = rest.first() else { return Err(CommandError::Syntax) };
    let max = if dir.eq_ignore_ascii_case(b"MIN") {
        false
    } else if dir.eq_ignore_ascii_case(b"MAX") {
        true
    } else {
        return Err(CommandError::Syntax);
    };
    let count = super::lists::mpop_count(&rest[1..])?;
    for key in keys {
        let outcome = super::modify(node, key, Rmw::ZPop { max, count }).await?;
        if !outcome.members.is_empty() {
            let pairs = outcome
                .members
                .into_iter()
                .zip(outcome.scores)
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                .collect();
            return Ok(Reply::Array(vec![Reply::Bulk(shown(key)), Reply::Array(pairs)]));
        }
    }
    Ok(Reply::NilArray)
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`.
pub async fn zrandmember(node: &Node, args: &[Bytes]) -> CmdResult {
    let scores = match args.get(3) {
        None => false,
        Some(w) if w.eq_ignore_ascii_case(b"WITHSCORES") && args.len() == 4 => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    let count = args.get(2).map(|c| count_arg(c)).transpose()?;
    let z = read(node, &args[1]).await?;
    // Each pick is a member at a random rank: O(log n) apiece.
    let at = |i: usize| z.at_rank(i).map(|(s, m)| (m.clone(), s));
    Ok(match count {
        None => pick(z.len(), 1, true).first().and_then(|&i| at(i)).map_or(Reply::Nil, |(m, _)| Reply::Bulk(m)),
        Some(n) => {
            let wanted = if n >= 0 { n.unsigned_abs().min(z.len() as u64) } else { n.unsigned_abs() };
            bounded(node, usize::try_from(wanted).unwrap_or(usize::MAX))?;
            let picked: Vec<(Bytes, f64)> = pick(z.len(), wanted as usize, n >= 0).into_iter().filter_map(at).collect();
            if scores {
                with_scores(picked)
            } else {
                members_only(picked)
            }
        }
    })
}

pub async fn zscan(node: &Node, args: &[Bytes]) -> CmdResult {
    scan_cursor(args)?;
    let z = read(node, &args[1]).await?;
    if z.is_empty() {
        return Ok(empty_scan());
    }
    let a = scan_options(node, args)?;
    let (members, next) = page(z.map().members(), z.len(), &a);
    let mut found = Vec::new();
    for m in members.into_iter().filter(|m| a.pattern.as_ref().is_none_or(|p| p.matches(m))) {
        found.push(Reply::Bulk(m.clone()));
        found.push(Reply::Bulk(format_double(z.score(m).unwrap_or(0.0))));
    }
    Ok(Reply::Array(vec![Reply::Bulk(Bytes::from(next.to_string())), Reply::Array(found)]))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Algebra {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// The members and scores of a key read as an input of ZUNION and friends: a sorted set, or a
/// set (every score 1), or nothing.
async fn input(node: &Node, key: &[u8]) -> Result<Vec<(Bytes, f64)>, CommandError> {
    let siblings = node.coordinator.get(key, None).await?;
    Ok(match siblings.resolve(now_ms()).map(|r| r.value) {
        None => Vec::new(),
        Some(Value::ZSet(z)) => z.by_score().map(|(s, m)| (m.clone(), s)).collect(),
        Some(Value::Set(s)) => s.members().map(|m| (m.clone(), 1.0)).collect(),
        Some(_) => return Err(CoordError::Rmw(RmwError::WrongType).into()),
    })
}

/// Parses the inputs and options of ZUNION, ZINTER, ZDIFF (`args` from numkeys on) and
/// computes the result, in score order; and whether WITHSCORES was given.
async fn combine(
    node: &Node,
    name: &str,
    args: &[Bytes],
    op: Algebra,
    store: bool,
) -> Result<(Vec<(Bytes, f64)>, bool), CommandError> {
    let n = parse_i64(&args[0])?;
    if n < 1 {
        return Err(CommandError::Other(format!("at least 1 input key is needed for '{name}' command")));
    }
    if n as u64 > (args.len() - 1) as u64 {
        return Err(CommandError::Syntax);
    }
    let (keys, opts) = args[1..].split_at(n as usize);
    // Redis reads (and type-checks) the inputs before it reads the options.
    let mut inputs = Vec::with_capacity(keys.len());
    for key in keys {
        inputs.push(input(node, key).await?);
    }
    let mut weights: Vec<f64> = vec![1.0; keys.len()];
    let (mut agg, mut scores) = (Aggregate::Sum, false);
    let mut i = 0;
    while i < opts.len() {
        let o = opts[i].to_ascii_uppercase();
        match o.as_slice() {
            b"WEIGHTS" if op != Algebra::Diff && opts.len() - i > keys.len() => {
                for (w, a) in weights.iter_mut().zip(&opts[i + 1..]) {
                    *w = parse_score(a).ok_or_else(|| CommandError::Other("weight value is not a float".into()))?;
                }
                i += keys.len();
            }
            b"AGGREGATE" if op != Algebra::Diff && i + 1 < opts.len() => {
                agg = match opts[i + 1].to_ascii_uppercase().as_slice() {
                    b"SUM" => Aggregate::Sum,
                    b"MIN" => Aggregate::Min,
                    b"MAX" => Aggregate::Max,
                    _ => return Err(CommandError::Syntax),
                };
                i += 1;
            }
            b"WITHSCORES" if !store => scores = true,
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    let weigh = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    let fold = |a: f64, b: f64| match agg {
        Aggregate::Sum => {
            let v = a + b;
            if v.is_nan() {
                0.0
            } else {
                v
            }
        }
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    };
    let mut out: BTreeMap<Bytes, f64> = BTreeMap::new();
    match op {
        Algebra::Union => {
            for (input, w) in inputs.iter().zip(&weights) {
                for (m, s) in input {
                    let v = weigh(*s, *w);
                    out.entry(m.clone()).and_modify(|x| *x = fold(*x, v)).or_insert(v);
                }
            }
        }
        Algebra::Inter => {
            let maps: Vec<BTreeMap<&Bytes, f64>> =
                inputs.iter().map(|i| i.iter().map(|(m, s)| (m, *s)).collect()).collect();
            if let Some((first, rest)) = maps.split_first() {
                'member: for (m, s) in first {
                    let mut v = weigh(*s, weights[0]);
                    for (j, other) in rest.iter().enumerate() {
                        let Some(s) = other.get(m) else { continue 'member };
                        v = fold(v, weigh(*s, weights[j + 1]));
                    }
                    out.insert((*m).clone(), v);
                }
            }
        }
        Algebra::Diff => {
            if let Some((first, rest)) = inputs.split_first() {
                let gone: std::collections::HashSet<&Bytes> = rest.iter().flatten().map(|(m, _)| m).collect();
                out = first.iter().filter(|(m, _)| !gone.contains(m)).cloned().collect();
            }
        }
    }
    let mut items: Vec<(Bytes, f64)> = out.into_iter().map(|(m, s)| (m, if s == 0.0 { 0.0 } else { s })).collect();
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok((items, scores))
}

fn name(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

/// ZUNION, ZINTER, ZDIFF.
pub async fn algebra(node: &Node, args: &[Bytes], op: Algebra) -> CmdResult {
    let (items, scores) = combine(node, &name(&args[0]), &args[1..], op, false).await?;
    bounded(node, items.len())?;
    Ok(if scores { with_scores(items) } else { members_only(items) })
}

/// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: the result replaces the destination.
pub async fn store(node: &Node, args: &[Bytes], op: Algebra) -> CmdResult {
    let (items, _) = combine(node, &name(&args[0]), &args[2..], op, true).await?;
    let n = items.len();
    let event = match op {
        Algebra::Union => "zunionstore",
        Algebra::Inter => "zinterstore",
        Algebra::Diff => "zdiffstore",
    };
    super::store_result(node, &args[1], Copied::ZSet(items), n, Class::Zset, event).await?;
    Ok(Reply::Int(n as i64))
}

/// `ZINTERCARD numkeys key [key ...] [LIMIT limit]`.
pub async fn zintercard(node: &Node, args: &[Bytes]) -> CmdResult {
    let n = parse_i64(&args[1])?;
    if n < 1 {
        return Err(CommandError::Other("at least 1 input key is needed for 'zintercard' command".into()));
    }
    if n as u64 > (args.len() - 2) as u64 {
        return Err(CommandError::Syntax);
    }
    let (keys, opts) = args[2..].split_at(n as usize);
    // Redis type-checks the inputs before it reads LIMIT.
    for key in keys {
        input(node, key).await?;
    }
    let limit = match opts {
        [] => 0,
        [o, l] if o.eq_ignore_ascii_case(b"LIMIT") => parse_i64(l)
            .ok()
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| CommandError::Other("LIMIT can't be negative".into()))?,
        _ => return Err(CommandError::Syntax),
    };
    let mut numbered = vec![args[1].clone()];
    numbered.extend(keys.iter().cloned());
    let n = combine(node, "zintercard", &numbered, Algebra::Inter, true).await?.0.len();
    Ok(Reply::Int(if limit > 0 { n.min(limit) } else { n } as i64))
}
