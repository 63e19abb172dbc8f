//! BITFIELD's arithmetic, pure: signed and unsigned integers of 1 to 64 bits at any bit offset
//! of a string (bit 0 is the first byte's most significant, as SETBIT's), and the WRAP, SAT
//! and FAIL handling of a SET or an INCRBY that does not fit, as Redis 7.0's `bitops.c`
//! decides it (`checkSignedBitfieldOverflow`, `checkUnsignedBitfieldOverflow`), including its
//! quirks: SAT of a negative value SET into an unsigned field stores the field's maximum.

use serde::{Deserialize, Serialize};

/// What a SET or an INCRBY does with a result its field cannot hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overflow {
    /// Keeps the low bits (two's complement for a signed field).
    #[default]
    Wrap,
    /// Stores the field's maximum or minimum.
    Sat,
    /// Writes nothing; the subcommand answers nil.
    Fail,
}

/// A field's type: `i1`..`i64` or `u1`..`u63`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldType {
    pub signed: bool,
    pub bits: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldOpKind {
    Get,
    /// The new value; the reply is the old one.
    Set(i64),
    /// The increment; the reply is the new value.
    IncrBy(i64),
}

/// One GET, SET or INCRBY subcommand, with the OVERFLOW in force where it stood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldOp {
    pub kind: FieldOpKind,
    pub ty: FieldType,
    /// In bits (a `#N` offset already multiplied by the width).
    pub offset: u64,
    pub overflow: Overflow,
}

impl FieldOp {
    /// The last bit a SET or an INCRBY writes (`None` for a GET).
    pub fn last_written_bit(&self) -> Option<u64> {
        (self.kind != FieldOpKind::Get).then(|| self.offset + u64::from(self.ty.bits) - 1)
    }
}

/// The `bits`-bit unsigned field at bit `offset` of `value`; bits past its end read as 0.
pub fn get_unsigned(value: &[u8], offset: u64, bits: u32) -> u64 {
    let bit = |i: u64| value.get((i >> 3) as usize).is_some_and(|b| b & (0x80 >> (i & 7)) != 0);
    (offset..offset + u64::from(bits)).fold(0, |acc, i| (acc << 1) | u64::from(bit(i)))
}

/// The `bits`-bit two's complement field at bit `offset` of `value`.
pub fn get_signed(value: &[u8], offset: u64, bits: u32) -> i64 {
    let raw = get_unsigned(value, offset, bits);
    if bits < 64 && raw & (1 << (bits - 1)) != 0 {
        (raw | (u64::MAX << bits)) as i64
    } else {
        raw as i64
    }
}

/// Writes the low `bits` bits of `field` at bit `offset` of `value`, which must hold them.
pub fn set_field(value: &mut [u8], offset: u64, bits: u32, field: u64) {
    for j in 0..u64::from(bits) {
        let on = field & (1 << (u64::from(bits) - 1 - j)) != 0;
        let at = offset + j;
        let mask = 0x80u8 >> (at & 7);
        let byte = &mut value[(at >> 3) as usize];
        if on {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// Whether `value + incr` overflows a `bits`-bit unsigned field and, when it does, what the
/// field gets under `overflow` (Redis's `checkUnsignedBitfieldOverflow`; a SET checks its value
/// with no increment, its value taken as unsigned).
pub fn unsigned_overflow(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrapped = || value.wrapping_add(incr as u64) & !u64::MAX.checked_shl(bits).unwrap_or(0);
    if value > max || (incr > 0 && incr > max_incr) {
        Some(if overflow == Overflow::Sat { max } else { wrapped() })
    } else if incr < 0 && incr < min_incr {
        Some(if overflow == Overflow::Sat { 0 } else { wrapped() })
    } else {
        None
    }
}

/// As [`unsigned_overflow`] for a `bits`-bit two's complement field (Redis's
/// `checkSignedBitfieldOverflow`).
pub fn signed_overflow(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let sum = (value as u64).wrapping_add(incr as u64);
        if bits == 64 {
            return sum as i64;
        }
        let high = u64::MAX << bits;
        (if sum & (1 << (bits - 1)) != 0 { sum | high } else { sum & !high }) as i64
    };
    let (wide, over, under) = (bits == 64, value > max, value < min);
    if over || (!wide && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        Some(if overflow == Overflow::Sat { max } else { wrapped() })
    } else if under || (!wide && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr) {
        Some(if overflow == Overflow::Sat { min } else { wrapped() })
    } else {
        None
    }
}

/// Runs `ops` in order on `value`, first grown with zero bytes to hold every field a SET or an
/// INCRBY writes (even one that then FAILs, as in Redis); one reply per op, `None` where a
/// FAIL wrote nothing.
pub fn run(value: &mut Vec<u8>, ops: &[FieldOp]) -> Vec<Option<i64>> {
    if let Some(last) = ops.iter().filter_map(FieldOp::last_written_bit).max() {
        let len = (last >> 3) as usize + 1;
        if value.len() < len {
            value.resize(len, 0);
        }
    }
    ops.iter().map(|op| apply(value, op)).collect()
}

/// Whether `ops` (run on `value`, `None` when the key is missing) change the string as Redis
/// counts changes for BITFIELD's keyspace event: a SET or INCRBY that wrote (not refused by
/// OVERFLOW FAIL) when the string was made or grown for the fields written, or that changed
/// its field's value.
pub fn changes(value: Option<&[u8]>, ops: &[FieldOp]) -> bool {
    let mut v = value.unwrap_or_default().to_vec();
    let before = v.len();
    if let Some(last) = ops.iter().filter_map(FieldOp::last_written_bit).max() {
        v.resize(v.len().max((last >> 3) as usize + 1), 0);
    }
    let dirty = value.is_none() || v.len() > before;
    let mut changed = false;
    for op in ops.iter().filter(|op| op.kind != FieldOpKind::Get) {
        let old = get(&v, op.ty, op.offset);
        if apply(&mut v, op).is_some() {
            changed |= dirty || get(&v, op.ty, op.offset) != old;
        }
    }
    changed
}

/// The reply of a GET (which only reads `value`, of any length).
pub fn get(value: &[u8], ty: FieldType, offset: u64) -> i64 {
    if ty.signed {
        get_signed(value, offset, ty.bits)
    } else {
        // At most 63 bits: it fits.
        get_unsigned(value, offset, ty.bits) as i64
    }
}

fn apply(value: &mut [u8], op: &FieldOp) -> Option<i64> {
    let FieldOp { kind, ty, offset, overflow } = *op;
    let bits = ty.bits;
    let (new, reply, overflowed) = match kind {
        FieldOpKind::Get => return Some(get(value, ty, offset)),
        FieldOpKind::Set(v) if ty.signed => {
            let old = get_signed(value, offset, bits);
            let limit = signed_overflow(v, 0, bits, overflow);
            (limit.unwrap_or(v) as u64, old, limit.is_some())
        }
        FieldOpKind::IncrBy(by) if ty.signed => {
            let old = get_signed(value, offset, bits);
            let limit = signed_overflow(old, by, bits, overflow);
            let new = limit.unwrap_or_else(|| old.wrapping_add(by));
            (new as u64, new, limit.is_some())
        }
        FieldOpKind::Set(v) => {
            let old = get_unsigned(value, offset, bits);
            let limit = unsigned_overflow(v as u64, 0, bits, overflow);
            (limit.unwrap_or(v as u64), old as i64, limit.is_some())
        }
        FieldOpKind::IncrBy(by) => {
            let old = get_unsigned(value, offset, bits);
            let limit = unsigned_overflow(old, by, bits, overflow);
            let new = limit.unwrap_or_else(|| old.wrapping_add(by as u64));
            (new, new as i64, limit.is_some())
        }
    };
    if overflowed && overflow == Overflow::Fail {
        return None;
    }
    set_field(value, offset, bits, new);
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Overflow::{Fail, Sat, Wrap};

    fn op(kind: FieldOpKind, ty: &str, offset: u64, overflow: Overflow) -> FieldOp {
        let ty = FieldType { signed: ty.starts_with('i'), bits: ty[1..].parse().unwrap() };
        FieldOp { kind, ty, offset, overflow }
    }

    fn set(ty: &str, offset: u64, v: i64, o: Overflow) -> FieldOp {
        op(FieldOpKind::Set(v), ty, offset, o)
    }

    fn incr(ty: &str, offset: u64, by: i64, o: Overflow) -> FieldOp {
        op(FieldOpKind::IncrBy(by), ty, offset, o)
    }

    fn get_op(ty: &str, offset: u64) -> FieldOp {
        op(FieldOpKind::Get, ty, offset, Wrap)
    }

    /// What redis-server 7.0.15 notifies (`setbit`) for each.
    #[test]
    fn changes_as_redis_counts_them() {
        let a = Some(&b"A"[..]);
        assert!(changes(None, &[set("u8", 0, 65, Wrap)]), "made");
        assert!(!changes(a, &[set("u8", 0, 65, Wrap)]), "the same value");
        assert!(!changes(a, &[incr("u8", 0, 0, Wrap)]));
        assert!(changes(a, &[incr("u8", 0, 1, Wrap)]));
        assert!(changes(a, &[set("u8", 8, 0, Wrap)]), "grown");
        assert!(changes(None, &[set("u8", 0, 0, Wrap)]), "made, though zero");
        assert!(!changes(None, &[incr("u2", 0, 10, Fail)]), "made, but refused");
        assert!(!changes(a, &[get_op("u8", 0)]));
        assert!(!changes(Some(&[0xff][..]), &[incr("u8", 0, 1, Sat)]), "saturated where it was");
    }

    /// Redis's documentation: a 5-bit unsigned 23 at offset 7 of zeroes is 00000001|01110000.
    #[test]
    fn fields_at_any_offset() {
        let mut v = Vec::new();
        assert_eq!(run(&mut v, &[set("u5", 7, 23, Wrap)]), vec![Some(0)]);
        assert_eq!(v, vec![0b0000_0001, 0b0111_0000]);
        assert_eq!(get_unsigned(&v, 7, 5), 23);
        assert_eq!(get_signed(&v, 7, 5), 23 - 32);
        // Past the end reads zeroes; GET never grows.
        assert_eq!(run(&mut v, &[get_op("i64", 1000)]), vec![Some(0)]);
        assert_eq!(v.len(), 2);
        // A whole i64 across nine bytes.
        let mut v = Vec::new();
        run(&mut v, &[set("i64", 3, i64::MIN + 5, Wrap)]);
        assert_eq!(v.len(), 9);
        assert_eq!(get_signed(&v, 3, 64), i64::MIN + 5);
        assert_eq!(get_unsigned(&v, 3, 63), (i64::MIN + 5) as u64 >> 1);
    }

    #[test]
    fn redis_documentation_examples() {
        // BITFIELD mykey INCRBY i5 100 1 GET u4 0 -> 1, 0
        let mut v = Vec::new();
        assert_eq!(run(&mut v, &[incr("i5", 100, 1, Wrap), get_op("u4", 0)]), vec![Some(1), Some(0)]);
        // BITFIELD mystring SET i8 0 100 SET i8 8 200 (on a missing key) -> 0, 0
        let mut v = Vec::new();
        assert_eq!(run(&mut v, &[set("i8", 0, 100, Wrap), set("i8", 8, 200, Wrap)]), vec![Some(0), Some(0)]);
        assert_eq!(run(&mut v, &[get_op("i8", 8)]), vec![Some(-56)]);
        // INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1, four times: 1 1, 2 2, 3 3, 0 3.
        let mut v = Vec::new();
        let ops = [incr("u2", 100, 1, Wrap), incr("u2", 102, 1, Sat)];
        for expected in [(1, 1), (2, 2), (3, 3), (0, 3)] {
            assert_eq!(run(&mut v, &ops), vec![Some(expected.0), Some(expected.1)]);
        }
        // OVERFLOW FAIL INCRBY u2 102 1 after that: nil, and nothing written.
        assert_eq!(run(&mut v, &[incr("u2", 102, 1, Fail)]), vec![None]);
        assert_eq!(get_unsigned(&v, 102, 2), 3);
    }

    #[test]
    fn signed_limits() {
        // i64: the whole range, INCRBY past either end.
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Wrap), Some(i64::MIN));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Sat), Some(i64::MAX));
        assert_eq!(signed_overflow(i64::MIN, -1, 64, Wrap), Some(i64::MAX));
        assert_eq!(signed_overflow(i64::MIN, -1, 64, Sat), Some(i64::MIN));
        assert_eq!(signed_overflow(i64::MIN, i64::MAX, 64, Wrap), None);
        assert_eq!(signed_overflow(0, i64::MIN, 64, Sat), None);
        assert_eq!(signed_overflow(-1, i64::MIN, 64, Sat), Some(i64::MIN));
        assert_eq!(signed_overflow(-2, i64::MIN, 64, Sat), Some(i64::MIN));
        assert_eq!(signed_overflow(i64::MAX, i64::MIN, 64, Wrap), None);
        // SET checks the value alone: every i64 fits i64.
        assert_eq!(signed_overflow(i64::MIN, 0, 64, Fail), None);
        // i8.
        assert_eq!(signed_overflow(127, 1, 8, Wrap), Some(-128));
        assert_eq!(signed_overflow(-128, -1, 8, Wrap), Some(127));
        assert_eq!(signed_overflow(200, 0, 8, Wrap), Some(-56));
        assert_eq!(signed_overflow(200, 0, 8, Sat), Some(127));
        assert_eq!(signed_overflow(-1000, 0, 8, Sat), Some(-128));
        assert_eq!(signed_overflow(100, i64::MAX, 8, Wrap), Some(99));
        assert_eq!(signed_overflow(-100, i64::MIN, 8, Sat), Some(-128));
        assert_eq!(signed_overflow(5, -133, 8, Sat), None);
        assert_eq!(signed_overflow(5, -134, 8, Sat), Some(-128));
        // i1 holds -1 and 0.
        assert_eq!(signed_overflow(0, 1, 1, Wrap), Some(-1));
        assert_eq!(signed_overflow(0, 1, 1, Sat), Some(0));
        assert_eq!(signed_overflow(-1, 1, 1, Sat), None);
        assert_eq!(signed_overflow(-1, -1, 1, Wrap), Some(0));
        assert_eq!(signed_overflow(-1, -1, 1, Sat), Some(-1));
        assert_eq!(signed_overflow(1, 0, 1, Wrap), Some(-1));
        assert_eq!(signed_overflow(2, 0, 1, Wrap), Some(0));
    }

    #[test]
    fn unsigned_limits() {
        let u63 = (1u64 << 63) - 1;
        assert_eq!(unsigned_overflow(u63, 1, 63, Wrap), Some(0));
        assert_eq!(unsigned_overflow(u63, 1, 63, Sat), Some(u63));
        assert_eq!(unsigned_overflow(0, -1, 63, Wrap), Some(u63));
        assert_eq!(unsigned_overflow(0, -1, 63, Sat), Some(0));
        assert_eq!(unsigned_overflow(0, i64::MAX, 63, Wrap), None);
        assert_eq!(unsigned_overflow(1, i64::MAX, 63, Wrap), Some(0));
        assert_eq!(unsigned_overflow(u63, i64::MIN, 63, Wrap), Some(u63));
        assert_eq!(unsigned_overflow(u63, -i64::MAX, 63, Sat), None);
        // SET of a negative value: huge as unsigned, so SAT stores the maximum.
        assert_eq!(unsigned_overflow(-1i64 as u64, 0, 8, Sat), Some(255));
        assert_eq!(unsigned_overflow(-1i64 as u64, 0, 8, Wrap), Some(255));
        assert_eq!(unsigned_overflow(-2i64 as u64, 0, 63, Wrap), Some(u63 - 1));
        assert_eq!(unsigned_overflow(256, 0, 8, Wrap), Some(0));
        assert_eq!(unsigned_overflow(255, 0, 8, Fail), None);
        assert_eq!(unsigned_overflow(3, -4, 8, Wrap), Some(255));
        // u1.
        assert_eq!(unsigned_overflow(1, 1, 1, Wrap), Some(0));
        assert_eq!(unsigned_overflow(1, 1, 1, Sat), Some(1));
        assert_eq!(unsigned_overflow(0, -1, 1, Sat), Some(0));
        assert_eq!(unsigned_overflow(0, 1, 1, Sat), None);
    }

    #[test]
    fn replies_and_writes_under_each_overflow() {
        let mut v = Vec::new();
        assert_eq!(
            run(&mut v, &[set("i64", 0, i64::MAX, Wrap), incr("i64", 0, 1, Wrap)]),
            vec![Some(0), Some(i64::MIN)]
        );
        assert_eq!(run(&mut v, &[incr("i64", 0, -1, Fail), get_op("i64", 0)]), vec![None, Some(i64::MIN)]);
        assert_eq!(run(&mut v, &[incr("i64", 0, -1, Sat)]), vec![Some(i64::MIN)]);
        // SET answers the old value, also under SAT.
        assert_eq!(run(&mut v, &[set("u8", 0, -1, Sat), get_op("u8", 0)]), vec![Some(0x80), Some(255)]);
        // A SET that FAILs answers nil and writes nothing, but the string still grows.
        let mut v = Vec::new();
        assert_eq!(run(&mut v, &[set("u8", 100, 1000, Fail)]), vec![None]);
        assert_eq!(v, vec![0; 14]);
        // i1 and u63 SET and GET.
        let mut v = Vec::new();
        assert_eq!(
            run(&mut v, &[set("i1", 3, 1, Wrap), get_op("i1", 3), get_op("u1", 3)]),
            vec![Some(0), Some(-1), Some(1)]
        );
        // The old u63 at bit 1 holds the i1 at bit 3 (its third bit of 63).
        let u63 = i64::MAX;
        let replies = run(&mut v, &[set("u63", 1, u63, Wrap), get_op("u63", 1), get_op("i64", 0)]);
        assert_eq!(replies, vec![Some(1 << 60), Some(u63), Some(u63)]);
    }
}
