//! `CONFIG GET pattern [pattern ...]`: the node's settings under their Redis names where Redis
//! has one (tools such as redis-benchmark ask for `save` and `appendonly`), and kura's own.
//! `CONFIG SET` changes the few that change at run time (`notify-keyspace-events` among
//! them), and remembers Redis's encoding settings (`hash-max-listpack-entries` ..., which
//! tools and test harnesses tune) without using them; every other setting is fixed at start.

use bytes::Bytes;
use wildmatch::WildMatch;

use super::{CmdResult, CommandError};
use crate::clients::OutputLimit;
use crate::node::Node;
use crate::resp::Reply;
use crate::storage::FsyncPolicy;

/// Redis 7.0's encoding settings (built-in defaults) and their old `ziplist` names: kura
/// stores every list, set, hash and sorted set one way, so they change nothing here.
pub const ENCODINGS: &[(&str, i64)] = &[
    ("hash-max-listpack-entries", 128),
    ("hash-max-listpack-value", 64),
    ("set-max-intset-entries", 512),
    ("zset-max-listpack-entries", 128),
    ("zset-max-listpack-value", 64),
    ("list-max-listpack-size", -2),
    ("list-compress-depth", 0),
    ("hll-sparse-max-bytes", 3000),
    ("stream-node-max-bytes", 4096),
    ("stream-node-max-entries", 100),
];

/// The old name of an encoding setting and its new one.
const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
];

/// The encoding setting `name` (or its old name) stands for.
fn encoding(name: &str) -> Option<&'static str> {
    let name = ALIASES.iter().find(|(old, _)| *old == name).map_or(name, |(_, new)| new);
    ENCODINGS.iter().find(|(n, _)| *n == name).map(|(n, _)| *n)
}

/// `client-output-buffer-limit` as Redis prints it.
fn output_limits(limits: [OutputLimit; 3]) -> String {
    let [(nh, ns, nt), (rh, rs, rt), (ph, ps, pt)] = limits;
    format!("normal {nh} {ns} {nt} slave {rh} {rs} {rt} pubsub {ph} {ps} {pt}")
}

/// Redis's `memtoull`: digits and an optional unit (`b`, `k`/`kb`, `m`/`mb`, `g`/`gb`: the
/// short ones by 1000, the `b` ones by 1024), case-insensitive.
fn memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let unit: u64 = match &lower[at..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    lower[..at].parse::<u64>().ok()?.checked_mul(unit)
}

/// `client-output-buffer-limit <class> <hard> <soft> <soft seconds> ...` over `limits`, with
/// Redis's errors. kura enforces the pubsub class's hard limit (docs/pubsub.md).
fn parse_output_limits(value: &str, mut limits: [OutputLimit; 3]) -> Result<[OutputLimit; 3], &'static str> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.");
    }
    for class in words.chunks(4) {
        let i = match class[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => return Err("Invalid client class specified in buffer limit configuration."),
        };
        let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let hard = memory(class[1]).ok_or(bad)?;
        let soft = memory(class[2]).ok_or(bad)?;
        let secs = class[3].parse::<u64>().map_err(|_| bad)?;
        limits[i] = (hard, soft, secs);
    }
    Ok(limits)
}

fn parameters(node: &Node) -> Vec<(&'static str, String)> {
    let c = &node.config;
    let fsync = match c.fsync {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Everysec => "everysec",
        FsyncPolicy::Never => "no",
    };
    let mut out = vec![
        ("bind", c.listen.ip().to_string()),
        ("port", c.listen.port().to_string()),
        ("databases", c.databases.to_string()),
        ("slowlog-log-slower-than", node.slowlog.slower_than_us.load(std::sync::atomic::Ordering::Relaxed).to_string()),
        ("slowlog-max-len", node.slowlog.max_len.load(std::sync::atomic::Ordering::Relaxed).to_string()),
        ("maxclients", node.maxclients.load(std::sync::atomic::Ordering::Relaxed).to_string()),
        ("busy-reply-threshold", node.scripts.busy_threshold_ms.load(std::sync::atomic::Ordering::Relaxed).to_string()),
        ("lua-time-limit", node.scripts.busy_threshold_ms.load(std::sync::atomic::Ordering::Relaxed).to_string()),
        ("timeout", node.clients.idle_timeout().map_or(0, |d| d.as_secs()).to_string()),
        ("maxmemory", "0".into()),
        ("save", String::new()),
        // Every write goes to the journal: the closest Redis setting is an always-on AOF.
        ("appendonly", "yes".into()),
        ("appendfsync", fsync.into()),
        ("dir", c.data_dir.display().to_string()),
        ("proto-max-bulk-len", c.max_request_bytes.to_string()),
        ("client-output-buffer-limit", output_limits(node.clients.output_limits())),
        ("requirepass", node.requirepass.read().clone().unwrap_or_default()),
        ("notify-keyspace-events", node.notify.flags().to_string()),
        ("kura-max-value-bytes", c.max_value_bytes.to_string()),
        ("kura-max-reply-members", c.max_reply_members.to_string()),
        ("kura-n", c.n.to_string()),
        ("kura-r", c.r.to_string()),
        ("kura-w", c.w.to_string()),
        ("kura-partitions", c.partitions.to_string()),
        ("kura-cluster-listen", c.cluster_listen.to_string()),
        ("kura-metrics-listen", c.metrics_listen.to_string()),
        ("kura-node-id", node.coordinator.identity().node_id.clone()),
    ];
    let encodings = node.encodings.lock().clone();
    let value = |name: &str| encodings.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v).to_string();
    out.extend(encodings.iter().map(|(n, v)| (*n, v.to_string())));
    out.extend(ALIASES.iter().map(|(old, new)| (*old, value(new))));
    out
}

/// CONFIG SET name value [name value ...]: the slow log's settings change at run time; every
/// other known setting is fixed at start (Redis's error for an immutable one), an unknown one
/// gets Redis's error. Nothing is changed unless every pair is accepted.
fn set(node: &Node, args: &[Bytes]) -> CmdResult {
    use std::sync::atomic::Ordering::Relaxed;
    if args.len() < 4 || !args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("config|set".into()));
    }
    let known: Vec<&str> = parameters(node).iter().map(|(n, _)| *n).collect();
    let mut threshold = None;
    let mut max_len = None;
    let mut password = None;
    let mut maxclients = None;
    let mut timeout = None;
    let mut busy = None;
    let mut output = None;
    let mut notify = None;
    let mut encodings = Vec::new();
    for pair in args[2..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_lowercase();
        let value = String::from_utf8_lossy(&pair[1]);
        let invalid = || {
            CommandError::Other(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
            ))
        };
        match name.as_str() {
            "slowlog-log-slower-than" => threshold = Some(value.parse::<i64>().map_err(|_| invalid())?),
            "slowlog-max-len" => max_len = Some(value.parse::<usize>().map_err(|_| invalid())?),
            "requirepass" => password = Some(value.into_owned()),
            "timeout" => timeout = Some(value.parse::<u64>().map_err(|_| invalid())?),
            "busy-reply-threshold" | "lua-time-limit" => busy = Some(value.parse::<u64>().map_err(|_| invalid())?),
            "client-output-buffer-limit" => {
                let current = output.unwrap_or_else(|| node.clients.output_limits());
                output = Some(parse_output_limits(&value, current).map_err(|why| {
                    CommandError::Other(format!("CONFIG SET failed (possibly related to argument '{name}') - {why}"))
                })?);
            }
            "notify-keyspace-events" => {
                notify = Some(crate::notify::Flags::parse(&pair[1]).ok_or_else(|| {
                    CommandError::Other(format!(
                        "CONFIG SET failed (possibly related to argument '{name}') - {}",
                        crate::notify::INVALID
                    ))
                })?);
            }
            n if encoding(n).is_some() => {
                encodings.push((encoding(n).unwrap_or_default(), value.parse::<i64>().map_err(|_| invalid())?));
            }
            "maxclients" => {
                let n = value.parse::<usize>().map_err(|_| invalid())?;
                if n == 0 {
                    return Err(CommandError::Other(format!(
                        "CONFIG SET failed (possibly related to argument '{name}') - argument must be between 1 and 4294967295 inclusive"
                    )));
                }
                maxclients = Some(n);
            }
            n if known.contains(&n) => {
                return Err(CommandError::Other(format!(
                    "CONFIG SET failed (possibly related to argument '{n}') - can't set immutable config"
                )));
            }
            n => {
                return Err(CommandError::Other(format!(
                    "Unknown option or number of arguments for CONFIG SET - '{n}'"
                )));
            }
        }
    }
    if let Some(t) = threshold {
        node.slowlog.slower_than_us.store(t, Relaxed);
    }
    if let Some(m) = max_len {
        node.slowlog.set_max_len(m);
    }
    if let Some(p) = password {
        // An empty password removes it; connections already open stay authenticated.
        *node.requirepass.write() = (!p.is_empty()).then_some(p);
    }
    if let Some(n) = maxclients {
        node.set_maxclients(n);
    }
    if let Some(ms) = busy {
        node.scripts.busy_threshold_ms.store(ms, Relaxed);
    }
    if let Some(secs) = timeout {
        node.clients.set_idle_timeout(secs);
    }
    if let Some(limits) = output {
        node.clients.set_output_limits(limits);
    }
    if let Some(flags) = notify {
        node.notify.set_flags(flags);
    }
    let mut remembered = node.encodings.lock();
    for (name, value) in encodings {
        if let Some(slot) = remembered.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        }
    }
    Ok(Reply::ok())
}

pub fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"GET" => {
            if args.len() < 3 {
                return Err(CommandError::WrongArity("config|get".into()));
            }
            let patterns: Vec<WildMatch> =
                args[2..].iter().map(|p| WildMatch::new(&String::from_utf8_lossy(p).to_lowercase())).collect();
            let pairs = parameters(node)
                .into_iter()
                .filter(|(name, _)| patterns.iter().any(|p| p.matches(name)))
                .map(|(name, value)| (Reply::bulk(name), Reply::bulk(value)))
                .collect();
            Ok(Reply::Map(pairs))
        }
        b"SET" => set(node, args),
        b"RESETSTAT" if args.len() != 2 => Err(CommandError::WrongArity("config|resetstat".into())),
        b"RESETSTAT" => {
            use std::sync::atomic::Ordering::Relaxed;
            for counter in [&node.total_commands, &node.total_connections, &node.rejected_connections] {
                counter.store(0, Relaxed);
            }
            node.clients.reset_error_stats();
            for counter in [&node.clients.keyspace_hits, &node.clients.keyspace_misses] {
                counter.store(0, Relaxed);
            }
            Ok(Reply::ok())
        }
        _ => {
            Err(CommandError::UnknownSubcommand { cmd: "CONFIG", sub: String::from_utf8_lossy(&args[1]).into_owned() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_limits_parse_as_redis() {
        let limits = crate::clients::OUTPUT_LIMITS;
        assert_eq!(output_limits(limits), "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
        let set = parse_output_limits("pubsub 1mb 2K 0", limits).unwrap();
        assert_eq!(set[2], (1 << 20, 2000, 0));
        assert_eq!(set[0], limits[0]);
        assert_eq!(parse_output_limits("replica 2gb 1 5", limits).unwrap()[1], (2 << 30, 1, 5));
        assert!(parse_output_limits("pubsub 1mb 0", limits).unwrap_err().starts_with("Wrong number"));
        assert!(parse_output_limits("master 1 1 1", limits).unwrap_err().starts_with("Invalid client class"));
        assert!(parse_output_limits("pubsub 1xb 0 0", limits).unwrap_err().starts_with("Error in hard"));
        assert!(parse_output_limits("pubsub -1 0 0", limits).unwrap_err().starts_with("Error in hard"));
    }
}
