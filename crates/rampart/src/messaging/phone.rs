//! Phone numbers: parsed once into E.164 and validated against libphonenumber's metadata.
//!
//! Full validation is costly (tens of microseconds), so verdicts are cached by number: a
//! business sends to the same customers again and again, and the send path must stay fast.

use std::fmt;
use std::sync::LazyLock;

use quick_cache::sync::Cache;

/// A valid phone number in E.164 form (`+` and up to 15 digits).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    country: Option<[u8; 2]>,
}

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Not written as `+` then the country code and number (spaces and dashes allowed).
    #[error(
        "`{0}` is not in E.164 format: write it as + then country code and number, like +447911123456"
    )]
    NotE164(String),
    /// Well-formed, but no such number exists for its country.
    #[error("`{0}` is not a valid phone number for its country")]
    Invalid(String),
}

/// Verdicts on numbers seen before: digits → country (or `None` when invalid).
static VERDICTS: LazyLock<Cache<u64, Option<Option<[u8; 2]>>>> =
    LazyLock::new(|| Cache::new(200_000));

impl PhoneNumber {
    /// Parses `+44 7911 123456`, `+447911123456` or `+44-7911-123456`.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let not_e164 = || PhoneError::NotE164(mask(input));
        let rest = input.trim().strip_prefix('+').ok_or_else(not_e164)?;
        let mut key: u64 = 0;
        let mut digits = String::with_capacity(16);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => {
                    if digits.len() > 15 {
                        return Err(not_e164());
                    }
                    digits.push(c);
                    key = key * 10 + u64::from(c as u8 - b'0');
                }
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(not_e164()),
            }
        }
        // Shortest real numbers (e.g. +290 XXXX) have 7 digits; a leading 0 is no country code.
        if digits.len() < 8 || digits.as_bytes()[1] == b'0' {
            return Err(not_e164());
        }
        // The digit count disambiguates keys such as "+1" and "+01" (the latter is refused above).
        let key = key | ((digits.len() as u64) << 56);
        let verdict = match VERDICTS.get(&key) {
            Some(verdict) => verdict,
            None => {
                let verdict = validate(&digits);
                VERDICTS.insert(key, verdict);
                verdict
            }
        };
        match verdict {
            Some(country) => Ok(Self {
                e164: digits,
                country,
            }),
            None => Err(PhoneError::Invalid(mask(&digits))),
        }
    }

    /// The number as `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// ISO 3166 alpha-2 region, when the number maps to one region.
    pub fn country(&self) -> Option<&str> {
        self.country
            .as_ref()
            .and_then(|c| std::str::from_utf8(c).ok())
    }

    /// The masked form that may appear in logs: `+4477******23`.
    pub fn masked(&self) -> String {
        mask(&self.e164)
    }
}

fn validate(e164: &str) -> Option<Option<[u8; 2]>> {
    let number = phonenumber::parse(None, e164).ok()?;
    if !number.is_valid() {
        return None;
    }
    let country = number.country().id().and_then(|id| {
        let code: &str = id.as_ref();
        code.as_bytes().try_into().ok()
    });
    Some(country)
}

/// Masks all but the first five and last two characters of a number-like string, for logs.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < 5 || i + 2 >= chars.len() {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

/// Debug never shows the full number, so a stray `{:?}` cannot leak it into logs.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_numbers_parse_into_e164() {
        let n = PhoneNumber::parse("+44 7400 123456").unwrap();
        assert_eq!(n.as_str(), "+447400123456");
        assert_eq!(n.country(), Some("GB"));
        assert_eq!(
            PhoneNumber::parse("+1-212-555-0123").unwrap().country(),
            Some("US")
        );
        assert_eq!(
            PhoneNumber::parse("+33612345678").unwrap().as_str(),
            "+33612345678"
        );
    }

    #[test]
    fn numbers_without_plus_or_with_letters_are_not_e164() {
        for bad in [
            "447700900123",
            "+44abc",
            "",
            "+",
            "+0123456789",
            "+1234567890123456",
            "+44 77 00 x",
        ] {
            assert!(
                matches!(PhoneNumber::parse(bad), Err(PhoneError::NotE164(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn well_formed_but_impossible_numbers_are_invalid() {
        assert!(matches!(
            PhoneNumber::parse("+4411"),
            Err(PhoneError::NotE164(_))
        ));
        assert!(matches!(
            PhoneNumber::parse("+44123"),
            Err(PhoneError::NotE164(_))
        ));
        assert!(matches!(
            PhoneNumber::parse("+999123456789"),
            Err(PhoneError::Invalid(_))
        ));
        // Twice, to exercise the cached verdict.
        assert!(matches!(
            PhoneNumber::parse("+999123456789"),
            Err(PhoneError::Invalid(_))
        ));
    }

    #[test]
    fn debug_and_errors_mask_the_number() {
        let n = PhoneNumber::parse("+447911123456").unwrap();
        assert_eq!(format!("{n:?}"), "PhoneNumber(+4479******56)");
        let err = PhoneNumber::parse("+999123456789").unwrap_err().to_string();
        assert!(!err.contains("999123456789"), "{err}");
    }
}
