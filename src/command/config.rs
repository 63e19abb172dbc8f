//! `CONFIG GET pattern [pattern ...]`: the node's settings under their Redis names where Redis
//! has one (tools such as redis-benchmark ask for `save` and `appendonly`), and kura's own.
//! `CONFIG SET` is refused: settings are fixed at start.

use bytes::Bytes;
use wildmatch::WildMatch;

use super::{CmdResult, CommandError};
use crate::node::Node;
use crate::resp::Reply;
use crate::storage::FsyncPolicy;

fn parameters(node: &Node) -> Vec<(&'static str, String)> {
    let c = &node.config;
    let fsync = match c.fsync {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Everysec => "everysec",
        FsyncPolicy::Never => "no",
    };
    vec![
        ("bind", c.listen.ip().to_string()),
        ("port", c.listen.port().to_string()),
        ("databases", "1".into()),
        ("maxclients", c.maxclients.to_string()),
        ("maxmemory", "0".into()),
        ("save", String::new()),
        // Every write goes to the journal: the closest Redis setting is an always-on AOF.
        ("appendonly", "yes".into()),
        ("appendfsync", fsync.into()),
        ("dir", c.data_dir.display().to_string()),
        ("proto-max-bulk-len", c.max_request_bytes.to_string()),
        ("requirepass", c.requirepass.clone().unwrap_or_default()),
        ("kura-max-value-bytes", c.max_value_bytes.to_string()),
        ("kura-n", c.n.to_string()),
        ("kura-r", c.r.to_string()),
        ("kura-w", c.w.to_string()),
        ("kura-partitions", c.partitions.to_string()),
        ("kura-cluster-listen", c.cluster_listen.to_string()),
        ("kura-metrics-listen", c.metrics_listen.to_string()),
        ("kura-node-id", node.coordinator.identity().node_id.clone()),
    ]
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
        b"SET" => Err(CommandError::Other("CONFIG SET is not supported: settings are fixed at start".into())),
        _ => {
            Err(CommandError::UnknownSubcommand { cmd: "CONFIG", sub: String::from_utf8_lossy(&args[1]).into_owned() })
        }
    }
}
