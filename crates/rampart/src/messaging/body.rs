//! Message bodies: text that is known to fit the configured number of SMS segments.

use std::fmt;

use super::encoding::{self, BodyInfo};

/// A body that is non-empty, free of NUL and other invisible control characters, and at most
/// `max_segments` long.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageBody {
    text: String,
    info: BodyInfo,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Empty or only white space.
    #[error("`body` is empty")]
    Empty,
    /// Contains control characters other than newline, carriage return and tab.
    #[error("`body` contains control characters")]
    ControlCharacters,
    /// Needs more segments than allowed.
    #[error("`body` needs {segments} SMS segments ({encoding}); the limit is {max}")]
    TooLong {
        segments: usize,
        max: usize,
        encoding: &'static str,
    },
}

impl MessageBody {
    pub fn parse(text: String, max_segments: usize) -> Result<Self, BodyError> {
        if text.trim().is_empty() {
            return Err(BodyError::Empty);
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(BodyError::ControlCharacters);
        }
        let info = encoding::analyze(&text);
        if info.segments > max_segments {
            return Err(BodyError::TooLong {
                segments: info.segments,
                max: max_segments,
                encoding: info.encoding.as_str(),
            });
        }
        Ok(Self { text, info })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn info(&self) -> BodyInfo {
        self.info
    }
}

/// Debug shows the shape, never the text.
impl fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MessageBody({:?}, {} segments)",
            self.info.encoding, self.info.segments
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_control_and_overlong_bodies_are_refused() {
        assert_eq!(MessageBody::parse("  ".into(), 10), Err(BodyError::Empty));
        assert_eq!(
            MessageBody::parse("a\u{0}b".into(), 10),
            Err(BodyError::ControlCharacters)
        );
        let long = "a".repeat(161);
        assert!(matches!(
            MessageBody::parse(long, 1),
            Err(BodyError::TooLong {
                segments: 2,
                max: 1,
                ..
            })
        ));
    }

    #[test]
    fn debug_hides_the_text() {
        let body = MessageBody::parse("secret code 1234".into(), 10).unwrap();
        assert!(!format!("{body:?}").contains("1234"));
    }
}
