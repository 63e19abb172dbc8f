//! Log-bucketed histograms of atomic counters, laid out as HdrHistogram lays its buckets out:
//! a value below `2^sub` has a bucket of its own; above, every power of two is split into
//! `2^sub` buckets of equal width, so a bucket's top is at most `2^-sub` above any value in it.
//! Recording is a relaxed add or two: no lock, no allocation, no clock. The admission
//! controller's trailing-second histogram (`admission.rs`, `sub` = 1) and the command latencies
//! of `metrics.rs` (`sub` = 4) use it.

use std::sync::atomic::{AtomicU64, Ordering};

/// The bucket of `v`: `v` itself below `2^sub`, then `2^sub` buckets per power of two.
pub const fn bucket(v: u64, sub: u32) -> usize {
    if v < (1 << sub) {
        return v as usize;
    }
    // v is in [2^log, 2^(log+1)), and log >= sub; its top `sub + 1` bits are the mantissa,
    // in [2^sub, 2^(sub+1)).
    let log = 63 - v.leading_zeros();
    let mantissa = v >> (log - sub);
    ((log - sub) as usize) * (1 << sub) + mantissa as usize
}

/// The largest value of bucket `b` (the inverse of [`bucket`]: `bucket(bucket_top(b)) == b`).
pub const fn bucket_top(b: usize, sub: u32) -> u64 {
    let per = 1usize << sub;
    if b < per {
        return b as u64;
    }
    let shift = (b / per - 1) as u32; // log - sub
    let mantissa = (b % per + per) as u64;
    ((mantissa + 1) << shift) - 1
}

/// The `q` quantile (0..=1) of `counts` (buckets of [`bucket`] with `sub`), as its bucket's
/// top: never below the true figure, at most `2^-sub` above it. `None` when `counts` is empty.
pub fn quantile(counts: &[u64], q: f64, sub: u32) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(bucket_top(b, sub));
        }
    }
    Some(bucket_top(counts.len() - 1, sub))
}

/// Sub-buckets per power of two of [`Histogram`]: 16, so a quantile is at most 6.25% high.
pub const SUB: u32 = 4;
/// [`Histogram`]'s buckets: every value below 2^40 (18 minutes in nanoseconds) has its own;
/// larger ones count in the last.
const BUCKETS: usize = bucket(1 << 40, SUB);

/// Copies of a [`Histogram`]'s counters, one per thread modulo this: two runtime workers
/// recording the same command do not pass its cache lines back and forth.
const SHARDS: usize = 4;
/// One shard's counters: the sum, then the buckets.
const SHARD_LEN: usize = BUCKETS + 1;

/// This thread's shard of every histogram.
fn shard() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// A histogram of `u64` values (latencies in nanoseconds, sibling counts) with their sum.
pub struct Histogram {
    /// [`SHARDS`] runs of [`SHARD_LEN`] counters.
    counters: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counters: (0..SHARDS * SHARD_LEN).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Histogram {
    pub fn record(&self, v: u64) {
        let shard = &self.counters[shard() * SHARD_LEN..][..SHARD_LEN];
        shard[0].fetch_add(v, Ordering::Relaxed);
        shard[1 + bucket(v, SUB).min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Its counts as they are now (each read on its own: a sample recorded meanwhile may be
    /// in the sum and not yet in the counts).
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot { counts: vec![0; BUCKETS], sum: 0 };
        for shard in self.counters.chunks(SHARD_LEN) {
            snapshot.sum = snapshot.sum.wrapping_add(shard[0].load(Ordering::Relaxed));
            for (total, c) in snapshot.counts.iter_mut().zip(&shard[1..]) {
                *total += c.load(Ordering::Relaxed);
            }
        }
        snapshot
    }

    /// Forgets every sample (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for c in self.counters.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    counts: Vec<u64>,
    pub sum: u64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (see [`quantile`]); `None` when it holds no sample.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        quantile(&self.counts, q, SUB)
    }

    /// The samples recorded since `earlier` (a snapshot of the same histogram). A reset in
    /// between makes a count smaller than before: that bucket is then taken as it is now.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let reset = self.counts.iter().zip(&earlier.counts).any(|(now, then)| now < then) || self.sum < earlier.sum;
        if reset || earlier.counts.len() != self.counts.len() {
            return self.clone();
        }
        Snapshot {
            counts: self.counts.iter().zip(&earlier.counts).map(|(now, then)| now - then).collect(),
            sum: self.sum - earlier.sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_2_to_the_sub_then_split_each_power_of_two() {
        for sub in [1, 4] {
            for v in 0..(1u64 << sub) {
                assert_eq!(bucket(v, sub), v as usize);
            }
            let mut last = 0;
            for v in 1..5000u64 {
                let b = bucket(v, sub);
                assert!(b == last || b == last + 1, "buckets are contiguous: {v} in {b} after {last}");
                last = b;
                let top = bucket_top(b, sub);
                assert!(top >= v, "the top of {v}'s bucket is {top}");
                assert_eq!(bucket(top, sub), b);
                assert_eq!(bucket(top + 1, sub), b + 1, "{top} is the bucket's largest value");
                // At most 2^-sub above the value.
                assert!((top - v) as f64 <= v as f64 / f64::from(1u32 << sub), "{v} -> {top}");
            }
        }
        // The admission controller's layout (two buckets per power of two).
        assert_eq!([2, 3, 4, 5, 6, 7, 8].map(|v| bucket(v, 1)), [2, 3, 4, 4, 5, 5, 6]);
        assert_eq!(bucket_top(4, 1), 5);
    }

    #[test]
    fn quantiles_are_their_bucket_tops() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile(0.5), None);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        assert_eq!(s.sum, 1000 * 1001 / 2 * 1000);
        for (q, exact) in [(0.5, 500_000u64), (0.99, 990_000), (0.999, 999_000), (1.0, 1_000_000)] {
            let got = s.quantile(q).unwrap();
            assert!(got >= exact && (got - exact) as f64 <= exact as f64 / 16.0, "p{q}: {got} vs {exact}");
        }
        h.record(u64::MAX);
        assert_eq!(h.snapshot().count(), 1001, "a huge value counts in the last bucket");
    }

    #[test]
    fn since_takes_the_samples_in_between_and_survives_a_reset() {
        let h = Histogram::default();
        for _ in 0..10 {
            h.record(5);
        }
        let before = h.snapshot();
        for _ in 0..3 {
            h.record(700);
        }
        let window = h.snapshot().since(&before);
        assert_eq!((window.count(), window.sum), (3, 2100));
        assert_eq!(window.quantile(0.5), Some(bucket_top(bucket(700, SUB), SUB)));
        h.reset();
        h.record(9);
        let after_reset = h.snapshot().since(&before);
        assert_eq!((after_reset.count(), after_reset.sum), (1, 9));
    }
}
