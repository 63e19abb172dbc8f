//! The read-modify-write operations of sorted sets (ZADD with its flags, ZINCRBY, ZREM,
//! ZPOPMIN, ZPOPMAX, the ZREMRANGEBY* family) and the range selection ZRANGE and its
//! relatives share: pure, given the key's live value and the dot the write will get. What
//! concurrent writes do is in `version::zset`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{NewValue, Outcome, Rmw, RmwError};
use crate::version::{Dot, Score, Value, ZSet};

/// ZADD's options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZAddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub ch: bool,
    pub incr: bool,
}

/// One end of a score range: the score and whether it is excluded (`(`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreBound {
    pub value: f64,
    pub open: bool,
}

/// One end of a lexicographic range: `-`, `+`, `[member` or `(member`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

/// Which members a range names: by rank (start, stop as LRANGE counts), by score (min,
/// max), by member (min, max).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ZRange {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

impl ScoreBound {
    fn above_min(self, s: f64) -> bool {
        if self.open {
            s > self.value
        } else {
            s >= self.value
        }
    }

    fn below_max(self, s: f64) -> bool {
        if self.open {
            s < self.value
        } else {
            s <= self.value
        }
    }
}

impl LexBound {
    fn above_min(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(b) => m >= &b[..],
            LexBound::Excl(b) => m > &b[..],
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m <= &b[..],
            LexBound::Excl(b) => m < &b[..],
        }
    }
}

/// The members `range` names, in score order (`rev`: reversed; a score or lex range is still
/// min first here: ZRANGE ... REV's max-first arguments are swapped as they are parsed), after
/// skipping `offset` and at most `count`
/// (negative: all), with their scores. Costs O(log n + offset + k) for a rank or score range
/// and for a lex range of members of one score (ZRANGEBYLEX's use), O(n) for a lex range over
/// several scores.
pub fn select(z: &ZSet, range: &ZRange, rev: bool, offset: usize, count: i64) -> Vec<(Bytes, f64)> {
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let take = |it: Box<dyn Iterator<Item = (f64, &Bytes)> + '_>| {
        it.skip(offset).take(count).map(|(s, m)| (m.clone(), s)).collect::<Vec<_>>()
    };
    match range {
        ZRange::Rank(start, stop) => {
            let Some((a, b)) = super::lists::range_bounds(*start, *stop, z.len()) else { return Vec::new() };
            let n = b - a + 1;
            if rev {
                take(Box::new(z.down_from_rank(a).take(n)))
            } else {
                take(Box::new(z.from_rank(a).take(n)))
            }
        }
        ZRange::Score(min, max) => {
            let (min, max) = (*min, *max);
            if rev {
                take(Box::new(
                    z.down_from_score(max.value)
                        .skip_while(move |(s, _)| !max.below_max(*s))
                        .take_while(move |(s, _)| min.above_min(*s)),
                ))
            } else {
                take(Box::new(
                    z.from_score(min.value)
                        .skip_while(move |(s, _)| !min.above_min(*s))
                        .take_while(move |(s, _)| max.below_max(*s)),
                ))
            }
        }
        ZRange::Lex(min, max) => {
            // Redis's `zzlIsInLexRange` first: an empty range, or one the ends of the set
            // (in score order) fall outside of, names nothing.
            let rank = |b: &LexBound| match b {
                LexBound::Min => (0, None),
                LexBound::Incl(m) | LexBound::Excl(m) => (1, Some(m.clone())),
                LexBound::Max => (2, None),
            };
            let exclusive = |b: &LexBound| matches!(b, LexBound::Excl(_));
            match rank(min).cmp(&rank(max)) {
                std::cmp::Ordering::Greater => return Vec::new(),
                std::cmp::Ordering::Equal if exclusive(min) || exclusive(max) => return Vec::new(),
                _ => {}
            }
            let Some(((low, first), (high, last))) = z.by_score().next().zip(z.by_score_rev().next()) else {
                return Vec::new();
            };
            if !min.above_min(last) || !max.below_max(first) {
                return Vec::new();
            }
            // Members of one score are in member order: the range starts where its bound
            // would sort (otherwise every member is looked at, as Redis's listpack walk does).
            let one_score = low == high;
            if rev {
                let start = match max {
                    LexBound::Incl(m) | LexBound::Excl(m) if one_score => z.position(low, m),
                    _ => usize::MAX,
                };
                take(Box::new(
                    z.down_from_position(start)
                        .skip_while(|(_, m)| !max.below_max(m))
                        .take_while(|(_, m)| min.above_min(m)),
                ))
            } else {
                let start = match min {
                    LexBound::Incl(m) | LexBound::Excl(m) if one_score => z.position(low, m),
                    _ => 0,
                };
                take(Box::new(
                    z.from_rank(start).skip_while(|(_, m)| !min.above_min(m)).take_while(|(_, m)| max.below_max(m)),
                ))
            }
        }
    }
}

/// The sorted set a key holds: its own, or an empty one when it is missing.
///
/// # Errors
/// Another type ([`RmwError::WrongType`]).
pub fn zset_of(current: Option<Value>) -> Result<ZSet, RmwError> {
    match current {
        None => Ok(ZSet::default()),
        Some(Value::ZSet(z)) => Ok(z),
        Some(_) => Err(RmwError::WrongType),
    }
}

/// Applies a sorted-set operation (see `rmw::apply`).
///
/// # Errors
/// Another type than a sorted set, or a score that is not a number.
pub fn apply(
    op: &Rmw,
    current: Option<Value>,
    expiry: Option<u64>,
    dot: Dot,
    now: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let mut z = zset_of(current)?;
    let stamp = (now, dot.actor, dot.counter);
    // A removal's outcome carries the size before (keyspace notifications: emptied or not).
    let mut out = Outcome { len: z.len() as u64, ..Outcome::default() };
    let changed = match op {
        Rmw::ZAdd { members, flags } => {
            let (mut added, mut updated) = (0, 0);
            for (given, member) in members {
                // Scores are kept without the sign of a zero (Redis keeps -0 as 0).
                let score = &(given + 0.0);
                let old = z.get(member);
                let new = match (&old, flags.incr) {
                    (Some(_), _) if flags.nx => None,
                    (None, _) if flags.xx => None,
                    (Some(s), true) => Some(s.incremented(dot, stamp, *score).ok_or(RmwError::ScoreNan)?),
                    (None, true) => Score::new(stamp, 0.0).incremented(dot, stamp, *score),
                    (Some(s), false) => Some(s.set(stamp, *score)),
                    (None, false) => Some(Score::new(stamp, *score)),
                };
                let Some(new) = new else { continue };
                let value = new.value();
                if let Some(old) = old.as_ref().map(Score::value) {
                    if flags.gt && value <= old || flags.lt && value >= old {
                        continue;
                    }
                    if value == old {
                        // Nothing changes: Redis writes nothing (and ZINCRBY 0 replies the score).
                        out.scores = vec![value];
                        continue;
                    }
                    updated += 1;
                    out.scores = vec![value];
                } else {
                    added += 1;
                    // A new member's score is the one given (ZADD INCR -0 replies -0).
                    out.scores = vec![*given];
                }
                z.insert(member.clone(), dot, new);
            }
            out.int = if flags.ch { added + updated } else { added };
            added + updated > 0
        }
        Rmw::ZRem { members } => {
            out.int = members.iter().filter(|m| z.remove(m)).count() as i64;
            out.int > 0
        }
        Rmw::ZPop { max, count } => {
            let n = usize::try_from(*count).unwrap_or(usize::MAX).min(z.len());
            let picked: Vec<(Bytes, f64)> = if *max {
                z.by_score_rev().take(n).map(|(s, m)| (m.clone(), s)).collect()
            } else {
                z.by_score().take(n).map(|(s, m)| (m.clone(), s)).collect()
            };
            for (m, _) in &picked {
                z.remove(m);
            }
            out.len = z.len() as u64 + picked.len() as u64;
            (out.members, out.scores) = picked.into_iter().unzip();
            !out.members.is_empty()
        }
        Rmw::ZRemRange { range } => {
            let gone = select(&z, range, false, 0, -1);
            for (m, _) in &gone {
                z.remove(m);
            }
            out.int = gone.len() as i64;
            !gone.is_empty()
        }
        _ => unreachable!("rmw::apply sends only the operations of sorted sets here"),
    };
    out.applied = changed;
    Ok((changed.then_some(NewValue { value: Some(Value::ZSet(z)), expires_ms: expiry }), out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Actor;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn run(op: Rmw, current: &mut Option<Value>, n: u64) -> Result<Outcome, RmwError> {
        let (w, o) = apply(&op, current.clone(), None, Dot { actor: Actor(1), counter: n }, n)?;
        if let Some(w) = w {
            *current = w.value;
        }
        Ok(o)
    }

    fn zadd(pairs: &[(f64, &str)], flags: ZAddFlags) -> Rmw {
        Rmw::ZAdd { members: pairs.iter().map(|(s, m)| (*s, b(m))).collect(), flags }
    }

    #[test]
    fn zadd_flags_count_as_redis_does() {
        let mut v = None;
        assert_eq!(run(zadd(&[(1.0, "a"), (2.0, "b")], ZAddFlags::default()), &mut v, 1).unwrap().int, 2);
        let ch = ZAddFlags { ch: true, ..ZAddFlags::default() };
        assert_eq!(run(zadd(&[(1.0, "a"), (5.0, "b"), (0.0, "c")], ch), &mut v, 2).unwrap().int, 2);
        let gt = ZAddFlags { gt: true, ch: true, ..ZAddFlags::default() };
        assert_eq!(run(zadd(&[(0.5, "a"), (6.0, "b")], gt), &mut v, 3).unwrap().int, 1);
        let incr = ZAddFlags { incr: true, ..ZAddFlags::default() };
        assert_eq!(run(zadd(&[(2.5, "a")], incr), &mut v, 4).unwrap().scores, [3.5]);
        let xx_incr = ZAddFlags { incr: true, xx: true, ..ZAddFlags::default() };
        assert!(run(zadd(&[(1.0, "zz")], xx_incr), &mut v, 5).unwrap().scores.is_empty());
        run(zadd(&[(f64::INFINITY, "i")], ZAddFlags::default()), &mut v, 6).unwrap();
        assert_eq!(run(zadd(&[(f64::NEG_INFINITY, "i")], incr), &mut v, 7), Err(RmwError::ScoreNan));
        let Some(Value::ZSet(z)) = &v else { panic!("a sorted set") };
        let all = select(z, &ZRange::Rank(0, -1), false, 0, -1);
        assert_eq!(all.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(), [b("c"), b("a"), b("b"), b("i")]);
        let open = ScoreBound { value: 0.0, open: true };
        let top = ScoreBound { value: 6.0, open: false };
        assert_eq!(select(z, &ZRange::Score(open, top), false, 1, 1), [(b("b"), 6.0)]);
        assert_eq!(select(z, &ZRange::Score(open, top), true, 0, -1), [(b("b"), 6.0), (b("a"), 3.5)]);
        // Lexicographic ranges (of members of one score, as Redis defines them).
        let mut same = None;
        run(zadd(&[(0.0, "a"), (0.0, "b"), (0.0, "c"), (0.0, "d")], ZAddFlags::default()), &mut same, 1).unwrap();
        let Some(Value::ZSet(same)) = &same else { panic!("a sorted set") };
        let lex = ZRange::Lex(LexBound::Excl(b("a")), LexBound::Incl(b("c")));
        assert_eq!(select(same, &lex, false, 0, -1), [(b("b"), 0.0), (b("c"), 0.0)]);
        let rev = ZRange::Lex(LexBound::Min, LexBound::Excl(b("c")));
        assert_eq!(select(same, &rev, true, 1, 5), [(b("a"), 0.0)]);
    }

    #[test]
    fn pops_and_range_removals_take_from_the_ends() {
        let mut v = None;
        run(zadd(&[(1.0, "a"), (2.0, "b"), (3.0, "c"), (4.0, "d")], ZAddFlags::default()), &mut v, 1).unwrap();
        let o = run(Rmw::ZPop { max: true, count: 2 }, &mut v, 2).unwrap();
        assert_eq!((o.members, o.scores), (vec![b("d"), b("c")], vec![4.0, 3.0]));
        let o = run(Rmw::ZRemRange { range: ZRange::Rank(0, 0) }, &mut v, 3).unwrap();
        assert_eq!(o.int, 1);
        let o = run(Rmw::ZPop { max: false, count: 5 }, &mut v, 4).unwrap();
        assert_eq!(o.members, [b("b")]);
        assert!(!v.as_ref().is_some_and(Value::exists));
    }

    /// Ranges, ranks and counts found through the counted order answer as a walk of every
    /// member in order does: score and rank ranges both ways, lex ranges on a set of one score
    /// (where the range starts at its bound) and of several (where every member is looked at).
    #[test]
    fn seeks_answer_as_a_walk_of_every_member() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for one_score in [true, false] {
            let members: Vec<(f64, Bytes)> = (0..3_000)
                .map(|i| (if one_score { 0.0 } else { f64::from(rng.gen_range(-20i32..20)) }, b(&format!("m{i:05}"))))
                .collect();
            let z = ZSet::from_members(
                members.iter().map(|(s, m)| (m.clone(), *s)),
                Dot { actor: Actor(1), counter: 1 },
                (1, Actor(1), 1),
            );
            let all: Vec<(Bytes, f64)> = z.by_score().map(|(s, m)| (m.clone(), s)).collect();
            assert_eq!(all.len(), 3_000);
            for _ in 0..300 {
                let lex = |rng: &mut rand::rngs::StdRng| match rng.gen_range(0..4) {
                    0 => LexBound::Min,
                    1 => LexBound::Max,
                    2 => LexBound::Incl(b(&format!("m{:05}", rng.gen_range(0..3_100)))),
                    _ => LexBound::Excl(b(&format!("m{:05}", rng.gen_range(0..3_100)))),
                };
                let score = |rng: &mut rand::rngs::StdRng| ScoreBound {
                    value: f64::from(rng.gen_range(-22i32..22)),
                    open: rng.gen_bool(0.5),
                };
                let (lo, hi) = (lex(&mut rng), lex(&mut rng));
                let walk: Vec<(Bytes, f64)> =
                    all.iter().filter(|(m, _)| lo.above_min(m) && hi.below_max(m)).cloned().collect();
                let empty_range = matches!((&lo, &hi), (LexBound::Max, _) | (_, LexBound::Min));
                if one_score && !empty_range {
                    let found = select(&z, &ZRange::Lex(lo.clone(), hi.clone()), false, 0, -1);
                    assert!(found == walk, "{lo:?} {hi:?}: {} members, not {}", found.len(), walk.len());
                    let rev: Vec<_> = walk.iter().rev().cloned().collect();
                    let found = select(&z, &ZRange::Lex(lo.clone(), hi.clone()), true, 0, -1);
                    assert!(found == rev, "REV {lo:?} {hi:?}: {} members, not {}", found.len(), rev.len());
                }
                let (min, max) = (score(&mut rng), score(&mut rng));
                let walk: Vec<(Bytes, f64)> =
                    all.iter().filter(|(_, s)| min.above_min(*s) && max.below_max(*s)).cloned().collect();
                assert_eq!(select(&z, &ZRange::Score(min, max), false, 0, -1), walk);
                let rev: Vec<_> = walk.iter().rev().cloned().collect();
                assert_eq!(select(&z, &ZRange::Score(min, max), true, 0, -1), rev);
                assert_eq!(
                    z.count_below(max.value, !max.open).saturating_sub(z.count_below(min.value, min.open)),
                    walk.len()
                );
                let (start, stop) = (rng.gen_range(-3_100i64..3_100), rng.gen_range(-3_100i64..3_100));
                let walk: Vec<(Bytes, f64)> = match super::super::lists::range_bounds(start, stop, all.len()) {
                    Some((a, b)) => all[a..=b].to_vec(),
                    None => Vec::new(),
                };
                assert_eq!(select(&z, &ZRange::Rank(start, stop), false, 0, -1), walk);
                let (m, _) = &all[rng.gen_range(0..all.len())];
                let rank = all.iter().position(|(x, _)| x == m);
                assert_eq!(z.rank(m), rank);
            }
        }
    }
}
