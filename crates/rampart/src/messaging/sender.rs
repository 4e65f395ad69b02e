//! Sender IDs: what the recipient sees as "from".

use std::fmt;

use super::phone::{PhoneError, PhoneNumber};

/// Who a message is from.
#[derive(Clone, PartialEq, Eq)]
pub enum SenderId {
    /// A brand name: 1 to 11 letters, digits, spaces and `.-&_`, with at least one letter.
    Alphanumeric(String),
    /// A long number in E.164.
    Number(PhoneNumber),
    /// A short code: 3 to 8 digits.
    ShortCode(String),
}

/// Why a sender ID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    /// Empty.
    #[error("`from` is empty")]
    Empty,
    /// Longer than 11 characters, or characters carriers do not carry.
    #[error(
        "`from` must be a name of at most 11 letters, digits and spaces, a short code of 3-8 digits, or an E.164 number"
    )]
    Malformed,
    /// Looked like a phone number but is not a valid one.
    #[error(transparent)]
    Number(#[from] PhoneError),
}

impl SenderId {
    pub fn parse(input: &str) -> Result<Self, SenderError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(SenderError::Empty);
        }
        if s.starts_with('+') {
            return Ok(Self::Number(PhoneNumber::parse(s)?));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return if (3..=8).contains(&s.len()) {
                Ok(Self::ShortCode(s.to_owned()))
            } else {
                Err(SenderError::Malformed)
            };
        }
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '&' | '_');
        if s.chars().count() <= 11
            && s.chars().all(allowed)
            && s.chars().any(|c| c.is_ascii_alphabetic())
        {
            return Ok(Self::Alphanumeric(s.to_owned()));
        }
        Err(SenderError::Malformed)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Alphanumeric(s) | Self::ShortCode(s) => s,
            Self::Number(n) => n.as_str(),
        }
    }
}

impl fmt::Display for SenderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SenderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "SenderId({n:?})"),
            other => write!(f, "SenderId({})", other.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_short_codes_and_numbers_are_senders() {
        assert_eq!(
            SenderId::parse("Rampart").unwrap(),
            SenderId::Alphanumeric("Rampart".into())
        );
        assert_eq!(
            SenderId::parse("My Bank 24").unwrap().as_str(),
            "My Bank 24"
        );
        assert!(matches!(
            SenderId::parse("12345").unwrap(),
            SenderId::ShortCode(_)
        ));
        assert!(matches!(
            SenderId::parse("+447911123456").unwrap(),
            SenderId::Number(_)
        ));
    }

    #[test]
    fn overlong_or_odd_senders_are_refused() {
        assert_eq!(SenderId::parse("ABCDEFGHIJKL"), Err(SenderError::Malformed));
        assert_eq!(SenderId::parse("Bank<script>"), Err(SenderError::Malformed));
        assert_eq!(SenderId::parse("12"), Err(SenderError::Malformed));
        assert_eq!(SenderId::parse(" "), Err(SenderError::Empty));
        assert!(matches!(
            SenderId::parse("+999123456789"),
            Err(SenderError::Number(_))
        ));
    }
}
