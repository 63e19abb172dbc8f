//! `CLUSTER`, `READONLY`, `READWRITE`, `ASKING` and the `-MOVED` redirection: the ring shown as
//! Redis Cluster's 16384 slots, so that cluster clients (redis-py `RedisCluster`, ioredis
//! `Cluster`, go-redis, Jedis, Lettuce, `redis-cli -c`, `redis-benchmark --cluster`) connect and,
//! with `--placement slots`, send each request to a node of its key's preference list (paper
//! section 6.4, client-driven coordination: no node forwards).
//!
//! With `--placement slots` a partition is a range of 16384/Q slots (`ring::partition_slots`);
//! its "master" is the first node of its preference list that is up as this node sees it, its
//! "replicas" the rest. Contiguous partitions with the same nodes are one range of CLUSTER
//! SLOTS. Every member is a "master" in CLUSTER NODES (of the slots it leads), since in kura
//! every node leads some partitions and replicates others; CLUSTER SHARDS groups partitions by
//! their preference list, with each node's role in it.
//!
//! With `--placement md5` (the default) keys are not placed by slot, so the node that answers
//! presents itself as one shard owning every slot (as Dragonfly's emulated cluster mode) and
//! the other members as its replicas: cluster clients connect and work, with no one-hop gain.
//!
//! The redirection: a connection that said it is a cluster client's (it sent CLUSTER, READONLY,
//! READWRITE or ASKING) is answered `-MOVED slot host:port` for a key whose preference list
//! does not hold this node, so its client refreshes its map after a ring change. Any other
//! connection is served as before (this node coordinates or forwards): a plain client works
//! against any node.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError, Session};
use crate::membership::{ClusterState, Member, Status};
use crate::node::Node;
use crate::resp::Reply;
use crate::ring::{self, NodeId, Placement, SLOTS_COUNT};

/// Keys a GETKEYSINSLOT or COUNTKEYSINSLOT reads per step from storage.
const PAGE: usize = 1000;

/// A node as cluster clients see it: its 40-hex id (the SHA-1 of its kura id, stable across
/// restarts), where clients reach it, its peer port, and whether it is up.
struct Shown {
    id: String,
    ip: String,
    port: u16,
    peer_port: u16,
    up: bool,
    me: bool,
}

/// The 40-hex id Redis Cluster clients know node `id` by.
pub fn hex_id(id: &str) -> String {
    sha1_smol::Sha1::from(id).digest().to_string()
}

fn shown(node: &Node, m: &Member) -> Shown {
    let cluster = node.coordinator.cluster();
    // A node listening on every address (0.0.0.0) is shown at its peer address's IP.
    let ip = if m.client.ip().is_unspecified() { m.addr.ip() } else { m.client.ip() };
    Shown {
        id: hex_id(&m.id),
        ip: ip.to_string(),
        port: m.client.port(),
        peer_port: m.addr.port(),
        up: cluster.is_up(&m.id),
        me: &m.id == cluster.me(),
    }
}

/// The members clients may be sent to (not removed), by id.
fn members(node: &Node, state: &ClusterState) -> BTreeMap<NodeId, Shown> {
    state.members.values().filter(|m| m.status != Status::Removed).map(|m| (m.id.clone(), shown(node, m))).collect()
}

/// One range of slots and its nodes, master first.
struct Range {
    first: u16,
    last: u16,
    nodes: Vec<NodeId>,
}

/// The slot ranges of the ring as this node sees it, in slot order, covering all 16384.
fn ranges(node: &Node) -> Vec<Range> {
    let cluster = node.coordinator.cluster();
    let view = cluster.view();
    let me = cluster.me().clone();
    if ring::placement() == Placement::Md5 || view.partitions() == 0 {
        // One shard: this node, then the other members that are up.
        let mut nodes = vec![me.clone()];
        if let Some(state) = &view.state {
            nodes.extend(
                state
                    .members
                    .values()
                    .filter(|m| m.id != me && matches!(m.status, Status::Valid | Status::Joining))
                    .filter(|m| cluster.is_up(&m.id))
                    .map(|m| m.id.clone()),
            );
        }
        return vec![Range { first: 0, last: SLOTS_COUNT - 1, nodes }];
    }
    let q = view.partitions();
    let mut out: Vec<Range> = Vec::new();
    for p in 0..q {
        let (first, last) = ring::partition_slots(p, q);
        let mut nodes = view.partition_replicas(p).to_vec();
        // The master: the first of the preference list that is up.
        if let Some(up) = nodes.iter().position(|n| cluster.is_up(n)) {
            let master = nodes.remove(up);
            nodes.insert(0, master);
        }
        match out.last_mut() {
            Some(prev) if prev.nodes == nodes && u32::from(prev.last) + 1 == u32::from(first) => prev.last = last,
            _ => out.push(Range { first, last, nodes }),
        }
    }
    out
}

/// The node cluster clients should send `key` to, as `slot host:port`, when this node does not
/// replicate it (`None`: this node does, or there is no ring yet).
pub fn moved(node: &Node, key: &[u8]) -> Option<String> {
    if ring::placement() != Placement::Slots {
        return None;
    }
    let cluster = node.coordinator.cluster();
    let view = cluster.view();
    let replicas = view.preference_list(key);
    if replicas.is_empty() || replicas.iter().any(|r| r == cluster.me()) {
        return None;
    }
    let master = replicas.iter().find(|r| cluster.is_up(r)).unwrap_or(&replicas[0]);
    let m = view.state.as_ref()?.members.get(master)?;
    let s = shown(node, m);
    Some(format!("{} {}:{}", ring::key_slot(key), s.ip, s.port))
}

/// READONLY, READWRITE, ASKING: OK, and the connection is a cluster client's from now on.
pub fn declare(session: &mut Session) -> CmdResult {
    session.cluster_client = true;
    Ok(Reply::ok())
}

pub async fn run(node: &Node, session: &mut Session, args: &[Bytes]) -> CmdResult {
    session.cluster_client = true;
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"SLOTS" => Ok(slots(node)),
        b"SHARDS" => Ok(shards(node)),
        b"NODES" => Ok(Reply::Bulk(Bytes::from(nodes(node)))),
        b"INFO" => Ok(Reply::Text(info(node))),
        b"MYID" => Ok(Reply::bulk(hex_id(node.coordinator.cluster().me()))),
        b"MYSHARDID" => Ok(Reply::bulk(hex_id(&format!("shard:{}", node.coordinator.cluster().me())))),
        b"KEYSLOT" => Ok(Reply::Int(ring::key_slot(&args[2]).into())),
        b"COUNTKEYSINSLOT" => {
            let slot = slot_arg(&args[2], "Invalid slot")?;
            Ok(Reply::Int(keys_in_slot(node, slot, usize::MAX).await?.len() as i64))
        }
        b"GETKEYSINSLOT" => {
            let slot = parse_i64(&args[2])?;
            let count = parse_i64(&args[3])?;
            if !(0..i64::from(SLOTS_COUNT)).contains(&slot) || count < 0 {
                return Err(CommandError::Other("Invalid slot or number of keys".into()));
            }
            let keys = keys_in_slot(node, slot as u16, count as usize).await?;
            Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
        }
        b"HELP" => Ok(Reply::Array(
            [
                "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "COUNTKEYSINSLOT <slot>",
                "    Return the number of keys in <slot> held by this node.",
                "GETKEYSINSLOT <slot> <count>",
                "    Return key names stored by this node in a slot.",
                "INFO",
                "    Return information about the cluster.",
                "KEYSLOT <key>",
                "    Return the hash slot for <key>.",
                "MYID",
                "    Return the node id.",
                "MYSHARDID",
                "    Return the node's shard id.",
                "NODES",
                "    Return cluster configuration seen by node. Output format:",
                "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
                "SHARDS",
                "    Return information about slot range mappings and the nodes associated with them.",
                "SLOTS",
                "    Return information about slots range mappings. Each range is made of:",
                "    start, end, master and replicas IP addresses, ports and ids",
                "HELP",
                "    Print this help.",
            ]
            .into_iter()
            .map(Reply::bulk)
            .collect(),
        )),
        // `check_subcommand` refused every other subcommand before this ran.
        _ => Err(CommandError::Other("unknown CLUSTER subcommand".into())),
    }
}

/// A slot number argument: an integer in 0..16384, else `error`.
fn slot_arg(arg: &[u8], error: &str) -> Result<u16, CommandError> {
    match parse_i64(arg) {
        Ok(n) if (0..i64::from(SLOTS_COUNT)).contains(&n) => Ok(n as u16),
        _ => Err(CommandError::Other(error.into())),
    }
}

/// Up to `limit` live keys of database 0 this node stores in `slot`, read a page at a time off
/// the runtime's workers. With MD5 placement a slot's keys are spread over the whole ring, so
/// this needs `--placement slots` (a walk of every key would be unbounded work).
async fn keys_in_slot(node: &Node, slot: u16, limit: usize) -> Result<Vec<Bytes>, CommandError> {
    if ring::placement() != Placement::Slots {
        return Err(CommandError::Other(
            "this node places keys by MD5: a slot's keys are found with --placement slots only".into(),
        ));
    }
    let (mut from, to) = ring::slot_prefix_range(slot);
    let now = crate::clock::now_ms();
    let mut out = Vec::new();
    while out.len() < limit {
        let (keys, next) = node.coordinator.live_keys(from, to, PAGE.min(limit - out.len()), now).await?;
        out.extend(
            keys.into_iter()
                .map(|(_, k)| k)
                // The range holds exactly the slot's keys of database 0 (the slot is the top 14
                // bits of a position); another database's keys are placed by their stored name.
                .filter(|k| crate::keyspace::db_of(k) == 0 && !crate::keyspace::is_reserved(k)),
        );
        match next {
            Some(n) => from = n,
            None => break,
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// A node's entry in CLUSTER SLOTS: ip, port, id, and (Redis 7) a map of other endpoints.
fn slot_node(s: &Shown) -> Reply {
    Reply::Array(vec![
        Reply::bulk(s.ip.clone()),
        Reply::Int(s.port.into()),
        Reply::bulk(s.id.clone()),
        Reply::Map(Vec::new()),
    ])
}

fn slots(node: &Node) -> Reply {
    let view = node.coordinator.cluster().view();
    let Some(state) = &view.state else { return Reply::Array(Vec::new()) };
    let shown = members(node, state);
    let out = ranges(node)
        .into_iter()
        .map(|r| {
            let mut entry = vec![Reply::Int(r.first.into()), Reply::Int(r.last.into())];
            entry.extend(r.nodes.iter().filter_map(|n| shown.get(n)).map(slot_node));
            Reply::Array(entry)
        })
        .collect();
    Reply::Array(out)
}

/// A shard of CLUSTER SHARDS: its nodes (the master first) and its slot ranges.
type Shard = (Vec<NodeId>, Vec<(u16, u16)>);

fn shards(node: &Node) -> Reply {
    let view = node.coordinator.cluster().view();
    let Some(state) = &view.state else { return Reply::Array(Vec::new()) };
    let shown = members(node, state);
    // A shard: the ranges whose nodes are the same (in the same order: the same master).
    let mut by_nodes: Vec<Shard> = Vec::new();
    for r in ranges(node) {
        match by_nodes.iter_mut().find(|(nodes, _)| *nodes == r.nodes) {
            Some((_, slots)) => slots.push((r.first, r.last)),
            None => by_nodes.push((r.nodes, vec![(r.first, r.last)])),
        }
    }
    let out = by_nodes
        .into_iter()
        .map(|(nodes, slots)| {
            let slots = slots.into_iter().flat_map(|(a, b)| [Reply::Int(a.into()), Reply::Int(b.into())]).collect();
            let nodes = nodes
                .iter()
                .filter_map(|n| shown.get(n))
                .enumerate()
                .map(|(i, s)| {
                    Reply::Map(vec![
                        (Reply::bulk("id"), Reply::bulk(s.id.clone())),
                        (Reply::bulk("port"), Reply::Int(s.port.into())),
                        (Reply::bulk("ip"), Reply::bulk(s.ip.clone())),
                        (Reply::bulk("endpoint"), Reply::bulk(s.ip.clone())),
                        (Reply::bulk("role"), Reply::bulk(if i == 0 { "master" } else { "replica" })),
                        (Reply::bulk("replication-offset"), Reply::Int(0)),
                        (Reply::bulk("health"), Reply::bulk(if s.up { "online" } else { "failed" })),
                    ])
                })
                .collect();
            Reply::Map(vec![(Reply::bulk("slots"), Reply::Array(slots)), (Reply::bulk("nodes"), Reply::Array(nodes))])
        })
        .collect();
    Reply::Array(out)
}

/// CLUSTER NODES: a line per member, `id ip:port@peer-port flags master ping pong epoch link
/// slots...`; every member a master, of the ranges it leads (md5: this node of all of them,
/// the others its replicas).
fn nodes(node: &Node) -> String {
    let view = node.coordinator.cluster().view();
    let Some(state) = &view.state else { return String::new() };
    let shown = members(node, state);
    let epoch = view.ring_version();
    let mut led: BTreeMap<&NodeId, Vec<(u16, u16)>> = BTreeMap::new();
    let ranges = ranges(node);
    for r in &ranges {
        if let Some(master) = r.nodes.first() {
            led.entry(master).or_default().push((r.first, r.last));
        }
    }
    let md5 = ring::placement() == Placement::Md5;
    let me = hex_id(node.coordinator.cluster().me());
    let now = crate::clock::now_ms();
    let mut out = String::new();
    for (id, s) in &shown {
        let replica_of_me = md5 && !s.me;
        let mut flags = Vec::new();
        if s.me {
            flags.push("myself");
        }
        flags.push(if replica_of_me { "slave" } else { "master" });
        if !s.up {
            flags.push("fail");
        }
        let master = if replica_of_me { me.as_str() } else { "-" };
        let link = if s.up { "connected" } else { "disconnected" };
        out.push_str(&format!(
            "{} {}:{}@{} {} {} 0 {} {} {}",
            s.id,
            s.ip,
            s.port,
            s.peer_port,
            flags.join(","),
            master,
            if s.me { 0 } else { now },
            epoch,
            link
        ));
        for &(a, b) in led.get(id).map(Vec::as_slice).unwrap_or_default() {
            if a == b {
                out.push_str(&format!(" {a}"));
            } else {
                out.push_str(&format!(" {a}-{b}"));
            }
        }
        out.push('\n');
    }
    out
}

/// CLUSTER INFO: `cluster_state:ok` while this node has a ring with no transfer under way and
/// every slot has a node that is up.
fn info(node: &Node) -> String {
    let cluster = node.coordinator.cluster();
    let view = cluster.view();
    let ranges = ranges(node);
    let failing: u32 = ranges
        .iter()
        .filter(|r| !r.nodes.first().is_some_and(|n| cluster.is_up(n)))
        .map(|r| u32::from(r.last - r.first) + 1)
        .sum();
    let settled = view.state.as_ref().is_some_and(|s| !s.ring.in_transition());
    let known = view.state.as_ref().map_or(0, |s| s.members.values().filter(|m| m.status != Status::Removed).count());
    let masters = ranges.iter().filter_map(|r| r.nodes.first()).collect::<std::collections::BTreeSet<_>>().len();
    let state = if settled && failing == 0 { "ok" } else { "fail" };
    let epoch = view.ring_version();
    let assigned = if view.state.is_some() { u32::from(SLOTS_COUNT) } else { 0 };
    [
        format!("cluster_state:{state}"),
        format!("cluster_slots_assigned:{assigned}"),
        format!("cluster_slots_ok:{}", assigned.saturating_sub(failing)),
        "cluster_slots_pfail:0".to_owned(),
        format!("cluster_slots_fail:{}", failing.min(assigned)),
        format!("cluster_known_nodes:{known}"),
        format!("cluster_size:{masters}"),
        format!("cluster_current_epoch:{epoch}"),
        format!("cluster_my_epoch:{epoch}"),
        "cluster_stats_messages_sent:0".to_owned(),
        "cluster_stats_messages_received:0".to_owned(),
        "total_cluster_links_buffer_limit_exceeded:0".to_owned(),
        format!("kura_placement:{}", ring::placement().name()),
    ]
    .join("\r\n")
        + "\r\n"
}
