//! Brute-force throttling of password attempts: after a few failures each further attempt on the
//! same key (an account, or a client network) waits a doubling delay, and a long run of failures
//! on an account reports a hard lock for the caller to persist (NIST SP 800-63B 5.2.2; ASVS 4.0
//! 2.2.1). In memory only, bounded in size; the durable lock lives with the account record.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;

use crate::clock::Millis;

/// How throttling behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftlockConfig {
    /// Failures in a row answered without delay (typing mistakes).
    pub free_failures: u32,
    /// Delay after the first failure beyond the free ones; it doubles with each further one.
    pub base_delay_ms: Millis,
    /// Longest delay.
    pub max_delay_ms: Millis,
    /// Failures in a row after which the key is reported locked. NIST SP 800-63B 5.2.2 allows
    /// at most 100 consecutive failed attempts on an account; `None` for keys that cannot be
    /// locked (client networks).
    pub hard_lock_after: Option<u32>,
    /// Failures with no further activity for this long are forgotten.
    pub forget_after_ms: Millis,
    /// Most keys tracked at once; beyond it the least recently failed key is dropped, so a
    /// spray of distinct keys cannot grow memory without bound.
    pub max_entries: usize,
}

impl Default for SoftlockConfig {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_delay_ms: 1_000,
            max_delay_ms: 60_000,
            hard_lock_after: Some(100),
            forget_after_ms: 24 * 60 * 60 * 1000,
            max_entries: 100_000,
        }
    }
}

/// The attempt must wait this many milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed attempts; retry in {0} ms")]
pub struct RetryAfter(pub Millis);

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Failures in a row on this key, this one included.
    pub consecutive: u32,
    /// The hard limit was reached: the caller should lock the account durably (lifted by an
    /// operator or a password reset).
    pub locked: bool,
    /// How long the next attempt must wait.
    pub retry_after: Millis,
}

#[derive(Debug)]
struct Entry {
    consecutive: u32,
    last_failure: Millis,
    /// This entry's place in the recency index.
    order: (Millis, u64),
}

#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
    /// Keys by (last failure, sequence number), oldest first, for eviction.
    recency: BTreeMap<(Millis, u64), K>,
    sequence: u64,
}

/// Failure counts and delays per key. Safe to share between tasks.
#[derive(Debug)]
pub struct Softlock<K = String> {
    config: SoftlockConfig,
    table: Mutex<Table<K>>,
}

impl<K: Hash + Eq + Clone> Softlock<K> {
    /// An empty table with these settings.
    pub fn new(config: SoftlockConfig) -> Self {
        Self {
            config,
            table: Mutex::new(Table {
                entries: HashMap::new(),
                recency: BTreeMap::new(),
                sequence: 0,
            }),
        }
    }

    /// Whether an attempt on `key` may go ahead at `now`. Call before verifying a password.
    pub fn check(&self, key: &K, now: Millis) -> Result<(), RetryAfter> {
        let table = self.lock();
        let Some(entry) = table.entries.get(key) else {
            return Ok(());
        };
        if self.is_forgotten(entry, now) {
            return Ok(());
        }
        let wait = (entry.last_failure + self.delay(entry.consecutive)).saturating_sub(now);
        if wait > 0 {
            Err(RetryAfter(wait))
        } else {
            Ok(())
        }
    }

    /// Records a failed attempt on `key` at `now`.
    pub fn fail(&self, key: &K, now: Millis) -> FailureOutcome {
        let mut guard = self.lock();
        let table = &mut *guard;
        table.sequence = table.sequence.wrapping_add(1);
        let order = (now, table.sequence);
        let consecutive = match table.entries.get_mut(key) {
            Some(entry) => {
                table.recency.remove(&entry.order);
                entry.consecutive = if self.is_forgotten(entry, now) {
                    1
                } else {
                    entry.consecutive.saturating_add(1)
                };
                entry.last_failure = now;
                entry.order = order;
                entry.consecutive
            }
            None => {
                while table.entries.len() >= self.config.max_entries.max(1) {
                    let Some((_, oldest)) = table.recency.pop_first() else {
                        break;
                    };
                    table.entries.remove(&oldest);
                }
                table.entries.insert(
                    key.clone(),
                    Entry {
                        consecutive: 1,
                        last_failure: now,
                        order,
                    },
                );
                1
            }
        };
        table.recency.insert(order, key.clone());
        FailureOutcome {
            consecutive,
            locked: self
                .config
                .hard_lock_after
                .is_some_and(|limit| consecutive >= limit),
            retry_after: self.delay(consecutive),
        }
    }

    /// Failures in a row on `key` still remembered at `now` (0 for a key with a clean record).
    pub fn failures(&self, key: &K, now: Millis) -> u32 {
        let table = self.lock();
        table
            .entries
            .get(key)
            .filter(|entry| !self.is_forgotten(entry, now))
            .map_or(0, |entry| entry.consecutive)
    }

    /// Records a successful attempt: the key starts afresh.
    pub fn succeed(&self, key: &K) {
        let mut table = self.lock();
        if let Some(entry) = table.entries.remove(key) {
            table.recency.remove(&entry.order);
        }
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The wait after `consecutive` failures: none for the free ones, then the base delay
    /// doubling each time, capped.
    fn delay(&self, consecutive: u32) -> Millis {
        let Some(beyond) = consecutive.checked_sub(self.config.free_failures.saturating_add(1))
        else {
            return 0;
        };
        let factor = 1_i64
            .checked_shl(beyond)
            .filter(|f| *f > 0)
            .unwrap_or(i64::MAX);
        self.config
            .base_delay_ms
            .saturating_mul(factor)
            .min(self.config.max_delay_ms)
    }

    fn is_forgotten(&self, entry: &Entry, now: Millis) -> bool {
        now.saturating_sub(entry.last_failure) >= self.config.forget_after_ms
    }

    /// The table; a panic elsewhere while holding it leaves counts that are still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Table<K>> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_000_000;

    fn softlock() -> Softlock {
        Softlock::new(SoftlockConfig::default())
    }

    fn key(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn the_first_three_failures_cost_no_delay() {
        let lock = softlock();
        for n in 1..=3 {
            let outcome = lock.fail(&key("ada"), T0);
            assert_eq!(outcome.consecutive, n);
            assert_eq!(outcome.retry_after, 0);
            assert_eq!(lock.check(&key("ada"), T0), Ok(()));
        }
    }

    #[test]
    fn delays_double_after_the_free_failures_up_to_a_minute() {
        let lock = softlock();
        let mut now = T0;
        let mut seen = Vec::new();
        for _ in 0..12 {
            let outcome = lock.fail(&key("ada"), now);
            seen.push(outcome.retry_after);
            if outcome.retry_after > 0 {
                assert_eq!(
                    lock.check(&key("ada"), now),
                    Err(RetryAfter(outcome.retry_after))
                );
                assert_eq!(
                    lock.check(&key("ada"), now + outcome.retry_after - 1),
                    Err(RetryAfter(1))
                );
            }
            now += outcome.retry_after;
            assert_eq!(lock.check(&key("ada"), now), Ok(()));
        }
        assert_eq!(
            seen,
            [
                0, 0, 0, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000
            ]
        );
    }

    #[test]
    fn keys_are_throttled_independently() {
        let lock = softlock();
        for _ in 0..5 {
            lock.fail(&key("ada"), T0);
        }
        assert!(lock.check(&key("ada"), T0).is_err());
        assert_eq!(lock.check(&key("grace"), T0), Ok(()));
    }

    #[test]
    fn a_success_resets_the_count() {
        let lock = softlock();
        for _ in 0..6 {
            lock.fail(&key("ada"), T0);
        }
        assert!(lock.check(&key("ada"), T0).is_err());
        lock.succeed(&key("ada"));
        assert_eq!(lock.check(&key("ada"), T0), Ok(()));
        assert_eq!(lock.fail(&key("ada"), T0).consecutive, 1);
        assert!(lock.is_empty() || lock.len() == 1);
    }

    #[test]
    fn one_hundred_failures_in_a_row_report_a_lock() {
        let lock = softlock();
        let mut now = T0;
        for n in 1..100 {
            let outcome = lock.fail(&key("ada"), now);
            assert!(!outcome.locked, "locked early at failure {n}");
            now += outcome.retry_after;
        }
        let hundredth = lock.fail(&key("ada"), now);
        assert_eq!(hundredth.consecutive, 100);
        assert!(hundredth.locked);
        assert!(lock.fail(&key("ada"), now + 60_000).locked);
    }

    #[test]
    fn keys_without_a_hard_limit_are_never_reported_locked() {
        let lock = Softlock::new(SoftlockConfig {
            hard_lock_after: None,
            ..SoftlockConfig::default()
        });
        for _ in 0..500 {
            assert!(!lock.fail(&key("203.0.113.0/24"), T0).locked);
        }
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let lock = softlock();
        for _ in 0..6 {
            lock.fail(&key("ada"), T0);
        }
        let later = T0 + SoftlockConfig::default().forget_after_ms;
        assert_eq!(lock.check(&key("ada"), later), Ok(()));
        assert_eq!(lock.fail(&key("ada"), later).consecutive, 1);
    }

    #[test]
    fn the_table_stays_bounded_and_drops_the_oldest_key() {
        let lock = Softlock::new(SoftlockConfig {
            max_entries: 3,
            ..SoftlockConfig::default()
        });
        for _ in 0..5 {
            lock.fail(&key("oldest"), T0);
        }
        for (i, name) in ["b", "c", "d", "e"].into_iter().enumerate() {
            lock.fail(&key(name), T0 + 1 + i as Millis);
            assert!(lock.len() <= 3);
        }
        assert_eq!(lock.len(), 3);
        assert_eq!(lock.check(&key("oldest"), T0 + 10), Ok(()), "evicted first");
        assert_eq!(
            lock.fail(&key("e"), T0 + 10).consecutive,
            2,
            "recent keys are kept"
        );
    }

    #[test]
    fn a_recent_failure_protects_a_key_from_eviction() {
        let lock = Softlock::new(SoftlockConfig {
            max_entries: 2,
            ..SoftlockConfig::default()
        });
        lock.fail(&key("a"), T0);
        lock.fail(&key("b"), T0 + 1);
        lock.fail(&key("a"), T0 + 2);
        lock.fail(&key("c"), T0 + 3);
        assert_eq!(lock.fail(&key("a"), T0 + 4).consecutive, 3);
        assert_eq!(lock.fail(&key("b"), T0 + 5).consecutive, 1);
    }

    #[test]
    fn huge_failure_counts_do_not_overflow_the_delay() {
        let lock = softlock();
        assert_eq!(lock.delay(u32::MAX), 60_000);
        assert_eq!(lock.delay(67), 60_000);
    }
}
