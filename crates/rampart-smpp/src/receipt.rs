//! Delivery receipts: the states they report and a lenient, total parser for the de-facto
//! standard receipt text `id:… sub:… dlvr:… submit date:… done date:… stat:… err:… text:…`.

/// What a delivery receipt says happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptState {
    /// Delivered to the handset (`DELIVRD`, message_state 2).
    Delivered,
    /// Could not be delivered (`UNDELIV`, message_state 5).
    Undelivered,
    /// Validity period ran out (`EXPIRED`, message_state 3).
    Expired,
    /// Deleted by the SMSC or an operator (`DELETED`, message_state 4).
    Deleted,
    /// Refused by the network (`REJECTD`, message_state 8).
    Rejected,
    /// Accepted on behalf of the handset (`ACCEPTD`, message_state 6).
    Accepted,
    /// The SMSC does not know (`UNKNOWN`, message_state 7, or a state we do not recognise).
    Unknown,
    /// Still on its way (`ENROUTE`, message_state 1; also scheduled, message_state 0).
    Enroute,
}

impl ReceiptState {
    /// From the `stat:` word of a receipt text, case-insensitively; long spellings accepted.
    pub(crate) fn from_stat(stat: &str) -> Self {
        match stat.to_ascii_uppercase().as_str() {
            "DELIVRD" | "DELIVERED" => Self::Delivered,
            "UNDELIV" | "UNDELIVERABLE" | "UNDELIVERED" => Self::Undelivered,
            "EXPIRED" => Self::Expired,
            "DELETED" => Self::Deleted,
            "REJECTD" | "REJECTED" => Self::Rejected,
            "ACCEPTD" | "ACCEPTED" => Self::Accepted,
            "ENROUTE" | "SCHEDULED" => Self::Enroute,
            _ => Self::Unknown,
        }
    }

    /// From the value of the `message_state` TLV.
    pub(crate) fn from_message_state(state: u8) -> Self {
        match state {
            0 | 1 => Self::Enroute,
            2 => Self::Delivered,
            3 => Self::Expired,
            4 => Self::Deleted,
            5 | 9 => Self::Undelivered,
            6 => Self::Accepted,
            8 => Self::Rejected,
            _ => Self::Unknown,
        }
    }
}

/// The fields of a receipt text; any may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReceiptText {
    pub id: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
}

/// Keys we look for, each with the field it fills. Spellings with `_` are seen in the wild.
const KEYS: &[(&str, Field)] = &[
    ("id:", Field::Id),
    ("sub:", Field::Other),
    ("dlvr:", Field::Other),
    ("submit date:", Field::SubmitDate),
    ("submit_date:", Field::SubmitDate),
    ("done date:", Field::DoneDate),
    ("done_date:", Field::DoneDate),
    ("stat:", Field::Stat),
    ("err:", Field::Err),
    ("text:", Field::Text),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
    Other,
}

/// Parses a receipt text. Keys are matched case-insensitively at the start or after
/// whitespace; each value runs to the next key, and its first word is kept (`text:` is
/// ignored: it is a copy of the message). Never fails: missing fields stay `None`.
pub(crate) fn parse_receipt_text(text: &str) -> ReceiptText {
    let lower = text.to_ascii_lowercase();
    let mut found: Vec<(usize, usize, Field)> = Vec::new();
    for &(key, field) in KEYS {
        let mut from = 0;
        while let Some(offset) = lower.get(from..).and_then(|rest| rest.find(key)) {
            let start = from + offset;
            let at_boundary = start == 0
                || lower[..start]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_whitespace);
            if at_boundary {
                found.push((start, start + key.len(), field));
                break;
            }
            from = start + key.len();
        }
    }
    found.sort_by_key(|&(start, _, _)| start);
    let mut receipt = ReceiptText::default();
    for (index, &(_, value_start, field)) in found.iter().enumerate() {
        let value_end = found
            .get(index + 1)
            .map_or(text.len(), |&(next_start, _, _)| next_start);
        let value = text
            .get(value_start..value_end.max(value_start))
            .and_then(|value| value.split_whitespace().next())
            .map(str::to_owned);
        let slot = match field {
            Field::Id => &mut receipt.id,
            Field::SubmitDate => &mut receipt.submit_date,
            Field::DoneDate => &mut receipt.done_date,
            Field::Stat => &mut receipt.stat,
            Field::Err => &mut receipt.err,
            Field::Text | Field::Other => continue,
        };
        if slot.is_none() {
            *slot = value;
        }
    }
    receipt
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_standard_text() {
        let receipt = parse_receipt_text(
            "id:0123456789 sub:001 dlvr:001 submit date:2501011200 done date:2501011201 \
             stat:DELIVRD err:000 text:Hello world",
        );
        assert_eq!(receipt.id.as_deref(), Some("0123456789"));
        assert_eq!(receipt.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(receipt.err.as_deref(), Some("000"));
        assert_eq!(receipt.submit_date.as_deref(), Some("2501011200"));
        assert_eq!(receipt.done_date.as_deref(), Some("2501011201"));
    }

    #[test]
    fn keys_are_case_insensitive_and_fields_may_be_missing() {
        let receipt = parse_receipt_text("ID:abc STAT:undeliv Err:021");
        assert_eq!(receipt.id.as_deref(), Some("abc"));
        assert_eq!(receipt.stat.as_deref(), Some("undeliv"));
        assert_eq!(receipt.err.as_deref(), Some("021"));
        assert_eq!(receipt.done_date, None);
        assert_eq!(
            ReceiptState::from_stat("undeliv"),
            ReceiptState::Undelivered
        );
    }

    #[test]
    fn a_key_inside_a_word_is_not_a_key() {
        let receipt = parse_receipt_text("id:42 stat:DELIVRD text:my id:7 is here");
        assert_eq!(receipt.id.as_deref(), Some("42"));
    }

    #[test]
    fn underscored_dates_are_read() {
        let receipt = parse_receipt_text("id:1 done_date:2501011201 stat:EXPIRED");
        assert_eq!(receipt.done_date.as_deref(), Some("2501011201"));
        assert_eq!(ReceiptState::from_stat("EXPIRED"), ReceiptState::Expired);
    }

    #[test]
    fn every_state_word_maps() {
        for (word, state) in [
            ("DELIVRD", ReceiptState::Delivered),
            ("UNDELIV", ReceiptState::Undelivered),
            ("EXPIRED", ReceiptState::Expired),
            ("DELETED", ReceiptState::Deleted),
            ("REJECTD", ReceiptState::Rejected),
            ("ACCEPTD", ReceiptState::Accepted),
            ("UNKNOWN", ReceiptState::Unknown),
            ("ENROUTE", ReceiptState::Enroute),
            ("garbage", ReceiptState::Unknown),
        ] {
            assert_eq!(ReceiptState::from_stat(word), state);
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,300}") {
            let _ = parse_receipt_text(&text);
        }

        #[test]
        fn parse_never_panics_on_receipt_like_text(
            words in proptest::collection::vec(
                prop_oneof![
                    Just("id:".to_owned()), Just("ID:".to_owned()), Just("stat:".to_owned()),
                    Just("done date:".to_owned()), Just("err:".to_owned()), Just("text:".to_owned()),
                    Just(" ".to_owned()), "[a-zA-Zé0-9:]{0,8}",
                ],
                0..30,
            )
        ) {
            let _ = parse_receipt_text(&words.concat());
        }
    }
}
