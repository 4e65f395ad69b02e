//! When a password must be changed: never by default. NIST SP 800-63B 5.1.1.2 says verifiers
//! SHOULD NOT require periodic changes (people then pick weaker, predictable successors) and
//! should force a change only on evidence of compromise; ASVS 4.0 2.1.10 agrees. The policy
//! exists for operators bound by older rules, and for the reuse check on change.

use crate::clock::Millis;

const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// Optional expiry and history rules. The default is no expiry and no history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Days after which a password must be changed; `None` (the default, per NIST SP 800-63B
    /// 5.1.1.2) never expires it.
    pub max_age_days: Option<u32>,
    /// How many previous passwords a new one may not repeat (checked with
    /// `PasswordWork::is_reused`); 0 disables the check.
    pub history: u32,
}

impl RotationPolicy {
    /// Whether a password last changed at `changed_at` must be changed at `now`.
    pub fn is_expired(&self, changed_at: Millis, now: Millis) -> bool {
        match self.max_age_days {
            None => false,
            Some(days) => now.saturating_sub(changed_at) >= Millis::from(days) * DAY_MS,
        }
    }

    /// The previous hashes a new password is compared with: the `history` most recent of
    /// `previous_phcs`, which is ordered oldest first.
    pub fn recent<'a>(&self, previous_phcs: &'a [String]) -> &'a [String] {
        let keep = usize::try_from(self.history).unwrap_or(usize::MAX);
        &previous_phcs[previous_phcs.len().saturating_sub(keep)..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_000_000;

    #[test]
    fn by_default_passwords_never_expire_and_no_history_is_kept() {
        let policy = RotationPolicy::default();
        assert!(!policy.is_expired(T0, T0 + 10_000 * DAY_MS));
        assert!(policy.recent(&["a".into(), "b".into()]).is_empty());
    }

    #[test]
    fn a_maximum_age_expires_the_password_on_its_last_day() {
        let policy = RotationPolicy {
            max_age_days: Some(90),
            history: 0,
        };
        assert!(!policy.is_expired(T0, T0 + 90 * DAY_MS - 1));
        assert!(policy.is_expired(T0, T0 + 90 * DAY_MS));
        assert!(
            !policy.is_expired(T0, T0 - DAY_MS),
            "a clock behind the change is not expiry"
        );
    }

    #[test]
    fn history_keeps_the_most_recent_hashes() {
        let policy = RotationPolicy {
            max_age_days: None,
            history: 2,
        };
        let previous: Vec<String> = ["one", "two", "three"].map(String::from).into();
        assert_eq!(policy.recent(&previous), &previous[1..]);
        assert_eq!(policy.recent(&previous[..1]), &previous[..1]);
    }
}
