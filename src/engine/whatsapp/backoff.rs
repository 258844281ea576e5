//! Reconnect delays: capped exponential backoff with jitter.
//!
//! The delay doubles from [`BASE`] up to [`CAP`]; each one is spread by ±[`JITTER_PERCENT`] so a
//! fleet of servers cut off by the same outage does not reconnect in lockstep. A connection that
//! stayed up for [`STABLE_AFTER`] counts as healthy and starts the sequence over.

use std::time::Duration;

/// The first delay after a failure.
pub(super) const BASE: Duration = Duration::from_secs(2);
/// The longest delay: an outage of hours still retries every five minutes.
pub(super) const CAP: Duration = Duration::from_secs(300);
/// How far each delay may stray from its nominal value, in percent.
pub(super) const JITTER_PERCENT: u64 = 20;
/// A connection that lasted this long resets the sequence.
pub(super) const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The state of one reconnect sequence.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub(super) fn new() -> Self {
        // Jitter needs no cryptographic quality, only a different start per process.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(std::process::id()).rotate_left(32);
        Self { attempt: 0, seed }
    }

    /// How many delays have been handed out since the last reset.
    pub(super) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over after a healthy connection.
    pub(super) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The nominal (jitter-free) delay of attempt `n` (0-based).
    pub(super) fn nominal(n: u32) -> Duration {
        let factor = 1u64.checked_shl(n.min(32)).unwrap_or(u64::MAX);
        let millis = (BASE.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(millis).min(CAP)
    }

    /// The next delay to wait, with jitter.
    pub(super) fn next_delay(&mut self) -> Duration {
        let nominal = Self::nominal(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let spread = nominal.as_millis() as u64 * JITTER_PERCENT / 100;
        let offset = if spread == 0 {
            0
        } else {
            self.random() % (2 * spread + 1)
        };
        let millis = (nominal.as_millis() as u64 - spread) + offset;
        Duration::from_millis(millis)
    }

    /// xorshift64*: enough to decorrelate retries.
    fn random(&mut self) -> u64 {
        let mut x = self.seed.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let nominal: Vec<u64> = (0..10).map(|n| Backoff::nominal(n).as_secs()).collect();
        assert_eq!(nominal, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(Backoff::nominal(u32::MAX), CAP);
    }

    #[test]
    fn jitter_stays_within_its_band_and_varies() {
        let mut backoff = Backoff::new();
        let mut seen = std::collections::HashSet::new();
        for n in 0..40 {
            let delay = backoff.next_delay();
            let nominal = Backoff::nominal(n).as_millis() as u64;
            let spread = nominal * JITTER_PERCENT / 100;
            let millis = delay.as_millis() as u64;
            assert!(
                (nominal - spread..=nominal + spread).contains(&millis),
                "attempt {n}: {millis} ms outside {nominal}±{spread}"
            );
            seen.insert(millis);
        }
        assert!(seen.len() > 10, "jitter produced too few distinct delays");
        assert_eq!(backoff.attempts(), 40);
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new();
        for _ in 0..6 {
            backoff.next_delay();
        }
        backoff.reset();
        let first = backoff.next_delay();
        assert!(
            first <= BASE + BASE * JITTER_PERCENT as u32 / 100,
            "{first:?}"
        );
    }
}
