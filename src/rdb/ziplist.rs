//! The blobs older Redis versions wrote and Redis 7 still loads: the ziplist (Redis 2.6 to 6.2:
//! small lists, hashes, sorted sets, and quicklist nodes), the zipmap (small hashes before
//! 2.6) and the intset (small sets of integers, still Redis 7's). Decoding only, except the
//! intset, which Redis 7.0 still writes.

use bytes::Bytes;

use super::{Budget, RdbError, Reader};

fn int(v: i64) -> Bytes {
    Bytes::copy_from_slice(itoa::Buffer::new().format(v).as_bytes())
}

/// The elements of a ziplist (`zlbytes`, `zltail`, `zllen`, entries, `0xFF`): each entry's
/// `prevlen` must be the previous entry's size, as Redis's deep check demands.
///
/// # Errors
/// [`RdbError::BadFormat`] for anything else.
pub fn decode(blob: &[u8], budget: &mut Budget) -> Result<Vec<Bytes>, RdbError> {
    let mut r = Reader::new(blob);
    let total = r.u32_le()? as usize;
    let tail = r.u32_le()? as usize;
    let declared = r.u16_le()?;
    if total != blob.len() || blob.last() != Some(&0xff) || tail >= total {
        return Err(RdbError::BadFormat);
    }
    let mut out = Vec::new();
    let mut previous = 0usize;
    let mut last_start = 10;
    loop {
        let start = r.pos();
        let first = r.u8()?;
        if first == 0xff {
            if r.pos() != blob.len() {
                return Err(RdbError::BadFormat);
            }
            break;
        }
        let prevlen = match first {
            0xfe => r.u32_le()? as usize,
            n => usize::from(n),
        };
        if prevlen != previous {
            return Err(RdbError::BadFormat);
        }
        let enc = r.u8()?;
        let element = match enc {
            0x00..=0x3f => Bytes::copy_from_slice(r.take(usize::from(enc))?),
            0x40..=0x7f => {
                let len = (usize::from(enc & 0x3f) << 8) | usize::from(r.u8()?);
                Bytes::copy_from_slice(r.take(len)?)
            }
            0x80..=0xbf => {
                let len = u32::from_be_bytes(r.array()?) as usize;
                Bytes::copy_from_slice(r.take(len)?)
            }
            0xc0 => int(i64::from(i16::from_le_bytes(r.array()?))),
            0xd0 => int(i64::from(i32::from_le_bytes(r.array()?))),
            0xe0 => int(i64::from_le_bytes(r.array()?)),
            0xf0 => {
                let b: [u8; 3] = r.array()?;
                int(i64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8))
            }
            0xfe => int(i64::from(r.u8()? as i8)),
            0xf1..=0xfd => int(i64::from(enc & 0x0f) - 1),
            _ => return Err(RdbError::BadFormat),
        };
        budget.spend(element.len())?;
        out.push(element);
        previous = r.pos() - start;
        last_start = start;
    }
    if (!out.is_empty() && tail != last_start) || (declared != 65535 && usize::from(declared) != out.len()) {
        return Err(RdbError::BadFormat);
    }
    Ok(out)
}

/// The fields and values of a zipmap (a count byte, then per pair: key length, key, value
/// length, a free-space byte, value, free space; `0xFF`).
///
/// # Errors
/// [`RdbError::BadFormat`] for anything else.
pub fn decode_zipmap(blob: &[u8], budget: &mut Budget) -> Result<Vec<(Bytes, Bytes)>, RdbError> {
    let mut r = Reader::new(blob);
    let declared = r.u8()?;
    let length = |r: &mut Reader<'_>| -> Result<Option<usize>, RdbError> {
        Ok(match r.u8()? {
            0xff => None,
            0xfe => Some(u32::from_le_bytes(r.array()?) as usize),
            n => Some(usize::from(n)),
        })
    };
    let mut out = Vec::new();
    while let Some(klen) = length(&mut r)? {
        let key = Bytes::copy_from_slice(r.take(klen)?);
        let vlen = length(&mut r)?.ok_or(RdbError::BadFormat)?;
        let free = usize::from(r.u8()?);
        let value = Bytes::copy_from_slice(r.take(vlen)?);
        r.take(free)?;
        budget.spend(key.len() + value.len())?;
        out.push((key, value));
    }
    if r.pos() != blob.len() || (declared < 254 && usize::from(declared) != out.len()) {
        return Err(RdbError::BadFormat);
    }
    Ok(out)
}

/// An intset of `values` (sorted, distinct) as Redis writes it: the width of the widest value
/// (2, 4 or 8 bytes), the count, the values in ascending order, all little-endian.
pub fn encode_intset(values: &[i64]) -> Vec<u8> {
    let width: usize = if values.iter().all(|v| i16::try_from(*v).is_ok()) {
        2
    } else if values.iter().all(|v| i32::try_from(*v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + width * values.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// The members of an intset (as decimal strings).
///
/// # Errors
/// [`RdbError::BadFormat`] for a width other than 2, 4 or 8, a size that is not the header's
/// count of values, or values not in strictly ascending order (Redis's deep check).
pub fn decode_intset(blob: &[u8], budget: &mut Budget) -> Result<Vec<Bytes>, RdbError> {
    let mut r = Reader::new(blob);
    let width = r.u32_le()? as usize;
    let count = r.u32_le()? as usize;
    if !matches!(width, 2 | 4 | 8) || count.checked_mul(width) != Some(blob.len() - 8) {
        return Err(RdbError::BadFormat);
    }
    let mut out = Vec::with_capacity(count.min(4096));
    let mut previous = None;
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i64::from(i16::from_le_bytes([chunk[0], chunk[1]])),
            4 => i64::from(i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])),
            _ => i64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]),
        };
        if previous.is_some_and(|p| p >= v) {
            return Err(RdbError::BadFormat);
        }
        previous = Some(v);
        let member = int(v);
        budget.spend(member.len())?;
        out.push(member);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn strings(v: &[Bytes]) -> Vec<&str> {
        v.iter().map(|b| std::str::from_utf8(b).unwrap_or("?")).collect()
    }

    /// `SADD si 3 1 2` and `SADD sb 70000 1 -2` in redis-server 7.0.15 (DUMP's string bodies).
    #[test]
    fn intsets_as_redis_writes_them() {
        let small = hex("0200000003000000010002000300");
        let wide = hex("0400000003000000feffffff0100000070110100");
        assert_eq!(encode_intset(&[1, 2, 3]), small);
        assert_eq!(encode_intset(&[-2, 1, 70000]), wide);
        let mut budget = Budget::new(100);
        assert_eq!(strings(&decode_intset(&wide, &mut budget).expect("decodes")), ["-2", "1", "70000"]);
        assert!(decode_intset(&small[..small.len() - 1], &mut budget).is_err());
        let mut bad_width = small;
        bad_width[0] = 3;
        assert!(decode_intset(&bad_width, &mut budget).is_err());
    }

    /// A ziplist of `a`, `12`, `-300`, `70000`, 5_000_000_000 and a 300-byte string, made by
    /// hand after ziplist.c (Redis 6.2 wrote such blobs for small lists, hashes and sorted sets).
    #[test]
    fn ziplists_decode() {
        let long = vec![b'x'; 300];
        let mut entries: Vec<Vec<u8>> = vec![
            vec![0x01, b'a'],
            vec![0xfe, 12],
            [&[0xc0][..], &(-300i16).to_le_bytes()].concat(),
            [&[0xf0][..], &70000i32.to_le_bytes()[..3]].concat(),
            [&[0xe0][..], &5_000_000_000i64.to_le_bytes()].concat(),
            [&[0x41, 0x2c][..], &long].concat(),
            vec![0xf4],
        ];
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = 10;
        for e in &mut entries {
            let mut full =
                if prev < 254 { vec![prev as u8] } else { [&[0xfe][..], &(prev as u32).to_le_bytes()].concat() };
            full.append(e);
            tail = 10 + body.len();
            prev = full.len();
            body.extend(full);
        }
        let total = 10 + body.len() + 1;
        let mut zl = Vec::new();
        zl.extend_from_slice(&(total as u32).to_le_bytes());
        zl.extend_from_slice(&(tail as u32).to_le_bytes());
        zl.extend_from_slice(&7u16.to_le_bytes());
        zl.extend(body);
        zl.push(0xff);
        let mut budget = Budget::new(10_000);
        let got = decode(&zl, &mut budget).expect("decodes");
        let long = String::from_utf8(long).unwrap_or_default();
        assert_eq!(strings(&got), ["a", "12", "-300", "70000", "5000000000", &long, "3"]);
        for cut in 0..zl.len() {
            assert!(decode(&zl[..cut], &mut budget).is_err());
        }
        let mut bad_prevlen = zl.clone();
        bad_prevlen[10 + 3] = 7;
        assert!(decode(&bad_prevlen, &mut budget).is_err());
    }

    #[test]
    fn zipmaps_decode() {
        // {"f": "v", "name": "kura"} with one byte of free space after "v".
        let zm = [&[2u8, 1, b'f', 1, 1, b'v', 0][..], &[4, b'n', b'a', b'm', b'e', 4, 0, b'k', b'u', b'r', b'a', 0xff]]
            .concat();
        let mut budget = Budget::new(100);
        let got = decode_zipmap(&zm, &mut budget).expect("decodes");
        assert_eq!(got.len(), 2);
        assert_eq!((&got[1].0[..], &got[1].1[..]), (&b"name"[..], &b"kura"[..]));
        for cut in 0..zm.len() {
            assert!(decode_zipmap(&zm[..cut], &mut budget).is_err());
        }
    }
}
