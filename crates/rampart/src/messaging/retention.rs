//! How long an account keeps its messages: bodies erased after some days (the rest kept),
//! whole messages deleted after more. Parsed once, so a `Retention` always holds the rule.

use crate::clock::Millis;

/// Most days either period may name (a hundred years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

const DAY_MS: Millis = 24 * 3600 * 1000;

/// An account's retention; `None` keeps for ever (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    erase_bodies_after_days: Option<u32>,
    purge_after_days: Option<u32>,
}

/// Why retention settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A period outside 1..=36500 days.
    #[error("{field} must be 1 to {MAX_RETENTION_DAYS} days, or null to keep for ever")]
    OutOfRange { field: &'static str },
    /// Whole messages would go before their bodies are due to be erased.
    #[error("purge_after_days may not be shorter than erase_bodies_after_days")]
    PurgeBeforeErase,
}

impl Retention {
    pub fn parse(
        erase_bodies_after_days: Option<u32>,
        purge_after_days: Option<u32>,
    ) -> Result<Self, RetentionError> {
        let in_range =
            |days: Option<u32>| days.is_none_or(|d| (1..=MAX_RETENTION_DAYS).contains(&d));
        if !in_range(erase_bodies_after_days) {
            return Err(RetentionError::OutOfRange {
                field: "erase_bodies_after_days",
            });
        }
        if !in_range(purge_after_days) {
            return Err(RetentionError::OutOfRange {
                field: "purge_after_days",
            });
        }
        if let (Some(erase), Some(purge)) = (erase_bodies_after_days, purge_after_days)
            && purge < erase
        {
            return Err(RetentionError::PurgeBeforeErase);
        }
        Ok(Self {
            erase_bodies_after_days,
            purge_after_days,
        })
    }

    pub fn erase_bodies_after_days(self) -> Option<u32> {
        self.erase_bodies_after_days
    }

    pub fn purge_after_days(self) -> Option<u32> {
        self.purge_after_days
    }

    /// Bodies of messages made before this are erased.
    pub fn erase_before(self, now: Millis) -> Option<Millis> {
        self.erase_bodies_after_days.map(|d| cutoff(now, d))
    }

    /// Messages made before this are deleted.
    pub fn purge_before(self, now: Millis) -> Option<Millis> {
        self.purge_after_days.map(|d| cutoff(now, d))
    }
}

fn cutoff(now: Millis, days: u32) -> Millis {
    now.saturating_sub(Millis::from(days).saturating_mul(DAY_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_one_to_36500_days_and_purge_is_never_shorter_than_erase() {
        assert!(Retention::parse(None, None).is_ok());
        assert!(Retention::parse(Some(1), Some(1)).is_ok());
        assert!(Retention::parse(Some(30), Some(365)).is_ok());
        assert!(Retention::parse(None, Some(MAX_RETENTION_DAYS)).is_ok());
        assert_eq!(
            Retention::parse(Some(0), None),
            Err(RetentionError::OutOfRange {
                field: "erase_bodies_after_days"
            })
        );
        assert_eq!(
            Retention::parse(None, Some(MAX_RETENTION_DAYS + 1)),
            Err(RetentionError::OutOfRange {
                field: "purge_after_days"
            })
        );
        assert_eq!(
            Retention::parse(Some(30), Some(29)),
            Err(RetentionError::PurgeBeforeErase)
        );
    }

    #[test]
    fn a_period_of_n_days_lets_go_of_what_is_older_than_n_days() {
        let now = 100 * DAY_MS;
        let retention = Retention::parse(Some(30), Some(60)).unwrap();
        assert_eq!(retention.erase_before(now), Some(70 * DAY_MS));
        assert_eq!(retention.purge_before(now), Some(40 * DAY_MS));
        assert_eq!(Retention::default().erase_before(now), None);
    }
}
