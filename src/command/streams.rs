//! The stream commands: XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM, XSETID, XREAD, XGROUP,
//! XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO.
//!
//! A stream converges (`version::stream`): entries in an observed-remove map by ID, so entries
//! added on both sides of a partition are all there after the heal. The writes are
//! read-modify-writes at the key's deciding node (`rmw::streams`), which gives IDs and
//! deliveries; the reads read a quorum. XREAD and XREADGROUP with BLOCK wait as the blocking
//! pops do (`blocking.rs`): an XADD through any node wakes them.

use std::time::Duration;

use bytes::Bytes;

use super::collection::bounded;
use super::lists::shown;
use super::{parse_i64, CmdResult, CommandError, Session};
use crate::coordinator::{now_ms, CoordError};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::{lag, stream_of, ClaimOpts, EntryReply, Rmw, RmwError, StreamOp, Trim, TrimBy, XAddId};
use crate::version::{Stream, StreamId};

fn invalid_id() -> CommandError {
    CommandError::Other("Invalid stream ID specified as stream command argument".into())
}

fn text(key: &Bytes) -> String {
    String::from_utf8_lossy(&shown(key)).into_owned()
}

/// Redis's strict ID parse (XADD's ID, MINID, XSETID ...): `ms-seq` or `ms`.
fn strict_id(arg: &[u8]) -> Result<StreamId, CommandError> {
    StreamId::parse(arg, 0).ok_or_else(invalid_id)
}

/// An ID of a range or of XREAD: `-`, `+`, or `ms[-seq]` (a missing sequence `missing_seq`).
fn range_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, CommandError> {
    match arg {
        b"-" => Ok(StreamId::MIN),
        b"+" => Ok(StreamId::MAX),
        _ => StreamId::parse(arg, missing_seq).ok_or_else(invalid_id),
    }
}

/// One end of an XRANGE interval, with `(` for an exclusive one (`None`: empty interval).
fn interval_id(arg: &[u8], start: bool) -> Result<Option<StreamId>, CommandError> {
    if let Some(rest) = arg.strip_prefix(b"(") {
        // A missing sequence is the interval's own end's: 0 at the start, the last at the end.
        let id = StreamId::parse(rest, if start { 0 } else { u64::MAX }).ok_or_else(invalid_id)?;
        return Ok(if start {
            Some(id.next().ok_or_else(|| CommandError::Other("invalid start ID for the interval".into()))?)
        } else {
            Some(id.prev().ok_or_else(|| CommandError::Other("invalid end ID for the interval".into()))?)
        });
    }
    range_id(arg, if start { 0 } else { u64::MAX }).map(Some)
}

/// The stream at `key` (`None`: missing).
async fn read(node: &Node, key: &[u8]) -> Result<Option<Stream>, CommandError> {
    let siblings = node.coordinator.get(key, None).await?;
    let value = siblings.resolve(now_ms()).map(|r| r.value);
    Ok(stream_of(value).map_err(CoordError::Rmw)?)
}

/// A stream write at the key's deciding node, and its keyspace events (Redis 7.0's).
async fn modify(node: &Node, key: &Bytes, op: StreamOp) -> Result<crate::rmw::Outcome, CommandError> {
    let out = node.coordinator.modify(key, Rmw::Stream(op.clone())).await?;
    let notify = &node.notify;
    if notify.enabled() {
        let made_consumer = out.applied.then_some("xgroup-createconsumer");
        let events: [Option<&'static str>; 2] = match op {
            StreamOp::XAdd { .. } => [out.id.map(|_| "xadd"), (out.int > 0).then_some("xtrim")],
            StreamOp::XDel { .. } => [(out.int > 0).then_some("xdel"), None],
            StreamOp::XTrim { .. } => [(out.int > 0).then_some("xtrim"), None],
            StreamOp::XSetId { .. } => [Some("xsetid"), None],
            StreamOp::GroupCreate { .. } => [Some("xgroup-create"), None],
            StreamOp::GroupSetId { .. } => [Some("xgroup-setid"), None],
            StreamOp::GroupDestroy { .. } => [(out.int > 0).then_some("xgroup-destroy"), None],
            StreamOp::CreateConsumer { .. } => [(out.int > 0).then_some("xgroup-createconsumer"), None],
            StreamOp::DelConsumer { .. } => [out.applied.then_some("xgroup-delconsumer"), None],
            StreamOp::ReadGroup { .. } | StreamOp::Claim { .. } | StreamOp::AutoClaim { .. } => [made_consumer, None],
            StreamOp::Ack { .. } => [None, None],
        };
        for event in events.into_iter().flatten() {
            notify.stream(event, key);
        }
    }
    Ok(out)
}

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(Bytes::from(id.to_string()))
}

fn entry_reply((id, fields): EntryReply) -> Reply {
    let fields = match fields {
        Some(f) => Reply::Array(f.into_iter().map(Reply::Bulk).collect()),
        None => Reply::NilArray,
    };
    Reply::Array(vec![id_reply(id), fields])
}

fn entries_reply(entries: Vec<EntryReply>) -> Reply {
    Reply::Array(entries.into_iter().map(entry_reply).collect())
}

/// A count argument that must be an integer; negative counts as 0 (Redis's XRANGE, XREAD).
fn count_arg(arg: &[u8]) -> Result<usize, CommandError> {
    Ok(usize::try_from(parse_i64(arg)?.max(0)).unwrap_or(usize::MAX))
}

/// Parses MAXLEN/MINID [=|~] threshold [LIMIT n] (and NOMKSTREAM, the ID for XADD) from
/// `args[2..]`; returns the trim, NOMKSTREAM and the index after the options.
fn trim_args(args: &[Bytes], xadd: bool) -> Result<(Option<Trim>, bool, usize), CommandError> {
    let mut by = None;
    let mut approx = false;
    let mut limit = None;
    let mut nomkstream = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i];
        if xadd && &opt[..] == b"*" {
            break;
        }
        let strategy = opt.eq_ignore_ascii_case(b"maxlen") || opt.eq_ignore_ascii_case(b"minid");
        if strategy && more > 0 {
            if by.is_some() {
                return Err(CommandError::Other(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible".into(),
                ));
            }
            approx = false;
            if more >= 2 && (&args[i + 1][..] == b"~" || &args[i + 1][..] == b"=") {
                approx = &args[i + 1][..] == b"~";
                i += 1;
            }
            let threshold = &args[i + 1];
            by = Some(if opt.eq_ignore_ascii_case(b"maxlen") {
                let n = parse_i64(threshold)?;
                if n < 0 {
                    return Err(CommandError::Other("The MAXLEN argument must be >= 0.".into()));
                }
                TrimBy::MaxLen(n as u64)
            } else {
                TrimBy::MinId(strict_id(threshold)?)
            });
            i += 2;
        } else if opt.eq_ignore_ascii_case(b"limit") && more > 0 {
            let n = parse_i64(&args[i + 1])?;
            if n < 0 {
                return Err(CommandError::Other("The LIMIT argument must be >= 0.".into()));
            }
            limit = Some(n as u64);
            i += 2;
        } else if xadd && opt.eq_ignore_ascii_case(b"nomkstream") {
            nomkstream = true;
            i += 1;
        } else if xadd {
            break;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if limit.is_some_and(|l| l > 0) && by.is_none() {
        return Err(CommandError::Other(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy".into(),
        ));
    }
    if !xadd && by.is_none() {
        return Err(CommandError::Other("syntax error, XTRIM must be called with a trimming strategy".into()));
    }
    if limit.is_some() && !approx {
        return Err(CommandError::Other("syntax error, LIMIT cannot be used without the special ~ option".into()));
    }
    Ok((by.map(|by| Trim { by, approx, limit }), nomkstream, i))
}

pub async fn xadd(node: &Node, args: &[Bytes]) -> CmdResult {
    let (trim, nomkstream, at) = trim_args(args, true)?;
    let Some(id_arg) = args.get(at) else { return Err(CommandError::WrongArity("xadd".into())) };
    // The ID is read as the options are (before the arity of the fields is checked).
    let id = if &id_arg[..] == b"*" {
        XAddId::Auto
    } else if let Some(ms) = id_arg.strip_suffix(b"-*") {
        XAddId::AutoSeq(StreamId::parse(ms, 0).filter(|_| !ms.contains(&b'-')).ok_or_else(invalid_id)?.ms)
    } else {
        XAddId::Explicit(strict_id(id_arg)?)
    };
    if (args.len() - at) < 3 || (args.len() - at).is_multiple_of(2) {
        return Err(CommandError::WrongArity("xadd".into()));
    }
    if id == XAddId::Explicit(StreamId::MIN) {
        return Err(CommandError::Other("The ID specified in XADD must be greater than 0-0".into()));
    }
    let fields = args[at + 1..].iter().map(|f| super::value_to_store(node, f)).collect::<Result<_, _>>()?;
    let op = StreamOp::XAdd { id, fields, nomkstream, trim, writer: 0 };
    let outcome = modify(node, &args[1], op).await?;
    Ok(outcome.id.map_or(Reply::Nil, id_reply))
}

/// XRANGE and XREVRANGE (`rev`: its end comes first).
pub async fn xrange(node: &Node, args: &[Bytes], rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let start = interval_id(start_arg, true)?;
    let end = interval_id(end_arg, false)?;
    let mut count = None;
    let mut i = 4;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"count") && i + 1 < args.len() {
            count = Some(count_arg(&args[i + 1])?);
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let Some(s) = read(node, &args[1]).await? else { return Ok(Reply::Array(Vec::new())) };
    // COUNT 0 (or negative) on a stream: Redis's null array.
    if count == Some(0) {
        return Ok(Reply::NilArray);
    }
    let (Some(start), Some(end)) = (start, end) else { return Ok(Reply::Array(Vec::new())) };
    if start > end {
        return Ok(Reply::Array(Vec::new()));
    }
    let take = count.unwrap_or(usize::MAX);
    let entries: Vec<EntryReply> = s.range(start, end, rev).take(take).map(|(id, e)| (id, Some(e.0))).collect();
    bounded(node, entries.len())?;
    Ok(entries_reply(entries))
}

pub async fn xlen(node: &Node, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read(node, &args[1]).await?.map_or(0, |s| s.len() as i64)))
}

pub async fn xdel(node: &Node, args: &[Bytes]) -> CmdResult {
    let ids = match args[2..].iter().map(|a| strict_id(a)).collect::<Result<_, _>>() {
        Ok(ids) => ids,
        // Redis looks the key up first: a missing one deletes nothing, whatever the IDs.
        Err(e) => return if read(node, &args[1]).await?.is_none() { Ok(Reply::Int(0)) } else { Err(e) },
    };
    Ok(Reply::Int(modify(node, &args[1], StreamOp::XDel { ids }).await?.int))
}

pub async fn xtrim(node: &Node, args: &[Bytes]) -> CmdResult {
    let (trim, _, at) = trim_args(args, false)?;
    if at != args.len() {
        return Err(CommandError::Syntax);
    }
    let Some(trim) = trim else { return Err(CommandError::Syntax) };
    Ok(Reply::Int(modify(node, &args[1], StreamOp::XTrim { trim }).await?.int))
}

pub async fn xsetid(node: &Node, args: &[Bytes]) -> CmdResult {
    let last = strict_id(&args[2])?;
    let (mut added, mut max_deleted) = (None, None);
    let mut i = 3;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"entriesadded") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1])?;
            if n < 0 {
                return Err(CommandError::Other("entries_added must be positive".into()));
            }
            added = Some(n as u64);
        } else if args[i].eq_ignore_ascii_case(b"maxdeletedid") && i + 1 < args.len() {
            let id = strict_id(&args[i + 1])?;
            if last < id {
                return Err(CommandError::Other(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id".into(),
                ));
            }
            max_deleted = Some(id);
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    modify(node, &args[1], StreamOp::XSetId { last, added, max_deleted }).await?;
    Ok(Reply::ok())
}

/// What XREAD and XREADGROUP were asked.
struct ReadArgs {
    group: Option<(Bytes, Bytes)>,
    count: usize,
    block: Option<Option<Duration>>,
    noack: bool,
    keys: Vec<Bytes>,
    ids: Vec<Bytes>,
}

fn read_args(args: &[Bytes], xreadgroup: bool) -> Result<ReadArgs, CommandError> {
    let name = if xreadgroup { "XREADGROUP" } else { "XREAD" };
    let mut out = ReadArgs { group: None, count: 0, block: None, noack: false, keys: Vec::new(), ids: Vec::new() };
    let mut i = 1;
    let mut streams = None;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"block") && more > 0 {
            let ms = parse_i64(&args[i + 1])
                .map_err(|_| CommandError::Other("timeout is not an integer or out of range".into()))?;
            if ms < 0 {
                return Err(CommandError::Other("timeout is negative".into()));
            }
            out.block = Some((ms > 0).then(|| Duration::from_millis(ms as u64)));
            i += 2;
        } else if a.eq_ignore_ascii_case(b"count") && more > 0 {
            out.count = count_arg(&args[i + 1])?;
            i += 2;
        } else if a.eq_ignore_ascii_case(b"streams") && more > 0 {
            streams = Some(i + 1);
            break;
        } else if a.eq_ignore_ascii_case(b"group") && more >= 2 {
            if !xreadgroup {
                return Err(CommandError::Other(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.".into(),
                ));
            }
            out.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if a.eq_ignore_ascii_case(b"noack") && xreadgroup {
            out.noack = true;
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let Some(at) = streams else { return Err(CommandError::Syntax) };
    let rest = &args[at..];
    if !rest.len().is_multiple_of(2) {
        return Err(CommandError::Other(format!(
            "Unbalanced {name} list of streams: for each stream key an ID or '$' must be specified."
        )));
    }
    if xreadgroup && out.group.is_none() {
        return Err(CommandError::Other("Missing GROUP option for XREADGROUP".into()));
    }
    let n = rest.len() / 2;
    out.keys = rest[..n].to_vec();
    out.ids = rest[n..].to_vec();
    Ok(out)
}

/// XREAD's IDs, `$` taken as each stream's last ID now; each key's type checked before its
/// ID is read, as Redis does.
async fn xread_ids(node: &Node, r: &ReadArgs) -> Result<Vec<StreamId>, CommandError> {
    let mut ids = Vec::with_capacity(r.ids.len());
    for (key, arg) in r.keys.iter().zip(&r.ids) {
        let s = read(node, key).await?;
        ids.push(match &arg[..] {
            b"$" => s.map_or(StreamId::MIN, |s| s.last_id()),
            b">" => {
                return Err(CommandError::Other(
                    "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."
                        .into(),
                ))
            }
            other => strict_id(other)?,
        });
    }
    Ok(ids)
}

/// One XREAD: the entries after each ID (`None` when no stream has any).
async fn xread_once(node: &Node, r: &ReadArgs, ids: &[StreamId], resp3: bool) -> Result<Option<Reply>, CommandError> {
    let mut found = Vec::new();
    for (key, after) in r.keys.iter().zip(ids) {
        let Some(s) = read(node, key).await? else { continue };
        let Some(start) = after.next() else { continue };
        let take = if r.count == 0 { usize::MAX } else { r.count };
        let entries: Vec<EntryReply> =
            s.range(start, StreamId::MAX, false).take(take).map(|(id, e)| (id, Some(e.0))).collect();
        if !entries.is_empty() {
            bounded(node, entries.len())?;
            found.push((Reply::Bulk(shown(key)), entries_reply(entries)));
        }
    }
    Ok((!found.is_empty()).then(|| keyed(found, resp3)))
}

/// XREAD's and XREADGROUP's reply: a map of keys in RESP3, an array of pairs in RESP2.
fn keyed(found: Vec<(Reply, Reply)>, resp3: bool) -> Reply {
    if resp3 {
        Reply::Map(found)
    } else {
        Reply::Array(found.into_iter().map(|(k, v)| Reply::Array(vec![k, v])).collect())
    }
}

pub async fn xread(node: &Node, session: &Session, args: &[Bytes]) -> CmdResult {
    let r = read_args(args, false)?;
    let resp3 = session.protocol == crate::resp::Protocol::Resp3;
    let ids = xread_ids(node, &r).await?;
    let never_blocks = r.block.is_none() || session.in_exec || session.in_script;
    if never_blocks {
        let _gate = gate(node, session).await;
        return Ok(xread_once(node, &r, &ids, resp3).await?.unwrap_or(Reply::NilArray));
    }
    let timeout = r.block.flatten();
    super::blocking::wait(node, session, &r.keys, timeout, || async {
        let _gate = gate(node, session).await;
        xread_once(node, &r, &ids, resp3).await
    })
    .await
}

/// The node's gate for one try of a blocking read (none inside EXEC or a script, which hold
/// it).
async fn gate<'a>(node: &'a Node, session: &Session) -> Option<tokio::sync::RwLockReadGuard<'a, ()>> {
    if session.in_exec || session.in_script {
        None
    } else {
        Some(node.exec_gate.read().await)
    }
}

/// Maps an XREADGROUP-family error about a missing group to Redis's words.
fn group_error(e: CommandError, key: &Bytes, group: &[u8], words: GroupWords) -> CommandError {
    match e {
        CommandError::Coordinator(CoordError::Rmw(RmwError::NoGroup(_))) => {
            let group = String::from_utf8_lossy(group);
            let key = text(key);
            CommandError::Coded(match words {
                GroupWords::ReadGroup => {
                    format!("NOGROUP No such key '{key}' or consumer group '{group}' in XREADGROUP with GROUP option")
                }
                GroupWords::KeyOrGroup => format!("NOGROUP No such key '{key}' or consumer group '{group}'"),
                GroupWords::ForKey => format!("NOGROUP No such consumer group '{group}' for key name '{key}'"),
            })
        }
        other => other,
    }
}

/// The error of a missing group (or key), in the words of `words`.
fn no_group(key: &Bytes, group: &[u8], words: GroupWords) -> CommandError {
    group_error(CommandError::Coordinator(CoordError::Rmw(RmwError::NoGroup(String::new()))), key, group, words)
}

#[derive(Clone, Copy)]
enum GroupWords {
    ReadGroup,
    KeyOrGroup,
    ForKey,
}

/// One XREADGROUP over every key (`None`: nothing new for any `>` key and no history key).
async fn xreadgroup_once(
    node: &Node,
    r: &ReadArgs,
    after: &[Option<StreamId>],
    resp3: bool,
) -> Result<Option<Reply>, CommandError> {
    let Some((group, consumer)) = &r.group else { return Err(CommandError::Syntax) };
    let mut found = Vec::new();
    for (key, after) in r.keys.iter().zip(after) {
        let op = StreamOp::ReadGroup {
            group: group.clone(),
            consumer: consumer.clone(),
            after: *after,
            count: r.count,
            noack: r.noack,
        };
        let outcome = modify(node, key, op).await.map_err(|e| group_error(e, key, group, GroupWords::ReadGroup))?;
        if after.is_some() || !outcome.entries.is_empty() {
            found.push((Reply::Bulk(shown(key)), entries_reply(outcome.entries)));
        }
    }
    Ok((!found.is_empty()).then(|| keyed(found, resp3)))
}

pub async fn xreadgroup(node: &Node, session: &Session, args: &[Bytes]) -> CmdResult {
    let r = read_args(args, true)?;
    let resp3 = session.protocol == crate::resp::Protocol::Resp3;
    // Per key, as Redis: its type, its group, then its ID.
    let mut after = Vec::with_capacity(r.ids.len());
    let group = r.group.as_ref().map(|(g, _)| g.clone()).unwrap_or_default();
    for (key, arg) in r.keys.iter().zip(&r.ids) {
        if read(node, key).await?.is_none_or(|s| s.group(&group).is_none()) {
            return Err(no_group(key, &group, GroupWords::ReadGroup));
        }
        after.push(match &arg[..] {
            b">" => None,
            b"$" => {
                return Err(CommandError::Other("The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.".into()))
            }
            other => Some(strict_id(other)?),
        });
    }
    // Only new entries are waited for: a read of the history answers at once.
    let never_blocks = r.block.is_none() || session.in_exec || session.in_script || after.iter().any(Option::is_some);
    if never_blocks {
        let _gate = gate(node, session).await;
        return Ok(xreadgroup_once(node, &r, &after, resp3).await?.unwrap_or(Reply::NilArray));
    }
    let timeout = r.block.flatten();
    super::blocking::wait(node, session, &r.keys, timeout, || async {
        let _gate = gate(node, session).await;
        xreadgroup_once(node, &r, &after, resp3).await
    })
    .await
}

/// `$` or an ID, for XGROUP CREATE and SETID (`None`: `$`).
fn group_start(arg: &[u8]) -> Result<Option<StreamId>, CommandError> {
    if arg == b"$" {
        Ok(None)
    } else {
        strict_id(arg).map(Some)
    }
}

fn entries_read_arg(args: &[Bytes], from: usize, allow_mkstream: bool) -> Result<(bool, Option<u64>), CommandError> {
    let (mut mkstream, mut entries_read) = (false, None);
    let mut i = from;
    while i < args.len() {
        if allow_mkstream && args[i].eq_ignore_ascii_case(b"mkstream") {
            mkstream = true;
            i += 1;
        } else if args[i].eq_ignore_ascii_case(b"entriesread") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1])?;
            if n < 0 && n != -1 {
                return Err(CommandError::Other("value for ENTRIESREAD must be positive or -1".into()));
            }
            entries_read = u64::try_from(n).ok();
            i += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok((mkstream, entries_read))
}

pub async fn xgroup(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_lowercase();
    if sub == b"help" {
        return Ok(help());
    }
    let key = args.get(2).ok_or_else(|| CommandError::WrongArity("xgroup".into()))?;
    let arity = |n: usize, exact: bool| {
        let ok = if exact { args.len() == n } else { args.len() >= n };
        if ok {
            Ok(())
        } else {
            Err(CommandError::Other(format!(
                "wrong number of arguments for 'xgroup|{}' command",
                String::from_utf8_lossy(&sub)
            )))
        }
    };
    let group = args.get(3).cloned().unwrap_or_default();
    let words = |e| group_error(e, key, &group, GroupWords::ForKey);
    // Redis's order: the options, the key (and the group), then the ID.
    let (mkstream, entries_read) = match &sub[..] {
        b"create" | b"setid" if args.len() >= 5 => entries_read_arg(args, 5, &sub[..] == b"create")?,
        _ => (false, None),
    };
    if args.len() >= 4 {
        // The key's type is checked even with MKSTREAM.
        let found = read(node, key).await?;
        if !mkstream {
            let Some(s) = found else {
                return Err(CommandError::Other("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.".into()));
            };
            let needs_group = matches!(&sub[..], b"setid" | b"createconsumer" | b"delconsumer");
            if needs_group && s.group(&group).is_none() {
                return Err(no_group(key, &group, GroupWords::ForKey));
            }
        }
    }
    match &sub[..] {
        b"create" => {
            arity(5, false)?;
            let last = group_start(&args[4])?;
            let op = StreamOp::GroupCreate { group: group.clone(), last, mkstream, entries_read };
            modify(node, key, op).await.map_err(words)?;
            Ok(Reply::ok())
        }
        b"setid" => {
            arity(5, false)?;
            let last = group_start(&args[4])?;
            modify(node, key, StreamOp::GroupSetId { group: group.clone(), last, entries_read })
                .await
                .map_err(words)?;
            Ok(Reply::ok())
        }
        b"destroy" => {
            arity(4, true)?;
            Ok(Reply::Int(modify(node, key, StreamOp::GroupDestroy { group: group.clone() }).await.map_err(words)?.int))
        }
        b"createconsumer" | b"delconsumer" => {
            arity(5, true)?;
            let consumer = args[4].clone();
            let op = if sub == b"createconsumer" {
                StreamOp::CreateConsumer { group: group.clone(), consumer }
            } else {
                StreamOp::DelConsumer { group: group.clone(), consumer }
            };
            Ok(Reply::Int(modify(node, key, op).await.map_err(words)?.int))
        }
        _ => {
            Err(CommandError::UnknownSubcommand { cmd: "XGROUP", sub: String::from_utf8_lossy(&args[1]).into_owned() })
        }
    }
}

fn help() -> Reply {
    Reply::Array(
        [
            "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
            "HELP",
            "    Prints this help.",
        ]
        .iter()
        .map(|l| Reply::Simple(l))
        .collect(),
    )
}

pub async fn xack(node: &Node, args: &[Bytes]) -> CmdResult {
    let ids = match args[3..].iter().map(|a| strict_id(a)).collect::<Result<_, _>>() {
        Ok(ids) => ids,
        // Redis looks the key and the group up first: without them there is nothing to ack.
        Err(e) => {
            return match read(node, &args[1]).await?.and_then(|s| s.group(&args[2])) {
                None => Ok(Reply::Int(0)),
                Some(_) => Err(e),
            }
        }
    };
    let op = StreamOp::Ack { group: args[2].clone(), ids };
    Ok(Reply::Int(modify(node, &args[1], op).await?.int))
}

pub async fn xpending(node: &Node, args: &[Bytes]) -> CmdResult {
    let (key, group) = (&args[1], &args[2]);
    // The extended form: [IDLE min-idle] start end count [consumer].
    if args.len() != 3 && (args.len() < 6 || args.len() > 9) {
        return Err(CommandError::Syntax);
    }
    let extended = if args.len() > 3 {
        let mut i = 3;
        let mut min_idle = None;
        if args[i].eq_ignore_ascii_case(b"idle") {
            min_idle = Some(parse_i64(&args[4])?.max(0) as u64);
            if args.len() < 8 {
                return Err(CommandError::Syntax);
            }
            i += 2;
        }
        // Redis's order: the count, then the interval.
        let count = parse_i64(&args[i + 2])?.max(0) as usize;
        let start = interval_id(&args[i], true)?;
        let end = interval_id(&args[i + 1], false)?;
        Some((min_idle, start, end, count, args.get(i + 3).cloned()))
    } else {
        None
    };
    let s = read(node, key).await?;
    let g = s.as_ref().and_then(|s| s.group(group)).ok_or_else(|| no_group(key, group, GroupWords::KeyOrGroup))?;
    let now = now_ms();
    match extended {
        None => {
            let pending: Vec<_> = g.pending_of(None).collect();
            if pending.is_empty() {
                return Ok(Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]));
            }
            let mut per: std::collections::BTreeMap<Bytes, u64> = std::collections::BTreeMap::new();
            for (_, p) in &pending {
                *per.entry(p.consumer.clone()).or_default() += 1;
            }
            Ok(Reply::Array(vec![
                Reply::Int(pending.len() as i64),
                id_reply(pending[0].0),
                id_reply(pending[pending.len() - 1].0),
                Reply::Array(
                    per.into_iter()
                        .map(|(c, n)| Reply::Array(vec![Reply::Bulk(c), Reply::Bulk(Bytes::from(n.to_string()))]))
                        .collect(),
                ),
            ]))
        }
        Some((min_idle, start, end, count, consumer)) => {
            let (Some(start), Some(end)) = (start, end) else { return Ok(Reply::Array(Vec::new())) };
            bounded(node, count.min(g.pel.len()))?;
            let rows = g
                .pending_of(consumer.as_deref())
                .filter(|(id, _)| *id >= start && *id <= end)
                .filter(|(_, p)| min_idle.is_none_or(|m| now.saturating_sub(p.delivered_ms) >= m))
                .take(count)
                .map(|(id, p)| {
                    Reply::Array(vec![
                        id_reply(id),
                        Reply::Bulk(p.consumer),
                        Reply::Int(now.saturating_sub(p.delivered_ms) as i64),
                        Reply::Int(p.count as i64),
                    ])
                })
                .collect();
            Ok(Reply::Array(rows))
        }
    }
}

fn min_idle_arg(arg: &[u8], cmd: &str) -> Result<u64, CommandError> {
    let n = parse_i64(arg).map_err(|_| CommandError::Other(format!("Invalid min-idle-time argument for {cmd}")))?;
    Ok(n.max(0) as u64)
}

pub async fn xclaim(node: &Node, args: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    // Redis looks the key and the group up before it reads the arguments.
    if read(node, key).await?.is_none_or(|s| s.group(group).is_none()) {
        return Err(no_group(key, group, GroupWords::KeyOrGroup));
    }
    let min_idle = min_idle_arg(&args[4], "XCLAIM")?;
    let mut ids = Vec::new();
    let mut i = 5;
    while i < args.len() {
        match StreamId::parse(&args[i], 0) {
            Some(id) => ids.push(id),
            None => break,
        }
        i += 1;
    }
    let now = now_ms();
    let mut opts = ClaimOpts::default();
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"force") {
            opts.force = true;
        } else if a.eq_ignore_ascii_case(b"justid") {
            opts.justid = true;
        } else if a.eq_ignore_ascii_case(b"idle") && more > 0 {
            i += 1;
            let ms = parse_i64(&args[i])
                .map_err(|_| CommandError::Other("Invalid IDLE option argument for XCLAIM".into()))?;
            opts.delivered_ms = Some(now.saturating_sub(ms.max(0) as u64));
        } else if a.eq_ignore_ascii_case(b"time") && more > 0 {
            i += 1;
            let ms = parse_i64(&args[i])
                .map_err(|_| CommandError::Other("Invalid TIME option argument for XCLAIM".into()))?;
            opts.delivered_ms = Some(ms.max(0) as u64);
        } else if a.eq_ignore_ascii_case(b"retrycount") && more > 0 {
            i += 1;
            let n = parse_i64(&args[i])
                .map_err(|_| CommandError::Other("Invalid RETRYCOUNT option argument for XCLAIM".into()))?;
            opts.retry_count = Some(n.max(0) as u64);
        } else if a.eq_ignore_ascii_case(b"lastid") && more > 0 {
            i += 1;
            opts.last_id = Some(strict_id(&args[i])?);
        } else {
            return Err(CommandError::Other(format!("Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(a))));
        }
        i += 1;
    }
    if let Some(t) = opts.delivered_ms {
        // A delivery time in the future counts as now (Redis clamps it).
        opts.delivered_ms = Some(t.min(now));
    }
    let op = StreamOp::Claim { group: group.clone(), consumer: consumer.clone(), min_idle, ids, opts };
    let outcome = modify(node, key, op).await.map_err(|e| group_error(e, key, group, GroupWords::KeyOrGroup))?;
    Ok(Reply::Array(
        outcome
            .entries
            .into_iter()
            .map(|(id, fields)| if opts.justid { id_reply(id) } else { entry_reply((id, fields)) })
            .collect(),
    ))
}

pub async fn xautoclaim(node: &Node, args: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    let min_idle = min_idle_arg(&args[4], "XAUTOCLAIM")?;
    let start = interval_id(&args[5], true)?.ok_or_else(invalid_id)?;
    let (mut count, mut justid) = (100usize, false);
    let mut i = 6;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"count") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1])?;
            if !(1..=(i64::MAX / 10)).contains(&n) {
                return Err(CommandError::Other("COUNT must be > 0".into()));
            }
            count = n as usize;
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"justid") {
            justid = true;
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    bounded(node, count)?;
    let op = StreamOp::AutoClaim { group: group.clone(), consumer: consumer.clone(), min_idle, start, count, justid };
    let outcome = modify(node, key, op).await.map_err(|e| group_error(e, key, group, GroupWords::KeyOrGroup))?;
    let claimed = outcome
        .entries
        .into_iter()
        .map(|(id, fields)| if justid { id_reply(id) } else { entry_reply((id, fields)) })
        .collect();
    Ok(Reply::Array(vec![
        id_reply(outcome.id.unwrap_or_default()),
        Reply::Array(claimed),
        Reply::Array(outcome.deleted.into_iter().map(id_reply).collect()),
    ]))
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

pub async fn xinfo(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_lowercase();
    if sub == b"help" {
        return Ok(Reply::Array(
            [
                "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Simple(l))
            .collect(),
        ));
    }
    let arity_error = || {
        CommandError::Other(format!("wrong number of arguments for 'xinfo|{}' command", String::from_utf8_lossy(&sub)))
    };
    let key = args.get(2).ok_or_else(arity_error)?;
    let known = matches!(&sub[..], b"stream" | b"groups" | b"consumers");
    if !known {
        return Err(CommandError::UnknownSubcommand {
            cmd: "XINFO",
            sub: String::from_utf8_lossy(&args[1]).into_owned(),
        });
    }
    let s = read(node, key).await?.ok_or_else(|| CommandError::Other("no such key".into()))?;
    let now = now_ms();
    match &sub[..] {
        b"groups" => {
            if args.len() != 3 {
                return Err(arity_error());
            }
            Ok(Reply::Array(s.groups().map(|(name, g)| group_info(&s, name, &g)).collect()))
        }
        b"consumers" => {
            if args.len() != 4 {
                return Err(arity_error());
            }
            let g = s.group(&args[3]).ok_or_else(|| no_group(key, &args[3], GroupWords::ForKey))?;
            Ok(Reply::Array(
                g.consumers
                    .iter()
                    .map(|(name, c)| {
                        let pending = g.pending_of(Some(name)).count();
                        Reply::Map(vec![
                            (bulk("name"), Reply::Bulk(name.clone())),
                            (bulk("pending"), Reply::Int(pending as i64)),
                            (bulk("idle"), Reply::Int(now.saturating_sub(c.seen_ms) as i64)),
                        ])
                    })
                    .collect(),
            ))
        }
        _ => {
            let full = match args.get(3) {
                None => None,
                Some(a) if a.eq_ignore_ascii_case(b"full") => {
                    let count = match (args.get(4), args.get(5)) {
                        (None, _) => 10,
                        (Some(c), Some(n)) if c.eq_ignore_ascii_case(b"count") && args.len() == 6 => {
                            match parse_i64(n)? {
                                n if n <= 0 => usize::MAX,
                                n => n as usize,
                            }
                        }
                        _ => return Err(CommandError::Syntax),
                    };
                    Some(count)
                }
                Some(_) => return Err(CommandError::Syntax),
            };
            Ok(stream_info(node, &s, full)?)
        }
    }
}

fn group_info(s: &Stream, name: &Bytes, g: &crate::version::Group) -> Reply {
    let opt = |v: Option<u64>| v.map_or(Reply::Nil, |n| Reply::Int(n as i64));
    Reply::Map(vec![
        (bulk("name"), Reply::Bulk(name.clone())),
        (bulk("consumers"), Reply::Int(g.consumers.len() as i64)),
        (bulk("pending"), Reply::Int(g.pel.len() as i64)),
        (bulk("last-delivered-id"), id_reply(g.cursor.last_id)),
        (bulk("entries-read"), opt(g.cursor.entries_read)),
        (bulk("lag"), lag(s, g).map_or(Reply::Nil, Reply::Int)),
    ])
}

fn stream_info(node: &Node, s: &Stream, full: Option<usize>) -> CmdResult {
    let meta = s.meta();
    let first = s.first();
    let recorded_first = first.as_ref().map_or(StreamId::MIN, |(id, _)| *id);
    // Redis's radix tree of listpacks, as if each held 100 entries (kura keeps none).
    let nodes = s.len().div_ceil(100);
    let mut out = vec![
        (bulk("length"), Reply::Int(s.len() as i64)),
        (bulk("radix-tree-keys"), Reply::Int(nodes as i64)),
        (bulk("radix-tree-nodes"), Reply::Int(nodes as i64 + 1)),
        (bulk("last-generated-id"), id_reply(s.last_id())),
        (bulk("max-deleted-entry-id"), id_reply(meta.max_deleted)),
        (bulk("entries-added"), Reply::Int(s.entries_added() as i64)),
        (bulk("recorded-first-entry-id"), id_reply(recorded_first)),
    ];
    match full {
        None => {
            out.push((bulk("groups"), Reply::Int(meta.groups.len() as i64)));
            let one = |e: Option<(StreamId, crate::version::Entry)>| {
                e.map_or(Reply::Nil, |(id, e)| entry_reply((id, Some(e.0))))
            };
            out.push((bulk("first-entry"), one(first)));
            out.push((bulk("last-entry"), one(s.last())));
        }
        Some(count) => {
            bounded(node, count.min(s.len()))?;
            let entries: Vec<EntryReply> =
                s.range(StreamId::MIN, StreamId::MAX, false).take(count).map(|(id, e)| (id, Some(e.0))).collect();
            out.push((bulk("entries"), entries_reply(entries)));
            let groups = s
                .groups()
                .map(|(name, g)| {
                    let pel = g
                        .pending_of(None)
                        .take(count)
                        .map(|(id, p)| {
                            Reply::Array(vec![
                                id_reply(id),
                                Reply::Bulk(p.consumer),
                                Reply::Int(p.delivered_ms as i64),
                                Reply::Int(p.count as i64),
                            ])
                        })
                        .collect();
                    let consumers = g
                        .consumers
                        .iter()
                        .map(|(c, info)| {
                            let theirs: Vec<Reply> = g
                                .pending_of(Some(c))
                                .take(count)
                                .map(|(id, p)| {
                                    Reply::Array(vec![
                                        id_reply(id),
                                        Reply::Int(p.delivered_ms as i64),
                                        Reply::Int(p.count as i64),
                                    ])
                                })
                                .collect();
                            Reply::Map(vec![
                                (bulk("name"), Reply::Bulk(c.clone())),
                                (bulk("seen-time"), Reply::Int(info.seen_ms as i64)),
                                (bulk("pel-count"), Reply::Int(g.pending_of(Some(c)).count() as i64)),
                                (bulk("pending"), Reply::Array(theirs)),
                            ])
                        })
                        .collect();
                    let opt = |v: Option<u64>| v.map_or(Reply::Nil, |n| Reply::Int(n as i64));
                    Reply::Map(vec![
                        (bulk("name"), Reply::Bulk(name.clone())),
                        (bulk("last-delivered-id"), id_reply(g.cursor.last_id)),
                        (bulk("entries-read"), opt(g.cursor.entries_read)),
                        (bulk("lag"), lag(s, &g).map_or(Reply::Nil, Reply::Int)),
                        (bulk("pel-count"), Reply::Int(g.pel.len() as i64)),
                        (bulk("pending"), Reply::Array(pel)),
                        (bulk("consumers"), Reply::Array(consumers)),
                    ])
                })
                .collect();
            out.push((bulk("groups"), Reply::Array(groups)));
        }
    }
    Ok(Reply::Map(out))
}
