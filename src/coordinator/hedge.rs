//! Hedged reads (issue 23; DynamoDB's request routers, Cassandra's speculative retry): a read
//! asks only as many replicas as R needs, and one more when an answer is later than the 99th
//! percentile of recent answers, or fails. The paper (4.5) asks all N and waits for R; the
//! replicas beyond R then each serve every read for nothing but a chance to be repaired. Here
//! one read in [`FULL_READ_EVERY`] still asks every replica, so a stale replica that is up is
//! still found and repaired by reads (anti-entropy repairs the rest, paper 4.7).
//!
//! The percentile is kept by stochastic approximation (the "frugal" streaming quantile): the
//! estimate moves up by a step when an answer is later than it, and down by a 99th of a step
//! when not, so it settles where 1% of answers are later. Lock-free and constant-size; racing
//! updates lose a step, which does not matter for an estimate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One read in this many asks every replica (read repair's chance to meet a stale one).
pub const FULL_READ_EVERY: u64 = 8;

/// The estimate never goes below this: below it a hedge costs more than it saves.
const FLOOR_US: u64 = 200;

/// Where the estimate starts (before any answer was seen).
const START_US: u64 = 5_000;

/// The 99th percentile of recent answer times, and the count of reads.
#[derive(Debug)]
pub struct Hedge {
    p99_us: AtomicU64,
    reads: AtomicU64,
}

impl Default for Hedge {
    fn default() -> Self {
        Hedge { p99_us: AtomicU64::new(START_US), reads: AtomicU64::new(0) }
    }
}

impl Hedge {
    /// Counts a read; whether it is one that asks every replica.
    pub fn full_read(&self) -> bool {
        self.reads.fetch_add(1, Ordering::Relaxed).is_multiple_of(FULL_READ_EVERY)
    }

    /// A replica answered after `took`.
    pub fn observe(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let est = self.p99_us.load(Ordering::Relaxed);
        // A step of 1/16 of the estimate: fast to follow a change of load, fine enough to hold.
        let step = (est / 16).max(1);
        let next = if took > est { est.saturating_add(step) } else { est.saturating_sub((step / 99).max(1)) };
        self.p99_us.store(next.max(FLOOR_US), Ordering::Relaxed);
    }

    /// How long a read waits for an answer before it asks one more replica: the estimate, at
    /// most `cap` (the sloppy-quorum wait).
    pub fn after(&self, cap: Duration) -> Duration {
        Duration::from_micros(self.p99_us.load(Ordering::Relaxed)).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Fed answer times of a known distribution, the estimate settles near its 99th
    /// percentile, and follows it when the load changes (`KURA_SIM_SEED` repeats a seed).
    #[test]
    fn the_estimate_settles_at_the_99th_percentile() {
        let seed = std::env::var("KURA_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(crate::random::u64);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let h = Hedge::default();
        // Uniform over 0..10 ms: the 99th percentile is 9.9 ms.
        let feed = |h: &Hedge, rng: &mut rand::rngs::StdRng, max_us: u64, n: usize| {
            for _ in 0..n {
                h.observe(Duration::from_micros(rng.gen_range(0..max_us)));
            }
        };
        feed(&h, &mut rng, 10_000, 200_000);
        let p99 = h.after(Duration::from_secs(1)).as_micros();
        assert!((9_000..=10_500).contains(&p99), "seed {seed}: {p99} µs for a p99 of 9,900");
        // Ten times faster answers: it comes down to about 990 µs.
        feed(&h, &mut rng, 1_000, 400_000);
        let p99 = h.after(Duration::from_secs(1)).as_micros();
        assert!((850..=1_100).contains(&p99), "seed {seed}: {p99} µs for a p99 of 990");
        // Never below the floor, never above the cap.
        feed(&h, &mut rng, 1, 100_000);
        assert_eq!(h.after(Duration::from_secs(1)), Duration::from_micros(FLOOR_US));
        assert_eq!(h.after(Duration::from_micros(50)), Duration::from_micros(50));
    }

    #[test]
    fn one_read_in_so_many_asks_every_replica() {
        let h = Hedge::default();
        let full = (0..FULL_READ_EVERY * 10).filter(|_| h.full_read()).count();
        assert_eq!(full, 10);
    }
}
