//! Rate limits per API key and per account (GCRA, by `governor`), off unless configured; and
//! per client network on the routes open before anyone is signed in (sign-in, setup, resets,
//! invitations), on by default. A caller over its quota gets 429 with the time to wait, before
//! any work is done.
//!
//! The server's limits apply to every account unless an operator sets the account's own
//! (which may also lift them); within those, the account's admins may set tighter ones. A
//! setting outside the operator's stops counting, as a stale allowlist entry does.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::config;

/// How often (in checks) idle keys are dropped from the limiters' tables.
const TIDY_EVERY: u64 = 16_384;

/// A rate: requests per second (0: no limit) and how many may come at once (0: as many as
/// the rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate {
        per_second: 0,
        burst: 0,
    };

    pub fn is_unlimited(self) -> bool {
        self.per_second == 0
    }

    /// The burst, with 0 read as the rate.
    pub fn effective_burst(self) -> u32 {
        if self.burst == 0 {
            self.per_second
        } else {
            self.burst
        }
    }

    /// Whether this rate allows no more than `ceiling` does.
    pub fn within(self, ceiling: Rate) -> bool {
        ceiling.is_unlimited()
            || (!self.is_unlimited()
                && self.per_second <= ceiling.per_second
                && self.effective_burst() <= ceiling.effective_burst())
    }
}

/// Limits set for one account at one level; `None` takes the level above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateSettings {
    /// For each API key of the account.
    pub api_key: Option<Rate>,
    /// For all the account's keys together.
    pub account: Option<Rate>,
}

impl RateSettings {
    /// The stored form (JSON; empty for none). Unreadable text counts as none.
    pub fn from_stored(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn to_stored(self) -> String {
        if self == Self::default() {
            return String::new();
        }
        serde_json::to_string(&self).unwrap_or_default()
    }
}

/// The limits in force: per key and per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub api_key: Rate,
    pub account: Rate,
}

/// An account's two levels of settings: the operator's and its admins'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountRates {
    pub operator: RateSettings,
    pub account: RateSettings,
}

impl AccountRates {
    pub fn from_stored(operator: &str, account: &str) -> Self {
        Self {
            operator: RateSettings::from_stored(operator),
            account: RateSettings::from_stored(account),
        }
    }

    /// The operator's limits for the account, else the server's: what its admins may tighten.
    pub fn ceiling(&self, server: Rates) -> Rates {
        Rates {
            api_key: self.operator.api_key.unwrap_or(server.api_key),
            account: self.operator.account.unwrap_or(server.account),
        }
    }

    /// The limits in force: the admins' where they lie within the ceiling, else the ceiling.
    pub fn effective(&self, server: Rates) -> Rates {
        let ceiling = self.ceiling(server);
        let pick = |own: Option<Rate>, ceiling: Rate| match own {
            Some(own) if own.within(ceiling) => own,
            _ => ceiling,
        };
        Rates {
            api_key: pick(self.account.api_key, ceiling.api_key),
            account: pick(self.account.account, ceiling.account),
        }
    }
}

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
    fn from_rate(rate: Rate) -> Option<Self> {
        let per_second = NonZeroU32::new(rate.per_second)?;
        let burst = NonZeroU32::new(rate.burst).unwrap_or(per_second);
        let rate = per_second;
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

/// An account's own limiters, kept while its limits stay as they were.
struct AccountLimiters {
    rates: Rates,
    per_key: Option<Limit>,
    per_account: Option<Limit>,
}

/// The limiters: the server's, shared by every account without limits of its own, and one
/// set per account that has them.
pub struct RateLimits {
    server: Rates,
    per_key: Option<Limit>,
    per_account: Option<Limit>,
    accounts: RwLock<HashMap<String, Arc<AccountLimiters>>>,
    /// Unauthenticated people's routes, per client network.
    per_client: Option<Limit>,
    checks: AtomicU64,
}

impl RateLimits {
    pub fn new(config: &config::RateLimits) -> Self {
        let server = Rates {
            api_key: Rate {
                per_second: config.key_per_second,
                burst: config.key_burst,
            },
            account: Rate {
                per_second: config.account_per_second,
                burst: config.account_burst,
            },
        };
        Self {
            server,
            per_key: Limit::from_rate(server.api_key),
            per_account: Limit::from_rate(server.account),
            accounts: RwLock::new(HashMap::new()),
            per_client: Limit::per_minute(config.sign_in_per_minute, config.sign_in_burst),
            checks: AtomicU64::new(0),
        }
    }

    /// The server's limits, which apply to accounts without their own.
    pub fn server(&self) -> Rates {
        self.server
    }

    /// Counts one request of `key_id` in `account_id`, whose settings are `rates`, against
    /// the key's and the account's limits.
    pub fn check(
        &self,
        key_id: &str,
        account_id: &str,
        rates: &AccountRates,
    ) -> Result<(), Limited> {
        let effective = if *rates == AccountRates::default() {
            self.server
        } else {
            rates.effective(self.server)
        };
        if effective == self.server && self.per_key.is_none() && self.per_account.is_none() {
            return Ok(());
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % TIDY_EVERY == TIDY_EVERY - 1 {
            self.tidy();
        }
        if effective == self.server {
            return check_both(&self.per_key, &self.per_account, key_id, account_id);
        }
        let own = self.account_limiters(account_id, effective);
        check_both(&own.per_key, &own.per_account, key_id, account_id)
    }

    /// The account's own limiters, made afresh when its limits changed.
    fn account_limiters(&self, account_id: &str, rates: Rates) -> Arc<AccountLimiters> {
        if let Ok(accounts) = self.accounts.read()
            && let Some(own) = accounts.get(account_id)
            && own.rates == rates
        {
            return own.clone();
        }
        let own = Arc::new(AccountLimiters {
            rates,
            per_key: Limit::from_rate(rates.api_key),
            per_account: Limit::from_rate(rates.account),
        });
        let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        match accounts.get(account_id) {
            // Another request made them meanwhile.
            Some(current) if current.rates == rates => current.clone(),
            _ => {
                accounts.insert(account_id.to_owned(), own.clone());
                own
            }
        }
    }

    fn tidy(&self) {
        for limit in [&self.per_key, &self.per_account].into_iter().flatten() {
            limit.limiter.retain_recent();
        }
        if let Ok(accounts) = self.accounts.read() {
            for own in accounts.values() {
                for limit in [&own.per_key, &own.per_account].into_iter().flatten() {
                    limit.limiter.retain_recent();
                }
            }
        }
    }
}

fn check_both(
    per_key: &Option<Limit>,
    per_account: &Option<Limit>,
    key_id: &str,
    account_id: &str,
) -> Result<(), Limited> {
    if let Some(limit) = per_key {
        limit.check("api_key", key_id)?;
    }
    if let Some(limit) = per_account {
        limit.check("account", account_id)?;
    }
    Ok(())
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
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: AccountRates = AccountRates {
        operator: RateSettings {
            api_key: None,
            account: None,
        },
        account: RateSettings {
            api_key: None,
            account: None,
        },
    };

    fn rate(per_second: u32, burst: u32) -> Option<Rate> {
        Some(Rate { per_second, burst })
    }

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
            assert!(off.check("rk_a", "acc_1", &NONE).is_ok());
        }
    }

    #[test]
    fn a_key_over_its_burst_is_refused_with_a_wait_while_other_keys_go_on() {
        let limited = limits((1, 3), (0, 0));
        for _ in 0..3 {
            assert!(limited.check("rk_a", "acc_1", &NONE).is_ok());
        }
        let refused = limited.check("rk_a", "acc_1", &NONE).unwrap_err();
        assert_eq!(
            (refused.scope, refused.per_second, refused.burst),
            ("api_key", 1, 3)
        );
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1)
        );
        assert!(limited.check("rk_b", "acc_1", &NONE).is_ok());
    }

    #[test]
    fn an_account_limit_counts_every_key_of_the_account() {
        let limited = limits((0, 0), (1, 2));
        assert!(limited.check("rk_a", "acc_1", &NONE).is_ok());
        assert!(limited.check("rk_b", "acc_1", &NONE).is_ok());
        assert_eq!(
            limited.check("rk_c", "acc_1", &NONE).unwrap_err().scope,
            "account"
        );
        assert!(limited.check("rk_d", "acc_2", &NONE).is_ok());
    }

    #[test]
    fn an_operator_sets_an_account_its_own_limit_and_may_lift_the_servers() {
        let server = limits((0, 0), (100, 100));
        let tight = AccountRates {
            operator: RateSettings {
                api_key: None,
                account: rate(1, 2),
            },
            ..NONE
        };
        assert!(server.check("rk_a", "acc_1", &tight).is_ok());
        assert!(server.check("rk_b", "acc_1", &tight).is_ok());
        let refused = server.check("rk_a", "acc_1", &tight).unwrap_err();
        assert_eq!(
            (refused.scope, refused.per_second, refused.burst),
            ("account", 1, 2)
        );
        // Other accounts keep the server's limit.
        for _ in 0..50 {
            assert!(server.check("rk_c", "acc_2", &NONE).is_ok());
        }
        let lifted = AccountRates {
            operator: RateSettings {
                api_key: None,
                account: Some(Rate::UNLIMITED),
            },
            ..NONE
        };
        for _ in 0..1_000 {
            assert!(server.check("rk_d", "acc_3", &lifted).is_ok());
        }
    }

    #[test]
    fn an_admins_limit_counts_within_the_ceiling_and_not_beyond_it() {
        let server = Rates {
            api_key: Rate::UNLIMITED,
            account: Rate {
                per_second: 100,
                burst: 200,
            },
        };
        let within = AccountRates {
            operator: RateSettings::default(),
            account: RateSettings {
                api_key: rate(5, 0),
                account: rate(50, 60),
            },
        };
        assert_eq!(
            within.effective(server),
            Rates {
                api_key: Rate {
                    per_second: 5,
                    burst: 0
                },
                account: Rate {
                    per_second: 50,
                    burst: 60
                },
            }
        );
        // Above the ceiling (or no limit at all under one), the ceiling holds.
        let beyond = AccountRates {
            operator: RateSettings::default(),
            account: RateSettings {
                api_key: None,
                account: rate(100, 500),
            },
        };
        assert_eq!(beyond.effective(server).account, server.account);
        let lifting = AccountRates {
            operator: RateSettings::default(),
            account: RateSettings {
                api_key: None,
                account: Some(Rate::UNLIMITED),
            },
        };
        assert_eq!(lifting.effective(server).account, server.account);
        assert!(!Rate::UNLIMITED.within(server.account));
        assert!(Rate::UNLIMITED.within(Rate::UNLIMITED));
    }

    #[test]
    fn a_changed_limit_takes_effect_on_the_next_request() {
        let server = limits((0, 0), (0, 0));
        let mut rates = AccountRates {
            operator: RateSettings {
                api_key: rate(1, 1),
                account: None,
            },
            ..NONE
        };
        assert!(server.check("rk_a", "acc_1", &rates).is_ok());
        assert!(server.check("rk_a", "acc_1", &rates).is_err());
        rates.operator.api_key = rate(1, 5);
        assert!(server.check("rk_a", "acc_1", &rates).is_ok());
        rates.operator.api_key = None;
        assert!(server.check("rk_a", "acc_1", &rates).is_ok());
    }

    #[test]
    fn settings_survive_their_stored_form() {
        let settings = RateSettings {
            api_key: rate(5, 10),
            account: Some(Rate::UNLIMITED),
        };
        assert_eq!(RateSettings::from_stored(&settings.to_stored()), settings);
        assert_eq!(RateSettings::default().to_stored(), "");
        assert_eq!(RateSettings::from_stored(""), RateSettings::default());
    }
}
