//! Rate limits per API key and per account (GCRA, by `governor`), off unless configured; and
//! per client network on the routes open before anyone is signed in (sign-in, setup, resets,
//! invitations), on by default. A caller over its quota gets 429 with the time to wait, before
//! any work is done.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config;

/// How often (in checks) idle keys are dropped from the limiters' tables.
const TIDY_EVERY: u64 = 16_384;

/// A refusal: which limit, its rate, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// `api_key`, `account` or `client`.
    pub scope: &'static str,
    /// Requests per second allowed.
    pub per_second: u32,
    /// Requests allowed at once.
    pub burst: u32,
    pub retry_after: Duration,
}

struct Limit {
    limiter: DefaultKeyedRateLimiter<String>,
    per_second: u32,
    burst: u32,
}

impl Limit {
    fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            per_second: rate.get(),
            burst: burst.get(),
        })
    }

    fn per_minute(per_minute: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_minute)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)),
            per_second: rate.get().div_ceil(60),
            burst: burst.get(),
        })
    }

    fn check(&self, scope: &'static str, key: &str) -> Result<(), Limited> {
        // Looked up by reference first: an owned key is made only for a caller not yet seen.
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| Limited {
                scope,
                per_second: self.per_second,
                burst: self.burst,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }
}

/// The configured limits.
pub struct RateLimits {
    per_key: Option<Limit>,
    per_account: Option<Limit>,
    /// Unauthenticated people's routes, per client network.
    per_client: Option<Limit>,
    checks: AtomicU64,
}

impl RateLimits {
    pub fn new(config: &config::RateLimits) -> Self {
        Self {
            per_key: Limit::new(config.key_per_second, config.key_burst),
            per_account: Limit::new(config.account_per_second, config.account_burst),
            per_client: Limit::per_minute(config.sign_in_per_minute, config.sign_in_burst),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request of `key_id` in `account_id` against both limits.
    pub fn check(&self, key_id: &str, account_id: &str) -> Result<(), Limited> {
        if self.per_key.is_none() && self.per_account.is_none() {
            return Ok(());
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % TIDY_EVERY == TIDY_EVERY - 1 {
            for limit in [&self.per_key, &self.per_account].into_iter().flatten() {
                limit.limiter.retain_recent();
            }
        }
        if let Some(limit) = &self.per_key {
            limit.check("api_key", key_id)?;
        }
        if let Some(limit) = &self.per_account {
            limit.check("account", account_id)?;
        }
        Ok(())
    }
}

impl RateLimits {
    /// Counts one request of a client network on a route open before signing in.
    pub fn check_client(&self, network: &str) -> Result<(), Limited> {
        let Some(limit) = &self.per_client else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % TIDY_EVERY == TIDY_EVERY - 1 {
            limit.limiter.retain_recent();
        }
        limit.check("client", network)
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_key", &self.per_key.as_ref().map(|l| l.per_second))
            .field(
                "per_account",
                &self.per_account.as_ref().map(|l| l.per_second),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(key: (u32, u32), account: (u32, u32)) -> RateLimits {
        RateLimits::new(&config::RateLimits {
            key_per_second: key.0,
            key_burst: key.1,
            account_per_second: account.0,
            account_burst: account.1,
            ..config::RateLimits::default()
        })
    }

    #[test]
    fn without_configured_limits_nothing_is_refused() {
        let off = limits((0, 0), (0, 0));
        for _ in 0..10_000 {
            assert!(off.check("rk_a", "acc_1").is_ok());
        }
    }

    #[test]
    fn a_key_over_its_burst_is_refused_with_a_wait_while_other_keys_go_on() {
        let limited = limits((1, 3), (0, 0));
        for _ in 0..3 {
            assert!(limited.check("rk_a", "acc_1").is_ok());
        }
        let refused = limited.check("rk_a", "acc_1").unwrap_err();
        assert_eq!(
            (refused.scope, refused.per_second, refused.burst),
            ("api_key", 1, 3)
        );
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1)
        );
        assert!(limited.check("rk_b", "acc_1").is_ok());
    }

    #[test]
    fn an_account_limit_counts_every_key_of_the_account() {
        let limited = limits((0, 0), (1, 2));
        assert!(limited.check("rk_a", "acc_1").is_ok());
        assert!(limited.check("rk_b", "acc_1").is_ok());
        assert_eq!(limited.check("rk_c", "acc_1").unwrap_err().scope, "account");
        assert!(limited.check("rk_d", "acc_2").is_ok());
    }
}
