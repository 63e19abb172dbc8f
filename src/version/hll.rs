//! HyperLogLog (PFADD, PFCOUNT, PFMERGE) as Redis computes it: 16384 registers of the longest
//! run of zeros (plus one) seen in the 50 high bits of MurmurHash64A (seed 0xadc83b19) of an
//! element whose low 14 bits pick the register, and Ertl's improved estimator (Redis 5+). The
//! registers merge by maximum, so replicas' copies converge in any order: a natural CRDT.

use serde::{Deserialize, Serialize};

const P: u32 = 14;
const REGISTERS: usize = 1 << P;
const Q: u32 = 64 - P;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
/// Nonzero registers beyond which the dense form is smaller.
const SPARSE_MAX: usize = REGISTERS / 4;

/// Largest register: 6 bits, as in Redis's dense encoding (an element sets at most Q + 1).
const MAX_REGISTER: u8 = 63;

/// The registers: the nonzero ones by index while few are set, all of them after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Registers")]
pub enum Hll {
    Sparse(Vec<(u16, u8)>),
    Dense(Vec<u8>),
}

/// The stored form of [`Hll`], checked before it is one: a stored or received HyperLogLog
/// with a register over 6 bits, a dense one of another size, or sparse registers out of order
/// or range is refused when it decodes, not met by a panic when it is counted.
#[derive(Deserialize)]
enum Registers {
    Sparse(Vec<(u16, u8)>),
    Dense(Vec<u8>),
}

impl TryFrom<Registers> for Hll {
    type Error = &'static str;

    fn try_from(r: Registers) -> Result<Hll, &'static str> {
        match r {
            Registers::Sparse(v) => {
                let ordered = v.windows(2).all(|w| w[0].0 < w[1].0);
                let in_range = v.iter().all(|&(i, r)| usize::from(i) < REGISTERS && r <= MAX_REGISTER);
                if !ordered || !in_range {
                    return Err("HyperLogLog registers out of order or range");
                }
                Ok(Hll::Sparse(v))
            }
            Registers::Dense(d) => {
                if d.len() != REGISTERS || d.iter().any(|&r| r > MAX_REGISTER) {
                    return Err("HyperLogLog registers out of range");
                }
                Ok(Hll::Dense(d))
            }
        }
    }
}

impl Default for Hll {
    fn default() -> Self {
        Hll::Sparse(Vec::new())
    }
}

/// Redis's MurmurHash64A.
fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h: u64 = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element sets and the value it offers (Redis's `hllPatLen`).
fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

impl Hll {
    /// Every register, in index order: a sparse HLL spelled out (one pass, not a search per
    /// register).
    fn all_registers(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Hll::Dense(d) => std::borrow::Cow::Borrowed(d),
            Hll::Sparse(v) => {
                let mut d = vec![0u8; REGISTERS];
                for &(k, r) in v {
                    d[k as usize] = r;
                }
                std::borrow::Cow::Owned(d)
            }
        }
    }

    /// Raises register `i` to `value`; returns whether it changed.
    fn raise(&mut self, i: usize, value: u8) -> bool {
        match self {
            Hll::Dense(d) => {
                let changed = d[i] < value;
                d[i] = d[i].max(value);
                changed
            }
            Hll::Sparse(v) => {
                let changed = match v.binary_search_by_key(&(i as u16), |(k, _)| *k) {
                    Ok(j) if v[j].1 >= value => false,
                    Ok(j) => {
                        v[j].1 = value;
                        true
                    }
                    Err(j) => {
                        v.insert(j, (i as u16, value));
                        true
                    }
                };
                if v.len() > SPARSE_MAX {
                    let mut d = vec![0u8; REGISTERS];
                    for &(k, r) in v.iter() {
                        d[k as usize] = r;
                    }
                    *self = Hll::Dense(d);
                }
                changed
            }
        }
    }

    /// Adds an element (PFADD); returns whether a register changed.
    pub fn add(&mut self, element: &[u8]) -> bool {
        let (i, value) = pattern(element);
        self.raise(i, value)
    }

    /// The register-wise maximum: commutative, associative, idempotent.
    pub fn join(&self, other: &Hll) -> Hll {
        let mut out = self.clone();
        out.merge(other);
        out
    }

    pub fn merge(&mut self, other: &Hll) {
        match other {
            Hll::Sparse(v) => {
                for &(k, r) in v {
                    self.raise(k as usize, r);
                }
            }
            Hll::Dense(d) => {
                for (k, &r) in d.iter().enumerate().filter(|(_, r)| **r > 0) {
                    self.raise(k, r);
                }
            }
        }
    }

    /// The estimated number of distinct elements (Redis's `hllCount`).
    pub fn count(&self) -> u64 {
        let mut histogram = [0u32; 64];
        for &r in self.all_registers().iter() {
            histogram[usize::from(r)] += 1;
        }
        let m = REGISTERS as f64;
        let mut z = m * tau((m - f64::from(histogram[Q as usize + 1])) / m);
        for j in (1..=Q as usize).rev() {
            z += f64::from(histogram[j]);
            z *= 0.5;
        }
        z += m * sigma(f64::from(histogram[0]) / m);
        (ALPHA_INF * m * m / z).round() as u64
    }

    /// Redis's dense encoding (what GET of the key answers; SET of it elsewhere, PFADD on it
    /// there, work as in Redis): `HYLL`, the encoding byte (0: dense), 3 unused bytes, an
    /// invalid cached cardinality, then the registers, 6 bits each, little-endian.
    pub fn to_redis(&self) -> Vec<u8> {
        let mut out = vec![0u8; 16 + REGISTERS * 6 / 8];
        out[..4].copy_from_slice(b"HYLL");
        out[15] = 0x80; // the cached cardinality is not valid
        let regs = &mut out[16..];
        for (i, &r) in self.all_registers().iter().enumerate() {
            let v = u16::from(r) << ((i * 6) & 7);
            let byte = i * 6 / 8;
            regs[byte] |= v as u8;
            if let Some(next) = regs.get_mut(byte + 1) {
                *next |= (v >> 8) as u8;
            }
        }
        out
    }

    /// Reads Redis's encodings of a HyperLogLog (dense or sparse); `None` when `bytes` is not one
    /// (PFADD on it is then WRONGTYPE).
    pub fn from_redis(bytes: &[u8]) -> Option<Hll> {
        if bytes.len() < 16 || &bytes[..4] != b"HYLL" {
            return None;
        }
        let body = &bytes[16..];
        let mut hll = Hll::default();
        match bytes[4] {
            0 => {
                if body.len() != REGISTERS * 6 / 8 {
                    return None;
                }
                for i in 0..REGISTERS {
                    let (byte, shift) = (i * 6 / 8, (i * 6) & 7);
                    let lo = u16::from(body[byte]);
                    let hi = u16::from(body.get(byte + 1).copied().unwrap_or(0));
                    let v = (((hi << 8) | lo) >> shift) & 63;
                    if v > 0 {
                        hll.raise(i, v as u8);
                    }
                }
            }
            1 => {
                let (mut at, mut reg) = (0, 0usize);
                while at < body.len() {
                    let b = body[at];
                    if b & 0xc0 == 0 {
                        reg += usize::from(b & 0x3f) + 1; // ZERO
                        at += 1;
                    } else if b & 0xc0 == 0x40 {
                        let next = usize::from(*body.get(at + 1)?);
                        reg += ((usize::from(b & 0x3f) << 8) | next) + 1; // XZERO
                        at += 2;
                    } else {
                        let (value, run) = (((b >> 2) & 0x1f) + 1, usize::from(b & 3) + 1); // VAL
                        for r in reg..reg + run {
                            if r >= REGISTERS {
                                return None;
                            }
                            hll.raise(r, value);
                        }
                        reg += run;
                        at += 1;
                    }
                }
                if reg != REGISTERS {
                    return None;
                }
            }
            _ => return None,
        }
        Some(hll)
    }

    /// Bytes it takes, roughly.
    pub fn size(&self) -> usize {
        match self {
            Hll::Sparse(v) => 8 + 3 * v.len(),
            Hll::Dense(_) => REGISTERS,
        }
    }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_sets_count_exactly_and_adds_report_changes() {
        let mut h = Hll::default();
        assert_eq!(h.count(), 0);
        assert!(h.add(b"a"));
        assert!(!h.add(b"a"));
        h.add(b"b");
        h.add(b"c");
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn large_sets_estimate_within_two_percent_and_go_dense() {
        let mut h = Hll::default();
        for i in 0..100_000 {
            h.add(format!("element:{i}").as_bytes());
        }
        assert!(matches!(h, Hll::Dense(_)));
        let n = h.count() as f64;
        assert!((n - 100_000.0).abs() / 100_000.0 < 0.02, "{n}");
    }

    #[test]
    fn redis_encodings_round_trip() {
        let mut h = Hll::default();
        for i in 0..50 {
            h.add(format!("x{i}").as_bytes());
        }
        let dense = h.to_redis();
        assert_eq!(dense.len(), 16 + 12288);
        assert_eq!(Hll::from_redis(&dense), Some(h.clone()));
        // Redis's sparse form of an empty HLL: XZERO of 16384 registers.
        let mut sparse = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        sparse.extend_from_slice(&[0x7f, 0xff]);
        assert_eq!(Hll::from_redis(&sparse).map(|h| h.count()), Some(0));
        assert_eq!(Hll::from_redis(b"not an hll"), None);
    }

    /// Found by fuzzing (`fuzz/`, target `sibling_set`): a stored HyperLogLog with a register
    /// of 196 decoded, and PFCOUNT of it panicked (its histogram has 64 slots). Registers over
    /// 6 bits, dense forms of another size and sparse ones out of order or range no longer
    /// decode.
    #[test]
    fn registers_out_of_range_do_not_decode() {
        let decode = |h: &Hll| postcard::from_bytes::<Hll>(&postcard::to_stdvec(h).unwrap());
        assert!(decode(&Hll::Sparse(vec![(0, 196)])).is_err());
        assert!(decode(&Hll::Sparse(vec![(1, 1), (0, 1)])).is_err());
        assert!(decode(&Hll::Sparse(vec![(1, 1), (1, 2)])).is_err());
        assert!(decode(&Hll::Sparse(vec![(REGISTERS as u16, 1)])).is_err());
        assert!(decode(&Hll::Dense(vec![0; 16])).is_err());
        let mut dense = vec![0; REGISTERS];
        dense[7] = 64;
        assert!(decode(&Hll::Dense(dense.clone())).is_err());
        dense[7] = 63;
        assert_eq!(decode(&Hll::Dense(dense.clone())).ok().map(|h| h.count()), Some(Hll::Dense(dense).count()));
        let mut h = Hll::default();
        h.add(b"a");
        assert_eq!(decode(&h), Ok(h));
        // The fuzzer's input: a sibling set whose one value is that HyperLogLog.
        let found = [
            0xc4, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x00, 0x01, 0xf6, 0x7f, 0xc4, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02,
            0x00, 0x01, 0xf6, 0x01, 0x02, 0x00, 0x01, 0xf6, 0x7f, 0xc4, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x00, 0x01,
            0xf6, 0x7f, 0x02, 0x80, 0xd0, 0x95, 0x80, 0x31, 0x01, 0x00, 0x00, 0x01, 0xff, 0xcf, 0x95, 0xff, 0xbc, 0x31,
        ];
        if let Ok(set) = crate::version::SiblingSet::decode(&found) {
            for value in set.siblings().filter_map(|s| s.value.as_ref()) {
                if let crate::version::Value::Hll(h) = value {
                    h.count();
                }
            }
        }
    }

    proptest! {
        #[test]
        fn join_is_a_semilattice_and_counts_the_union(
            a in proptest::collection::vec(0u32..5000, 0..300),
            b in proptest::collection::vec(0u32..5000, 0..300),
        ) {
            let build = |xs: &[u32]| {
                let mut h = Hll::default();
                for x in xs { h.add(x.to_string().as_bytes()); }
                h
            };
            let (ha, hb) = (build(&a), build(&b));
            let union: Vec<u32> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(ha.join(&hb).count(), hb.join(&ha).count());
            prop_assert_eq!(ha.join(&hb).count(), build(&union).count());
            prop_assert_eq!(ha.join(&ha), ha.clone());
        }
    }
}
