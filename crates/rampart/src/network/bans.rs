//! Bans of client addresses that keep failing authentication: past `failures` failures within a
//! minute an address is banned, first for `base` and then for twice as long each time again
//! (up to a day). Kept in memory for the request path; the store holds them so the operator can
//! list and lift them, and the server re-reads them every second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{PoisonError, RwLock};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ip::client_network;
use crate::clock::Millis;

const LONGEST_BAN_MS: Millis = 24 * 3600 * 1000;
/// Addresses whose strikes are remembered at most; past it the memory starts over (an attacker
/// with endless addresses must not grow it without bound).
const MOST_REMEMBERED: usize = 100_000;

/// One running ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub until: Millis,
    pub strikes: u32,
}

/// Failure counting and the bans in force.
pub struct Bans {
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    base_ms: Millis,
    banned: RwLock<HashMap<IpAddr, Ban>>,
    /// Strikes of addresses whose ban ran out, so the next ban is longer.
    strikes: RwLock<HashMap<IpAddr, u32>>,
}

impl Bans {
    /// `failures` per minute allowed before a ban (0: never ban); the first ban lasts `base_ms`.
    pub fn new(failures: u32, base_ms: Millis) -> Self {
        let failures = NonZeroU32::new(failures)
            .map(|n| RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)));
        Self {
            failures,
            base_ms: base_ms.max(1_000),
            banned: RwLock::new(HashMap::new()),
            strikes: RwLock::new(HashMap::new()),
        }
    }

    /// When the ban on `ip` ends, if it is banned at `now`.
    pub fn banned_until(&self, ip: IpAddr, now: Millis) -> Option<Millis> {
        let ip = client_network(ip);
        let banned = self.banned.read().unwrap_or_else(PoisonError::into_inner);
        banned
            .get(&ip)
            .map(|b| b.until)
            .filter(|until| *until > now)
    }

    /// Counts a failed authentication from `ip`; returns the ban it starts, if it starts one.
    pub fn record_failure(&self, ip: IpAddr, now: Millis) -> Option<Ban> {
        let failures = self.failures.as_ref()?;
        let ip = client_network(ip);
        if failures.check_key(&ip).is_ok() || self.banned_until(ip, now).is_some() {
            return None;
        }
        let mut strikes = self.strikes.write().unwrap_or_else(PoisonError::into_inner);
        if strikes.len() >= MOST_REMEMBERED {
            strikes.clear();
        }
        let strike = strikes.get(&ip).copied().unwrap_or(0) + 1;
        strikes.insert(ip, strike);
        drop(strikes);
        let length = self
            .base_ms
            .saturating_mul(1 << (strike - 1).min(20))
            .min(LONGEST_BAN_MS);
        let ban = Ban {
            until: now + length,
            strikes: strike,
        };
        self.banned
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ip, ban);
        Some(ban)
    }

    /// Takes the bans the store holds as the ones in force (lifted ones disappear).
    pub fn replace(&self, stored: impl IntoIterator<Item = (IpAddr, Ban)>) {
        let stored: HashMap<IpAddr, Ban> = stored
            .into_iter()
            .map(|(ip, ban)| (client_network(ip), ban))
            .collect();
        let mut strikes = self.strikes.write().unwrap_or_else(PoisonError::into_inner);
        for (ip, ban) in &stored {
            strikes.insert(*ip, ban.strikes);
        }
        drop(strikes);
        *self.banned.write().unwrap_or_else(PoisonError::into_inner) = stored;
        if let Some(failures) = &self.failures {
            failures.retain_recent();
        }
    }
}

impl std::fmt::Debug for Bans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bans")
            .field("enabled", &self.failures.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_is_banned_past_its_failures_and_for_longer_each_time() {
        let bans = Bans::new(3, 60_000);
        let attacker = ip("192.0.2.7");
        for _ in 0..3 {
            assert_eq!(bans.record_failure(attacker, 0), None);
        }
        let first = bans.record_failure(attacker, 0).unwrap();
        assert_eq!(
            first,
            Ban {
                until: 60_000,
                strikes: 1
            }
        );
        assert_eq!(bans.banned_until(attacker, 1_000), Some(60_000));
        assert_eq!(bans.banned_until(ip("192.0.2.8"), 1_000), None);
        assert_eq!(bans.banned_until(attacker, 60_000), None, "a ban ends");
        // The failure budget is spent: the next failure after the ban bans again, for twice as long.
        let second = bans.record_failure(attacker, 60_000).unwrap();
        assert_eq!(
            second,
            Ban {
                until: 180_000,
                strikes: 2
            }
        );
    }

    #[test]
    fn an_ipv6_host_is_banned_with_its_whole_slash_64() {
        let bans = Bans::new(1, 60_000);
        bans.record_failure(ip("2001:db8:1:2::1"), 0);
        assert!(bans.record_failure(ip("2001:db8:1:2::99"), 0).is_some());
        assert!(bans.banned_until(ip("2001:db8:1:2:ffff::7"), 1).is_some());
        assert!(bans.banned_until(ip("2001:db8:1:3::1"), 1).is_none());
        assert_eq!(client_network(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn a_ban_lifted_in_the_store_is_lifted_here_and_zero_failures_never_bans() {
        let bans = Bans::new(1, 60_000);
        let attacker = ip("2001:db8::9");
        bans.record_failure(attacker, 0);
        assert!(bans.record_failure(attacker, 0).is_some());
        bans.replace([]);
        assert_eq!(bans.banned_until(attacker, 1), None);
        let never = Bans::new(0, 60_000);
        for _ in 0..1000 {
            assert_eq!(never.record_failure(attacker, 0), None);
        }
    }
}
