//! `CONFIG GET pattern [pattern ...]`: the node's settings under their Redis names where Redis
//! has one (tools such as redis-benchmark ask for `save` and `appendonly`), and kura's own.
//! `CONFIG SET` changes the few that change at run time (`notify-keyspace-events` among
//! them), and remembers Redis's encoding settings (`hash-max-listpack-entries` ..., which
//! tools and test harnesses tune) without using them; every other setting is fixed at start.

use bytes::Bytes;
use wildmatch::WildMatch;

use super::{CmdResult, CommandError};
use crate::clients::{format_output_limits, parse_output_limits};
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
        ("client-output-buffer-limit", format_output_limits(node.clients.output_limits())),
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
    let tls = node.tls.as_ref().map(|t| t.files());
    let path = |p: Option<&std::path::PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();
    out.extend([
        ("tls-port", c.tls_listen.map_or(0, |a| a.port()).to_string()),
        ("tls-cert-file", path(tls.as_ref().map(|t| &t.cert))),
        ("tls-key-file", path(tls.as_ref().map(|t| &t.key))),
        ("tls-ca-cert-file", path(tls.as_ref().and_then(|t| t.ca.as_ref()))),
        ("tls-auth-clients", tls.as_ref().map_or("yes", |t| t.auth_clients.as_str()).into()),
        ("tls-cluster", if c.tls_cluster { "yes" } else { "no" }.into()),
    ]);
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
    let mut tls = node.tls.as_ref().map(|t| t.files());
    let mut tls_changed = false;
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
            "tls-cert-file" | "tls-key-file" | "tls-ca-cert-file" | "tls-auth-clients" => {
                let failed = |why: &str| {
                    CommandError::Other(format!("CONFIG SET failed (possibly related to argument '{name}') - {why}"))
                };
                let files = tls
                    .as_mut()
                    .ok_or_else(|| failed("TLS is off: start the node with --tls-port or --tls-cluster yes"))?;
                let path = std::path::PathBuf::from(value.as_ref());
                match name.as_str() {
                    "tls-cert-file" => files.cert = path,
                    "tls-key-file" => files.key = path,
                    "tls-ca-cert-file" => files.ca = (!value.is_empty()).then_some(path),
                    _ => {
                        files.auth_clients = crate::tls::AuthClients::parse(&value)
                            .ok_or_else(|| failed("argument(s) must be one of the following: no, yes, optional"))?
                    }
                }
                tls_changed = true;
            }
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
    // The certificates are read (and every one checked) before anything else changes.
    if let (Some(files), Some(current), true) = (tls, &node.tls, tls_changed) {
        current.reload(Some(files)).map_err(|e| {
            tracing::warn!("TLS certificates not reloaded, the old ones stay: {e}");
            CommandError::Other(format!("CONFIG SET failed - Unable to update TLS configuration: {e}"))
        })?;
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
            // Redis's RESETSTAT also resets commandstats and latencystats.
            if let Some(latencies) = crate::metrics::commands() {
                latencies.reset();
            }
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
