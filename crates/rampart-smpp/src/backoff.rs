//! Exponential backoff with jitter for reconnecting and for throttling pauses. The random
//! fraction is passed in, so tests are deterministic.

use std::time::Duration;

/// Doubling delays from `min` up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The next delay, "equal jitter": between half and all of `min * 2^attempt` (capped at
    /// `max`), placed by `unit_random` in `[0, 1)`.
    pub(crate) fn next_delay(&mut self, unit_random: f64) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(2u32.saturating_pow(self.attempt.min(31)))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let fraction = 0.5 + 0.5 * unit_random.clamp(0.0, 1.0);
        ceiling.mul_f64(fraction)
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_between_half_and_all() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(backoff.next_delay(1.0), Duration::from_secs(1));
        assert_eq!(backoff.next_delay(0.0), Duration::from_secs(1));
        assert_eq!(backoff.next_delay(1.0), Duration::from_secs(4));
        assert_eq!(backoff.next_delay(1.0), Duration::from_secs(5));
        for _ in 0..100 {
            assert!(backoff.next_delay(0.0) >= Duration::from_millis(2500));
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(1.0), Duration::from_secs(1));
    }
}
