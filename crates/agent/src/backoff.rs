//! When `escrow-agent run` polls next: every `--interval` while the server answers; after failed cycles,
//! exponentially longer (doubling, capped at [`MAX_BACKOFF`] or the interval if that is longer) with ±20%
//! random jitter, so a fleet of Macs does not hammer a server that is coming back, all at the same second.
//!
//! Guarantees: [`next_delay`] is pure (the randomness comes in as a number), never returns less than one
//! second, and never waits longer than the cap plus 20%.

use std::time::Duration;

/// The longest wait between polls after failures (unless `--interval` is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Jitter: the wait is multiplied by a factor in `[1 - JITTER, 1 + JITTER)`.
pub const JITTER: f64 = 0.2;

/// The wait before the next cycle. `failures` is how many cycles in a row failed (0: the last succeeded,
/// wait exactly `interval`); `unit` is a random number in `[0, 1)` choosing the jitter.
pub fn next_delay(interval: Duration, failures: u32, unit: f64) -> Duration {
    if failures == 0 {
        return interval;
    }
    let cap = MAX_BACKOFF.max(interval);
    let doubled = interval
        .checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(cap)
        .min(cap);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit;
    doubled.mul_f64(factor).max(Duration::from_secs(1))
}

/// A random number in `[0, 1)` from the system's randomness (0.5, no jitter, if none is available).
pub fn random_unit() -> f64 {
    use ring::rand::SecureRandom;
    let mut buf = [0u8; 4];
    match ring::rand::SystemRandom::new().fill(&mut buf) {
        Ok(()) => f64::from(u32::from_le_bytes(buf)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn success_waits_exactly_the_interval() {
        for unit in [0.0, 0.5, 0.99] {
            assert_eq!(next_delay(MIN, 0, unit), MIN);
        }
    }

    /// Seconds, to the millisecond (float jitter is not exact in nanoseconds).
    fn secs(d: Duration) -> f64 {
        (d.as_secs_f64() * 1000.0).round() / 1000.0
    }

    #[test]
    fn failures_double_the_wait_up_to_the_cap() {
        // unit 0.5 is no jitter.
        let waits: Vec<f64> = (1..=6).map(|n| secs(next_delay(MIN, n, 0.5))).collect();
        assert_eq!(waits, [120.0, 240.0, 480.0, 900.0, 900.0, 900.0]);
        assert_eq!(secs(next_delay(MIN, u32::MAX, 0.5)), 900.0);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(secs(next_delay(MIN, 1, 0.0)), 96.0);
        assert_eq!(secs(next_delay(MIN, 1, 0.75)), 132.0);
        assert_eq!(secs(next_delay(MIN, 10, 1.0)), 1080.0);
        // Hostile numbers are clamped or ignored.
        assert_eq!(secs(next_delay(MIN, 1, -3.0)), 96.0);
        assert_eq!(secs(next_delay(MIN, 1, f64::NAN)), 120.0);
        let short = Duration::from_millis(100);
        assert_eq!(next_delay(short, 1, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn an_interval_longer_than_the_cap_is_never_shortened_by_failures() {
        let day = Duration::from_secs(86_400);
        assert_eq!(next_delay(day, 3, 0.5), day);
    }

    #[test]
    fn the_system_random_unit_is_in_range() {
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}
