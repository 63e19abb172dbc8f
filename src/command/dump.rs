//! `DUMP key` and `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
//! [FREQ frequency]`: a key's value in Redis's serialization (`crate::rdb`) and back.
//!
//! DUMP serializes the value a read resolves (what GET, SMEMBERS ... answer: the newest string
//! sibling, a counter's value as a string, a HyperLogLog as Redis's dense string) as Redis 7.0
//! would for that value written afresh under the encoding settings CONFIG SET last gave. The
//! payload carries no expiry, as in Redis.
//!
//! RESTORE writes the value anew, as COPY writes its destination (`Rmw::Store`, at the key's
//! deciding owner): without REPLACE only when the key is missing (else `BUSYKEY`), with a TTL
//! in milliseconds (0: none), absolute with ABSTTL. Its checks come in Redis's order: options,
//! then BUSYKEY, then the TTL, then the payload's version and CRC, then its contents. IDLETIME
//! and FREQ are checked and ignored (kura keeps no access times).

use bytes::Bytes;

use super::{object, parse_i64, CmdResult, CommandError};
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::rdb::{self, Object};
use crate::resp::Reply;
use crate::rmw::{Copied, Rmw};
use crate::version::Value;

/// The object DUMP serializes for `value` (a copy of it, as COPY makes one); `None` for a
/// stream (kura does not write Redis's stream encoding: docs/differences.md).
fn object_of(value: &Value) -> Option<Object> {
    Some(match Copied::of(value) {
        Copied::Set(members) => Object::Set(members),
        Copied::Hash(fields) => Object::Hash(fields),
        Copied::List(elements) => Object::List(elements),
        Copied::ZSet(items) => Object::ZSet(items),
        Copied::Stream(_) => return None,
        Copied::Other(v) => Object::String(v.bytes().into_owned()),
    })
}

/// What RESTORE writes for `object`.
fn copied(object: Object) -> Copied {
    match object {
        Object::String(s) => Copied::Other(Value::Bytes(s)),
        Object::List(elements) => Copied::List(elements),
        Object::Set(members) => Copied::Set(members),
        Object::Hash(fields) => Copied::Hash(fields),
        Object::ZSet(items) => Copied::ZSet(items),
    }
}

pub async fn dump(node: &Node, args: &[Bytes]) -> CmdResult {
    let set = node.coordinator.get(&args[1], None).await?;
    let Some(resolved) = set.resolve(now_ms()) else { return Ok(Reply::Nil) };
    let settings = rdb::Encodings::from_settings(|name| object::setting(node, name));
    let object = object_of(&resolved.value)
        .ok_or_else(|| CommandError::Other("DUMP of a stream is not supported by kura".into()))?;
    Ok(Reply::Bulk(Bytes::from(rdb::dump(&object, &settings))))
}

fn busy() -> CommandError {
    CommandError::Coded("BUSYKEY Target key name already exists.".into())
}

async fn exists(node: &Node, key: &[u8]) -> Result<bool, CommandError> {
    Ok(node.coordinator.get(key, None).await?.resolve(now_ms()).is_some())
}

/// The TTL argument and the payload, checked as Redis checks them after BUSYKEY: the value to
/// write and its expiry (`Some(ms)`, possibly already past), or the error.
fn parse(node: &Node, args: &[Bytes], absttl: bool, now: u64) -> Result<(Copied, Option<i64>), CommandError> {
    let ttl = parse_i64(&args[2])?;
    if ttl < 0 {
        return Err(CommandError::Other("Invalid TTL value, must be >= 0".into()));
    }
    // A payload may decode to no more than a few requests' worth of bytes.
    let budget = node.config.max_request_bytes.saturating_mul(4);
    let object = rdb::restore(&args[3], budget).map_err(|e| CommandError::Other(e.to_string()))?;
    if let Object::String(s) = &object {
        let max = node.config.max_value_bytes;
        if s.len() > max {
            return Err(CommandError::ValueTooLarge { len: s.len(), max });
        }
    }
    // Redis adds the relative TTL to its clock in 64-bit arithmetic: a TTL near 2^63 wraps
    // into the past, and the key is not made.
    let when = match ttl {
        0 => None,
        t if absttl => Some(t),
        t => Some(t.wrapping_add(now as i64)),
    };
    Ok((copied(object), when))
}

pub async fn restore(node: &Node, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let (mut replace, mut absttl, mut idle, mut freq) = (false, false, false, false);
    let mut i = 4;
    while i < args.len() {
        let more = i + 1 < args.len();
        match args[i].to_ascii_uppercase().as_slice() {
            b"REPLACE" => replace = true,
            b"ABSTTL" => absttl = true,
            // IDLETIME and FREQ exclude each other (Redis: a syntax error).
            b"IDLETIME" if more && !freq => {
                i += 1;
                if parse_i64(&args[i])? < 0 {
                    return Err(CommandError::Other("Invalid IDLETIME value, must be >= 0".into()));
                }
                idle = true;
            }
            b"FREQ" if more && !idle => {
                i += 1;
                if !(0..=255).contains(&parse_i64(&args[i])?) {
                    return Err(CommandError::Other("Invalid FREQ value, must be >= 0 and <= 255".into()));
                }
                freq = true;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    let now = now_ms();
    let (value, when) = match parse(node, args, absttl, now) {
        Ok(parsed) => parsed,
        Err(e) => {
            // BUSYKEY comes before any complaint about the TTL or the payload.
            if !replace && exists(node, key).await? {
                return Err(busy());
            }
            return Err(e);
        }
    };
    if when.is_some_and(|t| t <= now as i64) {
        // Already expired: Redis makes nothing, and with REPLACE deletes what was there.
        if replace {
            super::modify(node, key, Rmw::Del).await?;
        } else if exists(node, key).await? {
            return Err(busy());
        }
        return Ok(Reply::ok());
    }
    let expires_ms = when.map(|t| t as u64);
    let op = Rmw::Store { value, expires_ms, nx: !replace };
    if !node.coordinator.modify(key, op).await?.applied && !replace {
        return Err(busy());
    }
    node.notify.report(crate::notify::Class::Generic, "restore", key);
    Ok(Reply::ok())
}
