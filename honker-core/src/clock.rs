//! Time, in milliseconds since the Unix epoch, behind a trait so tests can
//! move it by hand.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of "now" in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Is this the system's wall clock (the default)? A database server
    /// then keeps the time instead (PostgreSQL: leases, locks and schedules
    /// by the server's clock, so hosts whose clocks differ agree); any
    /// other clock (a test's) is passed to every operation.
    fn is_system(&self) -> bool {
        false
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_ms()
    }

    fn is_system(&self) -> bool {
        true
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn system_now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_millis() as i64
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock that reads `now_ms` until moved.
    pub fn new(now_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(now_ms)))
    }
    /// Sets the time.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Converts a `Duration` to whole milliseconds, saturating.
pub fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Converts a `SystemTime` to milliseconds since the epoch (negative before it).
pub fn system_time_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        let c2 = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        c2.advance(500);
        assert_eq!(c.now_ms(), 1_500);
        c.set(7);
        assert_eq!(c2.now_ms(), 7);
    }

    #[test]
    fn system_time_conversion() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1234);
        assert_eq!(system_time_ms(t), 1234);
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_millis(5);
        assert_eq!(system_time_ms(before), -5);
        assert!(SystemClock.now_ms() > 1_600_000_000_000);
    }
}
