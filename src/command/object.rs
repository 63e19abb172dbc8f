//! `OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT|HELP key`. kura stores each type one way, so
//! ENCODING answers what Redis 7.0 would call the same value under the encoding settings
//! CONFIG SET last gave (`int`, `embstr` or `raw` for a string; `quicklist` for a list;
//! `intset` or `hashtable` for a set; `listpack`, `hashtable` or `skiplist` for hashes and
//! sorted sets): tools and test suites read it back after tuning those settings. IDLETIME is
//! 0 (kura keeps no access times); REFCOUNT is 1, or Redis's shared-integer count for the
//! integers 0..9999 it shares; FREQ answers Redis's error without an LFU policy (kura has no
//! eviction).

use bytes::Bytes;

use super::{CmdResult, CommandError};
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::redis_i64;
use crate::version::Value;

/// Redis's refcount of an object it shares (`OBJ_SHARED_REFCOUNT`).
const SHARED: i64 = i32::MAX as i64;

/// The encoding setting `name` as CONFIG SET last gave it.
pub(super) fn setting(node: &Node, name: &str) -> i64 {
    node.encodings.lock().iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
}

fn string_encoding(bytes: &[u8]) -> &'static str {
    if bytes.len() <= 20 && redis_i64(bytes).is_some() {
        "int"
    } else if bytes.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

/// What Redis 7.0 would encode `value` as.
fn encoding(node: &Node, value: &Value) -> &'static str {
    let small = |n: usize, entries: &str, longest: usize, bytes: &str| {
        (n as i64) <= setting(node, entries) && (longest as i64) <= setting(node, bytes)
    };
    match value {
        Value::Bytes(b) => string_encoding(b),
        Value::Counter(_) => "int",
        Value::Hll(_) => "raw",
        Value::List(_) => "quicklist",
        Value::Stream(_) => "stream",
        Value::Set(s) => {
            let ints = s.members().all(|m| redis_i64(m).is_some());
            if ints && (s.len() as i64) <= setting(node, "set-max-intset-entries") {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::Hash(h) => {
            let longest = h.iter().map(|(f, v)| f.len().max(v.bytes().len())).max().unwrap_or(0);
            if small(h.len(), "hash-max-listpack-entries", longest, "hash-max-listpack-value") {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(z) => {
            let longest = z.map().members().map(Bytes::len).max().unwrap_or(0);
            if small(z.len(), "zset-max-listpack-entries", longest, "zset-max-listpack-value") {
                "listpack"
            } else {
                "skiplist"
            }
        }
    }
}

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_uppercase();
    if sub == b"HELP" {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Print this help.",
        ];
        return Ok(Reply::Array(lines.iter().map(|l| Reply::Simple(l)).collect()));
    }
    let set = node.coordinator.get(&args[2], None).await?;
    let Some(value) = set.resolve(now_ms()).map(|r| r.value) else { return Ok(Reply::Nil) };
    Ok(match sub.as_slice() {
        b"ENCODING" => Reply::bulk(encoding(node, &value)),
        b"IDLETIME" => Reply::Int(0),
        b"REFCOUNT" => {
            let shared = matches!(&value, Value::Bytes(b) if redis_i64(b).is_some_and(|n| (0..10_000).contains(&n)));
            Reply::Int(if shared { SHARED } else { 1 })
        }
        b"FREQ" => {
            return Err(CommandError::Other(
                "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into(),
            ))
        }
        _ => unreachable!("check_subcommand lets only OBJECT's subcommands through"),
    })
}
