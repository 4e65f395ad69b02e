//! The connector trait: how a message leaves Rampart (the sandbox, or SMPP to a carrier).
//!
//! A connector is an actor. `submit` hands it one message and returns once the connector has
//! room (that is the back-pressure); everything that happens afterwards (accepted, refused,
//! receipts, inbound messages) comes back as a [`ConnectorEvent`] on the channel it was built
//! with, and the delivery worker records those events in batches.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;

use crate::clock::Millis;
use crate::messaging::Encoding;
use crate::messaging::phone::mask;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One message for one recipient, decrypted for the wire.
#[derive(Clone)]
pub struct Outbound {
    pub message_id: String,
    /// E.164, with the `+`.
    pub to: String,
    pub from: String,
    pub body: String,
    pub encoding: Encoding,
    pub segments: u32,
    pub valid_until: Option<Millis>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("message_id", &self.message_id)
            .field("to", &mask(&self.to))
            .field("segments", &self.segments)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// What a carrier finally said about one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptState {
    Delivered,
    Undelivered,
    Expired,
    /// Accepted, en route, or unknown: not final, recorded nowhere.
    Pending,
}

impl ReceiptState {
    /// The stored part state, or `None` for a non-final receipt.
    pub fn as_part_state(self) -> Option<&'static str> {
        match self {
            Self::Delivered => Some("delivered"),
            Self::Undelivered => Some("undelivered"),
            Self::Expired => Some("expired"),
            Self::Pending => None,
        }
    }
}

/// Everything a connector reports. `Debug` masks the numbers of an inbound message and shows
/// the length of its text only.
#[derive(Clone)]
pub enum ConnectorEvent {
    /// The carrier took the message; one id per segment, for matching receipts.
    Accepted {
        message_id: String,
        connector: Arc<str>,
        provider_ids: Vec<String>,
    },
    /// The carrier (or the connector) did not take the message.
    Refused {
        message_id: String,
        attempt: u32,
        code: String,
        detail: String,
        permanent: bool,
    },
    /// The link dropped before the carrier answered: send the message again.
    Requeue { message_id: String },
    /// A delivery receipt for one part.
    Receipt {
        connector: Arc<str>,
        provider_id: String,
        state: ReceiptState,
        error_code: Option<String>,
    },
    /// A message from a handset to one of our numbers.
    Inbound {
        connector: Arc<str>,
        from: String,
        to: String,
        body: String,
    },
}

impl std::fmt::Debug for ConnectorEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Accepted {
                message_id,
                connector,
                provider_ids,
            } => f
                .debug_struct("Accepted")
                .field("message_id", message_id)
                .field("connector", connector)
                .field("provider_ids", provider_ids)
                .finish(),
            Self::Refused {
                message_id,
                attempt,
                code,
                detail,
                permanent,
            } => f
                .debug_struct("Refused")
                .field("message_id", message_id)
                .field("attempt", attempt)
                .field("code", code)
                .field("detail", detail)
                .field("permanent", permanent)
                .finish(),
            Self::Requeue { message_id } => f
                .debug_struct("Requeue")
                .field("message_id", message_id)
                .finish(),
            Self::Receipt {
                connector,
                provider_id,
                state,
                error_code,
            } => f
                .debug_struct("Receipt")
                .field("connector", connector)
                .field("provider_id", provider_id)
                .field("state", state)
                .field("error_code", error_code)
                .finish(),
            Self::Inbound {
                connector,
                from,
                to,
                body,
            } => f
                .debug_struct("Inbound")
                .field("connector", connector)
                .field("from", &mask(from))
                .field("to", &mask(to))
                .field("body_chars", &body.chars().count())
                .finish(),
        }
    }
}

/// The connector cannot take messages (shut down, or its link is down for good).
#[derive(Debug, Clone, thiserror::Error)]
#[error("connector {0} is not accepting messages")]
pub struct ConnectorUnavailable(pub String);

/// Health and load, for operators and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub kind: &'static str,
    pub up: bool,
    pub in_flight: usize,
    /// Most submissions in flight at once, for connectors that have a window.
    pub window: Option<usize>,
    pub submitted: u64,
    pub errors: u64,
    /// Whether the link to the carrier is encrypted, for connectors that have one.
    pub tls: Option<bool>,
    /// Incomplete multi-part inbound messages dropped (never completed, or over a memory cap).
    pub inbound_dropped: u64,
}

/// A way out to carriers.
pub trait Connector: Send + Sync + 'static {
    fn name(&self) -> &str;

    /// Hands over one message; resolves once the connector has taken it into its window.
    fn submit(&self, message: Outbound) -> BoxFuture<'_, Result<(), ConnectorUnavailable>>;

    /// Whether the connector can take messages now (routing skips it when not).
    fn is_up(&self) -> bool;

    fn status(&self) -> ConnectorStatus;

    /// Parts sent before a restart that still await a receipt, as `(provider_id, to)`. A real
    /// carrier re-sends its receipts by itself; only a simulated one needs telling.
    fn resume(&self, _awaiting: Vec<(String, String)>) {}

    /// Stops taking messages, finishes what is in flight, and closes the link.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_an_inbound_event_masks_the_numbers_and_hides_the_text() {
        let event = ConnectorEvent::Inbound {
            connector: Arc::from("smsc-1"),
            from: "+447700900123".into(),
            to: "+447700900456".into(),
            body: "Your code is 918273".into(),
        };
        let debug = format!("{event:?}");
        for secret in ["+447700900123", "+447700900456", "918273"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("+4477******23"), "{debug}");
        assert!(debug.contains("body_chars: 19"), "{debug}");
    }
}
