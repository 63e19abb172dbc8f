//! `TTL key` and `PTTL key`: the remaining time to live of the value plain GET returns, in
//! seconds or milliseconds; -2 when the key is missing, -1 when it has no expiry.

use bytes::Bytes;

use super::CmdResult;
use crate::coordinator::now_ms;
use crate::node::Node;
use crate::resp::Reply;

/// The unit a TTL is reported in.
#[derive(Clone, Copy)]
pub enum Unit {
    Seconds,
    Millis,
}

pub async fn run(node: &Node, args: &[Bytes], unit: Unit) -> CmdResult {
    let set = node.coordinator.get(&args[1], None).await?;
    let now = now_ms();
    let reply = match set.resolve(now) {
        None => -2,
        Some(r) => match r.expires_ms {
            None => -1,
            Some(at) => {
                let left = at.saturating_sub(now);
                match unit {
                    // Redis rounds to the nearest second.
                    Unit::Seconds => ((left + 500) / 1000) as i64,
                    Unit::Millis => left as i64,
                }
            }
        },
    };
    Ok(Reply::Int(reply))
}
