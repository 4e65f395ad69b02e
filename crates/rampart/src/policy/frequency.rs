//! Frequency caps: at most N messages per recipient per window, per account. The counts live
//! in memory ([`SendCounter`]), keyed by the recipient's blind-index tag, never the number.

use std::sync::Mutex;

use quick_cache::sync::Cache;

use super::document::FrequencyCap;
use super::{Outgoing, Violation, recipient_field};
use crate::clock::Millis;

pub const CODE: &str = "frequency_cap_exceeded";

/// Recipients remembered at most; the least used are forgotten first, so a flood of new
/// numbers cannot grow memory (a forgotten recipient starts again from zero).
const MAX_RECIPIENTS: usize = 200_000;

pub fn check(
    cap: Option<FrequencyCap>,
    recent: &[u32],
    message: &Outgoing<'_>,
    out: &mut Vec<Violation>,
) {
    let Some(cap) = cap else { return };
    for (i, count) in recent.iter().enumerate() {
        if *count >= cap.max_messages {
            out.push(Violation {
                code: CODE,
                message: format!(
                    "the recipient already had {} messages from this account in {} seconds",
                    cap.max_messages, cap.window_seconds
                ),
                rule: "frequency_cap",
                field: Some(recipient_field(message, i)),
            });
        }
    }
}

/// Times of the messages accepted per (account, recipient tag), the newest few only.
pub struct SendCounter {
    sends: Cache<(String, [u8; 16]), Vec<Millis>>,
    /// Serialises read-modify-write of one entry (the cache holds values, not cells).
    write: Mutex<()>,
}

impl Default for SendCounter {
    fn default() -> Self {
        Self::new(MAX_RECIPIENTS)
    }
}

impl SendCounter {
    pub fn new(capacity: usize) -> Self {
        Self {
            sends: Cache::new(capacity),
            write: Mutex::new(()),
        }
    }

    /// Messages accepted for the recipient since `now - window_ms`.
    pub fn count(&self, account: &str, tag: [u8; 16], now: Millis, window_ms: Millis) -> u32 {
        self.sends
            .get(&(account.to_owned(), tag))
            .map_or(0, |times| {
                times.iter().filter(|t| **t > now - window_ms).count() as u32
            })
    }

    /// Remembers one accepted message; keeps the newest `keep` times, enough to answer for
    /// a cap of `keep`.
    pub fn record(&self, account: &str, tag: [u8; 16], now: Millis, keep: u32) {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let key = (account.to_owned(), tag);
        let mut times = self.sends.get(&key).unwrap_or_default();
        times.push(now);
        let keep = keep.max(1) as usize;
        if times.len() > keep {
            times.drain(..times.len() - keep);
        }
        self.sends.insert(key, times);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes, message, outgoing};
    use super::*;

    #[test]
    fn a_recipient_at_the_cap_is_refused_and_one_below_is_not() {
        let cap = FrequencyCap {
            max_messages: 2,
            window_seconds: 3600,
        };
        let (to, sender, body) = outgoing(&["+447400123456", "+447400123457"], "Acme", "hi");
        let message = message(&to, &sender, &body);
        let mut out = Vec::new();
        check(Some(cap), &[1, 2], &message, &mut out);
        assert_eq!(codes(&out), [CODE]);
        assert_eq!(out[0].field.as_deref(), Some("to[1]"));
        out.clear();
        check(None, &[9, 9], &message, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn the_counter_counts_within_the_window_per_account_and_keeps_only_the_newest() {
        let counter = SendCounter::new(100);
        let tag = [7; 16];
        for t in [1_000, 2_000, 3_000] {
            counter.record("acc_1", tag, t, 2);
        }
        assert_eq!(counter.count("acc_1", tag, 3_000, 10_000), 2);
        assert_eq!(counter.count("acc_1", tag, 3_500, 1_000), 1);
        assert_eq!(counter.count("acc_2", tag, 3_000, 10_000), 0);
        assert_eq!(counter.count("acc_1", [8; 16], 3_000, 10_000), 0);
    }

    #[test]
    fn the_counter_forgets_recipients_beyond_its_capacity() {
        let counter = SendCounter::new(10);
        for i in 0..1_000u16 {
            let mut tag = [0; 16];
            tag[..2].copy_from_slice(&i.to_be_bytes());
            counter.record("acc_1", tag, 1, 5);
        }
        assert!(counter.sends.len() <= 20, "{}", counter.sends.len());
    }
}
