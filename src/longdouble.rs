//! INCRBYFLOAT's arithmetic as Redis does it: C `long double`s (80-bit on x86-64), parsed with
//! Redis's `string2ld` rules and printed with `%.17Lf`, trailing zeros trimmed
//! (`src/c/longdouble.c`, the same libc calls). An f64 or an exact decimal prints other digits:
//! Redis answers `300.10000000000000001` for `0.1 + 300`.

use bytes::Bytes;

extern "C" {
    fn kura_is_long_double(s: *const u8, slen: usize) -> i32;
    fn kura_add_long_doubles(a: *const u8, alen: usize, b: *const u8, blen: usize, out: *mut u8, cap: usize) -> i64;
}

/// Why a sum could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum FloatError {
    NotFloat,
    NanOrInfinity,
}

/// Whether `text` is a float as Redis reads one (no spaces, no NaN, in range).
pub fn is_float(text: &[u8]) -> bool {
    // SAFETY: the C function reads exactly `text.len()` bytes of `text`.
    unsafe { kura_is_long_double(text.as_ptr(), text.len()) == 1 }
}

/// `a + b` as Redis's INCRBYFLOAT prints it.
///
/// # Errors
/// Either is not a float, or the sum is not finite.
pub fn add(a: &[u8], b: &[u8]) -> Result<Bytes, FloatError> {
    let mut out = vec![0u8; 5 * 1024 + 64];
    // SAFETY: the C function reads `alen`/`blen` bytes of `a`/`b` and writes at most `cap`
    // bytes (NUL included) into `out`.
    let n = unsafe { kura_add_long_doubles(a.as_ptr(), a.len(), b.as_ptr(), b.len(), out.as_mut_ptr(), out.len()) };
    match n {
        -1 => Err(FloatError::NotFloat),
        -2 | -3 => Err(FloatError::NanOrInfinity),
        n => {
            out.truncate(n as usize);
            Ok(Bytes::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_as_redis_prints_them() {
        let sum = |a: &str, b: &str| add(a.as_bytes(), b.as_bytes()).map(|s| String::from_utf8(s.to_vec()).unwrap());
        assert_eq!(sum("10.5", "0.1").unwrap(), "10.6");
        assert_eq!(sum("300", "0.1").unwrap(), "300.10000000000000001");
        assert_eq!(sum("0", "3e2").unwrap(), "300");
        assert_eq!(sum("-9223372036854775807", "10").unwrap(), "-9223372036854775797");
        assert_eq!(sum("-0.5", "0.5").unwrap(), "0");
        assert_eq!(sum("x", "1"), Err(FloatError::NotFloat));
        assert_eq!(sum(" 1", "1"), Err(FloatError::NotFloat));
        assert_eq!(sum("-1\0x", "1"), Err(FloatError::NotFloat), "an embedded NUL ends no float");
        assert_eq!(sum("1", "inf"), Err(FloatError::NanOrInfinity));
        assert!(!is_float(b"nan") && !is_float(b"") && is_float(b"1e5"));
    }
}
