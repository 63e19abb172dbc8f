//! The `struct` library Redis embeds (`deps/lua/src/lua_struct.c`, Roberto Ierusalimschy's
//! struct 1.4 with Redis's fixes): `struct.pack(fmt, ...)`, `struct.unpack(fmt, data [, pos])`
//! and `struct.size(fmt)`, with the C code's arithmetic on x86-64 (a `long` of 8 bytes,
//! `MAXALIGN` 8, C's casts of doubles to integers) and its error texts. Pure: the Lua glue is
//! in `libs.rs`.
//!
//! Formats: `>` big endian, `<` little endian (the default: x86-64's), `![n]` alignment (n a
//! power of 2, default 8), `x` a zero byte, `b/B` (1 byte), `h/H` (2), `l/L` (8), `T` (8),
//! `i/I[n]` (n bytes, default 4, at most 32), signed in lowercase, `f` float, `d` double,
//! `c[n]` n chars (pack: `c0` is the whole string; unpack: `c0` takes the length from the
//! previous result), `s` a zero-terminated string, ` ` ignored.

/// What a value of a format is, for packing or what unpacking gives.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Number(f64),
    Bytes(Vec<u8>),
}

/// `MAXINTSIZE`: the largest integral size.
const MAX_INT_SIZE: usize = 32;
/// `MAXALIGN` on x86-64.
const MAX_ALIGN: usize = 8;

/// A failure, as the C library raises it: a plain error (`luaL_error`) or an argument's
/// (`luaL_argerror`: `bad argument #n to 'f' (...)`, made by the caller, who knows `f`).
#[derive(Debug, PartialEq, Eq)]
pub enum StructError {
    Plain(String),
    Arg(usize, String),
}

impl StructError {
    /// The text Lua shows, for function `fname`.
    pub fn text(&self, fname: &str) -> String {
        match self {
            StructError::Plain(t) => t.clone(),
            StructError::Arg(n, t) => format!("bad argument #{n} to '{fname}' ({t})"),
        }
    }
}

type Result<T> = std::result::Result<T, StructError>;

fn plain(t: impl Into<String>) -> StructError {
    StructError::Plain(t.into())
}

struct Header {
    little: bool,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header { little: true, align: 1 }
    }
}

/// The format as C reads it: up to its first NUL byte.
struct Fmt<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fmt<'a> {
    fn new(fmt: &'a [u8]) -> Fmt<'a> {
        let end = fmt.iter().position(|&b| b == 0).unwrap_or(fmt.len());
        Fmt { bytes: &fmt[..end], at: 0 }
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.bytes.get(self.at).copied();
        self.at += 1;
        c
    }

    fn digit(&self) -> Option<u8> {
        self.bytes.get(self.at).filter(|c| c.is_ascii_digit()).copied()
    }

    /// `getnum` with Redis's overflow check.
    fn num(&mut self, default: usize) -> Result<usize> {
        if self.digit().is_none() {
            return Ok(default);
        }
        let mut a: i64 = 0;
        while let Some(d) = self.digit() {
            let d = i64::from(d - b'0');
            if a > i64::from(i32::MAX) / 10 || a * 10 > i64::from(i32::MAX) - d {
                return Err(plain("integral size overflow"));
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a as usize)
    }
}

/// `optsize`: the size of option `opt` (reading its count).
fn opt_size(opt: u8, fmt: &mut Fmt<'_>) -> Result<usize> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'x' => 1,
        b'c' => fmt.num(1)?,
        b'i' | b'I' => {
            let size = fmt.num(4)?;
            if size > MAX_INT_SIZE {
                return Err(plain(format!("integral size {size} is larger than limit of {MAX_INT_SIZE}")));
            }
            size
        }
        _ => 0,
    })
}

/// `gettoalign`: padding to put before an item of `size` at `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & (size - 1))) & (size - 1)
}

/// `controloptions`: endianness, alignment, spaces; any other option is refused.
fn control(opt: u8, fmt: &mut Fmt<'_>, h: &mut Header) -> Result<()> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = fmt.num(MAX_ALIGN)?;
            if !a.is_power_of_two() {
                return Err(plain(format!("alignment {a} is not a power of 2")));
            }
            h.align = a;
        }
        other => return Err(StructError::Arg(1, format!("invalid format option '{}'", other as char))),
    }
    Ok(())
}

/// C's `(unsigned long)` of a double on x86-64 (gcc: `cvttsd2si` below 2^63, of `n - 2^63`
/// with the top bit flipped from there): exact below 2^64, 0 at or past it, 2^63 for NaN.
fn to_ulong(n: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    // Written as the compiled comparison: NaN takes the first path.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(n >= TWO63) {
        return to_long(n) as u64;
    }
    let high = n - TWO63;
    if high < TWO63 {
        (high as i64 as u64) ^ (1 << 63)
    } else {
        0
    }
}

/// C's `(long)` of a double on x86-64: truncation, and the minimum out of range.
fn to_long(n: f64) -> i64 {
    super::convert::lua_number_to_i64(n)
}

/// `struct.pack(fmt, ...)`: `values` are the arguments after the format (argument 2 on);
/// `number(i)` and `string(i)` read argument `i` (Lua's numbering) as `luaL_checknumber` and
/// `luaL_checklstring` do.
pub fn pack(
    fmt: &[u8],
    number: &dyn Fn(usize) -> Result<f64>,
    string: &dyn Fn(usize) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let mut fmt = Fmt::new(fmt);
    let mut h = Header::new();
    let mut arg = 2;
    let mut out = Vec::new();
    while let Some(opt) = fmt.next() {
        let mut size = opt_size(opt, &mut fmt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = number(arg)?;
                arg += 1;
                let mut value = if n < 0.0 { to_long(n) as u64 } else { to_ulong(n) };
                let mut buf = [0u8; MAX_INT_SIZE];
                for b in buf.iter_mut().take(size) {
                    *b = (value & 0xff) as u8;
                    value >>= 8;
                }
                let bytes = &mut buf[..size];
                if !h.little {
                    bytes.reverse();
                }
                out.extend_from_slice(bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = number(arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little { f.to_le_bytes() } else { f.to_be_bytes() });
            }
            b'd' => {
                let d = number(arg)?;
                arg += 1;
                out.extend_from_slice(&if h.little { d.to_le_bytes() } else { d.to_be_bytes() });
            }
            b'c' | b's' => {
                let s = string(arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                // The C code checks with the argument after this one.
                if s.len() < size {
                    return Err(StructError::Arg(arg, "string too short".into()));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            other => control(other, &mut fmt, &mut h)?,
        }
    }
    Ok(out)
}

/// `getinteger`, with C's shift of a 64-bit value by `size * 8 - 1` (mod 64 on x86-64).
fn get_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: u8| l = (l << 8) | u64::from(b);
    if little {
        bytes.iter().rev().for_each(|&b| push(b));
    } else {
        bytes.iter().for_each(|&b| push(b));
    }
    if !signed {
        return l as f64;
    }
    let mask = u64::MAX.wrapping_shl((bytes.len() * 8).wrapping_sub(1) as u32);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

/// A number as `lua_isnumber` / `lua_tonumber` see a value (a numeric string counts).
fn numeric(item: &Item) -> Option<f64> {
    match item {
        Item::Number(n) => Some(*n),
        Item::Bytes(b) => super::lua_str_number(b),
    }
}

/// `struct.unpack(fmt, data [, pos])`: the values, then the position after the last (1-based).
/// `pos` is the third argument as `luaL_optinteger` read it (1 when absent).
pub fn unpack(fmt: &[u8], data: &[u8], pos: i64) -> Result<Vec<Item>> {
    // `size_t pos = luaL_optinteger(...)`: a negative one wraps around.
    let mut pos = pos as u64 as usize;
    if pos == 0 {
        return Err(StructError::Arg(3, "offset must be 1 or greater".into()));
    }
    pos -= 1;
    let short = || StructError::Arg(2, "data string too short".into());
    let mut fmt = Fmt::new(fmt);
    let mut h = Header::new();
    let mut out: Vec<Item> = Vec::new();
    while let Some(opt) = fmt.next() {
        let mut size = opt_size(opt, &mut fmt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if pos.checked_add(size).is_none_or(|end| end > data.len()) {
            return Err(short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                out.push(Item::Number(get_integer(&data[pos..pos + size], h.little, opt.is_ascii_lowercase())));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let f = if h.little { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) };
                out.push(Item::Number(f64::from(f)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                out.push(Item::Number(if h.little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) }));
            }
            b'c' => {
                if size == 0 {
                    let Some(n) = out.last().and_then(numeric) else {
                        return Err(plain("format 'c0' needs a previous size"));
                    };
                    out.pop();
                    // `(size_t)` of the number: a negative one is huge.
                    size = if n < 0.0 { usize::MAX } else { n as usize };
                    if pos.checked_add(size).is_none_or(|end| end > data.len()) {
                        return Err(short());
                    }
                }
                out.push(Item::Bytes(data[pos..pos + size].to_vec()));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(plain("unfinished string in data"));
                };
                size = len + 1;
                out.push(Item::Bytes(data[pos..pos + len].to_vec()));
            }
            other => control(other, &mut fmt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    out.push(Item::Number((pos as f64) + 1.0));
    Ok(out)
}

/// `struct.size(fmt)`: the bytes a pack of `fmt` takes.
pub fn size(fmt: &[u8]) -> Result<usize> {
    let mut fmt = Fmt::new(fmt);
    let mut h = Header::new();
    let mut pos = 0usize;
    while let Some(opt) = fmt.next() {
        let size = opt_size(opt, &mut fmt)?;
        pos += to_align(pos, &h, opt, size);
        if opt == b's' {
            return Err(StructError::Arg(1, "option 's' has no fixed size".into()));
        }
        if opt == b'c' && size == 0 {
            return Err(StructError::Arg(1, "option 'c0' has no fixed size".into()));
        }
        if !opt.is_ascii_alphanumeric() {
            control(opt, &mut fmt, &mut h)?;
        }
        pos += size;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs with number and string arguments given in order.
    fn p(fmt: &str, args: &[Item]) -> Result<Vec<u8>> {
        let number = |i: usize| match args.get(i - 2) {
            Some(Item::Number(n)) => Ok(*n),
            Some(Item::Bytes(b)) => {
                super::super::lua_str_number(b).ok_or_else(|| StructError::Arg(i, "number expected, got string".into()))
            }
            None => Err(StructError::Arg(i, "number expected, got nil".into())),
        };
        let string = |i: usize| match args.get(i - 2) {
            Some(Item::Bytes(b)) => Ok(b.clone()),
            Some(Item::Number(n)) => Ok(super::super::convert::format_number(*n).into_bytes()),
            None => Err(StructError::Arg(i, "string expected, got nil".into())),
        };
        pack(fmt.as_bytes(), &number, &string)
    }

    fn n(x: f64) -> Item {
        Item::Number(x)
    }

    fn s(x: &str) -> Item {
        Item::Bytes(x.as_bytes().to_vec())
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Outputs taken from redis-server 7.0.15 (`EVAL "return struct.pack(...)" 0`, the bytes
    /// read with redis-cli --no-raw / xxd).
    #[test]
    fn packs_as_redis() {
        assert_eq!(hex(&p(">I2", &[n(7.0)]).unwrap()), "0007");
        assert_eq!(hex(&p("<I2", &[n(7.0)]).unwrap()), "0700");
        assert_eq!(hex(&p("i3", &[n(7.0)]).unwrap()), "070000");
        assert_eq!(hex(&p("i0", &[n(7.0)]).unwrap()), "");
        assert_eq!(hex(&p("B", &[n(300.0)]).unwrap()), "2c");
        assert_eq!(hex(&p("b", &[s("12")]).unwrap()), "0c");
        assert_eq!(hex(&p("<L", &[n(-1.0)]).unwrap()), "ffffffffffffffff");
        assert_eq!(hex(&p("<L", &[n(18446744073709551616.0)]).unwrap()), "0000000000000000");
        assert_eq!(hex(&p("<l", &[n(1e300)]).unwrap()), "0000000000000000");
        assert_eq!(hex(&p("<L", &[n(9223372036854775808.0)]).unwrap()), "0000000000000080");
        assert_eq!(hex(&p(">i16", &[n(-2.0)]).unwrap()), "0000000000000000fffffffffffffffe");
        assert_eq!(hex(&p("<d>f", &[n(1.5), n(-2.25)]).unwrap()), "000000000000f83fc0100000");
        assert_eq!(hex(&p("!4bxi", &[n(1.0), n(2.0)]).unwrap()), "0100000002000000");
        assert_eq!(p("s c0 c2", &[s("ab"), s("cd"), s("efg")]).unwrap(), b"ab\0cdef");
        assert_eq!(p("c0", &[n(12.5)]).unwrap(), b"12.5");
        assert_eq!(hex(&p("b\0z", &[n(1.0)]).unwrap()), "01", "the format ends at a NUL byte");
        assert_eq!(hex(&p(">hT", &[n(-2.0), n(1.0)]).unwrap()), "fffe0000000000000001");
        assert_eq!(hex(&p("<L", &[n(f64::NAN)]).unwrap()), "0000000000000080");
        assert_eq!(hex(&p("<l", &[n(-1e300)]).unwrap()), "0000000000000080");
        assert_eq!(hex(&p("<I", &[n(f64::INFINITY)]).unwrap()), "00000000");
    }

    #[test]
    fn refuses_as_redis() {
        let e = |fmt: &str, args: &[Item]| p(fmt, args).unwrap_err().text("pack");
        assert_eq!(e("z", &[n(7.0)]), "bad argument #1 to 'pack' (invalid format option 'z')");
        assert_eq!(e("i33", &[n(7.0)]), "integral size 33 is larger than limit of 32");
        assert_eq!(e("i99999999999", &[n(7.0)]), "integral size overflow");
        assert_eq!(e("!3i", &[n(7.0)]), "alignment 3 is not a power of 2");
        assert_eq!(e("!0b", &[n(1.0)]), "alignment 0 is not a power of 2");
        assert_eq!(e("c3", &[s("ab")]), "bad argument #3 to 'pack' (string too short)");
        assert_eq!(e("b", &[]), "bad argument #2 to 'pack' (number expected, got nil)");
    }

    fn u(fmt: &str, data: &[u8], pos: i64) -> Result<Vec<Item>> {
        unpack(fmt.as_bytes(), data, pos)
    }

    #[test]
    fn unpacks_as_redis() {
        assert_eq!(u(">I2", b"\0\x07", 1), Ok(vec![n(7.0), n(3.0)]));
        assert_eq!(u(">I2", b"abcd", 3), Ok(vec![n(25444.0), n(5.0)]));
        assert_eq!(u(">I2", b"abcd", 2), Ok(vec![n(25187.0), n(4.0)]));
        assert_eq!(u("bc0", b"\x02abc", 1), Ok(vec![s("ab"), n(4.0)]));
        assert_eq!(u("bc0b", b"\x02ab\x03", 1), Ok(vec![s("ab"), n(3.0), n(5.0)]));
        assert_eq!(u("c2c0", b"02abc", 1), Ok(vec![s("ab"), n(5.0)]));
        assert_eq!(u("s", b"ab\0cd", 1), Ok(vec![s("ab"), n(4.0)]));
        let minus_two = p(">i16", &[n(-2.0)]).unwrap();
        assert_eq!(u(">i16", &minus_two, 1), Ok(vec![n(-2.0), n(17.0)]));
        let le = p("<i16", &[n(-2.0)]).unwrap();
        assert_eq!(u("<i16", &le, 1), Ok(vec![n(-2.0), n(17.0)]));
        assert_eq!(u("<I16", &le, 1), Ok(vec![n(18446744073709551614.0), n(17.0)]));
        let fd = p("<d>f", &[n(1.5), n(-2.25)]).unwrap();
        assert_eq!(u("<d>f", &fd, 1), Ok(vec![n(1.5), n(-2.25), n(13.0)]));
        let big = p("<L", &[n(9223372036854775808.0)]).unwrap();
        assert_eq!(u("<l", &big, 1), Ok(vec![n(-9223372036854775808.0), n(9.0)]));
        let e = |fmt: &str, data: &[u8], pos: i64| u(fmt, data, pos).unwrap_err().text("unpack");
        assert_eq!(e("s", b"abc", 1), "unfinished string in data");
        assert_eq!(e("c0", b"abc", 1), "format 'c0' needs a previous size");
        assert_eq!(e("c0", b"12", 1), "format 'c0' needs a previous size");
        assert_eq!(e(">I2", b"a", 1), "bad argument #2 to 'unpack' (data string too short)");
        assert_eq!(e(">I2", b"abcd", 0), "bad argument #3 to 'unpack' (offset must be 1 or greater)");
        assert_eq!(e(">I2", b"abcd", -1), "bad argument #2 to 'unpack' (data string too short)");
        assert_eq!(e("z", b"abcd", 1), "bad argument #1 to 'unpack' (invalid format option 'z')");
    }

    #[test]
    fn sizes_as_redis() {
        assert_eq!(size(b"!4bi"), Ok(8));
        assert_eq!(size(b"<i8>dT!2hl"), Ok(34));
        assert_eq!(size(b"z"), Ok(0), "an unknown letter has no size and is not checked");
        assert_eq!(size(b"!"), Ok(0));
        let e = |fmt: &str| size(fmt.as_bytes()).unwrap_err().text("size");
        assert_eq!(e("s"), "bad argument #1 to 'size' (option 's' has no fixed size)");
        assert_eq!(e("c0"), "bad argument #1 to 'size' (option 'c0' has no fixed size)");
        assert_eq!(e("b!3"), "alignment 3 is not a power of 2");
        assert_eq!(e("b?"), "bad argument #1 to 'size' (invalid format option '?')");
    }
}
