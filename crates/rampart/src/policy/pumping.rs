//! SMS pumping defence: velocity per destination prefix (the number without its last digits)
//! and per country, and runs of sequential numbers within a prefix, per account. A tripped
//! prefix is blocked for a while; a safe-listed prefix never is. Pure and in memory: time is
//! given, windows are fixed and forgotten once past, so memory stays bounded and the send path
//! pays one map update per recipient and country.

use std::collections::{BTreeSet, HashMap};

use crate::clock::Millis;

/// The rules, from `pumping.*` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpingRules {
    /// Digits dropped from the end of a number to make its prefix.
    pub masked_digits: usize,
    pub window_ms: Millis,
    /// Most messages to one prefix per window.
    pub max_per_prefix: u32,
    /// Most messages to one country per window.
    pub max_per_country: u32,
    /// Distinct numbers with consecutive endings in one prefix and window that trip it.
    pub sequential_run: u32,
    pub block_ms: Millis,
}

/// Why a prefix was blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    PrefixVelocity,
    CountryVelocity,
    SequentialNumbers,
}

impl Trip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrefixVelocity => "prefix_velocity",
            Self::CountryVelocity => "country_velocity",
            Self::SequentialNumbers => "sequential_numbers",
        }
    }
}

/// A block just put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlock {
    pub prefix: String,
    pub trip: Trip,
    /// Messages to the prefix (or its country) in the window, this one included.
    pub count: u32,
    /// Distinct endings seen in the prefix's window.
    pub distinct: usize,
    pub until: Millis,
}

/// What the guard says of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The prefix is blocked (before this message, or by it: `Some`).
    Blocked(Option<NewBlock>),
}

/// Most distinct endings remembered per prefix window: enough to see any run that trips.
const MAX_ENDINGS: usize = 256;
/// Observations between sweeps of windows that are past.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Default)]
struct Window {
    start: Millis,
    count: u32,
    endings: BTreeSet<u32>,
}

impl Window {
    fn roll(&mut self, now: Millis, length: Millis) {
        if now.saturating_sub(self.start) >= length {
            self.start = now;
            self.count = 0;
            self.endings.clear();
        }
    }
}

/// The counters, blocks and safe lists of every account.
#[derive(Debug, Default)]
pub struct PumpingGuard {
    prefixes: HashMap<(String, String), Window>,
    countries: HashMap<(String, String), Window>,
    /// (account, prefix) → blocked until.
    blocks: HashMap<(String, String), Millis>,
    safe: HashMap<String, Vec<String>>,
    seen: u64,
}

/// `number` (E.164) without its last `masked` digits.
pub fn prefix_of(number: &str, masked: usize) -> &str {
    let keep = number.len().saturating_sub(masked).max(2.min(number.len()));
    &number[..keep]
}

/// A prefix as logs and the audit trail show it: its last three digits masked.
pub fn masked_prefix(prefix: &str) -> String {
    let keep = prefix.len().saturating_sub(3).max(1.min(prefix.len()));
    format!("{}{}", &prefix[..keep], "*".repeat(prefix.len() - keep))
}

impl PumpingGuard {
    /// Counts a message to `number` (E.164) of `country` for `account` and says whether it
    /// may go. A message refused because its prefix is blocked is not counted.
    pub fn observe(
        &mut self,
        rules: &PumpingRules,
        account: &str,
        number: &str,
        country: &str,
        now: Millis,
    ) -> Verdict {
        self.sweep(rules, now);
        let prefix = prefix_of(number, rules.masked_digits);
        let key = (account.to_owned(), prefix.to_owned());
        if self.blocks.get(&key).is_some_and(|until| *until > now) {
            return Verdict::Blocked(None);
        }
        if self.is_safe(account, number) {
            return Verdict::Allow;
        }
        let ending: u32 = number[prefix.len()..].parse().unwrap_or(0);
        let window = self.prefixes.entry(key.clone()).or_default();
        window.roll(now, rules.window_ms);
        window.count += 1;
        if window.endings.len() < MAX_ENDINGS {
            window.endings.insert(ending);
        }
        let (count, distinct) = (window.count, window.endings.len());
        let run = run_through(&window.endings, ending);
        let country_count = {
            let window = self
                .countries
                .entry((account.to_owned(), country.to_owned()))
                .or_default();
            window.roll(now, rules.window_ms);
            window.count += 1;
            window.count
        };
        let trip = if rules.sequential_run > 0 && run >= rules.sequential_run {
            Some((Trip::SequentialNumbers, count))
        } else if count > rules.max_per_prefix {
            Some((Trip::PrefixVelocity, count))
        } else if country_count > rules.max_per_country {
            Some((Trip::CountryVelocity, country_count))
        } else {
            None
        };
        let Some((trip, count)) = trip else {
            return Verdict::Allow;
        };
        let until = now.saturating_add(rules.block_ms);
        self.blocks.insert(key.clone(), until);
        self.prefixes.remove(&key);
        Verdict::Blocked(Some(NewBlock {
            prefix: key.1,
            trip,
            count,
            distinct,
            until,
        }))
    }

    /// Takes `blocks` (account, prefix, until) as the blocks in force, as the store holds them.
    pub fn replace_blocks(&mut self, blocks: impl IntoIterator<Item = (String, String, Millis)>) {
        self.blocks = blocks
            .into_iter()
            .map(|(account, prefix, until)| ((account, prefix), until))
            .collect();
    }

    /// Takes `safe` (account, prefix) as every account's safe list.
    pub fn replace_safe_list(&mut self, safe: impl IntoIterator<Item = (String, String)>) {
        self.safe.clear();
        for (account, prefix) in safe {
            self.safe.entry(account).or_default().push(prefix);
        }
    }

    /// Lifts a block; whether there was one.
    pub fn lift(&mut self, account: &str, prefix: &str) -> bool {
        self.blocks
            .remove(&(account.to_owned(), prefix.to_owned()))
            .is_some()
    }

    fn is_safe(&self, account: &str, number: &str) -> bool {
        self.safe
            .get(account)
            .is_some_and(|list| list.iter().any(|p| number.starts_with(p.as_str())))
    }

    /// Forgets windows that are past and blocks that ended, now and then.
    fn sweep(&mut self, rules: &PumpingRules, now: Millis) {
        self.seen += 1;
        if !self.seen.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        let live = |w: &mut Window| now.saturating_sub(w.start) < rules.window_ms;
        self.prefixes.retain(|_, w| live(w));
        self.countries.retain(|_, w| live(w));
        self.blocks.retain(|_, until| *until > now);
    }

    /// Windows held (prefixes and countries): what memory the guard uses.
    pub fn windows(&self) -> usize {
        self.prefixes.len() + self.countries.len()
    }
}

/// How many consecutive endings, `ending` among them, `endings` holds.
fn run_through(endings: &BTreeSet<u32>, ending: u32) -> u32 {
    let mut run = 1;
    let mut below = ending;
    while below > 0 && endings.contains(&(below - 1)) {
        run += 1;
        below -= 1;
    }
    let mut above = ending;
    while endings.contains(&(above + 1)) {
        run += 1;
        above += 1;
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PumpingRules {
        PumpingRules {
            masked_digits: 3,
            window_ms: 600_000,
            max_per_prefix: 50,
            max_per_country: 500,
            sequential_run: 10,
            block_ms: 12 * 3_600_000,
        }
    }

    #[test]
    fn a_prefix_is_the_number_without_its_last_digits_and_is_shown_masked() {
        assert_eq!(prefix_of("+447911123456", 3), "+447911123");
        assert_eq!(masked_prefix("+447911123"), "+447911***");
    }

    #[test]
    fn sequential_numbers_in_one_prefix_trip_it_at_the_run_length() {
        let mut guard = PumpingGuard::default();
        let rules = rules();
        for i in 0..9 {
            let n = format!("+447911123{i:03}");
            assert_eq!(guard.observe(&rules, "acc", &n, "GB", i), Verdict::Allow);
        }
        let Verdict::Blocked(Some(block)) = guard.observe(&rules, "acc", "+447911123009", "GB", 9)
        else {
            panic!("the tenth sequential number trips the prefix");
        };
        assert_eq!(block.trip, Trip::SequentialNumbers);
        assert_eq!(block.prefix, "+447911123");
        assert_eq!(
            guard.observe(&rules, "acc", "+447911123500", "GB", 10),
            Verdict::Blocked(None)
        );
        assert_eq!(
            guard.observe(&rules, "other", "+447911123500", "GB", 10),
            Verdict::Allow,
            "another account's counts are its own"
        );
        assert_eq!(
            guard.observe(&rules, "acc", "+447911124000", "GB", 10),
            Verdict::Allow
        );
        assert_eq!(
            guard.observe(&rules, "acc", "+447911123500", "GB", 9 + rules.block_ms),
            Verdict::Allow,
            "the block ends"
        );
    }

    #[test]
    fn scattered_numbers_trip_the_prefix_only_past_its_velocity_and_a_window_forgets() {
        let mut guard = PumpingGuard::default();
        let rules = rules();
        for i in 0..50u32 {
            let n = format!("+447911123{:03}", i * 7 % 1000);
            assert_eq!(guard.observe(&rules, "acc", &n, "GB", 0), Verdict::Allow);
        }
        let later = rules.window_ms;
        assert_eq!(
            guard.observe(&rules, "acc", "+447911123999", "GB", later),
            Verdict::Allow,
            "a new window starts from nothing"
        );
        for _ in 0..49 {
            guard.observe(&rules, "acc", "+447911123999", "GB", later);
        }
        assert!(matches!(
            guard.observe(&rules, "acc", "+447911123999", "GB", later),
            Verdict::Blocked(Some(NewBlock {
                trip: Trip::PrefixVelocity,
                count: 51,
                ..
            }))
        ));
    }

    #[test]
    fn a_safe_listed_prefix_is_never_blocked() {
        let mut guard = PumpingGuard::default();
        guard.replace_safe_list([("acc".to_owned(), "+447911".to_owned())]);
        let rules = rules();
        for i in 0..1000 {
            let n = format!("+447911123{i:03}");
            assert_eq!(guard.observe(&rules, "acc", &n, "GB", 0), Verdict::Allow);
        }
    }

    #[test]
    fn windows_that_are_past_are_forgotten() {
        let mut guard = PumpingGuard::default();
        let rules = PumpingRules {
            max_per_country: u32::MAX,
            ..rules()
        };
        for i in 0..SWEEP_EVERY {
            let n = format!("+4479{:08}", i * 1000);
            guard.observe(&rules, "acc", &n, "GB", 0);
        }
        assert!(guard.windows() > 1000);
        for _ in 0..SWEEP_EVERY {
            guard.observe(&rules, "acc", "+447911123456", "GB", rules.window_ms * 2);
        }
        assert!(guard.windows() <= 2, "{}", guard.windows());
    }
}
