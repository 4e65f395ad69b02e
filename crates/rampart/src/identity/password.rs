//! Passwords people choose: the acceptance rule (`Password::parse`), the breached-password list,
//! Argon2id hashing with bounded concurrency (`PasswordWork`) and the optional rotation policy.
//! A `Password` value exists only once it passed the rule, so code holding one need not re-check.

mod breached;
mod rotation;
mod work;

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;
use zxcvbn::{Score, zxcvbn};

pub use breached::BreachedList;
pub use rotation::RotationPolicy;
pub use work::{HashParams, PasswordWork, PasswordWorkError, Verification};

/// Fewest characters accepted, counted after normalisation. NIST SP 800-63B 5.1.1.2 asks for at
/// least 8 (15 when the password is the only factor); ASVS 4.0 2.1.1 asks for at least 12.
pub const MIN_CHARS: usize = 12;

/// Most characters accepted. ASVS 4.0 2.1.2 asks that at least 64 be allowed and at most 128.
pub const MAX_CHARS: usize = 128;

/// Longest raw input looked at, in bytes: a generous bound for `MAX_CHARS` characters (four
/// bytes each, four code points each before NFKC composes them) that keeps a huge body from
/// reaching normalisation and the strength estimate.
const MAX_RAW_BYTES: usize = MAX_CHARS * 16;

/// Lowest zxcvbn score accepted (0 to 4; 3 is "safely unguessable" for online attacks).
const MIN_SCORE: Score = Score::Three;

/// Words the strength estimate should treat as guessable for everyone on this server.
const PRODUCT_WORDS: [&str; 2] = ["rampart", "sms"];

/// A password that passed the acceptance rule, normalised with NFKC. The text is kept secret:
/// it leaves this module only to be hashed.
#[derive(Debug)]
pub struct Password(SecretString);

/// What the strength estimate and the breached check need to know about the person and server.
pub struct PasswordContext<'a> {
    /// Words tied to the person (email, name): a password built from them is refused as weak.
    pub user_inputs: Vec<String>,
    /// The operator's list of breached passwords (NIST SP 800-63B 5.1.1.2, ASVS 4.0 2.1.7).
    pub breached: &'a BreachedList,
}

impl<'a> PasswordContext<'a> {
    /// A context for a person known by email and display name: the whole email, its local part
    /// and each word of the name count as guessable.
    pub fn for_user(email: &str, name: &str, breached: &'a BreachedList) -> Self {
        let mut user_inputs = vec![email.to_owned()];
        if let Some((local, _)) = email.split_once('@') {
            user_inputs.push(local.to_owned());
        }
        user_inputs.extend(name.split_whitespace().map(str::to_owned));
        Self {
            user_inputs,
            breached,
        }
    }
}

/// Why a password was refused. `code` is the stable identifier clients match on; `Display` is a
/// sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    /// Fewer characters than `min` after normalisation.
    #[error("the password must have at least {min} characters")]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More characters than `max` after normalisation.
    #[error("the password must have at most {max} characters")]
    TooLong {
        /// The maximum, in characters.
        max: usize,
    },
    /// Easy to guess (zxcvbn score below 3); `feedback` is zxcvbn's warning and suggestions.
    #[error("the password is too easy to guess{}", feedback_suffix(.feedback))]
    TooWeak {
        /// What made it guessable and how to do better, when the estimator says.
        feedback: Option<String>,
    },
    /// Listed among passwords known from breaches.
    #[error("the password appears in a list of breached passwords; choose another")]
    Breached,
}

fn feedback_suffix(feedback: &Option<String>) -> String {
    feedback
        .as_deref()
        .map(|text| format!(": {text}"))
        .unwrap_or_default()
}

impl PasswordRejection {
    /// The stable machine-readable code of this rejection.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::TooWeak { .. } => "password_too_weak",
            Self::Breached => "password_breached",
        }
    }
}

/// NFKC normalisation, so the same password typed on different keyboards or input methods is
/// the same password (NIST SP 800-63B 5.1.1.2; ASVS 4.0 2.1.x). Used at enrolment and at login.
pub(crate) fn normalise(raw: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(raw.len()));
    out.extend(raw.nfkc());
    out
}

impl Password {
    /// Applies the acceptance rule: NFKC, then 12 to 128 characters, not breached, and a zxcvbn
    /// score of at least 3. There are deliberately no composition rules (NIST SP 800-63B
    /// 5.1.1.2; ASVS 4.0 2.1.9), and spaces and any printable Unicode are allowed (ASVS 2.1.4).
    pub fn parse(raw: &str, context: &PasswordContext<'_>) -> Result<Password, PasswordRejection> {
        if raw.len() > MAX_RAW_BYTES {
            return Err(PasswordRejection::TooLong { max: MAX_CHARS });
        }
        let normalised = normalise(raw);
        let chars = normalised.chars().count();
        if chars < MIN_CHARS {
            return Err(PasswordRejection::TooShort { min: MIN_CHARS });
        }
        if chars > MAX_CHARS {
            return Err(PasswordRejection::TooLong { max: MAX_CHARS });
        }
        if context.breached.contains(&normalised) {
            return Err(PasswordRejection::Breached);
        }
        let inputs: Vec<&str> = context
            .user_inputs
            .iter()
            .map(String::as_str)
            .chain(PRODUCT_WORDS)
            .collect();
        let entropy = zxcvbn(&normalised, &inputs);
        if entropy.score() < MIN_SCORE {
            let feedback = entropy
                .feedback()
                .map(|f| f.to_string().trim().to_owned())
                .filter(|text| !text.is_empty());
            return Err(PasswordRejection::TooWeak { feedback });
        }
        Ok(Password(SecretString::from(normalised.as_str())))
    }

    /// A password that was accepted when it was set and has just been verified, to hash again
    /// with stronger settings; the acceptance rule is not applied twice.
    pub fn from_verified(verified: &SecretString) -> Result<Password, PasswordRejection> {
        let normalised = normalise(verified.expose_secret());
        Ok(Password(SecretString::from(normalised.as_str())))
    }

    /// The normalised text, for hashing only.
    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[password]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 characters, four-plus unrelated words: the kind of passphrase the rule is meant for.
    const PASSPHRASE: &str = "correct horse battery staple orbit lantern quiet meadow river 42";

    fn parse(raw: &str) -> Result<Password, PasswordRejection> {
        let breached = BreachedList::empty();
        let context = PasswordContext::for_user("ada@example.com", "Ada Lovelace", &breached);
        Password::parse(raw, &context)
    }

    #[test]
    fn eleven_characters_are_refused_as_too_short() {
        let rejection = parse("k7#Rq!m2Zp9").unwrap_err();
        assert_eq!(rejection, PasswordRejection::TooShort { min: 12 });
        assert_eq!(rejection.code(), "password_too_short");
    }

    #[test]
    fn a_64_character_passphrase_is_accepted() {
        assert_eq!(PASSPHRASE.chars().count(), 64);
        let password = parse(PASSPHRASE).unwrap();
        assert_eq!(password.expose(), PASSPHRASE);
    }

    #[test]
    fn a_common_password_with_symbols_is_refused_as_weak() {
        let rejection = parse("Password123!").unwrap_err();
        assert!(matches!(rejection, PasswordRejection::TooWeak { .. }));
        assert_eq!(rejection.code(), "password_too_weak");
        assert!(
            rejection
                .to_string()
                .starts_with("the password is too easy to guess")
        );
    }

    #[test]
    fn passwords_built_from_the_persons_own_name_are_refused() {
        // Strong for a stranger, guessable for someone who knows the email address.
        let breached = BreachedList::empty();
        let stranger = PasswordContext {
            user_inputs: Vec::new(),
            breached: &breached,
        };
        assert!(Password::parse("ada@example.com2024", &stranger).is_ok());
        let rejection = parse("ada@example.com2024").unwrap_err();
        assert!(matches!(rejection, PasswordRejection::TooWeak { .. }));
    }

    #[test]
    fn one_hundred_twenty_nine_characters_are_refused_as_too_long() {
        let raw: String = PASSPHRASE.repeat(3).chars().take(129).collect();
        let rejection = parse(&raw).unwrap_err();
        assert_eq!(rejection, PasswordRejection::TooLong { max: 128 });
        assert_eq!(rejection.code(), "password_too_long");
        let max: String = PASSPHRASE.repeat(3).chars().take(128).collect();
        assert!(parse(&max).is_ok());
    }

    #[test]
    fn huge_input_is_refused_before_normalisation() {
        let raw = "a".repeat(1 << 20);
        assert_eq!(
            parse(&raw).unwrap_err(),
            PasswordRejection::TooLong { max: 128 }
        );
    }

    #[test]
    fn fullwidth_letters_normalise_to_the_same_password() {
        let fullwidth: String = PASSPHRASE
            .chars()
            .map(|c| match c {
                'a'..='z' => char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap(),
                _ => c,
            })
            .collect();
        assert_ne!(fullwidth, PASSPHRASE);
        assert_eq!(parse(&fullwidth).unwrap().expose(), PASSPHRASE);
    }

    #[test]
    fn length_counts_characters_after_normalisation() {
        // "e" + COMBINING ACUTE composes to one "é": 12 code points in, 11 characters out.
        let raw = "Zq7ve\u{301}Lk3!pX";
        assert_eq!(raw.chars().count(), 12);
        assert_eq!(
            parse(raw).unwrap_err(),
            PasswordRejection::TooShort { min: 12 }
        );
    }

    #[test]
    fn breached_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("breached.txt");
        std::fs::write(&path, format!("{PASSPHRASE}\n")).unwrap();
        let breached = BreachedList::load(&path).unwrap();
        let context = PasswordContext::for_user("ada@example.com", "Ada", &breached);
        let rejection = Password::parse(PASSPHRASE, &context).unwrap_err();
        assert_eq!(rejection, PasswordRejection::Breached);
        assert_eq!(rejection.code(), "password_breached");
    }

    #[test]
    fn a_password_never_shows_its_text() {
        let password = parse(PASSPHRASE).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
        assert_eq!(password.to_string(), "[password]");
    }
}
