//! Failure detection (paper 4.8.3), pure: a node is `down` in this node's eyes after it failed
//! to answer a few times in a row and has not answered for a while, and `up` again as soon as
//! it answers. Fed by heartbeats ([`HEARTBEAT_EVERY`] to every peer, each given
//! [`HEARTBEAT_TIMEOUT`]) and by real traffic: every request to a peer reports its outcome, so a
//! dead replica is noticed by the first writes that miss it.
//!
//! With these figures a peer cut off at any moment is down 0.75 to 1 s later (at the second
//! heartbeat in a row that timed out, [`SILENCE`] after its last answer), while a peer that
//! misses single heartbeats, or stalls for less than about 0.7 s, stays up. Until then a
//! read-modify-write forwarded to it can be refused (it may have been applied there, so it is
//! never re-sent elsewhere); afterwards the next owner decides.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::ring::NodeId;

/// Failures in a row before a peer may be called down.
const FAILURES_TO_DOWN: u32 = 2;

/// How often a heartbeat goes to every other member.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

/// How long a heartbeat waits for its answer (at most the request timeout).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(500);

/// How long without an answer (after [`FAILURES_TO_DOWN`] failures in a row) makes a peer down:
/// the second heartbeat sent after the last answer fails 0.75 s after it (plus the time that
/// answer took), so a cut peer is down by then, or one heartbeat later.
pub const SILENCE: Duration = Duration::from_millis(900);

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

    /// What a peer does with the heartbeats sent to it: answers after the delay, or never.
    type Answers = dyn Fn(Duration) -> Option<Duration>;

    /// Runs the heartbeat schedule on a fake clock for `run`: a heartbeat every
    /// [`HEARTBEAT_EVERY`] (the first at 0), each answered as `answer(sent)` says (an answer
    /// later than [`HEARTBEAT_TIMEOUT`] is a failure at the timeout, as the RPC layer reports
    /// it). Returns when the peer went down, if it did.
    fn heartbeats(answer: &Answers, run: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        let mut d = Detector::new(SILENCE);
        // Every outcome, at the time the detector hears of it.
        let mut outcomes: Vec<(Duration, bool)> = Vec::new();
        let mut sent = Duration::ZERO;
        while sent < run {
            match answer(sent) {
                Some(after) if after < HEARTBEAT_TIMEOUT => outcomes.push((sent + after, true)),
                _ => outcomes.push((sent + HEARTBEAT_TIMEOUT, false)),
            }
            sent += HEARTBEAT_EVERY;
        }
        outcomes.sort_by_key(|(at, _)| *at);
        for (at, ok) in outcomes {
            if ok {
                d.ok("p", t0 + at);
            } else if d.failed("p", t0 + at) {
                return Some(at);
            }
        }
        None
    }

    /// Issue 20 item 10: a peer cut off at any moment (answers taking 1 ms) is down 0.75 to
    /// 1 s after the cut.
    #[test]
    fn a_cut_peer_is_down_within_a_second() {
        for cut_ms in (0..1000).step_by(10) {
            let cut = Duration::from_millis(cut_ms);
            let answer = move |sent: Duration| (sent < cut).then_some(Duration::from_millis(1));
            let down = heartbeats(&answer, Duration::from_secs(5)).expect("the cut peer goes down");
            let after = down - cut;
            assert!(
                after >= Duration::from_millis(750) && after <= Duration::from_millis(1000),
                "cut at {cut:?}: down at {down:?}, {after:?} after the cut"
            );
        }
    }

    /// A peer that misses single heartbeats, answers every one late (but within the heartbeat
    /// timeout) or stalls for 600 ms is never called down; one that stops answering is, at the
    /// second failure in a row once [`SILENCE`] has passed since its last answer.
    #[test]
    fn lost_or_late_heartbeats_do_not_make_a_peer_down() {
        let every_third_lost =
            |sent: Duration| (!(sent.as_millis() / 250).is_multiple_of(3)).then_some(Duration::from_millis(2));
        assert_eq!(heartbeats(&every_third_lost, Duration::from_secs(30)), None);
        let slow = |_| Some(Duration::from_millis(450));
        assert_eq!(heartbeats(&slow, Duration::from_secs(30)), None);
        // A stall of 600 ms (a busy peer) is within the silence.
        let stall = |sent: Duration| {
            let ms = sent.as_millis() as u64;
            Some(if (2000..2600).contains(&ms) { Duration::from_millis(2600 - ms) } else { Duration::from_millis(2) })
        };
        assert_eq!(heartbeats(&stall, Duration::from_secs(30)), None);
        // Silent from 3 s on: down within a second of its last answer (2.75 s).
        let gone = |sent: Duration| (sent < Duration::from_secs(3)).then_some(Duration::from_millis(2));
        let down = heartbeats(&gone, Duration::from_secs(30)).expect("down");
        assert_eq!(down, Duration::from_millis(3750), "the second failure after the silence began");
    }
}
