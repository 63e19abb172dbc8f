//! Prometheus metric names (design.md section 7) and the exporter on `--metrics-listen`.
//!
//! Latencies are summaries with the quantiles p50, p99 and p99.9 (the paper's SLA percentile,
//! section 2.2). INFO reads the same figures back from the recorder, so both agree.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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

/// Installs the global recorder and serves `/metrics` on `listen`. Must run inside the runtime.
///
/// # Errors
/// When the listener cannot bind or a recorder is already installed.
pub fn install(listen: SocketAddr) -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let (recorder, exporter) =
        PrometheusBuilder::new().with_http_listener(listen).set_quantiles(&QUANTILES)?.build()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    tokio::spawn(exporter);
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(COMMANDS_TOTAL, "Commands processed, by command");
    describe_counter!(COMMAND_ERRORS_TOTAL, "Commands answered with an error, by command");
    describe_histogram!(COMMAND_DURATION, Unit::Seconds, "Command latency at this node, by command");
    describe_histogram!(SIBLINGS_PER_READ, "Siblings a read found (1 = no conflict)");
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

/// One summary as the exporter renders it: quantiles, sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub quantiles: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: u64,
}

/// Reads the summaries of `metric` back from the rendered exposition, keyed by the value of
/// `label` (e.g. per command).
pub fn summaries(handle: &PrometheusHandle, metric: &str, label: &str) -> Vec<(String, Summary)> {
    parse_summaries(&handle.render(), metric, label)
}

fn parse_summaries(text: &str, metric: &str, label: &str) -> Vec<(String, Summary)> {
    let mut out: Vec<(String, Summary)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with(metric)) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let labels = labels.trim_end_matches('}');
        let get =
            |key: &str| labels.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\"")?.strip_suffix('"'));
        let key = get(label).unwrap_or("").to_owned();
        let idx = match out.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                out.push((key, Summary::default()));
                out.len() - 1
            }
        };
        let s = &mut out[idx].1;
        match name.strip_prefix(metric) {
            Some("") => {
                if let Some(q) = get("quantile").and_then(|q| q.parse().ok()) {
                    s.quantiles.push((q, value));
                }
            }
            Some("_sum") => s.sum = value,
            Some("_count") => s.count = value as u64,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rendered_summaries() {
        let text = "# TYPE kura_command_duration_seconds summary\n\
            kura_command_duration_seconds{command=\"get\",quantile=\"0.5\"} 0.00001\n\
            kura_command_duration_seconds{command=\"get\",quantile=\"0.999\"} 0.0002\n\
            kura_command_duration_seconds_sum{command=\"get\"} 0.5\n\
            kura_command_duration_seconds_count{command=\"get\"} 1000\n\
            kura_commands_total{command=\"get\"} 1000\n";
        let s = parse_summaries(text, COMMAND_DURATION, "command");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0, "get");
        assert_eq!(s[0].1.count, 1000);
        assert_eq!(s[0].1.quantiles, vec![(0.5, 0.00001), (0.999, 0.0002)]);
    }
}
