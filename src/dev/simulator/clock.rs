//! Where the simulator reads the time of day: the wall clock, or a hand-driven one a test sets.
//!
//! Binance counts request weight per calendar minute and serves no trade from the future, so
//! that venue's answers depend on the time; a test that must cross a minute, wait out a ban or
//! ask for "the most recent trades" sets the time instead of sleeping for it. Both venues'
//! listings (`exchangeInfo`, `returnTicker`) go by it too: the last 24 hours, and whether a
//! delisted pair has stopped yet. The Poloniex venue measures its one-second windows with
//! `Instant`s and never reads this clock for them.
//!
//! It must never go backwards by itself: only a test moves a manual clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The simulator's time, in unix milliseconds.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's clock.
    #[default]
    Wall,
    /// A test's: it stands still until the test moves it.
    Manual(ManualClock),
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::Wall => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            Clock::Manual(clock) => clock.now_ms(),
        }
    }
}

/// A clock a test sets; clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// Stands at `unix_ms`.
    pub fn new(unix_ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(unix_ms)))
    }

    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set_ms(&self, unix_ms: i64) {
        self.0.store(unix_ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl From<ManualClock> for Clock {
    fn from(clock: ManualClock) -> Clock {
        Clock::Manual(clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_share_it() {
        let clock = ManualClock::new(1_000);
        let shared = Clock::from(clock.clone());
        assert_eq!(shared.now_ms(), 1_000);
        clock.advance_ms(59_500);
        assert_eq!(shared.now_ms(), 60_500);
        clock.set_ms(7);
        assert_eq!(shared.now_ms(), 7);
    }

    #[test]
    fn the_wall_clock_is_unix_milliseconds() {
        // 2020-01-01 and 2200-01-01: milliseconds, not seconds or microseconds.
        let now = Clock::Wall.now_ms();
        assert!(
            (1_577_836_800_000..7_258_118_400_000).contains(&now),
            "{now}"
        );
    }
}
