//! One-time secrets that are not passwords: numeric codes sent by SMS for login, recovery
//! codes for a lost second factor, and opaque link tokens (invites, password resets,
//! first-start setup, sessions). The caller hashes with its keyed HMAC; this module only
//! generates, shapes and compares hashes in constant time.

use std::fmt;

use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::clock::Millis;

/// How long an SMS code stays valid: 5 minutes (NIST SP 800-63B 5.1.3.1 allows up to 10).
pub const SMS_CODE_TTL_MS: Millis = 5 * 60 * 1_000;
/// Wrong guesses after which a code is dead and a new one must be requested
/// (NIST SP 800-63B 5.2.2 rate limiting; ASVS 2.2.1).
pub const MAX_CODE_ATTEMPTS: u32 = 3;
/// Recovery codes issued at once (ASVS 2.6.x look-up secrets).
pub const RECOVERY_CODE_COUNT: usize = 10;

/// Crockford's base32 alphabet, lowercase: no `i`, `l`, `o`, `u`, so codes read back
/// unambiguously; 5 bits a character.
const RECOVERY_ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters a half: two halves give 10 characters, 50 bits (ASVS 2.6.2 asks for at least
/// 20 bits; NIST SP 800-63B 5.1.2.1 for 64 bits unless attempts are rate limited, as ours are).
const RECOVERY_HALF_LEN: usize = 5;

const LINK_ID_LEN: usize = 12;
const LINK_SECRET_LEN: usize = 32;
const LINK_ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const LINK_SECRET_ALPHABET: &[u8] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random_string(alphabet: &[u8], len: usize, out: &mut String) {
    let mut rng = rand::rng();
    for _ in 0..len {
        out.push(char::from(alphabet[rng.random_range(0..alphabet.len())]));
    }
}

/// A code length outside 6 to 8 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a one-time code has 6 to 8 digits, not {0}")]
pub struct InvalidCodeLength(pub u8);

/// Why a presented one-time code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeRejection {
    /// Older than its time to live.
    #[error("code expired")]
    Expired,
    /// Already accepted once.
    #[error("code already used")]
    Used,
    /// Does not match; attempts remain.
    #[error("wrong code")]
    Wrong,
    /// The attempt cap is reached (this wrong guess included): the code is dead.
    #[error("too many wrong attempts")]
    TooManyAttempts,
}

/// The server's record of one SMS/login code: only its keyed hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeCode {
    pub hash: [u8; 32],
    pub expires_at: Millis,
    pub used: bool,
    pub attempts: u32,
}

impl OneTimeCode {
    /// A uniformly random numeric code of `digits` digits (6 to 8), to be sent and never
    /// stored in the clear (NIST SP 800-63B 5.1.3.1: at least 6 digits from an approved RNG).
    pub fn generate(digits: u8) -> Result<SecretString, InvalidCodeLength> {
        if !(6..=8).contains(&digits) {
            return Err(InvalidCodeLength(digits));
        }
        let mut code = String::with_capacity(usize::from(digits));
        random_string(b"0123456789", usize::from(digits), &mut code);
        Ok(SecretString::from(code))
    }

    /// The record for a code whose keyed hash is `hash`, issued at `now`.
    pub fn new(hash: [u8; 32], now: Millis) -> Self {
        Self {
            hash,
            expires_at: now.saturating_add(SMS_CODE_TTL_MS),
            used: false,
            attempts: 0,
        }
    }

    /// A fresh code and its record: the code to send, the record to keep.
    pub fn issue(
        digits: u8,
        hasher: &dyn Fn(&str) -> [u8; 32],
        now: Millis,
    ) -> Result<(SecretString, Self), InvalidCodeLength> {
        let code = Self::generate(digits)?;
        let record = Self::new(hasher(code.expose_secret()), now);
        Ok((code, record))
    }

    /// Checks the keyed hash of a presented code at `now`, updating the record: the caller
    /// must save it whatever the outcome. Accepted once only; after `MAX_CODE_ATTEMPTS` wrong
    /// guesses even the right code is refused.
    pub fn verify(&mut self, presented_hash: &[u8; 32], now: Millis) -> Result<(), CodeRejection> {
        if self.used {
            return Err(CodeRejection::Used);
        }
        if self.attempts >= MAX_CODE_ATTEMPTS {
            return Err(CodeRejection::TooManyAttempts);
        }
        if now >= self.expires_at {
            return Err(CodeRejection::Expired);
        }
        if !bool::from(self.hash.ct_eq(presented_hash)) {
            self.attempts += 1;
            return Err(if self.attempts >= MAX_CODE_ATTEMPTS {
                CodeRejection::TooManyAttempts
            } else {
                CodeRejection::Wrong
            });
        }
        self.used = true;
        Ok(())
    }
}

/// Ten fresh recovery codes, shown once, like `7k3m9-x2q4h` (ASVS 2.6.1-2.6.3). The caller
/// stores the keyed hash of each code's `normalise_recovery_code` form.
pub fn generate_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let mut code = String::with_capacity(2 * RECOVERY_HALF_LEN + 1);
            random_string(RECOVERY_ALPHABET, RECOVERY_HALF_LEN, &mut code);
            code.push('-');
            random_string(RECOVERY_ALPHABET, RECOVERY_HALF_LEN, &mut code);
            code
        })
        .collect()
}

/// The canonical form of a typed recovery code: lowercase, without spaces or dashes, and with
/// the look-alikes `o`, `i`, `l` read as `0`, `1`, `1` (Crockford), so users may type loosely.
pub fn normalise_recovery_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        })
        .collect()
}

/// Which unused recovery code (by index) the presented hash matches, if any. Every stored
/// hash is compared, in constant time, so timing does not tell which one matched.
pub fn match_recovery_code(stored: &[[u8; 32]], presented_hash: &[u8; 32]) -> Option<usize> {
    let mut found = None;
    for (i, hash) in stored.iter().enumerate() {
        if bool::from(hash.ct_eq(presented_hash)) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// An opaque token for a link (`<prefix>_<12-char id>_<32-char secret>`, 190 bits of secret):
/// the id is public and is the storage key; only a keyed hash of the whole token is stored.
pub struct LinkToken {
    token: SecretString,
    prefix_len: usize,
}

impl LinkToken {
    /// A fresh token, e.g. `LinkToken::generate("inv")` for an invitation.
    pub fn generate(prefix: &str) -> Self {
        let mut token = String::with_capacity(prefix.len() + 2 + LINK_ID_LEN + LINK_SECRET_LEN);
        token.push_str(prefix);
        token.push('_');
        random_string(LINK_ID_ALPHABET, LINK_ID_LEN, &mut token);
        token.push('_');
        random_string(LINK_SECRET_ALPHABET, LINK_SECRET_LEN, &mut token);
        Self {
            token: SecretString::from(token),
            prefix_len: prefix.len(),
        }
    }

    /// Checks the shape of a presented token with the expected prefix; `None` for anything
    /// that cannot be one.
    pub fn parse(prefix: &str, presented: &str) -> Option<Self> {
        let rest = presented.strip_prefix(prefix)?.strip_prefix('_')?;
        let (id, secret) = rest.split_once('_')?;
        let ok = id.len() == LINK_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            && secret.len() == LINK_SECRET_LEN
            && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self {
            token: SecretString::from(presented.to_owned()),
            prefix_len: prefix.len(),
        })
    }

    /// The public id (`<prefix>_<12 characters>`), safe to log and to store as the key.
    pub fn id(&self) -> &str {
        &self.token.expose_secret()[..self.prefix_len + 1 + LINK_ID_LEN]
    }

    /// The whole token, to put in the link once and never again.
    pub fn reveal(&self) -> &str {
        self.token.expose_secret()
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkToken({}…)", self.id())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn fake_hash(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in s.bytes().enumerate() {
            out[i % 32] ^= b.wrapping_add(i as u8);
        }
        out
    }

    #[test]
    fn codes_have_the_asked_number_of_digits() {
        for digits in 6..=8 {
            let code = OneTimeCode::generate(digits).unwrap();
            assert_eq!(code.expose_secret().len(), usize::from(digits));
            assert!(code.expose_secret().bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(OneTimeCode::generate(5).unwrap_err(), InvalidCodeLength(5));
        assert!(OneTimeCode::generate(9).is_err());
    }

    #[test]
    fn code_digits_are_spread_over_all_ten_values() {
        let mut counts = [0u32; 10];
        for _ in 0..2_000 {
            for b in OneTimeCode::generate(6).unwrap().expose_secret().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        // 12 000 digits: 1 200 each expected; a biased generator would stray far.
        assert!(
            counts.iter().all(|&c| (1_000..1_400).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn right_code_is_accepted_once() {
        let (code, mut record) = OneTimeCode::issue(6, &fake_hash, 1_000).unwrap();
        let hash = fake_hash(code.expose_secret());
        assert_eq!(record.expires_at, 1_000 + SMS_CODE_TTL_MS);
        assert_eq!(record.verify(&hash, 2_000), Ok(()));
        assert_eq!(record.verify(&hash, 2_001), Err(CodeRejection::Used));
    }

    #[test]
    fn code_expires_after_five_minutes() {
        let mut record = OneTimeCode::new([7; 32], 0);
        assert_eq!(
            record.verify(&[7; 32], SMS_CODE_TTL_MS),
            Err(CodeRejection::Expired)
        );
        let mut fresh = OneTimeCode::new([7; 32], 0);
        assert_eq!(fresh.verify(&[7; 32], SMS_CODE_TTL_MS - 1), Ok(()));
    }

    #[test]
    fn code_dies_after_three_wrong_attempts() {
        let mut record = OneTimeCode::new([7; 32], 0);
        assert_eq!(record.verify(&[1; 32], 1), Err(CodeRejection::Wrong));
        assert_eq!(record.verify(&[2; 32], 2), Err(CodeRejection::Wrong));
        assert_eq!(
            record.verify(&[3; 32], 3),
            Err(CodeRejection::TooManyAttempts)
        );
        assert_eq!(
            record.verify(&[7; 32], 4),
            Err(CodeRejection::TooManyAttempts)
        );
        assert_eq!(record.attempts, 3);
    }

    #[test]
    fn two_wrong_attempts_still_allow_the_right_code() {
        let mut record = OneTimeCode::new([7; 32], 0);
        assert!(record.verify(&[1; 32], 1).is_err());
        assert!(record.verify(&[2; 32], 2).is_err());
        assert_eq!(record.verify(&[7; 32], 3), Ok(()));
    }

    #[test]
    fn recovery_codes_are_ten_distinct_unambiguous_codes() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(&code[5..6], "-");
            assert!(
                code.bytes()
                    .filter(|&b| b != b'-')
                    .all(|b| RECOVERY_ALPHABET.contains(&b)),
                "{code}"
            );
            assert!(!code.contains(['i', 'l', 'o', 'u']), "{code}");
            // A generated code is already in normal form but for its dash.
            assert_eq!(normalise_recovery_code(code), code.replace('-', ""));
        }
        assert_eq!(RECOVERY_ALPHABET.len(), 32);
    }

    #[test]
    fn recovery_codes_may_be_typed_loosely() {
        let canonical = normalise_recovery_code("7k3m0-x2q1h");
        for typed in [
            "7K3M0-X2Q1H",
            "7k3m0 x2q1h",
            " 7k3m0x2q1h ",
            "7k3mo-x2qlh",
            "7K3MO X2QIH",
        ] {
            assert_eq!(normalise_recovery_code(typed), canonical, "{typed}");
        }
        assert_eq!(canonical, "7k3m0x2q1h");
    }

    #[test]
    fn recovery_code_match_finds_the_right_index() {
        let stored = [[1; 32], [2; 32], [3; 32]];
        assert_eq!(match_recovery_code(&stored, &[2; 32]), Some(1));
        assert_eq!(match_recovery_code(&stored, &[9; 32]), None);
        assert_eq!(match_recovery_code(&[], &[9; 32]), None);
    }

    #[test]
    fn link_tokens_parse_and_expose_only_their_id() {
        let token = LinkToken::generate("inv");
        let text = token.reveal();
        assert_eq!(text.len(), 3 + 1 + 12 + 1 + 32);
        assert!(text.starts_with("inv_"));
        assert_eq!(token.id(), &text[..16]);
        let again = LinkToken::parse("inv", text).unwrap();
        assert_eq!(again.id(), token.id());
        assert_eq!(again.reveal(), text);
        assert_ne!(LinkToken::generate("inv").reveal(), text);
    }

    #[test]
    fn malformed_link_tokens_do_not_parse() {
        let good = LinkToken::generate("rst");
        let text = good.reveal();
        assert!(LinkToken::parse("rst", text).is_some());
        let wrong_prefix = LinkToken::parse("inv", text);
        assert!(wrong_prefix.is_none());
        for bad in [
            String::new(),
            "rst_".to_owned(),
            text[..text.len() - 1].to_owned(),
            format!("{text}x"),
            text.replacen("rst_", "rst__", 1),
            text.replacen('_', "-", 2),
            format!("rst_ABCDEFGHIJKL_{}", &text[text.len() - 32..]),
            format!("{}é", &text[..text.len() - 1]),
        ] {
            assert!(LinkToken::parse("rst", &bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn link_token_debug_never_shows_the_secret() {
        let token = LinkToken::generate("ses");
        let debug = format!("{token:?}");
        assert!(debug.contains(token.id()));
        assert!(!debug.contains(&token.reveal()[17..]));
    }
}
