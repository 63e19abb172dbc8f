//! `MEMORY USAGE key [SAMPLES n]`: about how many bytes the key takes (its stored sibling set,
//! the key and a fixed per-key overhead; an estimate, as Redis's is); nil when it is missing.
//! `MEMORY HELP`. (`redis-cli --memkeys` reads MEMORY USAGE.)

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError};
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;

/// Per-key bookkeeping beyond the stored bytes (index entry, cache entry).
const OVERHEAD: usize = 48;

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"USAGE" if args.len() == 3 || (args.len() == 5 && args[3].eq_ignore_ascii_case(b"SAMPLES")) => {
            if args.len() == 5 {
                parse_i64(&args[4])?;
            }
            let set = node.coordinator.get(&args[2], None).await?;
            if set.get(now_ms()).is_none() {
                return Ok(Reply::Nil);
            }
            Ok(Reply::Int((set.encode().len() + args[2].len() + OVERHEAD) as i64))
        }
        b"USAGE" => Err(CommandError::Syntax),
        b"HELP" => Ok(Reply::Array(
            [
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value (an estimate).",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Simple(l))
            .collect(),
        )),
        _ => {
            Err(CommandError::UnknownSubcommand { cmd: "MEMORY", sub: String::from_utf8_lossy(&args[1]).into_owned() })
        }
    }
}
