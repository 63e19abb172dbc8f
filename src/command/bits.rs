//! Bitmaps on strings (issue 21, item 4): `SETBIT`, `GETBIT`, `BITCOUNT`, `BITPOS`, `BITOP`,
//! `BITFIELD`, `BITFIELD_RO`.
//!
//! A bitmap is a string, as in Redis: bit 0 is the most significant bit of the first byte.
//! SETBIT is a read-modify-write at the key's first owner (as APPEND, `rmw::Rmw::SetBit`), so
//! two SETBITs on one key never lose each other while that owner is up; across a partition the
//! string's last write wins, as for any string. BITOP reads its sources with quorum reads and
//! writes the destination as SET does (its expiry removed), or deletes it when every source
//! is empty. The reads and the argument checks follow Redis 7.0's `bitops.c` in order: a
//! missing key answers before a malformed range is noticed, as there.
//!
//! A bit offset is refused past `--max-value-bytes` (Redis refuses it past
//! `proto-max-bulk-len`, 512 MB): one SETBIT never makes a value larger than any other write
//! may.
//!
//! BITFIELD parses every subcommand before anything runs (a malformed one writes nothing), as
//! Redis 7.0's `bitfieldGeneric`, with its errors in its order. With only GETs it is a read
//! (a missing key is not created); with a SET or an INCRBY the whole call is one
//! read-modify-write at the key's first owner (`rmw::Rmw::BitField`, arithmetic in
//! `rmw::bitfield`). A written field must end within `--max-value-bytes`: its offset is refused
//! otherwise (Redis checks only the offset, so a field there may end up to 8 bytes past 512 MB).

use bytes::Bytes;

use super::{parse_i64, CmdResult, CommandError};
use crate::coordinator::{Write, WriteContext};
use crate::node::Node;
use crate::resp::Reply;
use crate::rmw::bitfield::{self, FieldOp, FieldOpKind, FieldType, Overflow};
use crate::rmw::Rmw;

/// A bit offset, checked against the largest value this node stores.
fn bit_offset(node: &Node, arg: &[u8]) -> Result<u64, CommandError> {
    let out_of_range = || CommandError::Other("bit offset is not an integer or out of range".into());
    let offset = crate::rmw::redis_i64(arg).filter(|&o| o >= 0).ok_or_else(out_of_range)? as u64;
    if offset >> 3 >= node.config.max_value_bytes as u64 {
        return Err(out_of_range());
    }
    Ok(offset)
}

/// The value of `key` as a string (`None`: missing); WRONGTYPE for a set or a hash.
async fn read(node: &Node, key: &[u8]) -> Result<Option<Bytes>, CommandError> {
    let set = node.coordinator.get(key, None).await?;
    super::string_value(&set)
}

/// `SETBIT key offset 0|1`: the bit's old value.
pub async fn setbit(node: &Node, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(node, &args[2])?;
    let on = match &args[3][..] {
        b"0" => false,
        b"1" => true,
        _ => return Err(CommandError::Other("bit is not an integer or out of range".into())),
    };
    let outcome = super::modify(node, &args[1], Rmw::SetBit { offset, on }).await?;
    Ok(Reply::Int(outcome.int))
}

/// `GETBIT key offset`.
pub async fn getbit(node: &Node, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(node, &args[2])?;
    let value = read(node, &args[1]).await?.unwrap_or_default();
    Ok(Reply::Int(i64::from(bit(&value, offset))))
}

/// The bit at `offset` (0 past the end).
pub fn bit(value: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    value.get(byte).is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

/// A range of a `len`-byte string as BITCOUNT and BITPOS take it (Redis's arithmetic):
/// inclusive bit positions, `None` when it is empty.
fn bit_range(len: u64, start: i64, end: i64, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits { len as i64 * 8 } else { len as i64 };
    let (mut start, mut end) = (start, end);
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    let start = start.max(0);
    let end = end.max(0).min(total - 1);
    if start > end {
        return None;
    }
    Some(if in_bits { (start as u64, end as u64) } else { (start as u64 * 8, end as u64 * 8 + 7) })
}

/// `BYTE` or `BIT` (another word is a syntax error).
fn unit(arg: &[u8]) -> Result<bool, CommandError> {
    if arg.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

/// Set bits of `value` in the inclusive bit range `[from, to]`.
fn count_ones(value: &[u8], from: u64, to: u64) -> u64 {
    let (first, last) = ((from >> 3) as usize, (to >> 3) as usize);
    let mut n: u64 = value[first..=last].iter().map(|b| u64::from(b.count_ones())).sum();
    // The bits of the first and last bytes outside the range.
    n -= u64::from((value[first] & !(0xFFu8 >> (from & 7))).count_ones());
    n -= u64::from((value[last] & (0xFFu8 >> (to & 7) >> 1)).count_ones());
    n
}

/// `BITCOUNT key [start end [BYTE|BIT]]`.
pub async fn bitcount(node: &Node, args: &[Bytes]) -> CmdResult {
    let Some(value) = read(node, &args[1]).await? else { return Ok(Reply::Int(0)) };
    let range = match args.len() {
        2 => (!value.is_empty()).then(|| (0, value.len() as u64 * 8 - 1)),
        4 | 5 => {
            let (start, end) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
            // Before the unit is read, as Redis 7.0 does.
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let in_bits = if args.len() == 5 { unit(&args[4])? } else { false };
            bit_range(value.len() as u64, start, end, in_bits)
        }
        _ => return Err(CommandError::Syntax),
    };
    Ok(Reply::Int(range.map_or(0, |(from, to)| count_ones(&value, from, to)) as i64))
}

/// The first bit equal to `on` in the inclusive bit range `[from, to]` of `value`; whole bytes
/// that hold none are skipped at once.
fn first_bit(value: &[u8], on: bool, from: u64, to: u64) -> Option<u64> {
    let none = if on { 0x00 } else { 0xFF };
    let mut i = from;
    while i <= to {
        if i & 7 == 0 && i + 7 <= to && value.get((i >> 3) as usize).is_some_and(|&b| b == none) {
            i += 8;
            continue;
        }
        if bit(value, i) == on {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `BITPOS key 0|1 [start [end [BYTE|BIT]]]`: the first bit with that value in the range; -1
/// when there is none, except that without an end, past the string every bit is a 0.
pub async fn bitpos(node: &Node, args: &[Bytes]) -> CmdResult {
    let on = match parse_i64(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(CommandError::Other("The bit argument must be 1 or 0.".into())),
    };
    let Some(value) = read(node, &args[1]).await? else { return Ok(Reply::Int(if on { -1 } else { 0 })) };
    let len = value.len() as u64;
    let (range, end_given) = match args.len() {
        3 => ((len > 0).then(|| (0, len * 8 - 1)), false),
        4..=6 => {
            let start = parse_i64(&args[3])?;
            let in_bits = if args.len() == 6 { unit(&args[5])? } else { false };
            let (end, given) = match args.get(4) {
                Some(end) => (parse_i64(end)?, true),
                None => (-1, false),
            };
            (bit_range(len, start, end, in_bits), given)
        }
        _ => return Err(CommandError::Syntax),
    };
    let Some((from, to)) = range else { return Ok(Reply::Int(-1)) };
    // Redis scans whole bytes: its answer for a 0 not found, without an end, is the first bit
    // after the last byte it looked at.
    Ok(Reply::Int(match first_bit(&value, on, from, to) {
        Some(i) => i as i64,
        None if !on && !end_given => ((to >> 3) + 1) as i64 * 8,
        None => -1,
    }))
}

/// `BITOP AND|OR|XOR|NOT destkey key [key ...]`: the length of the result.
pub async fn bitop(node: &Node, args: &[Bytes]) -> CmdResult {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = match args[1].to_ascii_lowercase().as_slice() {
        b"and" => Op::And,
        b"or" => Op::Or,
        b"xor" => Op::Xor,
        b"not" => Op::Not,
        _ => return Err(CommandError::Syntax),
    };
    if op == Op::Not && args.len() != 4 {
        return Err(CommandError::Other("BITOP NOT must be called with a single source key.".into()));
    }
    let mut sources = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        sources.push(read(node, key).await?.unwrap_or_default());
    }
    let len = sources.iter().map(Bytes::len).max().unwrap_or(0);
    if len > node.config.max_value_bytes {
        return Err(CommandError::ValueTooLarge { len, max: node.config.max_value_bytes });
    }
    let byte = |s: &Bytes, i: usize| s.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|i| {
            let mut all = sources.iter().map(|s| byte(s, i));
            let first = all.next().unwrap_or(0);
            match op {
                Op::Not => !first,
                Op::And => all.fold(first, |a, b| a & b),
                Op::Or => all.fold(first, |a, b| a | b),
                Op::Xor => all.fold(first, |a, b| a ^ b),
            }
        })
        .collect();
    if result.is_empty() {
        super::modify(node, &args[2], Rmw::Del).await?;
    } else {
        let write = Write { value: Some(Bytes::from(result).into()), expires_ms: None };
        node.coordinator.put(&args[2], WriteContext::Everything, write, None).await?;
        super::set::written(node, &args[2], false);
    }
    Ok(Reply::Int(len as i64))
}

/// An argument as C's string functions see it: up to its first NUL (Redis compares
/// BITFIELD's subcommand names, overflow kinds and types with `strcasecmp` and `strlen`).
fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter().position(|&b| b == 0).map_or(arg, |nul| &arg[..nul])
}

/// A BITFIELD type: `i1`..`i64`, `u1`..`u63` (lowercase `i` or `u`).
fn field_type(arg: &[u8]) -> Result<FieldType, CommandError> {
    let invalid = || {
        CommandError::Other(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.".into(),
        )
    };
    let arg = c_str(arg);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(invalid()),
    };
    let bits = crate::rmw::redis_i64(&arg[1..]).ok_or_else(invalid)?;
    if bits < 1 || bits > if signed { 64 } else { 63 } {
        return Err(invalid());
    }
    Ok(FieldType { signed, bits: bits as u32 })
}

/// A BITFIELD offset: bits, or `#N` fields of the type's width (multiplied as Redis does, in
/// 64-bit two's complement); checked against the largest value this node stores.
fn field_offset(node: &Node, arg: &[u8], bits: u32) -> Result<u64, CommandError> {
    let out_of_range = || CommandError::Other("bit offset is not an integer or out of range".into());
    let (digits, scale) = match arg.strip_prefix(b"#") {
        Some(rest) => (rest, i64::from(bits)),
        None => (arg, 1),
    };
    let offset = crate::rmw::redis_i64(digits).ok_or_else(out_of_range)?.wrapping_mul(scale);
    if offset < 0 || (offset as u64) >> 3 >= node.config.max_value_bytes as u64 {
        return Err(out_of_range());
    }
    Ok(offset as u64)
}

/// BITFIELD's subcommands (`args[2..]`), each with the OVERFLOW in force where it stands.
fn field_ops(node: &Node, args: &[Bytes]) -> Result<Vec<FieldOp>, CommandError> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let remaining = args.len() - j - 1;
        let sub = c_str(&args[j]);
        let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
        let write = if is("get") && remaining >= 2 {
            false
        } else if (is("set") || is("incrby")) && remaining >= 3 {
            true
        } else if is("overflow") && remaining >= 1 {
            let kind = c_str(&args[j + 1]);
            overflow = if kind.eq_ignore_ascii_case(b"wrap") {
                Overflow::Wrap
            } else if kind.eq_ignore_ascii_case(b"sat") {
                Overflow::Sat
            } else if kind.eq_ignore_ascii_case(b"fail") {
                Overflow::Fail
            } else {
                return Err(CommandError::Other("Invalid OVERFLOW type specified".into()));
            };
            j += 2;
            continue;
        } else {
            return Err(CommandError::Syntax);
        };
        let ty = field_type(&args[j + 1])?;
        let offset = field_offset(node, &args[j + 2], ty.bits)?;
        let kind = if write {
            // The whole field within the largest value (it may not grow the string past it).
            if (offset + u64::from(ty.bits) - 1) >> 3 >= node.config.max_value_bytes as u64 {
                return Err(CommandError::Other("bit offset is not an integer or out of range".into()));
            }
            let n = parse_i64(&args[j + 3])?;
            if is("set") {
                FieldOpKind::Set(n)
            } else {
                FieldOpKind::IncrBy(n)
            }
        } else {
            FieldOpKind::Get
        };
        ops.push(FieldOp { kind, ty, offset, overflow });
        j += if write { 4 } else { 3 };
    }
    Ok(ops)
}

/// `BITFIELD key [GET type offset | SET type offset value | INCRBY type offset increment |
/// OVERFLOW WRAP|SAT|FAIL]...` and (`read_only`) `BITFIELD_RO key [GET type offset]...`: one
/// reply per GET, SET and INCRBY (nil for a SET or INCRBY that OVERFLOW FAIL refused).
pub async fn bitfield(node: &Node, args: &[Bytes], read_only: bool) -> CmdResult {
    let ops = field_ops(node, args)?;
    let replies = if ops.iter().all(|op| op.kind == FieldOpKind::Get) {
        let value = read(node, &args[1]).await?.unwrap_or_default();
        ops.iter().map(|op| Some(bitfield::get(&value, op.ty, op.offset))).collect()
    } else if read_only {
        return Err(CommandError::Other("BITFIELD_RO only supports the GET subcommand".into()));
    } else {
        let notify = node.notify.enabled().then(|| ops.clone());
        let outcome = node.coordinator.modify(&args[1], Rmw::BitField { ops }).await?;
        // `setbit` when a SET or INCRBY changed the string, as Redis counts changes (the
        // operations replayed on the value they found).
        if notify.is_some_and(|ops| bitfield::changes(outcome.old.as_deref(), &ops)) {
            node.notify.report(crate::notify::Class::String, "setbit", &args[1]);
        }
        outcome.fields
    };
    Ok(Reply::Array(replies.into_iter().map(|r| r.map_or(Reply::Nil, Reply::Int)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's documentation examples (`SET mykey "foobar"`).
    #[test]
    fn counts_and_positions_as_redis_documents_them() {
        let foobar = b"foobar";
        let count = |s: i64, e: i64, bits: bool| bit_range(6, s, e, bits).map_or(0, |(f, t)| count_ones(foobar, f, t));
        assert_eq!(count(0, -1, false), 26);
        assert_eq!(count(0, 0, false), 4);
        assert_eq!(count(1, 1, false), 6);
        assert_eq!(count(1, 1, true), 1);
        assert_eq!(count(5, 30, true), 17);
        assert_eq!(count(7, 3, false), 0);
        // BITPOS of "\xff\xf0\x00": the first 0 is bit 12; of "\x00\xff\xf0" from byte 2 the
        // first 1 is bit 16; from bit 7 to 15, 8.
        let v = b"\xff\xf0\x00";
        assert_eq!(first_bit(v, false, 0, 23), Some(12));
        let v = b"\x00\xff\xf0";
        assert_eq!(first_bit(v, true, 16, 23), Some(16));
        assert_eq!(first_bit(v, true, 7, 15), Some(8));
        assert_eq!(first_bit(b"\x00\x00\x00", true, 0, 23), None);
    }

    #[test]
    fn bitfield_types_as_redis_parses_them() {
        let ty = |s: &[u8]| field_type(s).ok().map(|t| (t.signed, t.bits));
        assert_eq!(ty(b"i1"), Some((true, 1)));
        assert_eq!(ty(b"i64"), Some((true, 64)));
        assert_eq!(ty(b"u63"), Some((false, 63)));
        // Up to a NUL, as C's strlen sees it.
        assert_eq!(ty(b"u8\0x"), Some((false, 8)));
        for bad in [&b"u64"[..], b"i65", b"i0", b"u0", b"I8", b"x8", b"i08", b"i+8", b"i-1", b"i", b"", b"\0i8"] {
            assert_eq!(ty(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn set_bit_grows_and_answers_the_old_bit() {
        use crate::rmw::set_bit;
        let mut v = Vec::new();
        assert!(!set_bit(&mut v, 7, true));
        assert_eq!(v, vec![0x01]);
        assert!(set_bit(&mut v, 7, false));
        assert!(!set_bit(&mut v, 17, true));
        assert_eq!(v, vec![0x00, 0x00, 0x40]);
        assert!(bit(&v, 17) && !bit(&v, 16) && !bit(&v, 1000));
    }
}
