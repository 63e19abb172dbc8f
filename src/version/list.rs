//! Lists that converge: a sequence CRDT on the observed-remove map ([`OrMap`]).
//!
//! Every element is a member of the map under a *position*: a path of 128-bit components
//! (Logoot's dense identifiers, Weiss et al. 2009) whose last component is the dot of the
//! write that made the element, so two positions are never equal, and whose bytes (the
//! components big-endian, one after another) sort as the list does: a path sorts before its
//! extensions and components compare as numbers. So the map's member order *is* the list's
//! order, the same on every replica, and storage keeps the elements as records in that order
//! (`storage::members`): a push or a pop writes one record, LRANGE 0 99 visits 100.
//!
//! A push at the tail takes the position after the last element's first component (one
//! more); at the head, one less; LINSERT takes a position between two neighbours (deeper when
//! they leave no room). Concurrent pushes on two replicas all survive (different dots), in
//! an order every replica agrees on: by position, then by dot. A removal (a pop, LREM, LTRIM,
//! DEL) removes the elements it observed and leaves no tombstone: the map's clock remembers
//! their dots. LSET gives an element a new value under a new dot (concurrent LSETs: the later
//! wins; an LSET concurrent with a removal keeps the element, as an add wins in the map).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ormap::{Join, OrMap, Stamp};
use super::Dot;

/// One element's value: the string, with the stamp of the write that set it (LSET's
/// last-write-wins between concurrent sets of one element).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elem {
    pub stamp: Stamp,
    pub value: Bytes,
}

impl Join for Elem {
    fn join(&self, other: &Elem) -> Elem {
        if (other.stamp, &other.value) > (self.stamp, &self.value) {
            other.clone()
        } else {
            self.clone()
        }
    }
}

/// The state of a list.
pub type OrList = OrMap<Elem>;

/// Where a new component starts when there is nothing on either side.
const MID: u128 = 1 << 127;

/// A position's components (`None`: bytes that are not a position).
fn components(position: &[u8]) -> Option<Vec<u128>> {
    if position.is_empty() || !position.len().is_multiple_of(16) {
        return None;
    }
    Some(position.chunks_exact(16).map(|c| u128::from_be_bytes(c.try_into().unwrap_or([0; 16]))).collect())
}

fn encode(path: &[u128]) -> Bytes {
    let mut out = Vec::with_capacity(path.len() * 16);
    for c in path {
        out.extend_from_slice(&c.to_be_bytes());
    }
    Bytes::from(out)
}

fn dot_component(dot: Dot) -> u128 {
    (u128::from(dot.actor.0) << 64) | u128::from(dot.counter)
}

/// A path strictly between `lo` and `hi` (`None`: the list's end on that side) whatever
/// components follow it: one more than `lo` at the tail, one less than `hi` at the head, the
/// middle of the gap between two neighbours. `None` when there is no room (a head pushed
/// 2^127 times: unreachable in practice).
fn between(lo: Option<&[u128]>, hi: Option<&[u128]>) -> Option<Vec<u128>> {
    let mut path = Vec::new();
    // Whether the path so far equals `lo`'s (`hi`'s) first components.
    let (mut tie_lo, mut tie_hi) = (lo.is_some(), hi.is_some());
    for i in 0.. {
        let l = if tie_lo { lo.and_then(|lo| lo.get(i).copied()) } else { None };
        // `lo` ended here (or was left behind): any extension of the path is after it.
        tie_lo = l.is_some();
        // A path equal to all of `hi` cannot be extended below it.
        let u = if tie_hi { Some(hi.and_then(|hi| hi.get(i).copied())?) } else { None };
        match (l, u) {
            (None, None) => {
                path.push(MID);
                return Some(path);
            }
            (Some(l), None) if l < u128::MAX => {
                path.push(l + 1);
                return Some(path);
            }
            (Some(l), None) => path.push(l),
            (None, Some(u)) if u > 0 => {
                path.push(u - 1);
                return Some(path);
            }
            (None, Some(u)) => path.push(u),
            (Some(l), Some(u)) if u > l && u - l >= 2 => {
                path.push(l + (u - l) / 2);
                return Some(path);
            }
            (Some(l), Some(u)) => {
                // No room in this component: follow `lo`, leaving `hi` behind if it is larger.
                path.push(l);
                tie_hi = u == l;
            }
        }
    }
    None
}

/// A list has no room left at one end (see [`between`]), or a neighbour's position does not
/// decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListFull;

/// The positions of `n` new elements between the elements at `lo` and `hi` (their
/// positions; `None`: that end of the list), in list order, made by the write `dot`.
///
/// # Errors
/// [`ListFull`].
pub fn positions(lo: Option<&[u8]>, hi: Option<&[u8]>, n: usize, dot: Dot) -> Result<Vec<Bytes>, ListFull> {
    let lo = lo.map(|p| components(p).ok_or(ListFull)).transpose()?;
    let hi = hi.map(|p| components(p).ok_or(ListFull)).transpose()?;
    let mut out: Vec<Vec<u128>> = Vec::with_capacity(n);
    if hi.is_some() && lo.is_none() {
        // At the head: each one before the one made just before it, then put in order.
        let mut next = hi;
        for _ in 0..n {
            let mut p = between(None, next.as_deref()).ok_or(ListFull)?;
            p.push(dot_component(dot));
            next = Some(p.clone());
            out.push(p);
        }
        out.reverse();
    } else {
        let mut prev = lo;
        for _ in 0..n {
            let mut p = between(prev.as_deref(), hi.as_deref()).ok_or(ListFull)?;
            p.push(dot_component(dot));
            prev = Some(p.clone());
            out.push(p);
        }
    }
    Ok(out.iter().map(|p| encode(p)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Actor;
    use proptest::prelude::*;

    fn dot(a: u64, n: u64) -> Dot {
        Dot { actor: Actor(a), counter: n }
    }

    fn elem(s: &str) -> Elem {
        Elem { stamp: (0, Actor(0), 0), value: Bytes::copy_from_slice(s.as_bytes()) }
    }

    fn values(l: &OrList) -> Vec<String> {
        l.iter().map(|(_, e)| String::from_utf8_lossy(&e.value).into_owned()).collect()
    }

    fn push(l: &mut OrList, head: bool, s: &str, d: Dot) {
        let first = l.members().next().cloned();
        let last = l.members().last().cloned();
        let p = if head { positions(None, first.as_deref(), 1, d) } else { positions(last.as_deref(), None, 1, d) };
        l.insert(p.unwrap().remove(0), d, elem(s));
    }

    #[test]
    fn pushes_at_both_ends_keep_their_order() {
        let mut l = OrList::default();
        push(&mut l, false, "b", dot(1, 1));
        push(&mut l, false, "c", dot(1, 2));
        push(&mut l, true, "a", dot(1, 3));
        assert_eq!(values(&l), ["a", "b", "c"]);
        // Several at once, as LPUSH x y z and RPUSH x y z do.
        let first = l.members().next().cloned();
        let ps = positions(None, first.as_deref(), 2, dot(1, 4)).unwrap();
        l.insert(ps[0].clone(), dot(1, 4), elem("0"));
        l.insert(ps[1].clone(), dot(1, 4), elem("1"));
        assert_eq!(values(&l), ["0", "1", "a", "b", "c"]);
    }

    #[test]
    fn concurrent_pushes_all_survive_in_one_order() {
        let mut base = OrList::default();
        push(&mut base, false, "x", dot(9, 1));
        let (mut l, mut r) = (base.clone(), base.clone());
        push(&mut l, false, "l1", dot(1, 1));
        push(&mut l, true, "l0", dot(1, 2));
        push(&mut r, false, "r1", dot(2, 1));
        push(&mut r, true, "r0", dot(2, 2));
        let (lr, rl) = (l.join(&r), r.join(&l));
        assert_eq!(lr, rl);
        let v = values(&lr);
        assert_eq!(v.len(), 5);
        assert_eq!(v[2], "x", "the heads before x, the tails after it: {v:?}");
    }

    #[test]
    fn between_makes_room_between_any_two_neighbours() {
        // Two elements with the same first component (concurrent pushes): an insert between.
        let a = positions(None, None, 1, dot(1, 1)).unwrap().remove(0);
        let b = positions(None, None, 1, dot(2, 1)).unwrap().remove(0);
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let mid = positions(Some(&lo), Some(&hi), 3, dot(3, 1)).unwrap();
        assert!(lo < mid[0] && mid[0] < mid[1] && mid[1] < mid[2] && mid[2] < hi);
        // A head pushed down to its last component still takes a position before it.
        let low = encode(&[0, dot_component(dot(1, 5))]);
        let before = positions(None, Some(&low), 1, dot(1, 6)).unwrap().remove(0);
        assert!(before < low);
        assert_eq!(positions(None, Some(&encode(&[0, 0])), 1, dot(1, 7)), Err(ListFull));
    }

    proptest! {
        /// Any sequence of inserts at random places keeps every element, in the order the
        /// inserts asked for.
        #[test]
        fn inserts_anywhere_keep_order(places in proptest::collection::vec(any::<u16>(), 1..200)) {
            let mut model: Vec<Bytes> = Vec::new();
            for (i, p) in places.iter().enumerate() {
                let at = usize::from(*p) % (model.len() + 1);
                let lo = at.checked_sub(1).map(|j| model[j].clone());
                let hi = model.get(at).cloned();
                let d = dot(1 + (i as u64 % 3), i as u64 + 1);
                let pos = positions(lo.as_deref(), hi.as_deref(), 1, d).unwrap().remove(0);
                model.insert(at, pos);
            }
            let mut sorted = model.clone();
            sorted.sort();
            prop_assert_eq!(sorted, model);
        }

        /// Lists of three replicas pushing, popping and setting merge as a semilattice, and
        /// no element a replica pushed or set itself is lost.
        #[test]
        fn list_join_is_a_semilattice(ops in proptest::collection::vec((0u8..3, any::<u8>(), 0u8..4), 0..40)) {
            let mut base = OrList::default();
            for i in 0..3 {
                push(&mut base, false, &format!("b{i}"), dot(9, i + 1));
            }
            let mut reps = [base.clone(), base.clone(), base.clone()];
            for (i, (rep, what, kind)) in ops.iter().enumerate() {
                let r = usize::from(*rep);
                let d = dot(u64::from(*rep) + 1, i as u64 + 1);
                match kind {
                    0 | 1 => push(&mut reps[r], *kind == 0, &format!("e{i}"), d),
                    2 => {
                        let first = reps[r].members().next().cloned();
                        if let Some(first) = first {
                            reps[r].remove(&first);
                        }
                    }
                    _ => {
                        let n = reps[r].len();
                        if n > 0 {
                            let m = reps[r].members().nth(usize::from(*what) % n).cloned().unwrap();
                            let e = Elem { stamp: (i as u64, d.actor, d.counter), value: Bytes::from(format!("s{i}")) };
                            reps[r].insert(m, d, e);
                        }
                    }
                }
            }
            let [a, b, c] = reps.clone();
            prop_assert_eq!(a.join(&b), b.join(&a));
            prop_assert_eq!(a.join(&b).join(&c), a.join(&b.join(&c)));
            prop_assert_eq!(a.join(&a), a.clone());
            let all = a.join(&b).join(&c);
            // What a replica pushed or set itself (under its own dots) no other replica saw,
            // so no removal observed it: it is in the merge.
            for (r, rep) in reps.iter().enumerate() {
                let own = Actor(r as u64 + 1);
                for m in rep.members() {
                    if rep.dots_of(m).all(|d| d.actor == own) {
                        prop_assert!(all.contains(m), "replica {} lost {:?}", r, rep.get(m));
                    }
                }
            }
        }
    }
}
