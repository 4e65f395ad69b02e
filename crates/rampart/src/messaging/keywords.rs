//! Opt-out keywords: what an inbound message whose whole text is STOP, START or HELP (in any
//! case, with any surrounding space) asks for. Anything more ("stop please") is a message.

/// What a keyword message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// No more messages (STOP and its synonyms).
    Stop,
    /// Messages again (START, UNSTOP, YES).
    Start,
    /// The account's help reply.
    Help,
}

/// The words that opt out, as carriers and handsets send them (CTIA's list and common ones).
pub const STOP_WORDS: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
];
/// The words that opt back in.
pub const START_WORDS: [&str; 3] = ["START", "UNSTOP", "YES"];
/// The word that asks for help.
pub const HELP_WORDS: [&str; 1] = ["HELP"];

/// Longest text that can be a keyword: anything longer is read as a message at once.
const LONGEST: usize = 32;

impl Keyword {
    /// The keyword `text` is, if its whole text (trimmed, any case) is one.
    pub fn parse(text: &str) -> Option<Self> {
        let word = text.trim();
        if word.len() > LONGEST {
            return None;
        }
        let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(word));
        if is(&STOP_WORDS) {
            Some(Self::Stop)
        } else if is(&START_WORDS) {
            Some(Self::Start)
        } else if is(&HELP_WORDS) {
            Some(Self::Help)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Help => "help",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stop_word_opts_out_in_any_case() {
        for word in STOP_WORDS {
            assert_eq!(Keyword::parse(word), Some(Keyword::Stop), "{word}");
            assert_eq!(
                Keyword::parse(&word.to_lowercase()),
                Some(Keyword::Stop),
                "{word}"
            );
            let mixed: String = word
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_lowercase()
                    } else {
                        c
                    }
                })
                .collect();
            assert_eq!(Keyword::parse(&mixed), Some(Keyword::Stop), "{mixed}");
        }
    }

    #[test]
    fn every_start_word_opts_back_in_and_help_asks_for_help() {
        for word in START_WORDS {
            assert_eq!(Keyword::parse(word), Some(Keyword::Start), "{word}");
            assert_eq!(Keyword::parse(&word.to_lowercase()), Some(Keyword::Start));
        }
        assert_eq!(Keyword::parse("HELP"), Some(Keyword::Help));
        assert_eq!(Keyword::parse("help"), Some(Keyword::Help));
        assert_eq!(Keyword::parse("Help"), Some(Keyword::Help));
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(Keyword::parse("  stop "), Some(Keyword::Stop));
        assert_eq!(Keyword::parse("\tSTOP\r\n"), Some(Keyword::Stop));
        assert_eq!(Keyword::parse("\n start\n"), Some(Keyword::Start));
    }

    #[test]
    fn a_keyword_inside_a_longer_message_is_not_a_keyword() {
        for text in [
            "stop please",
            "please stop",
            "STOP!",
            "S TOP",
            "stopp",
            "don't stop",
            "yes please",
            "help me",
            "",
            "   ",
            "ＳＴＯＰ",
        ] {
            assert_eq!(Keyword::parse(text), None, "{text:?}");
        }
        assert_eq!(Keyword::parse(&"stop ".repeat(100)), None);
    }
}
