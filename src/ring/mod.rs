//! Consistent hashing (paper section 4.2): keys are placed by the MD5 of the key, read as a
//! 128-bit big-endian position on the ring. Partitioning and preference lists come with the
//! cluster; the key position is already what storage orders keys by, so that every partition
//! (an equal-sized range of positions, Q a power of two) is one contiguous range on disk.

/// The ring position of `key`: its MD5 digest as a 128-bit big-endian number.
pub fn position(key: &[u8]) -> u128 {
    u128::from_be_bytes(md5::compute(key).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_is_md5_big_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(position(b""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }
}
