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

impl Target {
    /// The owner whose copy this target keeps: itself, or the one it stands in for.
    pub fn owner(&self) -> &str {
        self.hint_for.as_deref().unwrap_or(&self.node)
    }
}

/// When a write has its W copies (paper 4.5, 4.6): W acknowledgements of copies kept for the
/// key's owners (each owner's own, or a stand-in's hint for it), and during a ring transition
/// also for the key's future owners (capped at their number), since the old owners drop
/// their copies once the new ring is in place.
pub struct WriteQuorum<'a> {
    pub w: usize,
    pub owners: &'a [NodeId],
    /// The future preference list during a transition.
    pub future: Option<&'a [NodeId]>,
}

impl WriteQuorum<'_> {
    /// Copies acknowledged for the current owners among `acks`.
    pub fn now<'t>(&self, acks: impl IntoIterator<Item = &'t Target>) -> usize {
        acks.into_iter().filter(|t| self.owners.iter().any(|o| o == t.owner())).count()
    }

    /// Whether `acks` (the coordinator's own copy included) are enough. `kept_as_data` names a
    /// node among them that also stored the write as data (a coordinator gaining the key).
    pub fn met<'t>(&self, acks: impl IntoIterator<Item = &'t Target> + Clone, kept_as_data: Option<&str>) -> bool {
        if self.now(acks.clone()) < self.w {
            return false;
        }
        let Some(future) = self.future else { return true };
        let later = |n: &str| future.iter().any(|f| f == n);
        let copies = acks
            .into_iter()
            .filter(|t| later(t.owner()) || (Some(t.node.as_str()) == kept_as_data && later(&t.node)))
            .count();
        copies >= self.w.min(future.len())
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
    fn a_write_needs_w_copies_for_the_owners_and_during_a_transition_for_the_future_ones() {
        let t = |n: &str, h: Option<&str>| Target { node: n.into(), hint_for: h.map(Into::into) };
        let owners = ids(&["a", "b", "c"]);
        let q = WriteQuorum { w: 2, owners: &owners, future: None };
        assert!(!q.met(&[t("a", None)], None));
        assert!(q.met(&[t("a", None), t("x", Some("b"))], None), "a stand-in's hint counts for its owner");
        assert!(!q.met(&[t("a", None), t("x", None)], None), "a node that is no owner does not count");
        // Transition: c is leaving the key, d is gaining it.
        let future = ids(&["a", "b", "d"]);
        let q = WriteQuorum { w: 2, owners: &owners, future: Some(&future) };
        assert!(!q.met(&[t("a", None), t("c", None)], None), "only one future copy");
        assert!(q.met(&[t("a", None), t("c", None), t("d", None)], None));
        assert!(q.met(&[t("a", None), t("c", None), t("y", Some("d"))], None), "a hint for d counts");
        // A stand-in coordinator that gains the key keeps it as data too.
        assert!(q.met(&[t("d", Some("c")), t("a", None)], Some("d")));
        assert!(!q.met(&[t("d", Some("c")), t("a", None)], None));
    }
}
