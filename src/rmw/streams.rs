//! The read-modify-write operations of streams (XADD, XDEL, XTRIM, XSETID, XGROUP, XREADGROUP,
//! XACK, XCLAIM, XAUTOCLAIM): pure, given the key's live value, the dot the write will get and
//! the time. They run at the key's deciding node, so there each entry gets one ID and each
//! delivery of a group goes to one consumer; what concurrent writes do is in
//! `version::stream`. Redis 7.0's rules (t_stream.c) for IDs, trimming, delivery counts and a
//! group's entries-read.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{NewValue, Outcome, RmwError};
use crate::version::{next_id, Consumer, Cursor, Dot, Group, Pending, Stamp, Stream, StreamId, Value};

/// XADD's ID argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XAddId {
    /// `*`
    Auto,
    /// `ms-*`
    AutoSeq(u64),
    Explicit(StreamId),
}

/// MAXLEN or MINID, with `~` (`approx`) and LIMIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trim {
    pub by: TrimBy,
    pub approx: bool,
    pub limit: Option<u64>,
}

/// Entries of one of Redis's stream nodes (`stream-node-max-entries`' default): `~` trims
/// whole nodes only.
const NODE_ENTRIES: u64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrimBy {
    MaxLen(u64),
    MinId(StreamId),
}

/// XCLAIM's options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimOpts {
    /// The delivery time to set (IDLE or TIME), else now.
    pub delivered_ms: Option<u64>,
    pub retry_count: Option<u64>,
    pub force: bool,
    pub justid: bool,
    pub last_id: Option<StreamId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamOp {
    /// `writer`: 0 at the key's home, else the deciding stand-in's tag (set where it runs).
    XAdd {
        id: XAddId,
        fields: Vec<Bytes>,
        nomkstream: bool,
        trim: Option<Trim>,
        writer: u16,
    },
    XDel {
        ids: Vec<StreamId>,
    },
    XTrim {
        trim: Trim,
    },
    XSetId {
        last: StreamId,
        added: Option<u64>,
        max_deleted: Option<StreamId>,
    },
    /// XGROUP CREATE (`last` `None`: `$`).
    GroupCreate {
        group: Bytes,
        last: Option<StreamId>,
        mkstream: bool,
        entries_read: Option<u64>,
    },
    GroupSetId {
        group: Bytes,
        last: Option<StreamId>,
        entries_read: Option<u64>,
    },
    GroupDestroy {
        group: Bytes,
    },
    CreateConsumer {
        group: Bytes,
        consumer: Bytes,
    },
    DelConsumer {
        group: Bytes,
        consumer: Bytes,
    },
    /// XREADGROUP of one key: new entries (`after` `None`: `>`) or the consumer's history.
    ReadGroup {
        group: Bytes,
        consumer: Bytes,
        after: Option<StreamId>,
        count: usize,
        noack: bool,
    },
    Ack {
        group: Bytes,
        ids: Vec<StreamId>,
    },
    Claim {
        group: Bytes,
        consumer: Bytes,
        min_idle: u64,
        ids: Vec<StreamId>,
        opts: ClaimOpts,
    },
    AutoClaim {
        group: Bytes,
        consumer: Bytes,
        min_idle: u64,
        start: StreamId,
        count: usize,
        justid: bool,
    },
}

/// One entry of a reply: its ID and fields (`None`: deleted since it was delivered).
pub type EntryReply = (StreamId, Option<Vec<Bytes>>);

fn coded(text: String) -> RmwError {
    RmwError::Coded(text)
}

/// No such group (or no such key): each command words it its own way (`command::streams`).
fn nogroup(group: &[u8]) -> RmwError {
    RmwError::NoGroup(String::from_utf8_lossy(group).into_owned())
}

/// The stream a key holds (`None` when missing).
///
/// # Errors
/// Another type.
pub fn stream_of(current: Option<Value>) -> Result<Option<Stream>, RmwError> {
    match current {
        None => Ok(None),
        Some(Value::Stream(s)) if s.exists() => Ok(Some(s)),
        Some(Value::Stream(_)) => Ok(None),
        Some(_) => Err(RmwError::WrongType),
    }
}

/// Trims `s` as `trim` says; the number of entries removed. With `~` only whole blocks of
/// [`NODE_ENTRIES`] entries go, at most LIMIT entries (10,000 by default), as Redis removes
/// only whole nodes of its radix tree (its nodes are counted here from the stream's head).
pub fn trim(s: &mut Stream, trim: &Trim) -> u64 {
    let over = match trim.by {
        TrimBy::MaxLen(n) => (s.len() as u64).saturating_sub(n),
        TrimBy::MinId(min) => match min.prev() {
            None => 0,
            Some(below) => s.range(StreamId::MIN, below, false).count() as u64,
        },
    };
    let n = if trim.approx {
        let limit = match trim.limit {
            None => NODE_ENTRIES * 100,
            Some(0) => u64::MAX,
            Some(l) => l,
        };
        over.min(limit) / NODE_ENTRIES * NODE_ENTRIES
    } else {
        over
    };
    let doomed: Vec<StreamId> =
        s.range(StreamId::MIN, StreamId::MAX, false).take(n as usize).map(|(id, _)| id).collect();
    for id in &doomed {
        s.trim_off(*id);
    }
    doomed.len() as u64
}

/// Redis's `streamEstimateDistanceFromFirstEverEntry`: the entries-read count of a group
/// that has read up to `id`, when it can be known.
pub fn distance_from_first(s: &Stream, id: StreamId) -> Option<u64> {
    let added = s.entries_added();
    if added == 0 {
        return Some(0);
    }
    let last = s.last_id();
    if s.is_empty() && id <= last {
        return Some(added);
    }
    if id == last {
        return Some(added);
    }
    if id > last {
        return None;
    }
    let first = s.first().map(|(id, _)| id).unwrap_or_default();
    let max_deleted = s.meta().max_deleted;
    if max_deleted == StreamId::MIN || max_deleted < first {
        if id < first {
            return Some(added - s.len() as u64);
        }
        if id == first {
            return Some(added - s.len() as u64 + 1);
        }
    }
    None
}

/// Redis's `streamRangeHasTombstones` from `start` to the end.
pub fn has_tombstones_from(s: &Stream, start: StreamId) -> bool {
    let max_deleted = s.meta().max_deleted;
    if s.is_empty() || max_deleted == StreamId::MIN {
        return false;
    }
    let first = s.first().map(|(id, _)| id).unwrap_or_default();
    if first > max_deleted {
        return false;
    }
    start <= max_deleted
}

/// A group's lag as XINFO GROUPS shows it (`None`: unknown); negative when ENTRIESREAD set
/// the group's count past the stream's, as Redis shows it.
pub fn lag(s: &Stream, g: &Group) -> Option<i64> {
    let added = s.entries_added() as i64;
    if added == 0 {
        return Some(0);
    }
    if let Some(read) = g.cursor.entries_read {
        if !has_tombstones_from(s, g.cursor.last_id) {
            return Some(added - read as i64);
        }
    }
    distance_from_first(s, g.cursor.last_id).map(|read| added - read as i64)
}

/// Gives the pending delivery `p` of `id` to `consumer` (XCLAIM, XAUTOCLAIM), as of the write
/// `dot` at `stamp`; the consumer comes to be with its first claim, as in Redis. Whether it
/// was made.
fn hand_over(g: &mut Group, id: StreamId, mut p: Pending, consumer: &Bytes, dot: Dot, stamp: Stamp) -> bool {
    p.consumer = consumer.clone();
    p.stamp = stamp;
    g.pel.insert(id.key(), dot, p);
    let made = !g.consumers.contains(consumer);
    if made {
        g.consumers.insert(consumer.clone(), dot, Consumer { seen_ms: stamp.0 });
    }
    made
}

/// Applies a stream operation (see `rmw::apply`).
///
/// # Errors
/// Another type than a stream, or the operation's own error.
pub fn apply(
    op: &StreamOp,
    current: Option<Value>,
    expiry: Option<u64>,
    dot: Dot,
    now: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let found = stream_of(current)?;
    let existed = found.is_some();
    let mut s = found.unwrap_or_default();
    let stamp: Stamp = (now, dot.actor, dot.counter);
    let mut out = Outcome::default();
    let write = |s: Stream| Some(NewValue { value: Some(Value::Stream(s)), expires_ms: expiry });
    let group_of = |s: &Stream, group: &[u8]| s.group(group).ok_or_else(|| nogroup(group));
    match op {
        StreamOp::XAdd { id, fields, nomkstream, trim: trimming, writer } => {
            if *nomkstream && !existed {
                return Ok((None, out));
            }
            let last = s.last_id();
            let id = match id {
                XAddId::Explicit(id) => {
                    if *id == StreamId::MIN {
                        return Err(coded("ERR The ID specified in XADD must be greater than 0-0".into()));
                    }
                    if *id <= last {
                        return Err(coded(
                            "ERR The ID specified in XADD is equal or smaller than the target stream top item".into(),
                        ));
                    }
                    *id
                }
                XAddId::AutoSeq(ms) => match next_id(last, now, Some(*ms), *writer) {
                    Some(id) => id,
                    None if *ms == last.ms => {
                        return Err(coded("ERR Elements are too large to be stored".into()));
                    }
                    None => {
                        return Err(coded(
                            "ERR The ID specified in XADD is equal or smaller than the target stream top item".into(),
                        ))
                    }
                },
                XAddId::Auto => next_id(last, now, None, *writer).ok_or_else(|| {
                    coded("ERR The stream has exhausted the last possible ID, unable to add more items".into())
                })?,
            };
            s.add(id, fields.clone(), dot);
            if let Some(t) = trimming {
                out.int = trim(&mut s, t) as i64;
            }
            out.id = Some(id);
            out.applied = true;
            Ok((write(s), out))
        }
        StreamOp::XDel { ids } => {
            if !existed {
                return Ok((None, out));
            }
            for id in ids {
                out.int += i64::from(s.delete(*id));
            }
            Ok(((out.int > 0).then(|| write(s)).flatten(), out))
        }
        StreamOp::XTrim { trim: t } => {
            if !existed {
                return Ok((None, out));
            }
            out.int = trim(&mut s, t) as i64;
            Ok(((out.int > 0).then(|| write(s)).flatten(), out))
        }
        StreamOp::XSetId { last, added, max_deleted } => {
            if !existed {
                return Err(coded("ERR no such key".into()));
            }
            if let Some((top, _)) = s.last() {
                if *last < top {
                    return Err(coded(
                        "ERR The ID specified in XSETID is smaller than the target stream top item".into(),
                    ));
                }
                if added.is_some_and(|n| n < s.len() as u64) {
                    return Err(coded(
                        "ERR The entries_added specified in XSETID is smaller than the target stream length".into(),
                    ));
                }
            }
            s.set_last(*last, *added, *max_deleted);
            Ok((write(s), out))
        }
        StreamOp::GroupCreate { group, last, mkstream, entries_read } => {
            if !existed && !mkstream {
                return Err(coded("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.".into()));
            }
            if s.group(group).is_some() {
                return Err(coded("BUSYGROUP Consumer Group name already exists".into()));
            }
            let last_id = last.unwrap_or_else(|| s.last_id());
            s.touch();
            s.put_group(group.clone(), dot, Group::new(Cursor { stamp, last_id, entries_read: *entries_read }));
            Ok((write(s), out))
        }
        StreamOp::GroupSetId { group, last, entries_read } => {
            if !existed {
                return Err(coded("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.".into()));
            }
            let mut g = group_of(&s, group)?;
            g.cursor = Cursor { stamp, last_id: last.unwrap_or_else(|| s.last_id()), entries_read: *entries_read };
            s.put_group(group.clone(), dot, g);
            Ok((write(s), out))
        }
        StreamOp::GroupDestroy { group } => {
            if !existed {
                return Err(coded("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.".into()));
            }
            let removed = s.remove_group(group);
            out.int = i64::from(removed);
            Ok((removed.then(|| write(s)).flatten(), out))
        }
        StreamOp::CreateConsumer { group, consumer } | StreamOp::DelConsumer { group, consumer } => {
            if !existed {
                return Err(coded("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.".into()));
            }
            let mut g = group_of(&s, group)?;
            if matches!(op, StreamOp::CreateConsumer { .. }) {
                if g.consumers.contains(consumer) {
                    return Ok((None, out));
                }
                g.consumers.insert(consumer.clone(), dot, Consumer { seen_ms: now });
                out.int = 1;
            } else {
                if !g.consumers.contains(consumer) {
                    return Ok((None, out));
                }
                let theirs: Vec<StreamId> = g.pending_of(Some(consumer)).map(|(id, _)| id).collect();
                for id in &theirs {
                    g.pel.remove(&id.key());
                }
                g.consumers.remove(consumer);
                out.int = theirs.len() as i64;
                out.applied = true;
            }
            s.put_group(group.clone(), dot, g);
            Ok((write(s), out))
        }
        StreamOp::ReadGroup { group, consumer, after, count, noack } => {
            if !existed {
                return Err(nogroup(group));
            }
            let mut g = group_of(&s, group)?;
            let limit = if *count == 0 { usize::MAX } else { *count };
            let mut changed = false;
            match after {
                None => {
                    let start = g.cursor.last_id.next();
                    let picked: Vec<(StreamId, Vec<Bytes>)> = match start {
                        Some(start) => {
                            s.range(start, StreamId::MAX, false).take(limit).map(|(id, e)| (id, e.0)).collect()
                        }
                        None => Vec::new(),
                    };
                    // Nothing new: the consumer is not even made (Redis makes it when it serves).
                    if picked.is_empty() {
                        return Ok((None, out));
                    }
                    out.applied = !g.consumers.contains(consumer);
                    g.consumers.insert(consumer.clone(), dot, Consumer { seen_ms: now });
                    for (id, fields) in picked {
                        let read = match g.cursor.entries_read {
                            Some(n) if !has_tombstones_from(&s, id) => Some(n + 1),
                            _ if s.entries_added() > 0 => distance_from_first(&s, id),
                            other => other,
                        };
                        g.cursor = Cursor { stamp, last_id: id, entries_read: read };
                        if !noack {
                            let p = Pending { stamp, consumer: consumer.clone(), delivered_ms: now, count: 1 };
                            g.pel.insert(id.key(), dot, p);
                        }
                        out.entries.push((id, Some(fields)));
                        changed = true;
                    }
                }
                Some(after) => {
                    out.applied = !g.consumers.contains(consumer);
                    changed |= out.applied;
                    g.consumers.insert(consumer.clone(), dot, Consumer { seen_ms: now });
                    let mine: Vec<(StreamId, Pending)> =
                        g.pending_of(Some(consumer)).filter(|(id, _)| id > after).take(limit).collect();
                    for (id, mut p) in mine {
                        p.delivered_ms = now;
                        p.count += 1;
                        p.stamp = stamp;
                        g.pel.insert(id.key(), dot, p);
                        out.entries.push((id, s.get(id).map(|e| e.0)));
                        changed = true;
                    }
                }
            }
            if !changed {
                // Nothing delivered to a consumer the group knew: nothing to write (its
                // seen-time stays, docs/differences.md).
                return Ok((None, out));
            }
            s.put_group(group.clone(), dot, g);
            Ok((write(s), out))
        }
        StreamOp::Ack { group, ids } => {
            let Some(mut g) = s.group(group) else { return Ok((None, out)) };
            for id in ids {
                if g.pel.remove(&id.key()) {
                    out.int += 1;
                }
            }
            if out.int == 0 {
                return Ok((None, out));
            }
            s.put_group(group.clone(), dot, g);
            Ok((write(s), out))
        }
        StreamOp::Claim { group, consumer, min_idle, ids, opts } => {
            if !existed {
                return Err(nogroup(group));
            }
            let mut g = group_of(&s, group)?;
            let mut changed = false;
            if let Some(last) = opts.last_id {
                if last > g.cursor.last_id {
                    g.cursor = Cursor { stamp, last_id: last, entries_read: g.cursor.entries_read };
                    changed = true;
                }
            }
            let delivered_ms = opts.delivered_ms.unwrap_or(now);
            for id in ids {
                let key = id.key();
                let mut p = match g.pel.get(&key) {
                    Some(p) => p,
                    None if opts.force && s.get(*id).is_some() => {
                        Pending { stamp, consumer: consumer.clone(), delivered_ms: now, count: 1 }
                    }
                    None => continue,
                };
                if *min_idle > 0 && now.saturating_sub(p.delivered_ms) < *min_idle {
                    continue;
                }
                let Some(entry) = s.get(*id) else {
                    // Deleted from the stream: no longer pending.
                    changed |= g.pel.remove(&key);
                    continue;
                };
                changed = true;
                p.delivered_ms = delivered_ms;
                match opts.retry_count {
                    Some(n) => p.count = n,
                    None if !opts.justid => p.count += 1,
                    None => {}
                }
                out.applied |= hand_over(&mut g, *id, p, consumer, dot, stamp);
                out.entries.push((*id, (!opts.justid).then_some(entry.0)));
            }
            if !changed {
                return Ok((None, out));
            }
            s.put_group(group.clone(), dot, g);
            Ok((write(s), out))
        }
        StreamOp::AutoClaim { group, consumer, min_idle, start, count, justid } => {
            if !existed {
                return Err(nogroup(group));
            }
            let mut g = group_of(&s, group)?;
            let mut changed = false;
            let mut attempts = count.saturating_mul(10);
            let mut left = *count;
            let mut cursor = StreamId::MIN;
            let candidates: Vec<(StreamId, Pending)> = g.pending_of(None).filter(|(id, _)| id >= start).collect();
            let mut it = candidates.into_iter().peekable();
            while attempts > 0 && left > 0 {
                let Some((id, mut p)) = it.next() else { break };
                attempts -= 1;
                if *min_idle > 0 && now.saturating_sub(p.delivered_ms) < *min_idle {
                    continue;
                }
                let Some(entry) = s.get(id) else {
                    g.pel.remove(&id.key());
                    out.deleted.push(id);
                    changed = true;
                    continue;
                };
                changed = true;
                p.delivered_ms = now;
                if !justid {
                    p.count += 1;
                }
                out.applied |= hand_over(&mut g, id, p, consumer, dot, stamp);
                out.entries.push((id, (!justid).then_some(entry.0)));
                left -= 1;
            }
            if let Some((next, _)) = it.peek() {
                cursor = *next;
            }
            out.id = Some(cursor);
            if !changed {
                return Ok((None, out));
            }
            s.put_group(group.clone(), dot, g);
            Ok((write(s), out))
        }
    }
}
