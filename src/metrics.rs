//! Prometheus metric names (design.md section 7) and `/metrics` on `--metrics-listen`.
//!
//! Latencies are summaries with the quantiles p50, p99 and p99.9 (the paper's SLA percentile,
//! section 2.2). Counters, gauges and the quorum latencies go through the `metrics` crate's
//! recorder. The two figures every request records, its command's latency and the siblings a
//! read found, are kura's own histograms ([`Histogram`]: one relaxed add per sample, where the
//! recorder's histograms cost a tenth of a pipelined GET, docs/performance.md), rendered beside
//! the recorder's text. INFO's latencystats and commandstats read the same histograms.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;

use crate::histogram::{Histogram, Snapshot};

pub const COMMANDS_TOTAL: &str = "kura_commands_total";
pub const COMMAND_ERRORS_TOTAL: &str = "kura_command_errors_total";
pub const COMMAND_DURATION: &str = "kura_command_duration_seconds";
pub const SIBLINGS_PER_READ: &str = "kura_siblings_per_read";
pub const CONNECTIONS_TOTAL: &str = "kura_connections_total";
pub const CONNECTED_CLIENTS: &str = "kura_connected_clients";
pub const TLS_HANDSHAKE_FAILURES_TOTAL: &str = "kura_tls_handshake_failures_total";
pub const PROTOCOL_ERRORS_TOTAL: &str = "kura_protocol_errors_total";
pub const STORAGE_DISK_BYTES: &str = "kura_storage_disk_bytes";
pub const STORAGE_JOURNAL_BYTES: &str = "kura_storage_journal_bytes";
pub const STORAGE_KEYS: &str = "kura_storage_keys";
/// 1 while the disk takes writes, 0 while writes are refused for its trouble (`storage/health.rs`).
pub const DISK_OK: &str = "kura_disk_ok";
/// Free bytes on the data dir's file system (at the last check, once a second).
pub const DISK_FREE_BYTES: &str = "kura_disk_free_bytes";
/// Writes refused for the disk's trouble (client commands answered MISCONF, peers' and
/// background writes refused).
pub const DISK_REFUSED_WRITES_TOTAL: &str = "kura_disk_refused_writes_total";
pub const REAPED_KEYS_TOTAL: &str = "kura_reaped_keys_total";
pub const REAP_DEFERRED_TOTAL: &str = "kura_reap_deferred_total";
pub const QUORUM_DURATION: &str = "kura_quorum_duration_seconds";
pub const READ_REPAIRS_TOTAL: &str = "kura_read_repairs_total";
pub const FORWARDED_TOTAL: &str = "kura_forwarded_total";
pub const FORWARD_FALLBACKS_TOTAL: &str = "kura_forward_fallbacks_total";
pub const PEER_ERRORS_TOTAL: &str = "kura_peer_errors_total";
pub const PEER_EXPIRED_TOTAL: &str = "kura_peer_expired_total";
pub const PEER_BATCHES_TOTAL: &str = "kura_peer_batches_total";
pub const PEER_BATCHED_REQUESTS_TOTAL: &str = "kura_peer_batched_requests_total";
pub const RMW_PASSES_TOTAL: &str = "kura_rmw_passes_total";
pub const RMW_COMBINED_TOTAL: &str = "kura_rmw_combined_total";
pub const RING_VERSION: &str = "kura_ring_version";
pub const MEMBERS: &str = "kura_members";
pub const PEERS_DOWN: &str = "kura_peers_down";
pub const TRANSFERS_PENDING: &str = "kura_transfers_pending";
pub const TRANSFERS_RUNNING: &str = "kura_transfers_running";
pub const TRANSFER_PARTITIONS_TOTAL: &str = "kura_transfer_partitions_total";
pub const TRANSFER_FAILURES_TOTAL: &str = "kura_transfer_failures_total";
pub const TRANSFER_KEYS_TOTAL: &str = "kura_transfer_keys_total";
pub const TRANSFER_BYTES_TOTAL: &str = "kura_transfer_bytes_total";
pub const AAE_EXCHANGES_TOTAL: &str = "kura_aae_exchanges_total";
pub const AAE_KEYS_REPAIRED_TOTAL: &str = "kura_aae_keys_repaired_total";
pub const AAE_BYTES_TOTAL: &str = "kura_aae_bytes_total";
pub const AAE_LAST_SYNC: &str = "kura_aae_last_sync_timestamp_seconds";
pub const HINTED_WRITES_TOTAL: &str = "kura_hinted_writes_total";
/// Writes of a set or a hash replicated as a patch, by what the replica did with it
/// (`outcome`: applied, or stale: it did not hold the base version and got the whole set).
pub const REPLICATION_PATCHES_TOTAL: &str = "kura_replication_patches_total";
/// Quorum reads answered "the same as yours" (by digest) instead of with the set.
pub const READS_SAME_TOTAL: &str = "kura_reads_same_total";
/// Quorum reads' requests to other replicas (`asked`: `first`, the ones R needs and those of a
/// read that asks every replica; `hedge`, one more after a failure or a late answer).
pub const READ_REQUESTS_TOTAL: &str = "kura_read_requests_total";
pub const HINTS_PENDING: &str = "kura_hints_pending";
pub const HANDOFF_DELIVERED_TOTAL: &str = "kura_handoff_delivered_total";
pub const HANDOFF_FAILURES_TOTAL: &str = "kura_handoff_failures_total";
/// Batches of background work that waited for the foreground (`admission.rs`).
pub const BACKGROUND_WAITS_TOTAL: &str = "kura_background_waits_total";
pub const PUBSUB_PUBLISHED_TOTAL: &str = "kura_pubsub_published_total";
pub const PUBSUB_DELIVERIES_TOTAL: &str = "kura_pubsub_deliveries_total";
/// Messages not sent to or not delivered by a peer, by `reason` (queue_full, peer_down,
/// peer_error, duplicate).
pub const PUBSUB_DROPPED_TOTAL: &str = "kura_pubsub_dropped_total";
pub const PUBSUB_SUBSCRIBERS_CLOSED_TOTAL: &str = "kura_pubsub_subscribers_closed_total";

pub const QUANTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// Why `/metrics` could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Bind(#[from] std::io::Error),
    #[error("a metrics recorder is installed already")]
    Recorder,
}

/// How often the recorder folds its histograms' samples into their summaries.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the global recorder and serves `/metrics` on `listen`. Must run inside the runtime.
///
/// # Errors
/// When the listener cannot bind or a recorder is already installed.
pub fn install(listen: SocketAddr) -> Result<PrometheusHandle, InstallError> {
    let recorder = PrometheusBuilder::new().set_quantiles(&QUANTILES)?.build_recorder();
    let handle = recorder.handle();
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    metrics::set_global_recorder(recorder).map_err(|_| InstallError::Recorder)?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(serve(listener, handle.clone()));
    describe();
    Ok(handle)
}

/// Answers every HTTP request on `listener` with [`render`] (as the exporter's listener did).
async fn serve(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::header::{HeaderValue, CONTENT_TYPE};
    use hyper::{Request, Response};
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: try again a little later, not in a busy loop.
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let service = hyper::service::service_fn(move |_: Request<Incoming>| {
            let mut response = Response::new(Full::new(Bytes::from(render(&handle))));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            std::future::ready(Ok::<_, Infallible>(response))
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(error = %e, "metrics: connection failed");
            }
        });
    }
}

/// The text of `/metrics`: the recorder's metrics, then kura's own histograms.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut text = handle.render();
    render_own(&mut text, Instant::now());
    text
}

/// The latency histogram of every command, by the command table's index.
pub struct CommandLatencies {
    names: Vec<&'static str>,
    histograms: Vec<OnceLock<Histogram>>,
}

impl CommandLatencies {
    /// Records that command `i` took `took`.
    pub fn record(&self, i: usize, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.histograms[i].get_or_init(Histogram::default).record(ns);
    }

    /// The histograms of the commands called since the start (or CONFIG RESETSTAT), in
    /// nanoseconds, by command name.
    pub fn snapshots(&self) -> Vec<(&'static str, Snapshot)> {
        let called = self.names.iter().zip(&self.histograms).filter_map(|(n, h)| Some((*n, h.get()?.snapshot())));
        called.filter(|(_, s)| s.count() > 0).collect()
    }

    pub fn reset(&self) {
        self.histograms.iter().filter_map(OnceLock::get).for_each(Histogram::reset);
    }
}

static COMMANDS: OnceLock<CommandLatencies> = OnceLock::new();
static SIBLINGS: LazyLock<Histogram> = LazyLock::new(Histogram::default);

/// The command latencies of this process, for the command table `names` (the first call's).
pub fn command_latencies(names: impl FnOnce() -> Vec<&'static str>) -> &'static CommandLatencies {
    COMMANDS.get_or_init(|| {
        let names = names();
        let histograms = names.iter().map(|_| OnceLock::new()).collect();
        CommandLatencies { names, histograms }
    })
}

/// The commands' latencies, `None` before the command table registered them.
pub fn commands() -> Option<&'static CommandLatencies> {
    COMMANDS.get()
}

/// How many siblings each read found (1: no conflict).
pub fn siblings() -> &'static Histogram {
    &SIBLINGS
}

/// The quantiles of `/metrics` cover the samples of the last one to two minutes, as the
/// recorder's summaries do (theirs: the last minute); `_sum` and `_count` every sample.
const WINDOW: Duration = Duration::from_secs(60);

/// The snapshots the window of `/metrics` starts from: `base` (quantiles are taken over the
/// samples after it) and `next`, taken at `next_at`, which becomes the base a [`WINDOW`] later.
struct Window {
    next_at: Option<Instant>,
    next: BTreeMap<String, Snapshot>,
    base: BTreeMap<String, Snapshot>,
}

static WINDOW_STATE: Mutex<Window> = Mutex::new(Window { next_at: None, next: BTreeMap::new(), base: BTreeMap::new() });

/// Appends kura's own histograms to `out` as Prometheus summaries.
fn render_own(out: &mut String, now: Instant) {
    let mut series: Vec<(&'static str, String, Snapshot)> = Vec::new();
    for (command, s) in commands().map(CommandLatencies::snapshots).unwrap_or_default() {
        series.push((COMMAND_DURATION, format!("command=\"{command}\""), s));
    }
    series.push((SIBLINGS_PER_READ, String::new(), siblings().snapshot()));
    let key = |metric: &str, labels: &str| format!("{metric}{{{labels}}}");
    let mut window = WINDOW_STATE.lock();
    if window.next_at.is_none_or(|at| now.saturating_duration_since(at) >= WINDOW) {
        let current = series.iter().map(|(m, l, s)| (key(m, l), s.clone())).collect();
        window.base = std::mem::replace(&mut window.next, current);
        window.next_at = Some(now);
    }
    let mut described = None;
    for (metric, labels, total) in &series {
        let recent = window.base.get(&key(metric, labels)).map_or_else(|| total.clone(), |base| total.since(base));
        let (help, per_unit) = own_metric(metric);
        if described != Some(*metric) {
            described = Some(*metric);
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} summary");
        }
        let sep = if labels.is_empty() { "" } else { "," };
        for q in QUANTILES {
            let v = recent.quantile(q).map_or(0.0, |v| v as f64 / per_unit);
            let _ = writeln!(out, "{metric}{{{labels}{sep}quantile=\"{q}\"}} {v}");
        }
        let labels = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{metric}_sum{labels} {}", total.sum as f64 / per_unit);
        let _ = writeln!(out, "{metric}_count{labels} {}", total.count());
    }
}

/// The help text of one of kura's own histograms and how many recorded units make its base
/// unit (a division prints as the shortest decimal: 40959 ns is 0.000040959 s).
fn own_metric(metric: &str) -> (&'static str, f64) {
    match metric {
        COMMAND_DURATION => ("Command latency at this node, by command", 1e9),
        _ => ("Siblings a read found (1 = no conflict)", 1.0),
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(COMMANDS_TOTAL, "Commands processed, by command");
    describe_counter!(COMMAND_ERRORS_TOTAL, "Commands answered with an error, by command");
    describe_counter!(CONNECTIONS_TOTAL, "Client connections accepted");
    describe_gauge!(CONNECTED_CLIENTS, "Client connections open now");
    describe_counter!(TLS_HANDSHAKE_FAILURES_TOTAL, "Client TLS handshakes that failed or did not finish");
    describe_counter!(PROTOCOL_ERRORS_TOTAL, "Connections closed for a malformed request");
    describe_gauge!(STORAGE_DISK_BYTES, Unit::Bytes, "Disk space of the storage engine");
    describe_gauge!(STORAGE_JOURNAL_BYTES, Unit::Bytes, "Disk space of the storage journal");
    describe_gauge!(STORAGE_KEYS, "Keys in the data keyspace (approximate)");
    describe_gauge!(DISK_OK, "1 while the disk takes writes, 0 while they are refused (MISCONF)");
    describe_gauge!(DISK_FREE_BYTES, Unit::Bytes, "Free space on the data dir's file system");
    describe_counter!(DISK_REFUSED_WRITES_TOTAL, "Writes refused while the disk is in trouble");
    describe_counter!(REAPED_KEYS_TOTAL, "Deleted or expired keys removed for good");
    describe_counter!(
        REAP_DEFERRED_TOTAL,
        "Reapable keys kept for now: a node that may hold a copy or a hint is down or holds another one"
    );
    describe_histogram!(
        QUORUM_DURATION,
        Unit::Seconds,
        "Time a coordinated get/put took to reach its quorum (phase=quorum) and to hear from every replica (phase=all)"
    );
    describe_counter!(
        PEER_EXPIRED_TOTAL,
        "Copies of keys from peers refused because they arrived after their sender gave up on them"
    );
    describe_counter!(READ_REPAIRS_TOTAL, "Stale or missing replicas sent the merged version after a read");
    describe_counter!(FORWARDED_TOTAL, "Puts forwarded to a node of the key's preference list");
    describe_counter!(
        FORWARD_FALLBACKS_TOTAL,
        "Forwarded puts that no target answered in time, coordinated by the forwarding node itself"
    );
    describe_counter!(PEER_ERRORS_TOTAL, "Failed requests to peers, by kind");
    describe_counter!(PEER_BATCHES_TOTAL, "Batches of replication and read requests sent to peers");
    describe_counter!(PEER_BATCHED_REQUESTS_TOTAL, "Requests sent to peers inside batches");
    describe_counter!(RMW_PASSES_TOTAL, "Passes deciding read-modify-writes of one key here (each one store and, in a cluster, one quorum read and one replication)");
    describe_counter!(RMW_COMBINED_TOTAL, "Read-modify-writes decided in a pass with others of their key");
    describe_gauge!(RING_VERSION, "Version of the ring this node uses");
    describe_gauge!(MEMBERS, "Cluster members (not removed)");
    describe_gauge!(PEERS_DOWN, "Members this node sees as down");
    describe_gauge!(TRANSFERS_PENDING, "Partition transfers of the ring's transition not yet done");
    describe_gauge!(TRANSFERS_RUNNING, "Partition transfers this node is sending now");
    describe_counter!(TRANSFER_PARTITIONS_TOTAL, "Partition transfers this node finished sending");
    describe_counter!(TRANSFER_FAILURES_TOTAL, "Partition transfers that failed (retried)");
    describe_counter!(TRANSFER_KEYS_TOTAL, "Keys sent in partition transfers");
    describe_counter!(TRANSFER_BYTES_TOTAL, Unit::Bytes, "Bytes sent in partition transfers");
    describe_counter!(AAE_EXCHANGES_TOTAL, "Anti-entropy exchanges with a replica, by result (in_sync, repaired)");
    describe_counter!(AAE_KEYS_REPAIRED_TOTAL, "Keys anti-entropy fetched or pushed because replicas differed");
    describe_counter!(AAE_BYTES_TOTAL, Unit::Bytes, "Bytes anti-entropy exchanged (hashes, key lists, sets)");
    describe_gauge!(AAE_LAST_SYNC, "Unix time of the last exchange of a partition with all its replicas");
    describe_counter!(HINTED_WRITES_TOTAL, "Writes coordinated here as a stand-in for a down owner");
    describe_counter!(
        REPLICATION_PATCHES_TOTAL,
        "Set and hash writes sent to a replica as a patch of the version before (outcome: applied or stale)"
    );
    describe_counter!(READ_REQUESTS_TOTAL, "Quorum reads' requests to other replicas, by why they were asked");
    describe_counter!(READS_SAME_TOTAL, "Replica reads answered as the same version as the reader's, by digest");
    describe_gauge!(HINTS_PENDING, "Hinted copies this node holds for other nodes, not yet delivered");
    describe_counter!(HANDOFF_DELIVERED_TOTAL, "Hinted copies delivered to their owner and dropped here");
    describe_counter!(HANDOFF_FAILURES_TOTAL, "Hint deliveries that failed (retried with backoff)");
    describe_counter!(
        BACKGROUND_WAITS_TOTAL,
        "Batches of background work (transfers, anti-entropy, hint delivery, reaping) that waited while the foreground p99 was over --background-p99-ms"
    );
    describe_counter!(PUBSUB_PUBLISHED_TOTAL, "Messages published through this node (PUBLISH, SPUBLISH)");
    describe_counter!(PUBSUB_DELIVERIES_TOTAL, "Messages queued for this node's subscribers");
    describe_counter!(PUBSUB_DROPPED_TOTAL, "Published messages a peer did not get or did not deliver, by reason");
    describe_counter!(
        PUBSUB_SUBSCRIBERS_CLOSED_TOTAL,
        "Subscribers closed for going over the pubsub output buffer limit"
    );
}

/// Counts a failed request to a peer.
pub fn peer_error(kind: &'static str) {
    metrics::counter!(PEER_ERRORS_TOTAL, "kind" => kind).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_histograms_render_as_summaries() {
        let latencies = command_latencies(|| vec!["get", "set"]);
        let names = latencies.names.clone();
        let get = names.iter().position(|n| *n == "get").unwrap();
        for us in 1..=100 {
            latencies.record(get, Duration::from_micros(us));
        }
        let mut text = String::new();
        render_own(&mut text, Instant::now());
        assert!(text.contains("# TYPE kura_command_duration_seconds summary\n"), "{text}");
        let line = |series: &str| {
            let found = text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' '));
            found.map(|v| v.parse::<f64>().unwrap()).unwrap_or_else(|| panic!("no {series} in {text}"))
        };
        let p99 = line("kura_command_duration_seconds{command=\"get\",quantile=\"0.99\"}");
        assert!((99e-6..=99e-6 * 1.07).contains(&p99), "{p99}");
        assert!(line("kura_command_duration_seconds_count{command=\"get\"}") >= 100.0);
        assert!(line("kura_command_duration_seconds_sum{command=\"get\"}") >= 5050e-6 * 0.999);
        assert!(text.contains("kura_siblings_per_read{quantile=\"0.5\"}"), "{text}");
        assert!(text.contains("kura_siblings_per_read_count "), "{text}");
    }
}
