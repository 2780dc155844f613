//! The clock the engine reads: wall time in production, tokio's (pausable) time in tests, so
//! that the engine's timers can be tested without waiting for them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as the scheduler is fed with.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// Wall time at its creation plus the time tokio has seen pass since: under
/// `tokio::time::pause` it moves only as the runtime's timers do, instantly.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self::starting_at(now_ms())
    }

    /// A clock that reads `origin_ms` now (tests of a schedule at a chosen moment).
    pub fn starting_at(origin_ms: u64) -> Self {
        TokioClock {
            origin_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.origin_ms + self.start.elapsed().as_millis() as u64
    }
}

/// The wall clock, read once.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
