//! The read-modify-write operations of sets and hashes (SADD, SREM, SPOP, HSET, HDEL,
//! HINCRBY, HINCRBYFLOAT, and the replacing write of RENAME/COPY/S*STORE): pure, given the
//! key's live value and the dot the write will get (`version::OrMap` says why that dot).

use bytes::Bytes;
use rand::SeedableRng;

use super::{redis_i64, NewValue, Outcome, Rmw, RmwError};
use crate::version::{positions, Counter, Dot, Elem, Field, FieldValue, OrHash, OrList, OrSet, Stream, Value, ZSet};

/// The set a key holds: its own, or an empty one when it is missing.
///
/// # Errors
/// Another type ([`RmwError::WrongType`]).
pub fn set_of(current: Option<Value>) -> Result<OrSet, RmwError> {
    match current {
        None => Ok(OrSet::default()),
        Some(Value::Set(s)) => Ok(s),
        Some(_) => Err(RmwError::WrongType),
    }
}

/// The hash a key holds: its own, or an empty one when it is missing.
///
/// # Errors
/// Another type ([`RmwError::WrongType`]).
pub fn hash_of(current: Option<Value>) -> Result<OrHash, RmwError> {
    match current {
        None => Ok(OrHash::default()),
        Some(Value::Hash(h)) => Ok(h),
        Some(_) => Err(RmwError::WrongType),
    }
}

/// Applies a set or hash operation to the key's live value `current` (see `rmw::apply`).
///
/// # Errors
/// Another type than the operation's, or the operation's own error.
pub fn apply(
    op: &Rmw,
    current: Option<Value>,
    expiry: Option<u64>,
    dot: Dot,
    now: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    match op {
        Rmw::SAdd { members } => sadd(current, expiry, members, dot),
        Rmw::SRem { members } => srem(current, expiry, members),
        Rmw::SPop { count, seed } => spop(current, expiry, *count, *seed),
        Rmw::HSet { pairs, nx } => hset(current, expiry, pairs, *nx, dot, now),
        Rmw::HDel { fields } => hdel(current, expiry, fields),
        Rmw::HIncrBy { field, by } => hincrby(current, expiry, field, *by, dot, now),
        Rmw::HIncrByFloat { field, by } => hincrbyfloat(current, expiry, field, by, dot, now),
        _ => unreachable!("rmw::apply sends only the operations of sets and hashes here"),
    }
}

fn written(value: Value, expires_ms: Option<u64>) -> Option<NewValue> {
    Some(NewValue { value: Some(value), expires_ms })
}

fn counted(n: usize) -> Outcome {
    Outcome { applied: n > 0, int: n as i64, ..Outcome::default() }
}

/// SADD: the members not yet in the set are added under `dot`; the reply counts them.
pub fn sadd(
    current: Option<Value>,
    expiry: Option<u64>,
    members: &[Bytes],
    dot: Dot,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let mut set = set_of(current)?;
    let mut added = 0;
    for m in members {
        if !set.contains(m) {
            set.insert(m.clone(), dot, ());
            added += 1;
        }
    }
    Ok(((added > 0).then(|| written(Value::Set(set), expiry)).flatten(), counted(added)))
}

/// SREM: removes the members it finds (what it observed); an emptied set reads as missing.
pub fn srem(
    current: Option<Value>,
    expiry: Option<u64>,
    members: &[Bytes],
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let mut set = set_of(current)?;
    let len = set.len() as u64;
    let removed = members.iter().filter(|m| set.remove(m)).count();
    Ok(((removed > 0).then(|| written(Value::Set(set), expiry)).flatten(), Outcome { len, ..counted(removed) }))
}

/// SPOP: removes `count` random members (chosen by `seed`, so a forwarded SPOP picks as its
/// sender would), or one when `count` is `None`; the outcome lists them.
pub fn spop(
    current: Option<Value>,
    expiry: Option<u64>,
    count: Option<u64>,
    seed: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let mut set = set_of(current)?;
    let n = count.unwrap_or(1).min(set.len() as u64) as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let members: Vec<Bytes> = set.members().cloned().collect();
    let mut picked: Vec<Bytes> =
        rand::seq::index::sample(&mut rng, members.len(), n).into_iter().map(|i| members[i].clone()).collect();
    picked.sort();
    for m in &picked {
        set.remove(m);
    }
    let len = members.len() as u64;
    let outcome = Outcome { applied: !picked.is_empty(), members: picked, len, ..Outcome::default() };
    Ok((outcome.applied.then(|| written(Value::Set(set), expiry)).flatten(), outcome))
}

/// HSET (HSETNX with `nx`: only a missing field): the fields are written under `dot`; the
/// reply counts the fields that were new.
pub fn hset(
    current: Option<Value>,
    expiry: Option<u64>,
    pairs: &[(Bytes, Bytes)],
    nx: bool,
    dot: Dot,
    now: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let mut hash = hash_of(current)?;
    let mut new = 0;
    let mut wrote = false;
    for (field, value) in pairs {
        let exists = hash.contains(field);
        if nx && exists {
            continue;
        }
        new += usize::from(!exists);
        wrote = true;
        // The field's counter goes along (an HINCRBY after a HSET of an integer continues from
        // it and resets what it observed, see `hincrby`), with the newer string in front.
        let old = hash.get(field).unwrap_or_default();
        hash.insert(field.clone(), dot, old.with_text((now, dot.actor, dot.counter), value.clone()));
    }
    let mut outcome = counted(new);
    outcome.applied = if nx { new > 0 } else { wrote };
    Ok((wrote.then(|| written(Value::Hash(hash), expiry)).flatten(), outcome))
}

/// HDEL: removes the fields it finds.
pub fn hdel(
    current: Option<Value>,
    expiry: Option<u64>,
    fields: &[Bytes],
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let mut hash = hash_of(current)?;
    let len = hash.len() as u64;
    let removed = fields.iter().filter(|f| hash.remove(f)).count();
    Ok(((removed > 0).then(|| written(Value::Hash(hash), expiry)).flatten(), Outcome { len, ..counted(removed) }))
}

/// HINCRBY: the field's counter (convergent, like INCR's): from 0 when missing, from the
/// integer a string holds (resetting the increments that string's write observed).
pub fn hincrby(
    current: Option<Value>,
    expiry: Option<u64>,
    field: &Bytes,
    by: i64,
    dot: Dot,
    now: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    let mut hash = hash_of(current)?;
    let old = hash.get(field);
    // A counter made here witnesses what the hash has seen: entries of an earlier counter of
    // the field that an HDEL (or an HSET) observed are not counted again (`Counter`).
    let mut counter = match old.as_ref().and_then(Field::value) {
        None => Counter::default(),
        Some(FieldValue::Count(c)) => c.clone(),
        Some(FieldValue::Text(t)) => {
            let start = redis_i64(t).ok_or(RmwError::HashNotInteger)?;
            let (ms, origin, _) = old.as_ref().and_then(Field::text_stamp).unwrap_or((now, dot.actor, dot.counter));
            old.as_ref().map(Field::counter).unwrap_or_default().reset(Some(start), ms, origin)
        }
    };
    if !matches!(old.as_ref().and_then(Field::value), Some(FieldValue::Count(_))) {
        counter.witness(hash.clock());
    }
    if !counter.can_add(by) {
        return Err(RmwError::Overflow);
    }
    counter.add(dot, by);
    let value = counter.value().unwrap_or(0);
    let field_now = old.unwrap_or_default().with_count((now, dot.actor, dot.counter), counter);
    hash.insert(field.clone(), dot, field_now);
    let outcome = Outcome { applied: true, int: value, ..Outcome::default() };
    Ok((written(Value::Hash(hash), expiry), outcome))
}

/// HINCRBYFLOAT: a rewrite of the field's string (not convergent, as INCRBYFLOAT).
pub fn hincrbyfloat(
    current: Option<Value>,
    expiry: Option<u64>,
    field: &Bytes,
    by: &Bytes,
    dot: Dot,
    now: u64,
) -> Result<(Option<NewValue>, Outcome), RmwError> {
    use crate::longdouble::{add, FloatError};
    let mut hash = hash_of(current)?;
    let old = hash.get(field);
    let base = old.as_ref().map_or(Bytes::from_static(b"0"), Field::bytes);
    let text = add(&base, by).map_err(|e| match e {
        // Which of the two is not a float: the increment (checked alone) or the field.
        FloatError::NotFloat if add(b"0", by).is_err() => RmwError::NotFloat,
        FloatError::NotFloat => RmwError::HashNotFloat,
        FloatError::NanOrInfinity => RmwError::NanOrInfinity,
    })?;
    hash.insert(field.clone(), dot, old.unwrap_or_default().with_text((now, dot.actor, dot.counter), text.clone()));
    let outcome = Outcome { applied: true, new: Some(text), ..Outcome::default() };
    Ok((written(Value::Hash(hash), expiry), outcome))
}

/// What RENAME, COPY and the STORE commands write at their destination: a copy of a value,
/// made anew here. A set's members and a hash's fields get this write's dot (a dot belongs to
/// one key); the destination's older members go (the write observed them).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Copied {
    Set(Vec<Bytes>),
    Hash(Vec<(Bytes, Bytes)>),
    List(Vec<Bytes>),
    ZSet(Vec<(Bytes, f64)>),
    /// A stream: its entries and groups are written anew under the copy's dot.
    Stream(Stream),
    Other(Value),
}

impl Copied {
    /// The copy of a live value (a counter's is its decimal string: its totals belong to the
    /// actors of its own key; the next INCR of the copy makes it a counter again).
    pub fn of(value: &Value) -> Copied {
        match value {
            Value::Set(s) => Copied::Set(s.members().cloned().collect()),
            Value::Hash(h) => Copied::Hash(h.iter().map(|(f, v)| (f.clone(), v.bytes())).collect()),
            Value::List(l) => Copied::List(l.iter().map(|(_, e)| e.value).collect()),
            Value::ZSet(z) => Copied::ZSet(z.by_score().map(|(s, m)| (m.clone(), s)).collect()),
            Value::Stream(s) => Copied::Stream(s.clone()),
            Value::Counter(_) => Copied::Other(Value::Bytes(value.bytes().into_owned())),
            other => Copied::Other(other.clone()),
        }
    }

    /// The value it writes under `dot` at `now` (`None`: an empty set, which deletes).
    pub fn value(&self, dot: Dot, now: u64) -> Option<Value> {
        match self {
            Copied::Set(m) if m.is_empty() => None,
            Copied::Set(m) => Some(Value::Set(OrSet::from_members(m.iter().map(|m| (m.clone(), ())), dot))),
            Copied::Hash(f) if f.is_empty() => None,
            Copied::Hash(f) => {
                let stamp = (now, dot.actor, dot.counter);
                Some(Value::Hash(OrHash::from_members(
                    f.iter().map(|(k, v)| (k.clone(), Field::text(stamp, v.clone()))),
                    dot,
                )))
            }
            Copied::List(e) if e.is_empty() => None,
            Copied::List(e) => {
                let stamp = (now, dot.actor, dot.counter);
                let places = positions(None, None, e.len(), dot).ok()?;
                let elems = places.into_iter().zip(e).map(|(p, v)| (p, Elem { stamp, value: v.clone() }));
                Some(Value::List(OrList::from_members(elems, dot)))
            }
            Copied::ZSet(m) if m.is_empty() => None,
            Copied::ZSet(m) => {
                Some(Value::ZSet(ZSet::from_members(m.iter().cloned(), dot, (now, dot.actor, dot.counter))))
            }
            Copied::Stream(s) => Some(Value::Stream(s.copied(dot))),
            Copied::Other(v) => Some(v.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Actor;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn dot(n: u64) -> Dot {
        Dot { actor: Actor(1), counter: n }
    }

    fn value_of(w: Option<NewValue>) -> Option<Value> {
        w.and_then(|w| w.value)
    }

    #[test]
    fn sadd_srem_spop_as_redis_counts() {
        let (w, o) = sadd(None, None, &[b("a"), b("b"), b("a")], dot(1)).unwrap();
        assert_eq!(o.int, 2);
        let set = value_of(w);
        let (w, o) = sadd(set.clone(), None, &[b("a")], dot(2)).unwrap();
        assert_eq!((w, o.int), (None, 0), "nothing new: nothing written");
        let (w, o) = srem(set, None, &[b("a"), b("x")]).unwrap();
        assert_eq!(o.int, 1);
        let left = value_of(w);
        let (w, o) = spop(left, None, None, 7).unwrap();
        assert_eq!(o.members, vec![b("b")]);
        assert!(!value_of(w).is_some_and(|v| v.exists()), "an emptied set reads as missing");
        assert_eq!(sadd(Some(Value::Bytes(b("x"))), None, &[b("a")], dot(1)), Err(RmwError::WrongType));
    }

    /// Issue 20, item 2 (the hash form): a field HINCRBYed ten times by one actor; the other
    /// side adds 1 on that state; this side HDELs the field and HINCRBYs it anew. The merge
    /// counts the other side's +1 and the new +1, not the ten the HDEL removed.
    #[test]
    fn a_field_counter_made_anew_never_counts_the_removed_ones() {
        let other_dot = Dot { actor: Actor(2), counter: 1 };
        let mut h = None;
        for n in 1..=10 {
            h = value_of(hincrby(h, None, &b("f"), 1, dot(n), n).unwrap().0);
        }
        let other = value_of(hincrby(h.clone(), None, &b("f"), 1, other_dot, 20).unwrap().0);
        // HDEL (dot 11) over everything this side held, as `Replica::write_if` witnesses it.
        let seen = crate::version::VersionVector::from_entries(vec![(Actor(1), 10)]);
        let mut deleted = value_of(hdel(h, None, &[b("f")]).unwrap().0).expect("the emptied hash");
        deleted.witness(&seen);
        let (anew, o) = hincrby(Some(deleted), None, &b("f"), 1, dot(12), 30).unwrap();
        assert_eq!(o.int, 1);
        let (Some(Value::Hash(mine)), Some(Value::Hash(theirs))) = (value_of(anew), other) else { panic!("hashes") };
        let merged = mine.join(&theirs);
        assert_eq!(merged.get(b"f").map(|f| f.bytes()), Some(b("2")));
    }

    #[test]
    fn hincrby_continues_from_a_string_and_hset_takes_over() {
        let (w, o) = hset(None, None, &[(b("f"), b("10")), (b("g"), b("x"))], false, dot(1), 5).unwrap();
        assert_eq!(o.int, 2);
        let h = value_of(w);
        let (w, o) = hincrby(h.clone(), None, &b("f"), 5, dot(2), 6).unwrap();
        assert_eq!(o.int, 15);
        let h = value_of(w);
        assert_eq!(hincrby(h.clone(), None, &b("g"), 1, dot(3), 7), Err(RmwError::HashNotInteger));
        let (w, o) = hset(h.clone(), None, &[(b("f"), b("1"))], false, dot(3), 8).unwrap();
        assert_eq!(o.int, 0, "an existing field is not new");
        let h = value_of(w);
        let (_, o) = hincrby(h.clone(), None, &b("f"), 1, dot(4), 9).unwrap();
        assert_eq!(o.int, 2);
        let (_, o) = hset(h.clone(), None, &[(b("f"), b("9"))], true, dot(4), 9).unwrap();
        assert!(!o.applied, "HSETNX of an existing field");
        let (_, o) = hincrbyfloat(h.clone(), None, &b("f"), &b("0.5"), dot(4), 9).unwrap();
        assert_eq!(o.new, Some(b("1.5")));
        assert_eq!(hincrbyfloat(h.clone(), None, &b("g"), &b("1"), dot(4), 9), Err(RmwError::HashNotFloat));
        assert_eq!(hincrbyfloat(h.clone(), None, &b("f"), &b("x"), dot(4), 9), Err(RmwError::NotFloat));
    }
}
