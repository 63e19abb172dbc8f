//! The read-modify-write operations of lists (LPUSH, RPUSH and their X forms, LPOP, RPOP,
//! LSET, LINSERT, LREM, LTRIM): pure, given the key's live value and the dot the write will
//! get. A pop is decided where the operation runs (the key's first reachable owner), so two
//! pops there never return one element; see `version::list` for what concurrent writes do.

use bytes::Bytes;

use super::{NewValue, Outcome, Rmw, RmwError};
use crate::version::{positions, Dot, Elem, OrList, Value};

/// The list a key holds: its own, or an empty one when it is missing.
///
/// # Errors
/// Another type ([`RmwError::WrongType`]).
pub fn list_of(current: Option<Value>) -> Result<OrList, RmwError> {
    match current {
        None => Ok(OrList::default()),
        Some(Value::List(l)) => Ok(l),
        Some(_) => Err(RmwError::WrongType),
    }
}

/// Applies a list operation (see `rmw::apply`).
///
/// # Errors
/// Another type than a list, or the operation's own error.
pub fn apply(
    op: &Rmw,
    current: Option<Value>,
    expiry: Option<u64>,
    dot: Dot,
    now: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let mut list = list_of(current)?;
    let len = list.len();
    let stamp = (now, dot.actor, dot.counter);
    let elem = |value: &Bytes| Elem { stamp, value: value.clone() };
    let mut out = Outcome { len: len as u64, ..Outcome::default() };
    let changed = match op {
        Rmw::Push { elements, head, existing } => {
            if *existing && list.is_empty() {
                return Ok((None, out));
            }
            let places = if *head {
                positions(None, list.members().next().map(|p| &p[..]), elements.len(), dot)
            } else {
                positions(list.members().next_back().map(|p| &p[..]), None, elements.len(), dot)
            }
            .map_err(|_| RmwError::ListFull)?;
            // LPUSH a b c leaves c first: the last argument takes the first place.
            let order: Box<dyn Iterator<Item = &Bytes>> =
                if *head { Box::new(elements.iter().rev()) } else { Box::new(elements.iter()) };
            for (place, value) in places.into_iter().zip(order) {
                list.insert(place, dot, elem(value));
            }
            out.int = list.len() as i64;
            true
        }
        Rmw::Pop { head, count } => {
            let n = count.unwrap_or(1).min(len as u64) as usize;
            let taken: Vec<(Bytes, Elem)> = if *head {
                list.iter().take(n).map(|(p, e)| (p.clone(), e)).collect()
            } else {
                list.iter().rev().take(n).map(|(p, e)| (p.clone(), e)).collect()
            };
            for (p, _) in &taken {
                list.remove(p);
            }
            out.members = taken.into_iter().map(|(_, e)| e.value).collect();
            !out.members.is_empty()
        }
        Rmw::LSet { index, element } => {
            if list.is_empty() {
                return Err(RmwError::NoSuchKey);
            }
            let i = if *index < 0 { index.checked_add(len as i64) } else { Some(*index) };
            let at = i.filter(|&i| i >= 0 && (i as usize) < len).ok_or(RmwError::IndexOutOfRange)? as usize;
            let place = if at < len / 2 { list.members().nth(at) } else { list.members().rev().nth(len - 1 - at) };
            let place = place.cloned().ok_or(RmwError::IndexOutOfRange)?;
            list.insert(place, dot, elem(element));
            true
        }
        Rmw::LInsert { before, pivot, element } => {
            if list.is_empty() {
                return Ok((None, out));
            }
            let (prev, found, next) = {
                let (mut prev, mut found) = (None, None);
                let mut it = list.iter();
                for (p, e) in it.by_ref() {
                    if e.value == *pivot {
                        found = Some(p.clone());
                        break;
                    }
                    prev = Some(p.clone());
                }
                (prev, found, it.next().map(|(p, _)| p.clone()))
            };
            let Some(pivot_at) = found else {
                out.int = -1;
                return Ok((None, out));
            };
            let (lo, hi) = if *before { (prev, Some(pivot_at)) } else { (Some(pivot_at), next) };
            let place = positions(lo.as_deref(), hi.as_deref(), 1, dot).map_err(|_| RmwError::ListFull)?;
            for p in place {
                list.insert(p, dot, elem(element));
            }
            out.int = list.len() as i64;
            true
        }
        Rmw::LRem { count, element } => {
            let limit = if *count == 0 { usize::MAX } else { count.unsigned_abs().try_into().unwrap_or(usize::MAX) };
            let matching = |(p, e): (&Bytes, Elem)| (e.value == *element).then(|| p.clone());
            let gone: Vec<Bytes> = if *count >= 0 {
                list.iter().filter_map(matching).take(limit).collect()
            } else {
                list.iter().rev().filter_map(matching).take(limit).collect()
            };
            for p in &gone {
                list.remove(p);
            }
            out.int = gone.len() as i64;
            !gone.is_empty()
        }
        Rmw::LTrim { start, stop } => {
            let (front, back) = trim_bounds(*start, *stop, len);
            let gone: Vec<Bytes> = list.members().take(front).chain(list.members().rev().take(back)).cloned().collect();
            for p in &gone {
                list.remove(p);
            }
            out.int = gone.len() as i64;
            !gone.is_empty()
        }
        _ => unreachable!("rmw::apply sends only the operations of lists here"),
    };
    out.applied = changed;
    Ok((changed.then_some(NewValue { value: Some(Value::List(list)), expires_ms: expiry }), out))
}

/// How many elements LTRIM removes from the front and from the back of a list of `len`
/// (Redis's `ltrimCommand` arithmetic).
fn trim_bounds(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let len_i = len as i64;
    let start = if start < 0 { (len_i + start).max(0) } else { start };
    let stop = if stop < 0 { len_i + stop } else { stop };
    if start > stop || start >= len_i {
        (len, 0)
    } else {
        let stop = stop.min(len_i - 1);
        (start as usize, (len_i - stop - 1) as usize)
    }
}

/// The index range `[start, stop]` of LRANGE over a list of `len`, as Redis computes it
/// (`None`: empty).
pub fn range_bounds(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len_i = len as i64;
    let start = if start < 0 { (len_i + start).max(0) } else { start };
    let stop = if stop < 0 { len_i + stop } else { stop };
    if start > stop || start >= len_i {
        return None;
    }
    Some((start as usize, stop.min(len_i - 1) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Actor;

    fn dot(n: u64) -> Dot {
        Dot { actor: Actor(1), counter: n }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn run(op: Rmw, current: &mut Option<Value>, n: u64) -> Outcome {
        let (w, o) = apply(&op, current.clone(), None, dot(n), n).unwrap();
        if let Some(w) = w {
            *current = w.value;
        }
        o
    }

    fn elements(v: &Option<Value>) -> Vec<Bytes> {
        match v {
            Some(Value::List(l)) => l.iter().map(|(_, e)| e.value).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn pushes_pops_and_edits_as_redis_does() {
        let mut v = None;
        assert_eq!(run(Rmw::Push { elements: vec![b("x")], head: true, existing: true }, &mut v, 1).int, 0);
        assert_eq!(
            run(Rmw::Push { elements: vec![b("a"), b("b"), b("c")], head: true, existing: false }, &mut v, 2).int,
            3
        );
        assert_eq!(run(Rmw::Push { elements: vec![b("d"), b("e")], head: false, existing: false }, &mut v, 3).int, 5);
        assert_eq!(elements(&v), [b("c"), b("b"), b("a"), b("d"), b("e")]);
        let o = run(Rmw::Pop { head: false, count: Some(2) }, &mut v, 4);
        assert_eq!(o.members, [b("e"), b("d")]);
        run(Rmw::LSet { index: -1, element: b("A") }, &mut v, 5);
        assert_eq!(run(Rmw::LInsert { before: true, pivot: b("b"), element: b("B") }, &mut v, 6).int, 4);
        assert_eq!(run(Rmw::LInsert { before: false, pivot: b("zz"), element: b("q") }, &mut v, 7).int, -1);
        assert_eq!(elements(&v), [b("c"), b("B"), b("b"), b("A")]);
        run(Rmw::Push { elements: vec![b("c"), b("c")], head: false, existing: false }, &mut v, 8);
        assert_eq!(run(Rmw::LRem { count: -1, element: b("c") }, &mut v, 9).int, 1);
        assert_eq!(elements(&v), [b("c"), b("B"), b("b"), b("A"), b("c")]);
        run(Rmw::LTrim { start: 1, stop: -2 }, &mut v, 10);
        assert_eq!(elements(&v), [b("B"), b("b"), b("A")]);
        assert_eq!(
            apply(&Rmw::LSet { index: 3, element: b("x") }, v.clone(), None, dot(11), 11),
            Err(RmwError::IndexOutOfRange)
        );
        run(Rmw::LTrim { start: 5, stop: 10 }, &mut v, 12);
        assert!(!v.as_ref().is_some_and(Value::exists), "trimmed to nothing: the key is gone");
    }

    #[test]
    fn bounds_follow_redis() {
        assert_eq!(range_bounds(0, -1, 3), Some((0, 2)));
        assert_eq!(range_bounds(-100, 100, 3), Some((0, 2)));
        assert_eq!(range_bounds(2, 1, 3), None);
        assert_eq!(range_bounds(3, 5, 3), None);
        assert_eq!(trim_bounds(0, -1, 3), (0, 0));
        assert_eq!(trim_bounds(1, 1, 3), (1, 1));
        assert_eq!(trim_bounds(-1, 0, 3), (3, 0));
    }
}
