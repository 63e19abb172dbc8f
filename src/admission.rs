//! Admission control of background work (paper section 6.5): "each of the background tasks
//! uses this controller to reserve runtime slices of the resource ... A feedback mechanism based
//! on the monitored performance of the foreground tasks is employed to change the number of
//! slices that are available to the background tasks."
//!
//! Foreground: every client command on keys that does not block records its latency here (a few
//! relaxed atomic adds, no lock) into a histogram of the trailing second, kept as four slices of
//! 250 ms that are reused in turn.
//!
//! Background: partition transfers, anti-entropy exchanges, hint delivery, reaping and the
//! flush purge ask a [`Gate`] before each unit of their work (a batch, an exchange). While the
//! foreground's trailing p99 is above the target (`--background-p99-ms`), the unit waits: 10 ms, then
//! twice as long each time in a row the foreground is still over, up to 250 ms. It then runs
//! anyway, so background work slows down under foreground load but never stops: a transfer
//! or a repair still finishes on a machine that is busy all the time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::histogram;

const SLICE_MS: u64 = 250;
const SLICES: usize = 4;
/// Latency buckets: two per power of two of microseconds, up to 2^24 µs (16 s).
const SUB: u32 = 1;
const BUCKETS: usize = 48;
/// Fewer foreground commands than this in the window: the foreground is idle, nothing waits.
const MIN_SAMPLES: u64 = 100;
/// `--background-p99-ms`'s default.
pub const DEFAULT_TARGET: Duration = Duration::from_millis(10);
const FIRST_WAIT: Duration = Duration::from_millis(10);
const MAX_WAIT: Duration = Duration::from_millis(250);

/// One slice of the trailing window: which slice of time it holds (`stamp`), and its counts.
struct Slice {
    stamp: AtomicU64,
    counts: [AtomicU32; BUCKETS],
}

/// The foreground latency monitor and the background work's gate keeper of one node.
pub struct Admission {
    /// The foreground p99 above which background work waits, in µs (0: it never waits).
    target_us: AtomicU64,
    /// Where time is measured from (slice numbers).
    origin: Instant,
    slices: [Slice; SLICES],
    /// Background units that waited, and for how long in all (INFO, metrics).
    pub waits: AtomicU64,
    pub waited_us: AtomicU64,
}

/// The bucket of a latency of `us` microseconds: two per power of two (`histogram.rs`).
fn bucket(us: u64) -> usize {
    histogram::bucket(us, SUB).min(BUCKETS - 1)
}

/// The `q` quantile (0..1) of a histogram, as its bucket's top (at most half above the true
/// figure, never below); `None` when it holds fewer than [`MIN_SAMPLES`].
fn quantile(counts: &[u64; BUCKETS], q: f64) -> Option<u64> {
    if counts.iter().sum::<u64>() < MIN_SAMPLES {
        return None;
    }
    histogram::quantile(counts, q, SUB)
}

/// How long a unit of background work waits, given the foreground's trailing p99 (`None`: too
/// few requests to tell), the target, and how many units in a row found it over the target
/// before this one.
pub fn wait_for(p99_us: Option<u64>, target_us: u64, over_before: u32) -> Duration {
    match p99_us {
        Some(p99) if target_us > 0 && p99 > target_us => {
            FIRST_WAIT.saturating_mul(1u32 << over_before.min(16)).min(MAX_WAIT)
        }
        _ => Duration::ZERO,
    }
}

impl Admission {
    /// A controller that holds background work back while the foreground p99 is above `target`
    /// (`Duration::ZERO`: never).
    pub fn new(target: Duration) -> Admission {
        Admission {
            target_us: AtomicU64::new(target.as_micros() as u64),
            origin: Instant::now(),
            slices: std::array::from_fn(|_| Slice {
                stamp: AtomicU64::new(u64::MAX),
                counts: std::array::from_fn(|_| AtomicU32::new(0)),
            }),
            waits: AtomicU64::new(0),
            waited_us: AtomicU64::new(0),
        }
    }

    pub fn set_target(&self, target: Duration) {
        self.target_us.store(target.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn target(&self) -> Duration {
        Duration::from_micros(self.target_us.load(Ordering::Relaxed))
    }

    fn slice_number(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64 / SLICE_MS
    }

    /// Records a foreground command that ended at `at` after `took`.
    pub fn record(&self, at: Instant, took: Duration) {
        let n = self.slice_number(at);
        let slice = &self.slices[(n % SLICES as u64) as usize];
        let stamp = slice.stamp.load(Ordering::Relaxed);
        if stamp != n {
            // The first recorder in a new slice of time empties it. One that races with it may
            // lose a count or two: this is a control signal, not a metric.
            if stamp > n && stamp != u64::MAX {
                return; // a slice newer than `at` (a late recorder): drop the sample
            }
            if slice.stamp.compare_exchange(stamp, n, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                for c in &slice.counts {
                    c.store(0, Ordering::Relaxed);
                }
            }
        }
        slice.counts[bucket(took.as_micros() as u64)].fetch_add(1, Ordering::Relaxed);
    }

    /// The foreground's p99 over the trailing second at `now`, in µs (`None`: too few commands).
    pub fn p99_us(&self, now: Instant) -> Option<u64> {
        let n = self.slice_number(now);
        let mut counts = [0u64; BUCKETS];
        for slice in &self.slices {
            let stamp = slice.stamp.load(Ordering::Relaxed);
            if stamp == u64::MAX || stamp > n || n - stamp >= SLICES as u64 {
                continue;
            }
            for (sum, c) in counts.iter_mut().zip(&slice.counts) {
                *sum += u64::from(c.load(Ordering::Relaxed));
            }
        }
        quantile(&counts, 0.99)
    }

    /// A gate for one background task (each task backs off on its own).
    pub fn gate(self: &Arc<Self>) -> Gate {
        Gate { admission: self.clone(), over: 0 }
    }
}

/// One background task's way through [`Admission`].
pub struct Gate {
    admission: Arc<Admission>,
    /// Units in a row that found the foreground over its target.
    over: u32,
}

impl Gate {
    /// Waits, if the foreground is over its target, before one unit of background work.
    pub async fn admit(&mut self) {
        let wait = self.wait();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// [`Gate::admit`] for work on a blocking thread.
    pub fn admit_blocking(&mut self) {
        let wait = self.wait();
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    fn wait(&mut self) -> Duration {
        let a = &self.admission;
        let wait = wait_for(a.p99_us(Instant::now()), a.target_us.load(Ordering::Relaxed), self.over);
        if wait.is_zero() {
            self.over = 0;
        } else {
            self.over = self.over.saturating_add(1);
            a.waits.fetch_add(1, Ordering::Relaxed);
            a.waited_us.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
            metrics::counter!(crate::metrics::BACKGROUND_WAITS_TOTAL).increment(1);
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_top(b: usize) -> u64 {
        histogram::bucket_top(b, SUB)
    }

    #[test]
    fn buckets_hold_their_latencies_and_tops_are_their_largest() {
        for us in [0u64, 1, 2, 3, 4, 5, 6, 7, 8, 100, 1000, 1500, 1535, 1536, 4095, 10_000, 1 << 22] {
            let b = bucket(us);
            assert!(bucket_top(b) >= us, "{us} µs in bucket {b} whose top is {}", bucket_top(b));
            if b > 0 {
                assert!(bucket_top(b - 1) < us, "{us} µs belongs in an earlier bucket than {b}");
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        // Tops overstate by at most half of the bucket's lower bound.
        assert_eq!(bucket_top(bucket(1024)), 1535);
        assert_eq!(bucket_top(bucket(1536)), 2047);
    }

    #[test]
    fn p99_of_the_trailing_second_only() {
        let a = Admission::new(Duration::from_millis(10));
        let t0 = a.origin;
        assert_eq!(a.p99_us(t0), None, "no commands: idle");
        // 990 fast commands and 10 slow ones in the first slice: the p99 is a fast one.
        for _ in 0..990 {
            a.record(t0, Duration::from_micros(100));
        }
        for _ in 0..10 {
            a.record(t0, Duration::from_millis(50));
        }
        let p99 = a.p99_us(t0).unwrap();
        assert!((100..150).contains(&p99), "{p99}");
        // 20 more slow ones half a second later: now 30 of 1020 are slow.
        let t1 = t0 + Duration::from_millis(500);
        for _ in 0..20 {
            a.record(t1, Duration::from_millis(50));
        }
        let p99 = a.p99_us(t1).unwrap();
        assert!((50_000..70_000).contains(&p99), "{p99}");
        // A second after the first slice it has left the window: 20 samples, too few.
        assert_eq!(a.p99_us(t0 + Duration::from_millis(1000)), None);
        // And once every slice is stale, the window is empty; a slice is reused when time
        // comes round to it, emptied first.
        let later = t0 + Duration::from_millis(2000);
        assert_eq!(a.p99_us(later), None);
        for _ in 0..200 {
            a.record(later, Duration::from_micros(10));
        }
        assert!(a.p99_us(later).unwrap() < 20);
    }

    #[test]
    fn background_waits_only_while_the_foreground_is_over_target_and_never_long() {
        let target = 10_000;
        assert_eq!(wait_for(None, target, 0), Duration::ZERO, "idle foreground");
        assert_eq!(wait_for(Some(9_000), target, 5), Duration::ZERO);
        assert_eq!(wait_for(Some(20_000), 0, 0), Duration::ZERO, "target 0: never waits");
        assert_eq!(wait_for(Some(20_000), target, 0), FIRST_WAIT);
        assert_eq!(wait_for(Some(20_000), target, 1), FIRST_WAIT * 2);
        assert_eq!(wait_for(Some(20_000), target, 3), FIRST_WAIT * 8);
        assert_eq!(wait_for(Some(20_000), target, 10), MAX_WAIT);
        assert_eq!(wait_for(Some(20_000), target, u32::MAX), MAX_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_backs_off_while_over_and_resets_when_under() {
        let a = Arc::new(Admission::new(Duration::from_millis(1)));
        let mut gate = a.gate();
        let start = tokio::time::Instant::now();
        gate.admit().await;
        assert_eq!(tokio::time::Instant::now(), start, "idle: no wait");
        let now = Instant::now();
        for _ in 0..200 {
            a.record(now, Duration::from_millis(5));
        }
        gate.admit().await;
        gate.admit().await;
        assert_eq!(tokio::time::Instant::now() - start, FIRST_WAIT * 3);
        assert_eq!(a.waits.load(Ordering::Relaxed), 2);
        a.set_target(Duration::from_millis(50));
        gate.admit().await;
        assert_eq!(gate.over, 0);
    }
}
