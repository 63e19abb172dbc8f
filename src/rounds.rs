//! The wait every periodic background loop starts its round with: the next tick, or the
//! node stopping.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{interval, Interval};

pub struct Rounds {
    tick: Interval,
    stop: watch::Receiver<bool>,
}

impl Rounds {
    /// Rounds `period` apart (the first at once) until `stop` turns true.
    pub fn every(period: Duration, stop: watch::Receiver<bool>) -> Rounds {
        Rounds { tick: interval(period), stop }
    }

    /// Waits for the next round; `false` once the node is stopping (the loop should end).
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => true,
            _ = self.stop.changed() => false,
        }
    }
}
