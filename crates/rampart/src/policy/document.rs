//! The account's policy document: the JSON an account admin or operator writes, and the one
//! check that it makes sense. A missing document is `PolicyDocument::default()`.

use serde::{Deserialize, Serialize};

use crate::messaging::SenderId;

/// Most entries in any list of the document, so a document stays small enough to check per
/// send and to hold in memory for every account.
pub const MAX_LIST: usize = 500;

/// Every rule of one account. Each section is optional; a missing one takes its defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    #[serde(default)]
    pub destinations: Destinations,
    #[serde(default)]
    pub senders: Senders,
    #[serde(default)]
    pub content: Content,
    /// Hours in the recipient's local time when marketing is not sent; none by default.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// At most so many messages per recipient per window; none by default.
    #[serde(default)]
    pub frequency_cap: Option<FrequencyCap>,
}

/// Where the account may send.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destinations {
    /// ISO 3166 alpha-2 codes; when given, only these countries. Absent: every country but
    /// the high-risk ones.
    #[serde(default)]
    pub allowed_countries: Option<Vec<String>>,
    /// Allows the built-in high-risk set too (when `allowed_countries` is absent).
    #[serde(default)]
    pub allow_high_risk: bool,
    /// E.164 prefixes (`+4470`) never sent to.
    #[serde(default)]
    pub blocked_prefixes: Vec<String>,
}

/// Who the account may send as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Senders {
    /// Alphanumeric sender IDs registered to the account. Empty: any sender (the rule is
    /// off); one entry turns it on, and then numbers must be assigned to the account.
    #[serde(default)]
    pub sender_ids: Vec<String>,
}

/// What a message may say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Most segments per message (below the server's own limit).
    #[serde(default, deserialize_with = "crate::whole_number::optional_u32")]
    pub max_segments: Option<u32>,
    /// Words refused anywhere in a body (case-insensitive, whole words).
    #[serde(default)]
    pub blocked_words: Vec<String>,
    /// Refuses links through the well-known URL shorteners.
    #[serde(default)]
    pub block_url_shorteners: bool,
    /// Text every marketing message must contain (case-insensitive), `STOP` by default.
    #[serde(default = "default_footer")]
    pub marketing_opt_out_footer: String,
}

fn default_footer() -> String {
    "STOP".to_owned()
}

impl Default for Content {
    fn default() -> Self {
        Self {
            max_segments: None,
            blocked_words: Vec::new(),
            block_url_shorteners: false,
            marketing_opt_out_footer: default_footer(),
        }
    }
}

/// What happens to marketing sent during quiet hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuietAction {
    /// Scheduled for the end of the quiet window.
    #[default]
    Defer,
    /// Refused with `quiet_hours`.
    Refuse,
}

/// A daily window in the recipient's local time, `HH:MM` to `HH:MM` (may pass midnight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub action: QuietAction,
}

/// At most `max_messages` per recipient per `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    #[serde(deserialize_with = "crate::whole_number::u32_whole")]
    pub max_messages: u32,
    #[serde(deserialize_with = "crate::whole_number::u64_whole")]
    pub window_seconds: u64,
}

/// Why a document was refused: the field at fault and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct DocumentError {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> DocumentError {
    DocumentError {
        field: field.into(),
        message: message.into(),
    }
}

/// `HH:MM` as minutes after midnight.
pub fn parse_hh_mm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn is_prefix(p: &str) -> bool {
    p.strip_prefix('+').is_some_and(|d| {
        (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn check_len<T>(field: &str, list: &[T]) -> Result<(), DocumentError> {
    if list.len() > MAX_LIST {
        return Err(bad(field, format!("at most {MAX_LIST} entries")));
    }
    Ok(())
}

impl PolicyDocument {
    /// Checks every field; the first fault names its field (`destinations.allowed_countries[2]`).
    pub fn validate(&self, server_max_segments: usize) -> Result<(), DocumentError> {
        let d = &self.destinations;
        if let Some(countries) = &d.allowed_countries {
            check_len("destinations.allowed_countries", countries)?;
            for (i, c) in countries.iter().enumerate() {
                if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(bad(
                        format!("destinations.allowed_countries[{i}]"),
                        "must be an ISO 3166 alpha-2 code in capitals, like GB",
                    ));
                }
            }
        }
        check_len("destinations.blocked_prefixes", &d.blocked_prefixes)?;
        for (i, p) in d.blocked_prefixes.iter().enumerate() {
            if !is_prefix(p) {
                return Err(bad(
                    format!("destinations.blocked_prefixes[{i}]"),
                    "must be + then 1 to 15 digits, like +4470",
                ));
            }
        }
        check_len("senders.sender_ids", &self.senders.sender_ids)?;
        for (i, s) in self.senders.sender_ids.iter().enumerate() {
            if !matches!(SenderId::parse(s), Ok(SenderId::Alphanumeric(ref a)) if a == s) {
                return Err(bad(
                    format!("senders.sender_ids[{i}]"),
                    "must be an alphanumeric sender ID of at most 11 characters (numbers are \
                     assigned with `rampart number add`)",
                ));
            }
        }
        let c = &self.content;
        if let Some(max) = c.max_segments
            && (max == 0 || max as usize > server_max_segments)
        {
            return Err(bad(
                "content.max_segments",
                format!("must be 1 to {server_max_segments}"),
            ));
        }
        check_len("content.blocked_words", &c.blocked_words)?;
        for (i, w) in c.blocked_words.iter().enumerate() {
            if w.trim().is_empty() || w.chars().count() > 64 {
                return Err(bad(
                    format!("content.blocked_words[{i}]"),
                    "must be 1 to 64 characters",
                ));
            }
        }
        let footer = &c.marketing_opt_out_footer;
        if footer.trim().is_empty() || footer.chars().count() > 64 {
            return Err(bad(
                "content.marketing_opt_out_footer",
                "must be 1 to 64 characters",
            ));
        }
        if let Some(q) = &self.quiet_hours {
            let start = parse_hh_mm(&q.start)
                .ok_or_else(|| bad("quiet_hours.start", "must be HH:MM, like 21:00"))?;
            let end = parse_hh_mm(&q.end)
                .ok_or_else(|| bad("quiet_hours.end", "must be HH:MM, like 08:00"))?;
            if start == end {
                return Err(bad("quiet_hours.end", "must differ from `start`"));
            }
        }
        if let Some(cap) = &self.frequency_cap {
            if !(1..=10_000).contains(&cap.max_messages) {
                return Err(bad("frequency_cap.max_messages", "must be 1 to 10000"));
            }
            if !(60..=31 * 24 * 3600).contains(&cap.window_seconds) {
                return Err(bad(
                    "frequency_cap.window_seconds",
                    "must be 60 to 2678400 (31 days)",
                ));
            }
        }
        Ok(())
    }

    /// Whether any rule needs the account's assigned numbers (a database read per send).
    pub fn restricts_senders(&self) -> bool {
        !self.senders.sender_ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<PolicyDocument, String> {
        let doc: PolicyDocument = serde_json::from_str(json).map_err(|e| e.to_string())?;
        doc.validate(10).map_err(|e| e.field)?;
        Ok(doc)
    }

    #[test]
    fn an_empty_document_is_the_defaults() {
        assert_eq!(parse("{}").unwrap(), PolicyDocument::default());
    }

    #[test]
    fn whole_numbers_written_with_a_zero_fraction_are_read_as_whole_numbers() {
        let doc: PolicyDocument = serde_json::from_str(
            r#"{"content": {"max_segments": 3.0},
                "frequency_cap": {"max_messages": 419.0, "window_seconds": 369.0}}"#,
        )
        .unwrap();
        assert_eq!(doc.content.max_segments, Some(3));
        let cap = doc.frequency_cap.unwrap();
        assert_eq!((cap.max_messages, cap.window_seconds), (419, 369));
        assert!(
            serde_json::from_str::<PolicyDocument>(r#"{"content": {"max_segments": 2.5}}"#)
                .is_err()
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(parse(r#"{"destinations": {"countries": ["GB"]}}"#).is_err());
        assert!(parse(r#"{"spend": 1}"#).is_err());
    }

    #[test]
    fn each_faulty_field_is_named() {
        let cases = [
            (
                r#"{"destinations": {"allowed_countries": ["GB", "fr"]}}"#,
                "destinations.allowed_countries[1]",
            ),
            (
                r#"{"destinations": {"blocked_prefixes": ["4470"]}}"#,
                "destinations.blocked_prefixes[0]",
            ),
            (
                r#"{"senders": {"sender_ids": ["+447700900123"]}}"#,
                "senders.sender_ids[0]",
            ),
            (
                r#"{"content": {"max_segments": 0}}"#,
                "content.max_segments",
            ),
            (
                r#"{"content": {"max_segments": 11}}"#,
                "content.max_segments",
            ),
            (
                r#"{"content": {"blocked_words": [" "]}}"#,
                "content.blocked_words[0]",
            ),
            (
                r#"{"quiet_hours": {"start": "9pm", "end": "08:00"}}"#,
                "quiet_hours.start",
            ),
            (
                r#"{"quiet_hours": {"start": "21:00", "end": "21:00"}}"#,
                "quiet_hours.end",
            ),
            (
                r#"{"frequency_cap": {"max_messages": 0, "window_seconds": 3600}}"#,
                "frequency_cap.max_messages",
            ),
            (
                r#"{"frequency_cap": {"max_messages": 3, "window_seconds": 1}}"#,
                "frequency_cap.window_seconds",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(parse(json).unwrap_err(), field, "{json}");
        }
    }

    #[test]
    fn hours_are_read_as_minutes_after_midnight() {
        assert_eq!(parse_hh_mm("00:00"), Some(0));
        assert_eq!(parse_hh_mm("21:30"), Some(21 * 60 + 30));
        for bad in ["24:00", "7:00", "07:60", "0700", ""] {
            assert_eq!(parse_hh_mm(bad), None, "{bad}");
        }
    }
}
