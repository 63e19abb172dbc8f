//! The hash commands: HSET, HMSET, HSETNX, HGET, HMGET, HGETALL, HDEL, HLEN, HEXISTS, HKEYS,
//! HVALS, HSTRLEN, HINCRBY, HINCRBYFLOAT, HRANDFIELD, HSCAN.
//!
//! A hash is an observed-remove map of fields (`version::OrMap`): a field HSET wrote reads
//! last-write-wins; a field HINCRBY keeps is a counter whose concurrent increments add up;
//! a field removed by HDEL stays removed unless written concurrently. Fields are listed in byte
//! order.

use bytes::Bytes;

use super::collection::{bounded, count_arg, empty_scan, page, pick, scan_cursor, scan_options, view, View};
use super::{parse_i64, CmdResult, CommandError};

use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::Rmw;
use crate::version::OrHash;

/// The hash at `key` (empty when missing).
///
/// # Errors
/// WRONGTYPE when the key holds another type.
async fn read(node: &Node, key: &[u8]) -> Result<View<OrHash>, CommandError> {
    view(node, key).await
}

/// The field-value pairs of HSET and HMSET.
fn pairs(node: &Node, args: &[Bytes], name: &str) -> Result<Vec<(Bytes, Bytes)>, CommandError> {
    if !args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity(name.into()));
    }
    args[2..]
        .chunks(2)
        .map(|p| Ok((super::value_to_store(node, &p[0])?, super::value_to_store(node, &p[1])?)))
        .collect()
}

pub async fn hset(node: &Node, args: &[Bytes]) -> CmdResult {
    let pairs = pairs(node, args, "hset")?;
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::HSet { pairs, nx: false }).await?.int))
}

pub async fn hmset(node: &Node, args: &[Bytes]) -> CmdResult {
    let pairs = pairs(node, args, "hmset")?;
    super::modify(node, &args[1], Rmw::HSet { pairs, nx: false }).await?;
    Ok(Reply::ok())
}

pub async fn hsetnx(node: &Node, args: &[Bytes]) -> CmdResult {
    let pairs = pairs(node, args, "hsetnx")?;
    Ok(Reply::Int(i64::from(super::modify(node, &args[1], Rmw::HSet { pairs, nx: true }).await?.applied)))
}

pub async fn hget(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(read(node, &args[1]).await?.get(&args[2]).map_or(Reply::Nil, |f| Reply::Bulk(f.bytes())))
}

pub async fn hmget(node: &Node, args: &[Bytes]) -> CmdResult {
    let hash = read(node, &args[1]).await?;
    Ok(Reply::Array(args[2..].iter().map(|f| hash.get(f).map_or(Reply::Nil, |v| Reply::Bulk(v.bytes()))).collect()))
}

pub async fn hgetall(node: &Node, args: &[Bytes]) -> CmdResult {
    let hash = read(node, &args[1]).await?;
    bounded(node, hash.len())?;
    Ok(Reply::Map(hash.iter().map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.bytes()))).collect()))
}

pub async fn hdel(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::HDel { fields: args[2..].to_vec() }).await?.int))
}

pub async fn hlen(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read(node, &args[1]).await?.len() as i64))
}

pub async fn hexists(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(i64::from(read(node, &args[1]).await?.contains(&args[2]))))
}

pub async fn hkeys(node: &Node, args: &[Bytes]) -> CmdResult {
    let hash = read(node, &args[1]).await?;
    bounded(node, hash.len())?;
    Ok(Reply::Array(hash.members().map(|f| Reply::Bulk(f.clone())).collect()))
}

pub async fn hvals(node: &Node, args: &[Bytes]) -> CmdResult {
    let hash = read(node, &args[1]).await?;
    bounded(node, hash.len())?;
    Ok(Reply::Array(hash.iter().map(|(_, v)| Reply::Bulk(v.bytes())).collect()))
}

pub async fn hstrlen(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read(node, &args[1]).await?.get(&args[2]).map_or(0, |f| f.bytes().len() as i64)))
}

pub async fn hincrby(node: &Node, args: &[Bytes]) -> CmdResult {
    let by = parse_i64(&args[3])?;
    let op = Rmw::HIncrBy { field: super::value_to_store(node, &args[2])?, by };
    Ok(Reply::Int(super::modify(node, &args[1], op).await?.int))
}

pub async fn hincrbyfloat(node: &Node, args: &[Bytes]) -> CmdResult {
    // The increment is checked before the key is looked up, as Redis does.
    match crate::longdouble::add(b"0", &args[3]) {
        Err(crate::longdouble::FloatError::NotFloat) => {
            return Err(CommandError::Other("value is not a valid float".into()))
        }
        Err(crate::longdouble::FloatError::NanOrInfinity) => {
            return Err(CommandError::Other("value is NaN or Infinity".into()))
        }
        Ok(_) => {}
    }
    let op = Rmw::HIncrByFloat { field: super::value_to_store(node, &args[2])?, by: args[3].clone() };
    let outcome = super::modify(node, &args[1], op).await?;
    Ok(outcome.new.map_or(Reply::Nil, Reply::Bulk))
}

/// `HRANDFIELD key [count [WITHVALUES]]`.
pub async fn hrandfield(node: &Node, args: &[Bytes]) -> CmdResult {
    let with_values = match args.get(3) {
        None => false,
        Some(w) if w.eq_ignore_ascii_case(b"WITHVALUES") && args.len() == 4 => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    let count = args.get(2).map(|c| count_arg(c)).transpose()?;
    let hash = read(node, &args[1]).await?;
    let fields: Vec<(&Bytes, Bytes)> = hash.iter().map(|(f, v)| (f, v.bytes())).collect();
    Ok(match count {
        None => pick(fields.len(), 1, true).first().map_or(Reply::Nil, |&i| Reply::Bulk(fields[i].0.clone())),
        Some(n) => {
            if with_values && n.unsigned_abs() > (i64::MAX as u64) / 2 {
                return Err(CommandError::Other("value is out of range".into()));
            }
            let wanted = if n >= 0 { n.unsigned_abs().min(fields.len() as u64) } else { n.unsigned_abs() };
            bounded(node, usize::try_from(wanted).unwrap_or(usize::MAX))?;
            let picked = pick(fields.len(), wanted as usize, n >= 0);
            if with_values {
                Reply::Pairs(
                    picked
                        .into_iter()
                        .map(|i| (Reply::Bulk(fields[i].0.clone()), Reply::Bulk(fields[i].1.clone())))
                        .collect(),
                )
            } else {
                Reply::Array(picked.into_iter().map(|i| Reply::Bulk(fields[i].0.clone())).collect())
            }
        }
    })
}

pub async fn hscan(node: &Node, args: &[Bytes]) -> CmdResult {
    scan_cursor(args)?;
    let hash = read(node, &args[1]).await?;
    if hash.is_empty() {
        return Ok(empty_scan());
    }
    let a = scan_options(node, args)?;
    let (fields, next) = page(hash.members(), hash.len(), &a);
    let mut found = Vec::new();
    for f in fields {
        if a.pattern.as_ref().is_none_or(|p| p.matches(f)) {
            if let Some(v) = hash.get(f) {
                found.push(Reply::Bulk(f.clone()));
                found.push(Reply::Bulk(v.bytes()));
            }
        }
    }
    Ok(Reply::Array(vec![Reply::Bulk(Bytes::from(next.to_string())), Reply::Array(found)]))
}
