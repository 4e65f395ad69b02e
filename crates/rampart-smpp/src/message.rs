//! What callers hand to the client ([`Submission`], [`Address`]) and what it hands back
//! ([`SmppEvent`], [`LinkState`], [`LinkStatus`]).

use std::fmt;
use std::time::Duration;

use crate::codes::{NPI_ISDN, NPI_UNKNOWN, TON_ALPHANUMERIC, TON_INTERNATIONAL, TON_UNKNOWN};
use crate::{ReceiptState, SmppError, redact::mask};

/// An SMPP address: type of number, numbering plan and the digits or name. `Debug` masks the
/// digits or name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Type of number (TON): 0 unknown, 1 international, 2 national, 3 network specific,
    /// 5 alphanumeric.
    pub ton: u8,
    /// Numbering plan indicator (NPI): 0 unknown, 1 ISDN/E.164.
    pub npi: u8,
    /// Digits (without `+`) or alphanumeric name; at most 20 ASCII characters.
    pub addr: String,
}

impl Address {
    /// An address with explicit TON and NPI, for carriers whose rules differ from
    /// [`Address::from_sender`]'s.
    pub fn new(ton: u8, npi: u8, addr: impl Into<String>) -> Self {
        Self {
            ton,
            npi,
            addr: addr.into(),
        }
    }

    /// Picks TON and NPI for a sender (or recipient) as written by a person:
    ///
    /// - `+` then 1 to 15 digits: international, TON 1 NPI 1, sent without the `+`;
    /// - digits only (a national number or a short code): TON 0 (unknown) NPI 1, which lets the
    ///   SMSC apply its own numbering rules; carriers that insist on TON 3 or TON 2 for short
    ///   codes or national numbers need [`Address::new`];
    /// - anything else of 1 to 11 printable ASCII characters: alphanumeric, TON 5 NPI 0.
    pub fn from_sender(sender: &str) -> Result<Self, SmppError> {
        let invalid = |why: &str| Err(SmppError::InvalidAddress(why.to_owned()));
        if sender.is_empty() {
            return invalid("empty");
        }
        if let Some(digits) = sender.strip_prefix('+') {
            if digits.is_empty() || digits.len() > 15 || !is_digits(digits) {
                return invalid("an international number is + then 1 to 15 digits");
            }
            return Ok(Self::new(TON_INTERNATIONAL, NPI_ISDN, digits));
        }
        if is_digits(sender) {
            if sender.len() > 20 {
                return invalid("more than 20 digits");
            }
            return Ok(Self::new(TON_UNKNOWN, NPI_ISDN, sender));
        }
        if sender.len() > 11 || !sender.bytes().all(|byte| (0x20..0x7f).contains(&byte)) {
            return invalid("an alphanumeric sender is 1 to 11 printable ASCII characters");
        }
        Ok(Self::new(TON_ALPHANUMERIC, NPI_UNKNOWN, sender))
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// One message to send: already encoded and split by the caller. `Debug` masks the addresses
/// and shows the parts' lengths only.
#[derive(Clone, PartialEq, Eq)]
pub struct Submission {
    /// The caller's opaque id, echoed in every event about this submission.
    pub reference: u64,
    /// Sender.
    pub source: Address,
    /// Recipient.
    pub destination: Address,
    /// [`crate::DATA_CODING_GSM7`], [`crate::DATA_CODING_UCS2`] or another SMPP data_coding
    /// value.
    pub data_coding: u8,
    /// The parts: GSM-7 as unpacked septets (one per byte, each below 0x80), UCS-2 as UTF-16BE.
    /// A single part holds at most 160 septets or 140 bytes; parts of a multipart message at
    /// most 153 septets or 134 bytes (room for the concatenation header). At most 255 parts.
    pub parts: Vec<Vec<u8>>,
    /// Ask for a delivery receipt (registered_delivery 0x01: success or failure).
    pub registered_delivery: bool,
    /// Relative validity period; `None` for the SMSC's default. Up to 99 days.
    pub validity: Option<Duration>,
}

/// State of the link, reported when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Every session of the link is bound; submissions flow.
    Bound,
    /// The link is down; the client reconnects with backoff unless it is shutting down.
    Down {
        /// Why, for operators (no secrets in it).
        reason: String,
    },
}

/// Everything the client reports, in the order it learns it.
///
/// A `Receipt` can arrive before the `Submitted` event carrying the same message id (the SMSC
/// may send the receipt right after the `submit_sm_resp`): match them by message id in either
/// order.
///
/// `Debug` masks the addresses of an inbound message and shows the length of its text only.
#[derive(Clone, PartialEq, Eq)]
pub enum SmppEvent {
    /// The SMSC accepted one part and gave it this message id.
    Submitted {
        /// The submission's reference.
        reference: u64,
        /// Index of the part (0-based).
        part: usize,
        /// The SMSC's id, as later quoted in the part's receipt.
        message_id: String,
    },
    /// The SMSC refused one part. Parts after it are not sent. Throttling refusals are
    /// retried inside the client first and reported (with `permanent: false`) only after
    /// [`crate::SmppConfig::max_throttle_retries`].
    Rejected {
        /// The submission's reference.
        reference: u64,
        /// Index of the refused part (0-based).
        part: usize,
        /// SMPP command_status of the refusal.
        status: u32,
        /// False for throttling (`ESME_RTHROTTLED`, `ESME_RMSGQFUL`): trying later may work.
        permanent: bool,
    },
    /// The link dropped, a response timed out, or the client shut down while parts of this
    /// submission were unsent or unacknowledged. The caller must submit it again (all parts;
    /// parts already reported `Submitted` will be sent once more, with the same concatenation
    /// reference so handsets can still assemble them).
    Requeue {
        /// The submission's reference.
        reference: u64,
    },
    /// A delivery receipt.
    Receipt {
        /// Id of the receipted message, as in `Submitted`.
        message_id: String,
        /// Final or intermediate state.
        state: ReceiptState,
        /// The `err:` field of the receipt text, as sent (often a 3-digit network code).
        error: Option<String>,
        /// The `done date:` field as sent (`YYMMDDhhmm` or `YYMMDDhhmmss`).
        done_at: Option<String>,
    },
    /// A mobile-originated message, its parts reassembled and user data headers removed.
    Inbound {
        /// Sender (the handset).
        source: Address,
        /// Recipient (our number or short code).
        destination: Address,
        /// data_coding of the message.
        data_coding: u8,
        /// The text bytes: GSM-7 as unpacked septets, UCS-2 as UTF-16BE, others as sent.
        payload: Vec<u8>,
    },
    /// The link went up or down.
    Link(LinkState),
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("ton", &self.ton)
            .field("npi", &self.npi)
            .field("addr", &mask(&self.addr))
            .finish()
    }
}

impl fmt::Debug for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part_lengths: Vec<usize> = self.parts.iter().map(Vec::len).collect();
        f.debug_struct("Submission")
            .field("reference", &self.reference)
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("data_coding", &self.data_coding)
            .field("part_lengths", &part_lengths)
            .field("registered_delivery", &self.registered_delivery)
            .field("validity", &self.validity)
            .finish()
    }
}

impl fmt::Debug for SmppEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Submitted {
                reference,
                part,
                message_id,
            } => f
                .debug_struct("Submitted")
                .field("reference", reference)
                .field("part", part)
                .field("message_id", message_id)
                .finish(),
            Self::Rejected {
                reference,
                part,
                status,
                permanent,
            } => f
                .debug_struct("Rejected")
                .field("reference", reference)
                .field("part", part)
                .field("status", status)
                .field("permanent", permanent)
                .finish(),
            Self::Requeue { reference } => f
                .debug_struct("Requeue")
                .field("reference", reference)
                .finish(),
            Self::Receipt {
                message_id,
                state,
                error,
                done_at,
            } => f
                .debug_struct("Receipt")
                .field("message_id", message_id)
                .field("state", state)
                .field("error", error)
                .field("done_at", done_at)
                .finish(),
            Self::Inbound {
                source,
                destination,
                data_coding,
                payload,
            } => f
                .debug_struct("Inbound")
                .field("source", source)
                .field("destination", destination)
                .field("data_coding", data_coding)
                .field("payload_len", &payload.len())
                .finish(),
            Self::Link(state) => f.debug_tuple("Link").field(state).finish(),
        }
    }
}

/// A snapshot of the client, for status pages and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStatus {
    /// Whether every session is bound right now.
    pub bound: bool,
    /// `submit_sm` sent and not yet answered.
    pub in_flight: usize,
    /// Parts accepted by the SMSC since the client started.
    pub submitted_total: u64,
    /// `submit_sm` that did not end in acceptance: refusals (throttling included), response
    /// timeouts and parts lost with the link.
    pub errors_total: u64,
    /// Incomplete multi-part MO messages dropped since the client started: parts that never
    /// all arrived in time, or that hit a [`crate::ReassemblyLimits`] cap.
    pub mo_dropped_total: u64,
    /// Parts accepted per second, averaged over the last 10 seconds.
    pub throughput: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_digits_are_international_without_the_plus() {
        assert_eq!(
            Address::from_sender("+447700900123").ok(),
            Some(Address::new(1, 1, "447700900123"))
        );
    }

    #[test]
    fn bare_digits_are_unknown_ton_isdn_plan() {
        assert_eq!(
            Address::from_sender("12345").ok(),
            Some(Address::new(0, 1, "12345"))
        );
    }

    #[test]
    fn names_are_alphanumeric() {
        assert_eq!(
            Address::from_sender("Rampart").ok(),
            Some(Address::new(5, 0, "Rampart"))
        );
    }

    const NUMBER: &str = "447700900123";
    const BODY: &[u8] = b"Your code is 918273";

    fn assert_hidden(debug: &str) {
        assert!(!debug.contains(NUMBER), "{debug}");
        assert!(!debug.contains("918273"), "{debug}");
        assert!(!debug.contains(&format!("{:?}", BODY)), "{debug}");
    }

    #[test]
    fn debug_of_an_address_masks_the_number() {
        let debug = format!("{:?}", Address::new(1, 1, NUMBER));
        assert_hidden(&debug);
        assert!(debug.contains("4477******23"), "{debug}");
    }

    #[test]
    fn debug_of_a_submission_hides_numbers_and_text() {
        let submission = Submission {
            reference: 1,
            source: Address::new(1, 1, NUMBER),
            destination: Address::new(1, 1, NUMBER),
            data_coding: 0,
            parts: vec![BODY.to_vec()],
            registered_delivery: true,
            validity: None,
        };
        let debug = format!("{submission:?}");
        assert_hidden(&debug);
        assert!(
            debug.contains(&format!("part_lengths: [{}]", BODY.len())),
            "{debug}"
        );
    }

    #[test]
    fn debug_of_an_inbound_event_hides_numbers_and_text() {
        let event = SmppEvent::Inbound {
            source: Address::new(1, 1, NUMBER),
            destination: Address::new(0, 1, NUMBER),
            data_coding: 0,
            payload: BODY.to_vec(),
        };
        let debug = format!("{event:?}");
        assert_hidden(&debug);
        assert!(
            debug.contains(&format!("payload_len: {}", BODY.len())),
            "{debug}"
        );
    }

    #[test]
    fn bad_senders_are_refused() {
        for sender in [
            "",
            "+",
            "+44 7700",
            "+1234567890123456",
            "TwelveLetter",
            "Zürich",
        ] {
            assert!(Address::from_sender(sender).is_err(), "{sender:?}");
        }
    }
}
