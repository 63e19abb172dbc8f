//! `INFO [section ...]`: Redis-style sections, plus `kura` and `cluster`. The latency and
//! command figures are read back from the Prometheus recorder, so INFO and `/metrics` agree.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::CmdResult;
use crate::coordinator::CoordError;
use crate::metrics as m;
use crate::node::Node;
use crate::resp::Reply;

/// The Redis version kura answers to in HELLO and INFO, for clients that check it.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "keyspace",
    "kura",
    "cluster",
    "transfers",
    "antientropy",
];
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "latencystats",
    "commandstats",
    "keyspace",
    "kura",
    "cluster",
    "transfers",
    "antientropy",
];

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let asked: Vec<String> = args[1..].iter().map(|a| String::from_utf8_lossy(a).to_lowercase()).collect();
    let sections: Vec<&str> = if asked.is_empty() || asked.iter().any(|a| a == "default") {
        DEFAULT_SECTIONS.to_vec()
    } else if asked.iter().any(|a| a == "all" || a == "everything") {
        ALL_SECTIONS.to_vec()
    } else {
        ALL_SECTIONS.iter().copied().filter(|s| asked.iter().any(|a| a == s)).collect()
    };
    let walk = match sections.contains(&"keyspace") {
        true => Some(keyspace_walk(node).await?),
        false => None,
    };
    let mut out = String::new();
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        section(node, s, walk.as_deref(), &mut out)?;
    }
    Ok(Reply::Text(out))
}

/// Every called command's latencies (nanoseconds) since the start or CONFIG RESETSTAT.
fn latencies() -> Vec<(&'static str, crate::histogram::Snapshot)> {
    m::commands().map(m::CommandLatencies::snapshots).unwrap_or_default()
}

fn section(node: &Node, name: &str, walk: Option<&KeyspaceWalk>, out: &mut String) -> Result<(), super::CommandError> {
    let c = &node.config;
    let id = node.coordinator.identity();
    let q = node.coordinator.configured_quorum();
    let _ = writeln!(out, "# {}\r", capitalise(name));
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    match name {
        "server" => {
            line("redis_version", &REDIS_COMPAT_VERSION);
            line("kura_version", &env!("CARGO_PKG_VERSION"));
            line("redis_mode", &"standalone");
            line("os", &std::env::consts::OS);
            line("arch_bits", &(usize::BITS));
            line("process_id", &std::process::id());
            line("run_id", &node.run_id);
            line("tcp_port", &c.listen.port());
            line("uptime_in_seconds", &node.started.elapsed().as_secs());
            line("node_id", &id.node_id);
        }
        "clients" => {
            line("connected_clients", &node.clients.count());
            line("cluster_connections", &0);
            line("maxclients", &node.maxclients.load(Ordering::Relaxed));
            // No blocking commands, no client-side caching.
            line("blocked_clients", &node.clients.list().iter().filter(|c| c.is_blocked()).count());
            line("tracking_clients", &0);
        }
        "memory" => {
            let rss = resident_bytes();
            line("used_memory", &rss);
            line("used_memory_human", &human(rss));
            line("used_memory_rss", &rss);
            line("maxmemory", &0);
            line("maxmemory_human", &"0B");
            line("maxmemory_policy", &"noeviction");
        }
        "persistence" => {
            let st = node.coordinator.storage().stats();
            let disk = node.coordinator.storage().health().status();
            line("loading", &0);
            line("aof_enabled", &1);
            line("appendfsync", &format!("{:?}", c.fsync).to_lowercase());
            // Redis's field for a failed write of its journal (MISCONF), and kura's detail
            // (`storage/health.rs`).
            line("aof_last_write_status", &if disk.trouble.is_some() { "err" } else { "ok" });
            line("kura_disk_ok", &u8::from(disk.trouble.is_none()));
            line("kura_disk_state", &disk.trouble.as_ref().map_or("ok", |t| t.name()));
            let reason = disk.trouble.as_ref().map(|t| t.to_string().replace(['\r', '\n'], " ")).unwrap_or_default();
            line("kura_disk_error", &reason);
            line("kura_disk_error_seconds", &disk.for_secs);
            line("kura_disk_free_bytes", &disk.free);
            line("kura_disk_min_free_bytes", &disk.reserve);
            line("kura_disk_refused_writes", &disk.refused);
            line("kura_disk_restart_wanted", &u8::from(disk.restart_wanted));
            line("storage_engine", &"fjall");
            line("storage_disk_bytes", &st.disk_bytes);
            line("storage_journal_bytes", &st.journal_bytes);
            line("storage_records_written", &st.records_written);
            line("storage_bytes_written", &st.bytes_written);
            line("storage_held_writes", &st.held_writes);
        }
        "stats" => {
            let commands = node.total_commands.load(Ordering::Relaxed);
            line("total_connections_received", &node.total_connections.load(Ordering::Relaxed));
            line("total_commands_processed", &commands);
            line("instantaneous_ops_per_sec", &node.clients.ops_per_sec(commands));
            line("total_net_input_bytes", &node.clients.net_input_bytes.load(Ordering::Relaxed));
            line("total_net_output_bytes", &node.clients.net_output_bytes.load(Ordering::Relaxed));
            line("rejected_connections", &node.rejected_connections.load(Ordering::Relaxed));
            line("keyspace_hits", &node.clients.keyspace_hits.load(Ordering::Relaxed));
            line("keyspace_misses", &node.clients.keyspace_misses.load(Ordering::Relaxed));
            // kura never evicts. Pub/sub's figures are this node's subscriptions.
            line("evicted_keys", &0);
            let [channels, patterns, shard] = node.pubsub.sizes();
            line("pubsub_channels", &channels);
            line("pubsub_patterns", &patterns);
            line("pubsubshard_channels", &shard);
            let errors: u64 = node.clients.error_stats().iter().map(|(_, n)| n).sum();
            line("total_error_replies", &errors);
        }
        "cpu" => {
            let (user, sys) = cpu_seconds(libc::RUSAGE_SELF);
            let (cuser, csys) = cpu_seconds(libc::RUSAGE_CHILDREN);
            line("used_cpu_sys", &format!("{sys:.6}"));
            line("used_cpu_user", &format!("{user:.6}"));
            line("used_cpu_sys_children", &format!("{csys:.6}"));
            line("used_cpu_user_children", &format!("{cuser:.6}"));
        }
        "errorstats" => {
            for (code, n) in node.clients.error_stats() {
                line(&format!("errorstat_{code}"), &format!("count={n}"));
            }
        }
        "replication" => {
            line("role", &"master");
            line("connected_slaves", &0);
        }
        "latencystats" => {
            for (cmd, s) in latencies() {
                let q = m::QUANTILES.map(|q| format!("p{}={:.3}", q * 100.0, s.quantile(q).unwrap_or(0) as f64 / 1e3));
                line(&format!("latency_percentiles_usec_{cmd}"), &q.join(","));
            }
        }
        "commandstats" => {
            for (cmd, s) in latencies() {
                let (calls, usec) = (s.count(), s.sum as f64 / 1e3);
                let per = usec / calls as f64; // a called command's count is not 0
                line(&format!("cmdstat_{cmd}"), &format!("calls={calls},usec={usec:.0},usec_per_call={per:.2}"));
            }
        }
        "keyspace" => {
            let now = crate::clock::now_ms();
            for (db, c) in walk.iter().flat_map(|w| w.dbs.iter()) {
                let avg = if c.expires > 0 {
                    (c.expiry_sum / u128::from(c.expires)).saturating_sub(u128::from(now))
                } else {
                    0
                };
                line(&format!("db{db}"), &format!("keys={},expires={},avg_ttl={avg}", c.keys, c.expires));
            }
        }
        "kura" => {
            let st = node.coordinator.storage().stats();
            line("hints_pending", &node.coordinator.storage().hint_count());
            line("reap_index_keys", &node.coordinator.storage().due_len());
            line("max_value_bytes", &c.max_value_bytes);
            line("storage_keys_approx", &st.data_keys_approx);
            let s = m::siblings().snapshot();
            if s.count() > 0 {
                let q = m::QUANTILES.map(|q| format!("p{}={}", q * 100.0, s.quantile(q).unwrap_or(0)));
                line("siblings_per_read", &format!("{},count={}", q.join(","), s.count()));
            }
        }
        "cluster" => {
            // With slots placement kura is a Redis Cluster to its clients (`cluster.rs`); with
            // MD5 placement it answers CLUSTER as one shard, but tools that read this field
            // (as redis-cli's and client libraries' auto-detection) keep to plain mode.
            line("cluster_enabled", &u8::from(crate::ring::placement() == crate::ring::Placement::Slots));
            line("kura_placement", &crate::ring::placement().name());
            let cluster = node.coordinator.cluster();
            let view = cluster.view();
            line("kura_joined", &u8::from(view.state.is_some()));
            line("kura_cluster_id", &format!("{:016x}", cluster.cluster_id()));
            // Nodes of other clusters that talked to this one (or answered it) in the last
            // minute: refused, see README "Who founds the cluster".
            let refused = cluster.refused_peers();
            line("kura_refused_peers", &refused.len());
            for (i, r) in refused.iter().enumerate() {
                let ago = r.last.elapsed().as_secs();
                line(
                    &format!("kura_refused_peer{i}"),
                    &format!("addr={},cluster_id={:016x},last_seen={ago}s", r.addr, r.cluster),
                );
            }
            if let Some(state) = &view.state {
                let members: Vec<_> = state.live_members().collect();
                let down = members.iter().filter(|m| !cluster.is_up(&m.id)).count();
                line("kura_members", &members.len());
                line("kura_members_down", &down);
                line("kura_ring_version", &state.ring.version);
                line("kura_partitions", &state.ring.size());
                let mine = state.ring.partitions.iter().filter(|p| &p.owner == cluster.me()).count();
                line("kura_partitions_owned", &mine);
                line("kura_claimant", &state.claimant().map_or("", String::as_str));
            }
            line("kura_n", &q.n);
            line("kura_r", &q.r);
            line("kura_w", &q.w);
            line("kura_cluster_listen", &c.cluster_listen);
            // Admission control of background work (`admission.rs`).
            let a = node.coordinator.replica().admission();
            line("kura_background_p99_target_ms", &a.target().as_millis());
            let p99 = a.p99_us(std::time::Instant::now());
            line("kura_foreground_p99_us", &p99.map_or_else(|| "idle".to_owned(), |us| us.to_string()));
            line("kura_background_waits", &a.waits.load(std::sync::atomic::Ordering::Relaxed));
            line("kura_background_waited_ms", &(a.waited_us.load(std::sync::atomic::Ordering::Relaxed) / 1000));
        }
        "antientropy" => {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &node.aae.stats;
            line("aae_interval_seconds", &c.aae_interval_secs);
            line("aae_exchanges", &s.exchanges.load(Relaxed));
            line("aae_keys_repaired", &s.keys_repaired.load(Relaxed));
            line("aae_bytes", &s.bytes.load(Relaxed));
            line("aae_last_round_unix", &s.last_round.load(Relaxed));
        }
        "transfers" => {
            use std::sync::atomic::Ordering::Relaxed;
            let t = &node.transfers;
            let cluster = node.coordinator.cluster();
            let view = cluster.view();
            let pending = view.state.as_ref().map_or(0, |s| s.pending_transfers(cluster.settings().n).len());
            let here = super::kura::transfers_here(node);
            line("transition", &u8::from(view.state.as_ref().is_some_and(|s| s.ring.in_transition())));
            line("transfers_pending_cluster", &pending);
            line("transfers_pending_here", &here);
            line("transfers_running", &t.running());
            line("transfers_completed", &t.completed.load(Relaxed));
            line("transfers_failed", &t.failed.load(Relaxed));
            line("transfer_keys_sent", &t.keys_sent.load(Relaxed));
            line("transfer_bytes_sent", &t.bytes_sent.load(Relaxed));
            line("transfer_keys_received", &t.keys_received.load(Relaxed));
            if let Some((rate, _)) = t.rate() {
                line("transfer_rate_bytes_per_sec", &format!("{rate:.0}"));
            }
            if let Some(per) = t.seconds_per_transfer() {
                line("transfer_eta_seconds", &format!("{:.0}", per * here as f64));
            }
        }
        _ => {}
    }
    Ok(())
}

/// This process's resident memory (Linux: `/proc/self/statm`), 0 where unknown.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Redis's `*_human` form: `1.50M`.
fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..=1023 => format!("{bytes}B"),
        1024..=1_048_575 => format!("{:.2}K", b / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.2}M", b / 1_048_576.0),
        _ => format!("{:.2}G", b / 1_073_741_824.0),
    }
}

fn capitalise(s: &str) -> String {
    match s {
        "latencystats" => "Latencystats".into(),
        "commandstats" => "Commandstats".into(),
        _ => {
            let mut c = s.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
        }
    }
}

/// User and system CPU seconds of `who` (`RUSAGE_SELF`, `RUSAGE_CHILDREN`).
fn cpu_seconds(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

/// One database's line of INFO keyspace: its live keys, those with an expiry, and the sum of
/// their expiry times (ms since the epoch; the mean TTL is taken from it when shown).
#[derive(Clone, Copy, Debug, Default)]
struct DbCounts {
    keys: u64,
    expires: u64,
    expiry_sum: u128,
}

/// A walk of this node's store for INFO keyspace, and when it was made.
pub struct KeyspaceWalk {
    dbs: std::collections::BTreeMap<u32, DbCounts>,
    /// `StorageStats::records_written` when it started: a later walk finds the same while it
    /// has not moved.
    records_written: u64,
    done: std::time::Instant,
    took: std::time::Duration,
}

/// INFO keyspace's counts: this node's own copies, per database (a walk of the local store).
/// The walk runs on the blocking pool, never on a runtime worker, and concurrent INFOs share
/// one. A walk is used again while nothing was written since it began, or while it is younger
/// than ten times what it took (so walks of a large store take at most about a tenth of a
/// core: ioredis sends INFO on every connect): counts may then lag by that long.
async fn keyspace_walk(node: &Node) -> Result<Arc<KeyspaceWalk>, CoordError> {
    let mut last = node.keyspace_walk.lock().await;
    let storage = node.coordinator.storage().clone();
    let written = storage.stats().records_written;
    if let Some(walk) = last.as_ref() {
        if walk.records_written == written || walk.done.elapsed() < walk.took * 10 {
            return Ok(walk.clone());
        }
    }
    let started = std::time::Instant::now();
    let dbs = tokio::task::spawn_blocking(move || {
        let now = crate::clock::now_ms();
        let mut dbs: std::collections::BTreeMap<u32, DbCounts> = std::collections::BTreeMap::new();
        storage
            .for_each(|key, set| {
                let Ok(set) = set else { return };
                if crate::keyspace::is_reserved(key) {
                    return;
                }
                let Some(live) = set.resolve(now) else { return };
                let c = dbs.entry(super::db::db_of(key)).or_default();
                c.keys += 1;
                if let Some(at) = live.expires_ms {
                    c.expires += 1;
                    c.expiry_sum += u128::from(at);
                }
            })
            .map(|()| dbs)
    })
    .await
    .map_err(CoordError::from)?
    .map_err(CoordError::from)?;
    let walk = Arc::new(KeyspaceWalk {
        dbs,
        records_written: written,
        done: std::time::Instant::now(),
        took: started.elapsed(),
    });
    *last = Some(walk.clone());
    Ok(walk)
}
