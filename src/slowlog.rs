//! The slow log (`SLOWLOG GET/LEN/RESET`): the last `slowlog-max-len` requests that took at
//! least `slowlog-log-slower-than` microseconds (a negative threshold turns it off, 0 logs
//! every request), newest first, with Redis's truncation of long requests (32 arguments, 128
//! bytes each). Both settings change at run time with CONFIG SET.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

/// One logged request.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: u64,
    pub unix_secs: u64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub client_addr: String,
    pub client_name: String,
}

pub struct SlowLog {
    pub slower_than_us: AtomicI64,
    pub max_len: AtomicUsize,
    entries: Mutex<(u64, VecDeque<Entry>)>,
}

const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog { slower_than_us: AtomicI64::new(10_000), max_len: AtomicUsize::new(128), entries: Mutex::default() }
    }
}

impl SlowLog {
    /// Whether a request that took `micros` belongs in the log.
    pub fn is_slow(&self, micros: u64) -> bool {
        let t = self.slower_than_us.load(Ordering::Relaxed);
        t >= 0 && micros >= t as u64
    }

    /// Logs a request that [`SlowLog::is_slow`] said is.
    pub fn record(&self, micros: u64, args: &[Bytes], client_addr: String, client_name: String) {
        let mut kept: Vec<Bytes> = args.iter().take(MAX_ARGS).map(truncate).collect();
        if args.len() > MAX_ARGS {
            kept[MAX_ARGS - 1] = Bytes::from(format!("... ({} more arguments)", args.len() - MAX_ARGS + 1));
        }
        let unix_secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let max = self.max_len.load(Ordering::Relaxed);
        let mut e = self.entries.lock();
        let id = e.0;
        e.0 += 1;
        e.1.push_front(Entry { id, unix_secs, micros, args: kept, client_addr, client_name });
        e.1.truncate(max);
    }

    /// The newest `count` entries (all with `None`).
    pub fn get(&self, count: Option<usize>) -> Vec<Entry> {
        let e = self.entries.lock();
        e.1.iter().take(count.unwrap_or(usize::MAX)).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().1.clear();
    }

    /// Applies a new `slowlog-max-len` to what is kept.
    pub fn set_max_len(&self, max: usize) {
        self.max_len.store(max, Ordering::Relaxed);
        self.entries.lock().1.truncate(max);
    }
}

fn truncate(arg: &Bytes) -> Bytes {
    if arg.len() <= MAX_ARG_BYTES {
        return arg.clone();
    }
    let mut b = BytesMut::from(&arg[..MAX_ARG_BYTES]);
    b.extend_from_slice(format!("... ({} more bytes)", arg.len() - MAX_ARG_BYTES).as_bytes());
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_truncates_like_redis() {
        let log = SlowLog::default();
        log.slower_than_us.store(0, Ordering::Relaxed);
        log.set_max_len(2);
        for i in 0..3 {
            log.record(i, &[Bytes::from(format!("cmd{i}"))], "a".into(), String::new());
        }
        let got = log.get(None);
        assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2, 1]);
        let long: Vec<Bytes> = (0..40).map(|_| Bytes::from("x".repeat(200))).collect();
        log.record(1, &long, "a".into(), String::new());
        let e = &log.get(Some(1))[0];
        assert_eq!(e.args.len(), 32);
        assert_eq!(e.args[31], Bytes::from("... (9 more arguments)"));
        assert!(e.args[0].ends_with(b"... (72 more bytes)"));
        log.slower_than_us.store(-1, Ordering::Relaxed);
        assert!(!log.is_slow(1_000_000));
    }
}
