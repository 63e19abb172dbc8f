//! LZF (Marc Lehmann's liblzf 3.6, the compressor Redis's RDB strings use).
//!
//! [`compress`] makes the same bytes as liblzf 3.6's `lzf_compress` built with its defaults
//! (`HLOG` 16, `VERY_FAST`, hash-table slots holding offsets) when its hash table starts empty
//! (liblzf leaves it uninitialised; a slot left over from an earlier call can only turn a
//! literal into an equally valid back reference), including where it gives up: a
//! `redis-server` that DUMPs a compressible string and kura DUMPing the same string agree byte
//! for byte. [`decompress`] reads any valid LZF stream and refuses a corrupt one without ever
//! writing past the length it was told.

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The hash of the three bytes whose first two are in `h`'s bits 8..24 (`VERY_FAST`'s `IDX`).
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) & (HSIZE as u32 - 1)) as usize
}

/// `input` compressed into at most `out_len` bytes, or `None` when liblzf would give up (its
/// output would not fit, by its own conservative tests).
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len < 3 || out_len == 0 {
        // liblzf reads two bytes before its loop; Redis never compresses 20 bytes or fewer.
        return None;
    }
    // Offsets into `input` (0: empty; liblzf never matches at offset 0 either).
    let mut htab = vec![0u32; HSIZE];
    // Room for the at most 3 bytes the tail may write past `out_len` (as liblzf checks).
    let mut out = vec![0u8; out_len + 4];
    let mut op = 1usize; // start run
    let mut lit = 0usize;
    let mut ip = 0usize;
    let mut hval: u32 = (u32::from(input[0]) << 8) | u32::from(input[1]);
    while ip < in_len - 2 {
        hval = (hval << 8) | u32::from(input[ip + 2]);
        let slot = idx(hval);
        let reference = htab[slot] as usize;
        htab[slot] = ip as u32;
        let off = ip.wrapping_sub(reference).wrapping_sub(1);
        if off < MAX_OFF && reference > 0 && input[reference..reference + 3] == input[ip..ip + 3] {
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            // first a faster conservative test, then the exact one
            if op + 3 + 1 >= out_len && op - usize::from(lit == 0) + 3 + 1 >= out_len {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
            op -= usize::from(lit == 0); // undo run if length is zero
            'matching: {
                // liblzf compares 16 bytes unrolled first (which may run past maxlen).
                if maxlen > 16 {
                    for _ in 0..16 {
                        len += 1;
                        if input[reference + len] != input[ip + len] {
                            break 'matching;
                        }
                    }
                }
                loop {
                    len += 1;
                    if !(len < maxlen && input[reference + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2; // len is now #octets - 1
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 2; // start run
            lit = 0;
            ip += len + 1;
            if ip >= in_len - 2 {
                break;
            }
            ip -= 2;
            hval = (u32::from(input[ip]) << 8) | u32::from(input[ip + 1]);
            for _ in 0..2 {
                hval = (hval << 8) | u32::from(input[ip + 2]);
                htab[idx(hval)] = ip as u32;
                ip += 1;
            }
        } else {
            // one more literal byte we must copy
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
                lit = 0;
                op += 1; // start run
            }
        }
    }
    if op + 3 > out_len {
        return None; // at most 3 bytes can be missing here
    }
    while ip < in_len {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit as u8).wrapping_sub(1);
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1); // end run
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

/// The `len` bytes that `input` decompresses to, or `None` when it does not decompress to
/// exactly that many (a reference before the start, a run past the end of either buffer).
/// The output never grows past what `input` actually produces, whatever `len` claims.
pub fn decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    // A back reference of 3 bytes makes at most 264: no honest stream says more than that.
    let mut out = Vec::with_capacity(len.min(input.len().saturating_mul(88)));
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < (1 << 5) {
            let run = ctrl + 1;
            if out.len() + run > len || ip + run > input.len() {
                return None;
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
        } else {
            let mut run = ctrl >> 5;
            let back = (ctrl & 0x1f) << 8;
            if run == 7 {
                run += usize::from(*input.get(ip)?);
                ip += 1;
            }
            let back = back + usize::from(*input.get(ip)?) + 1;
            ip += 1;
            let run = run + 2;
            if out.len() + run > len || back > out.len() {
                return None;
            }
            // The reference may overlap what it writes (a run of one byte repeated).
            let from = out.len() - back;
            for i in 0..run {
                let b = out[from + i];
                out.push(b);
            }
        }
    }
    (out.len() == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What redis-server 7.0.15 (Debian's, linked to liblzf 3.6) DUMPed for `SET k <50 a's>`:
    /// `c3 09 32` then these 9 bytes.
    #[test]
    fn compresses_as_liblzf_does() {
        let fifty = vec![b'a'; 50];
        let out = compress(&fifty, 46).expect("compressible");
        assert_eq!(out, [0x01, 0x61, 0x61, 0xe0, 0x25, 0x00, 0x01, 0x61, 0x61]);
        assert_eq!(decompress(&out, 50).as_deref(), Some(&fifty[..]));
    }

    #[test]
    fn incompressible_input_gives_up() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789abcdefghij";
        assert_eq!(compress(text, text.len() - 4), None);
    }

    #[test]
    fn round_trips() {
        let mut state = 12345u64;
        for n in [21usize, 40, 100, 1000, 10_000, 70_000] {
            let data: Vec<u8> = (0..n)
                .map(|i| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    if i % 7 < 4 {
                        b"abcabcab"[i % 8]
                    } else {
                        (state >> 59) as u8
                    }
                })
                .collect();
            if let Some(c) = compress(&data, n - 4) {
                assert!(c.len() <= n - 4);
                assert_eq!(decompress(&c, n).as_deref(), Some(&data[..]), "{n}");
            }
        }
    }

    #[test]
    fn corrupt_streams_are_refused() {
        // A reference before the start.
        assert_eq!(decompress(&[0x20, 0x05], 3), None);
        // A literal run past the input.
        assert_eq!(decompress(&[0x05, b'a'], 6), None);
        // More output than announced, or less.
        assert_eq!(decompress(&[0x01, b'a', b'b'], 1), None);
        assert_eq!(decompress(&[0x01, b'a', b'b'], 3), None);
        // A long reference cut short.
        assert_eq!(decompress(&[0x00, b'a', 0xe0], 100), None);
        // A huge claimed length allocates nothing: the output is what the input makes.
        assert_eq!(decompress(&[0x00, b'a'], usize::MAX), None);
    }
}
