//! Redis's listpack (`listpack.c`), the blob of small hashes, sorted sets and list nodes in
//! Redis 7: a header (total bytes, element count, both little-endian), the entries, `0xFF`.
//! An entry is its encoding (an integer in 7 to 64 bits, or a string with a 6-, 12- or 32-bit
//! length), its data, and its own length backwards (`backlen`, so the list walks both ways).
//! [`encode`] makes the bytes Redis's `lpAppend` makes for the same elements; [`decode`] checks
//! everything Redis's deep integrity check does (sizes, terminator, every backlen, the count).

use bytes::Bytes;

use super::{RdbError, Reader};

/// Redis's `lpStringToInt64`: a canonical decimal of a signed 64-bit integer, at most 20
/// characters (no sign on zero, no leading zeros, no `+`, no spaces).
pub fn as_int(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    let canonical = match digits {
        [b'0'] => s.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || s.len() > 20 {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn backlen(l: usize, out: &mut Vec<u8>) {
    let l = l as u64;
    if l <= 127 {
        out.push(l as u8);
    } else if l < 16383 {
        out.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]);
    } else if l < 2_097_151 {
        out.extend_from_slice(&[(l >> 14) as u8, ((l >> 7) & 127) as u8 | 128, (l & 127) as u8 | 128]);
    } else if l < 268_435_455 {
        out.extend_from_slice(&[
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    } else {
        out.extend_from_slice(&[
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    }
}

/// One entry as `lpAppend` writes it: an integer when the string is one, else the string.
fn entry(element: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    match as_int(element) {
        Some(v @ 0..=127) => out.push(v as u8),
        Some(v @ -4096..=4095) => {
            let u = if v < 0 { (1 << 13) + v } else { v } as u16;
            out.extend_from_slice(&[(u >> 8) as u8 | 0xc0, u as u8]);
        }
        Some(v @ -32768..=32767) => {
            out.push(0xf1);
            out.extend_from_slice(&(v as i16).to_le_bytes());
        }
        Some(v @ -8_388_608..=8_388_607) => {
            out.push(0xf2);
            out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        }
        Some(v @ -2_147_483_648..=2_147_483_647) => {
            out.push(0xf3);
            out.extend_from_slice(&(v as i32).to_le_bytes());
        }
        Some(v) => {
            out.push(0xf4);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => {
            let len = element.len();
            if len < 64 {
                out.push(len as u8 | 0x80);
            } else if len < 4096 {
                out.extend_from_slice(&[(len >> 8) as u8 | 0xe0, len as u8]);
            } else {
                out.push(0xf0);
                out.extend_from_slice(&(len as u32).to_le_bytes());
            }
            out.extend_from_slice(element);
        }
    }
    let size = out.len() - start;
    backlen(size, out);
}

/// A listpack being filled, as `lpAppend` fills one.
pub struct Builder {
    bytes: Vec<u8>,
    count: usize,
}

impl Builder {
    pub fn new() -> Builder {
        Builder { bytes: vec![0; 6], count: 0 }
    }

    pub fn push(&mut self, element: &[u8]) {
        entry(element, &mut self.bytes);
        self.count += 1;
    }

    /// Its size as `lpBytes` would answer now (terminator included).
    pub fn size(&self) -> usize {
        self.bytes.len() + 1
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.push(0xff);
        let total = self.bytes.len() as u32;
        self.bytes[..4].copy_from_slice(&total.to_le_bytes());
        // The count stops at 65535: "unknown, walk to count".
        let count = self.count.min(65535) as u16;
        self.bytes[4..6].copy_from_slice(&count.to_le_bytes());
        self.bytes
    }
}

/// A listpack of `elements`.
pub fn encode<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut b = Builder::new();
    for e in elements {
        b.push(e);
    }
    b.finish()
}

/// The elements of a listpack (integers as their decimal strings), each counted against
/// `budget`.
///
/// # Errors
/// [`RdbError::BadFormat`] for anything that is not a whole, well-formed listpack.
pub fn decode(blob: &[u8], budget: &mut super::Budget) -> Result<Vec<Bytes>, RdbError> {
    let mut r = Reader::new(blob);
    let total = r.u32_le()? as usize;
    let declared = r.u16_le()?;
    if total != blob.len() || blob.last() != Some(&0xff) {
        return Err(RdbError::BadFormat);
    }
    let mut out = Vec::new();
    loop {
        let start = r.pos();
        let first = r.u8()?;
        let element: Bytes = match first {
            0xff if r.pos() == blob.len() => break,
            0x00..=0x7f => int(i64::from(first)),
            0x80..=0xbf => Bytes::copy_from_slice(r.take(usize::from(first & 0x3f))?),
            0xc0..=0xdf => {
                let v = (i64::from(first & 0x1f) << 8) | i64::from(r.u8()?);
                int(if v >= 1 << 12 { v - (1 << 13) } else { v })
            }
            0xe0..=0xef => {
                let len = (usize::from(first & 0x0f) << 8) | usize::from(r.u8()?);
                Bytes::copy_from_slice(r.take(len)?)
            }
            0xf0 => {
                let len = r.u32_le()? as usize;
                Bytes::copy_from_slice(r.take(len)?)
            }
            0xf1 => int(i64::from(i16::from_le_bytes(r.array()?))),
            0xf2 => {
                let b: [u8; 3] = r.array()?;
                int(i64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8))
            }
            0xf3 => int(i64::from(i32::from_le_bytes(r.array()?))),
            0xf4 => int(i64::from_le_bytes(r.array()?)),
            _ => return Err(RdbError::BadFormat),
        };
        let mut expected = Vec::with_capacity(5);
        backlen(r.pos() - start, &mut expected);
        if r.take(expected.len())? != expected.as_slice() {
            return Err(RdbError::BadFormat);
        }
        budget.spend(element.len())?;
        out.push(element);
    }
    if declared != 65535 && usize::from(declared) != out.len() {
        return Err(RdbError::BadFormat);
    }
    Ok(out)
}

fn int(v: i64) -> Bytes {
    Bytes::copy_from_slice(itoa::Buffer::new().format(v).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    /// The listpack of the only node of `RPUSH l a 1 hello -5 100000`, as redis-server 7.0.15
    /// DUMPed it.
    #[test]
    fn encodes_as_redis() {
        let lp = hex("1b000000050081610201018568656c6c6f06dffb02f2a0860104ff");
        let elements: [&[u8]; 5] = [b"a", b"1", b"hello", b"-5", b"100000"];
        assert_eq!(encode(elements), lp);
        let mut budget = super::super::Budget::new(1000);
        let back = decode(&lp, &mut budget).expect("decodes");
        assert_eq!(back, elements.iter().map(|e| Bytes::copy_from_slice(e)).collect::<Vec<_>>());
    }

    #[test]
    fn every_width_round_trips() {
        let long = "x".repeat(5000);
        let mid = "y".repeat(300);
        let elements = [
            "0",
            "127",
            "128",
            "-1",
            "-4096",
            "4095",
            "4096",
            "-4097",
            "32767",
            "-32768",
            "32768",
            "8388607",
            "-8388608",
            "8388608",
            "2147483647",
            "-2147483648",
            "2147483648",
            "9223372036854775807",
            "-9223372036854775808",
            "-0",
            "007",
            "",
            "abc",
            &mid,
            &long,
        ];
        let lp = encode(elements.iter().map(|e| e.as_bytes()));
        let mut budget = super::super::Budget::new(1 << 20);
        let back = decode(&lp, &mut budget).expect("decodes");
        assert_eq!(back.iter().map(|b| std::str::from_utf8(b).unwrap_or("?")).collect::<Vec<_>>(), elements);
    }

    #[test]
    fn corrupt_listpacks_are_refused() {
        let lp = encode([&b"hello"[..], b"12"]);
        let mut budget = super::super::Budget::new(1000);
        for cut in 0..lp.len() {
            assert!(decode(&lp[..cut], &mut budget).is_err(), "cut at {cut}");
        }
        let mut wrong_count = lp.clone();
        wrong_count[4] = 3;
        assert!(decode(&wrong_count, &mut budget).is_err());
        let mut wrong_backlen = lp.clone();
        wrong_backlen[7 + 5] = 9;
        assert!(decode(&wrong_backlen, &mut budget).is_err());
        let mut bad_encoding = lp;
        bad_encoding[6] = 0xf5;
        assert!(decode(&bad_encoding, &mut budget).is_err());
    }
}
