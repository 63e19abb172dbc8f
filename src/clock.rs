//! The clock versions are stamped with and expiry is measured in: wall-clock milliseconds
//! since the Unix epoch (in unit tests it follows tokio's clock, so the simulation's paused
//! time moves it). Below every layer that stamps or compares times (`replica`, `peer`,
//! `cluster`, `coordinator`), so none of them imports it from another.

/// Milliseconds since the Unix epoch: the time new versions are stamped with (and expiry is
/// measured in).
pub fn now_ms() -> u64 {
    #[cfg(test)]
    {
        sim_clock_ms()
    }
    #[cfg(not(test))]
    {
        wall_clock_ms()
    }
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// In unit tests the wall clock follows tokio's: on a paused runtime (the simulation) it
/// moves with simulated time, so versions made one simulated second apart are stamped one
/// second apart; elsewhere tokio's clock is the real one.
#[cfg(test)]
fn sim_clock_ms() -> u64 {
    static START: std::sync::OnceLock<(u64, std::time::Instant)> = std::sync::OnceLock::new();
    let (wall, instant) = *START.get_or_init(|| (wall_clock_ms(), std::time::Instant::now()));
    let now: std::time::Instant = tokio::time::Instant::now().into_std();
    wall + now.saturating_duration_since(instant).as_millis() as u64
}
