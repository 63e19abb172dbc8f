//! Every random choice kura makes (node ids, incarnations, gossip partners, nonces) comes
//! from here. In a running node it is the thread's OS-seeded generator; in unit tests a thread
//! may seed it ([`seed`]) so that a simulation schedule makes the same choices every run.

use rand::{Rng, RngCore};

#[cfg(test)]
thread_local! {
    static SEEDED: std::cell::RefCell<Option<rand::rngs::StdRng>> = const { std::cell::RefCell::new(None) };
}

/// Makes this thread's random choices follow `seed` from now on (tests only).
#[cfg(test)]
pub fn seed(seed: u64) {
    use rand::SeedableRng;
    SEEDED.with(|s| *s.borrow_mut() = Some(rand::rngs::StdRng::seed_from_u64(seed)));
}

fn with<T>(f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
    #[cfg(test)]
    {
        let seeded = SEEDED.with(|s| s.borrow_mut().as_mut().map(|rng| rng.next_u64()));
        if let Some(x) = seeded {
            use rand::SeedableRng;
            return f(&mut rand::rngs::StdRng::seed_from_u64(x));
        }
    }
    f(&mut rand::thread_rng())
}

/// A random 64-bit number.
pub fn u64() -> u64 {
    with(|rng| rng.next_u64())
}

/// Fills `bytes` with random bytes.
pub fn fill(bytes: &mut [u8]) {
    with(|rng| rng.fill_bytes(bytes));
}

/// A random element of `items`.
pub fn choose<T>(items: &[T]) -> Option<&T> {
    if items.is_empty() {
        return None;
    }
    Some(&items[with(|rng| rng.gen_range(0..items.len()))])
}
