//! Failure detection (paper 4.8.3), pure: a node is `down` in this node's eyes after it failed
//! to answer a few times in a row and has not answered for a while, and `up` again as soon as
//! it answers. Fed by heartbeats (one per peer per second) and by real traffic: every request
//! to a peer reports its outcome, so a dead replica is noticed by the first writes that miss it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::ring::NodeId;

/// Failures in a row before a peer may be called down.
const FAILURES_TO_DOWN: u32 = 2;

#[derive(Clone, Copy, Debug)]
struct Health {
    last_ok: Option<Instant>,
    failures: u32,
    down_since: Option<Instant>,
}

/// What this node has seen of its peers.
#[derive(Debug)]
pub struct Detector {
    /// How long without an answer (after repeated failures) makes a peer down.
    silence: Duration,
    peers: HashMap<NodeId, Health>,
}

impl Detector {
    pub fn new(silence: Duration) -> Detector {
        Detector { silence, peers: HashMap::new() }
    }

    /// A request to `peer` was answered. Returns true if the peer was down until now.
    pub fn ok(&mut self, peer: &str, now: Instant) -> bool {
        let h = self.peers.entry(peer.to_owned()).or_insert(Health { last_ok: None, failures: 0, down_since: None });
        let was_down = h.down_since.is_some();
        *h = Health { last_ok: Some(now), failures: 0, down_since: None };
        was_down
    }

    /// A request to `peer` failed (refused, reset, timed out). Returns true if this made the
    /// peer down.
    pub fn failed(&mut self, peer: &str, now: Instant) -> bool {
        let silence = self.silence;
        let h = self.peers.entry(peer.to_owned()).or_insert(Health { last_ok: None, failures: 0, down_since: None });
        h.failures += 1;
        let quiet = h.last_ok.is_none_or(|t| now.duration_since(t) >= silence);
        if h.down_since.is_none() && h.failures >= FAILURES_TO_DOWN && quiet {
            h.down_since = Some(now);
            return true;
        }
        false
    }

    /// Whether `peer` is up as far as this node knows (a peer never contacted is up).
    pub fn is_up(&self, peer: &str) -> bool {
        self.peers.get(peer).is_none_or(|h| h.down_since.is_none())
    }

    /// Forgets a peer (it was removed).
    pub fn forget(&mut self, peer: &str) {
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_repeated_silence_up_on_first_answer() {
        let t0 = Instant::now();
        let s = Duration::from_secs(3);
        let mut d = Detector::new(s);
        assert!(d.is_up("a"));
        d.ok("a", t0);
        // Failures right after an answer do not make it down yet.
        assert!(!d.failed("a", t0 + Duration::from_secs(1)));
        assert!(!d.failed("a", t0 + Duration::from_secs(2)));
        assert!(d.is_up("a"));
        assert!(d.failed("a", t0 + Duration::from_secs(4)));
        assert!(!d.is_up("a"));
        assert!(!d.failed("a", t0 + Duration::from_secs(5)), "already down");
        assert!(d.ok("a", t0 + Duration::from_secs(6)));
        assert!(d.is_up("a"));
        // A peer never reached goes down after two failures.
        d.failed("b", t0);
        assert!(d.is_up("b"));
        d.failed("b", t0);
        assert!(!d.is_up("b"));
    }
}
