//! Retry policies: how long a failed job waits before its next attempt.
//! Whether there is a next attempt is the job's own budget (`max_attempts`,
//! set at enqueue): out of attempts, it goes to the dead table.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait before attempt `n + 1` after attempt `n` failed.
#[derive(Clone)]
pub enum RetryPolicy {
    /// `base`, doubling each attempt (`base`, `2 base`, `4 base`, …), at
    /// most `max`. With `jitter`, a uniformly random point in the upper
    /// half of that step ("equal jitter"), so failures that happened
    /// together do not retry together.
    Exponential {
        /// The first delay. Default 1 s.
        base: Duration,
        /// The longest delay. Default 1 hour.
        max: Duration,
        /// Spread the delays. Default true.
        jitter: bool,
    },
    /// The same delay every time.
    Fixed(Duration),
    /// A function of the attempt that failed (1 for the first).
    Function(Arc<dyn Fn(u32) -> Duration + Send + Sync>),
}

impl Default for RetryPolicy {
    /// Exponential from 1 s to 1 hour, with jitter.
    fn default() -> Self {
        RetryPolicy::Exponential {
            base: Duration::from_secs(1),
            max: crate::model::MAX_BACKOFF,
            jitter: true,
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryPolicy::Exponential { base, max, jitter } => f
                .debug_struct("Exponential")
                .field("base", base)
                .field("max", max)
                .field("jitter", jitter)
                .finish(),
            RetryPolicy::Fixed(d) => f.debug_tuple("Fixed").field(d).finish(),
            RetryPolicy::Function(_) => f.write_str("Function(..)"),
        }
    }
}

impl RetryPolicy {
    /// The delay after attempt `attempt` (1-based) failed; `seed` picks the
    /// jitter.
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        match self {
            RetryPolicy::Fixed(d) => *d,
            RetryPolicy::Function(f) => f(attempt),
            RetryPolicy::Exponential { base, max, jitter } => {
                let base_ms = base.as_millis().min(u128::from(u64::MAX)) as u64;
                let step = base_ms
                    .saturating_mul(1u64 << attempt.saturating_sub(1).min(40))
                    .min(max.as_millis().min(u128::from(u64::MAX)) as u64);
                if !jitter || step < 2 {
                    return Duration::from_millis(step);
                }
                let half = step / 2;
                Duration::from_millis(half + splitmix(seed) % (step - half + 1))
            }
        }
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        let ms = Duration::from_millis;
        let p = RetryPolicy::Exponential {
            base: ms(100),
            max: ms(1000),
            jitter: false,
        };
        let got: Vec<_> = (1..=6).map(|a| p.delay(a, 0)).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000].map(ms));
        let j = RetryPolicy::default();
        for seed in 0..200 {
            let d = j.delay(3, seed);
            assert!(d >= ms(2000) && d <= ms(4000), "{d:?}");
        }
        assert!(
            (0..50)
                .map(|s| j.delay(3, s))
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 10
        );
        assert!(j.delay(100, 1) <= crate::model::MAX_BACKOFF);
        assert_eq!(RetryPolicy::Fixed(ms(7)).delay(9, 1), ms(7));
        let f = RetryPolicy::Function(Arc::new(|a| Duration::from_secs(u64::from(a) * 10)));
        assert_eq!(f.delay(3, 0), Duration::from_secs(30));
        assert_eq!(format!("{f:?}"), "Function(..)");
    }
}
