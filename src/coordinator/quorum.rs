//! Quorum bookkeeping (paper section 4.5), pure: counts replies from a replica set and says when
//! a request has its R or W answers, or can no longer get them.

use crate::ring::NodeId;

/// One replica of a request: a node, and the owner it stands in for when it is not one of the
/// key's N owners itself (a sloppy quorum's stand-in keeps a hinted copy for that owner).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub node: NodeId,
    pub hint_for: Option<NodeId>,
}

/// The replicas of a request under a sloppy quorum (paper 4.6): the key's owners (`prefs`,
/// the preference list) that are up, and for each owner that is down the next node up further
/// along the ring (`walk`, the extended preference list) that is not an owner, as its stand-in.
pub fn sloppy_targets(prefs: &[NodeId], walk: &[NodeId], up: &dyn Fn(&str) -> bool) -> Vec<Target> {
    let mut targets: Vec<Target> =
        prefs.iter().filter(|n| up(n)).map(|n| Target { node: n.clone(), hint_for: None }).collect();
    let mut stand_ins = walk.iter().filter(|n| !prefs.contains(n) && up(n));
    for down in prefs.iter().filter(|n| !up(n)) {
        match stand_ins.next() {
            Some(s) => targets.push(Target { node: s.clone(), hint_for: Some(down.clone()) }),
            None => break,
        }
    }
    targets
}

/// N, R, W of a request, already capped to the replica set it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quorum {
    pub n: usize,
    pub r: usize,
    pub w: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuorumError {
    #[error("{what} must be between 1 and N ({n})")]
    OutOfRange { what: &'static str, n: usize },
}

impl Quorum {
    /// The configured quorum with per-request overrides, on a cluster of `members` nodes: with
    /// fewer members than N every member is a replica and R and W are capped at that count.
    ///
    /// # Errors
    /// An override outside `1..=N`.
    pub fn resolve(
        configured: Quorum,
        members: usize,
        r: Option<usize>,
        w: Option<usize>,
    ) -> Result<Quorum, QuorumError> {
        for (what, v) in [("R", r), ("W", w)] {
            if let Some(v) = v {
                if v == 0 || v > configured.n {
                    return Err(QuorumError::OutOfRange { what, n: configured.n });
                }
            }
        }
        let n = configured.n.min(members.max(1));
        Ok(Quorum { n, r: r.unwrap_or(configured.r).min(n), w: w.unwrap_or(configured.w).min(n) })
    }
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not enough answers yet, and enough replicas could still answer.
    Waiting,
    /// The required number of successes arrived.
    Met,
    /// So many replicas failed that the requirement can no longer be met.
    Failed,
}

/// Counts successes and failures of one request against `required` out of `replicas`.
#[derive(Clone, Debug)]
pub struct Tally {
    required: usize,
    replicas: usize,
    ok: usize,
    failed: usize,
}

impl Tally {
    pub fn new(required: usize, replicas: usize) -> Tally {
        Tally { required, replicas, ok: 0, failed: 0 }
    }

    pub fn success(&mut self) -> Progress {
        self.ok += 1;
        self.progress()
    }

    pub fn failure(&mut self) -> Progress {
        self.failed += 1;
        self.progress()
    }

    pub fn progress(&self) -> Progress {
        if self.ok >= self.required {
            Progress::Met
        } else if self.replicas - self.failed.min(self.replicas) < self.required {
            Progress::Failed
        } else {
            Progress::Waiting
        }
    }

    pub fn successes(&self) -> usize {
        self.ok
    }

    /// Whether every replica has answered, one way or the other.
    pub fn all_answered(&self) -> bool {
        self.ok + self.failed >= self.replicas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &[&str]) -> Vec<NodeId> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn stand_ins_replace_down_owners_in_ring_order() {
        let prefs = ids(&["a", "b", "c"]);
        let walk = ids(&["a", "b", "c", "d", "e"]);
        let all = |_: &str| true;
        assert_eq!(sloppy_targets(&prefs, &walk, &all).len(), 3);
        assert!(sloppy_targets(&prefs, &walk, &all).iter().all(|t| t.hint_for.is_none()));
        let t = sloppy_targets(&prefs, &walk, &|n: &str| n != "b" && n != "c");
        assert_eq!(
            t,
            vec![
                Target { node: "a".into(), hint_for: None },
                Target { node: "d".into(), hint_for: Some("b".into()) },
                Target { node: "e".into(), hint_for: Some("c".into()) },
            ]
        );
        // Not enough nodes up: fewer targets (the quorum decides whether that is enough).
        let t = sloppy_targets(&prefs, &walk, &|n: &str| n == "a" || n == "e");
        assert_eq!(t.len(), 2);
        assert_eq!(t[1], Target { node: "e".into(), hint_for: Some("b".into()) });
    }

    const DEFAULT: Quorum = Quorum { n: 3, r: 2, w: 2 };

    #[test]
    fn resolve_caps_to_members_and_checks_overrides() {
        assert_eq!(Quorum::resolve(DEFAULT, 1, None, None), Ok(Quorum { n: 1, r: 1, w: 1 }));
        assert_eq!(Quorum::resolve(DEFAULT, 5, Some(3), Some(1)), Ok(Quorum { n: 3, r: 3, w: 1 }));
        assert_eq!(Quorum::resolve(DEFAULT, 1, Some(3), None), Ok(Quorum { n: 1, r: 1, w: 1 }));
        assert!(Quorum::resolve(DEFAULT, 5, Some(4), None).is_err());
        assert!(Quorum::resolve(DEFAULT, 5, None, Some(0)).is_err());
    }

    #[test]
    fn tally_meets_or_fails() {
        let mut t = Tally::new(2, 3);
        assert_eq!(t.success(), Progress::Waiting);
        assert_eq!(t.failure(), Progress::Waiting);
        assert_eq!(t.success(), Progress::Met);
        let mut t = Tally::new(2, 3);
        assert_eq!(t.failure(), Progress::Waiting);
        assert_eq!(t.failure(), Progress::Failed);
        let mut t = Tally::new(1, 1);
        assert_eq!(t.progress(), Progress::Waiting);
        assert_eq!(t.failure(), Progress::Failed);
    }
}
