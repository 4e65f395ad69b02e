//! The SMPP connector: carries messages to a carrier's SMSC through `rampart_smpp`, and turns
//! what the SMSC reports (per-part acceptances, refusals, receipts, inbound messages) into
//! [`ConnectorEvent`]s.
//!
//! Bodies are encoded and split by `messaging::encoding` (the one place that knows GSM-7 and
//! UCS-2), so the segments billed are the segments sent. Each submission carries a reference
//! derived from the message id; an in-memory map of the submissions in flight (bounded by the
//! SMPP window) collects the carrier's id of every part and reports the message `Accepted`
//! once all are in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_smpp::{
    Address, LinkState, SmppClient, SmppConfig, SmppError, SmppEvent, SmppHandle, Submission, codes,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::connector::{
    BoxFuture, Connector, ConnectorEvent, ConnectorStatus, ConnectorUnavailable, Outbound,
    ReceiptState,
};
use super::lock;
use super::smpp_config::SmppSetupError;
use crate::clock::SharedClock;
use crate::messaging::{Encoding, encoding};

/// SMPP events waiting to be translated before the SMPP client is slowed down.
const SMPP_EVENT_QUEUE: usize = 1024;
/// While `submit` waits for room in the window, how often it checks that the link is still up.
const LINK_CHECK: Duration = Duration::from_millis(250);

/// One submission the SMSC has not finished answering.
struct InFlight {
    message_id: String,
    attempt: u32,
    /// The carrier's id of each part, as they come in.
    provider_ids: Vec<Option<String>>,
}

type InFlightMap = Arc<Mutex<HashMap<u64, InFlight>>>;

/// A connector to one SMSC account.
pub struct SmppConnector {
    name: Arc<str>,
    window: usize,
    payload_mode: bool,
    /// Whether the link is TLS (plaintext SMPP exposes bodies, numbers and the bind password).
    tls: bool,
    handle: Mutex<Option<SmppHandle>>,
    events: Mutex<Option<mpsc::Sender<ConnectorEvent>>>,
    in_flight: InFlightMap,
    clock: SharedClock,
}

impl SmppConnector {
    /// Starts the SMPP client (it binds in the background) and the task that translates its
    /// events onto `events`.
    pub fn spawn(
        name: &str,
        config: SmppConfig,
        clock: SharedClock,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Result<Arc<Self>, SmppSetupError> {
        let (smpp_events, smpp_rx) = mpsc::channel(SMPP_EVENT_QUEUE);
        let window = config.window;
        let tls = config.tls.is_some();
        let payload_mode = config.concatenation == rampart_smpp::Concatenation::MessagePayload;
        let handle =
            SmppClient::spawn(config, smpp_events).map_err(|source| SmppSetupError::Client {
                name: name.to_owned(),
                source,
            })?;
        let name: Arc<str> = Arc::from(name);
        let in_flight: InFlightMap = Arc::default();
        tokio::spawn(translate(
            name.clone(),
            smpp_rx,
            in_flight.clone(),
            events.clone(),
        ));
        Ok(Arc::new(Self {
            name,
            window,
            payload_mode,
            tls,
            handle: Mutex::new(Some(handle)),
            events: Mutex::new(Some(events)),
            in_flight,
            clock,
        }))
    }

    fn handle(&self) -> Option<SmppHandle> {
        lock(&self.handle).clone()
    }

    fn unavailable(&self) -> ConnectorUnavailable {
        ConnectorUnavailable(self.name.to_string())
    }

    /// Registers a submission in flight under a reference derived from the message id, so a
    /// resubmission reuses the concatenation reference and handsets can join old and new parts.
    fn register(&self, message: &Outbound, parts: usize) -> Option<u64> {
        let digest = Sha256::digest(message.message_id.as_bytes());
        let mut reference = u64::from_be_bytes(digest[..8].try_into().ok()?);
        let mut map = lock(&self.in_flight);
        while map.contains_key(&reference) {
            reference = reference.wrapping_add(1);
        }
        let expected = if self.payload_mode { 1 } else { parts.max(1) };
        map.insert(
            reference,
            InFlight {
                message_id: message.message_id.clone(),
                attempt: message.attempt,
                provider_ids: vec![None; expected],
            },
        );
        Some(reference)
    }

    fn forget(&self, reference: u64) {
        lock(&self.in_flight).remove(&reference);
    }

    async fn refuse(
        &self,
        message: &Outbound,
        error: &SmppError,
    ) -> Result<(), ConnectorUnavailable> {
        let events = lock(&self.events)
            .clone()
            .ok_or_else(|| self.unavailable())?;
        let event = ConnectorEvent::Refused {
            message_id: message.message_id.clone(),
            attempt: message.attempt,
            code: "smpp_invalid_submission".into(),
            detail: error.to_string(),
            permanent: true,
        };
        events.send(event).await.map_err(|_| self.unavailable())
    }

    async fn submit_one(&self, message: Outbound) -> Result<(), ConnectorUnavailable> {
        let handle = self.handle().ok_or_else(|| self.unavailable())?;
        if !handle.status().bound {
            return Err(self.unavailable());
        }
        let submission = match submission_for(&message, 0, self.clock.now_ms()) {
            Ok(submission) => submission,
            Err(e) => return self.refuse(&message, &e).await,
        };
        let reference = self
            .register(&message, submission.parts.len())
            .ok_or_else(|| self.unavailable())?;
        let submission = Submission {
            reference,
            ..submission
        };
        let submit = handle.submit(submission);
        tokio::pin!(submit);
        loop {
            tokio::select! {
                biased;
                result = &mut submit => {
                    return match result {
                        Ok(()) => Ok(()),
                        Err(SmppError::ShutDown) => {
                            self.forget(reference);
                            Err(self.unavailable())
                        }
                        Err(e) => {
                            self.forget(reference);
                            self.refuse(&message, &e).await
                        }
                    };
                }
                () = tokio::time::sleep(LINK_CHECK) => {
                    // The wait is for the window; while the link is down it could last long,
                    // and the message is better off on another connector or back in the queue.
                    if !handle.status().bound {
                        self.forget(reference);
                        return Err(self.unavailable());
                    }
                }
            }
        }
    }
}

/// SMPP `data_coding` of the alphabet a body was encoded in.
fn data_coding(encoding: Encoding) -> u8 {
    match encoding {
        Encoding::Gsm7 => codes::DATA_CODING_GSM7,
        Encoding::Ucs2 => codes::DATA_CODING_UCS2,
    }
}

/// The submission for a message (its reference filled in by the caller).
pub fn submission_for(
    message: &Outbound,
    reference: u64,
    now: crate::clock::Millis,
) -> Result<Submission, SmppError> {
    let encoded = encoding::encode(&message.body);
    let mut parts = encoded.parts;
    if parts.is_empty() {
        parts.push(Vec::new());
    }
    Ok(Submission {
        reference,
        source: Address::from_sender(&message.from)?,
        destination: Address::from_sender(&message.to)?,
        data_coding: data_coding(encoded.encoding),
        parts,
        registered_delivery: true,
        // The SMSC keeps trying until the message's own deadline, and no longer.
        validity: message
            .valid_until
            .map(|until| Duration::from_millis((until - now).max(1_000) as u64)),
    })
}

impl Connector for SmppConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn submit(&self, message: Outbound) -> BoxFuture<'_, Result<(), ConnectorUnavailable>> {
        Box::pin(self.submit_one(message))
    }

    fn is_up(&self) -> bool {
        self.handle().is_some_and(|h| h.status().bound)
    }

    fn status(&self) -> ConnectorStatus {
        let link = self.handle().map(|h| h.status());
        ConnectorStatus {
            name: self.name.to_string(),
            kind: "smpp",
            up: link.as_ref().is_some_and(|l| l.bound),
            in_flight: link.as_ref().map_or(0, |l| l.in_flight),
            window: Some(self.window),
            submitted: link.as_ref().map_or(0, |l| l.submitted_total),
            errors: link.as_ref().map_or(0, |l| l.errors_total),
            tls: Some(self.tls),
            inbound_dropped: link.as_ref().map_or(0, |l| l.mo_dropped_total),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let handle = lock(&self.handle).take();
            if let Some(handle) = handle {
                handle.shutdown().await;
            }
            lock(&self.events).take();
        })
    }
}

/// Turns SMPP events into connector events until the SMPP client has ended.
async fn translate(
    name: Arc<str>,
    mut smpp: mpsc::Receiver<SmppEvent>,
    in_flight: InFlightMap,
    events: mpsc::Sender<ConnectorEvent>,
) {
    while let Some(event) = smpp.recv().await {
        let translated = match event {
            SmppEvent::Link(LinkState::Bound) => {
                tracing::info!(connector = %name, "SMPP link bound");
                None
            }
            SmppEvent::Link(LinkState::Down { reason }) => {
                tracing::warn!(connector = %name, %reason, "SMPP link down");
                None
            }
            other => translate_one(&name, &in_flight, other),
        };
        if let Some(event) = translated
            && events.send(event).await.is_err()
        {
            return;
        }
    }
    // The client has ended: whatever it never answered goes back to the queue.
    let left: Vec<InFlight> = lock(&in_flight).drain().map(|(_, v)| v).collect();
    for entry in left {
        let _ = events
            .send(ConnectorEvent::Requeue {
                message_id: entry.message_id,
            })
            .await;
    }
}

fn translate_one(
    name: &Arc<str>,
    in_flight: &InFlightMap,
    event: SmppEvent,
) -> Option<ConnectorEvent> {
    match event {
        SmppEvent::Submitted {
            reference,
            part,
            message_id,
        } => {
            let mut map = lock(in_flight);
            let Some(entry) = map.get_mut(&reference) else {
                tracing::warn!(connector = %name, reference, "acceptance for an unknown submission");
                return None;
            };
            if let Some(slot) = entry.provider_ids.get_mut(part) {
                *slot = Some(message_id);
            }
            if entry.provider_ids.iter().any(Option::is_none) {
                return None;
            }
            let entry = map.remove(&reference)?;
            Some(ConnectorEvent::Accepted {
                message_id: entry.message_id,
                connector: name.clone(),
                provider_ids: entry.provider_ids.into_iter().flatten().collect(),
            })
        }
        SmppEvent::Rejected {
            reference,
            part,
            status,
            permanent,
        } => {
            let entry = lock(in_flight).remove(&reference)?;
            Some(ConnectorEvent::Refused {
                message_id: entry.message_id,
                attempt: entry.attempt,
                code: format!("smpp_{status:#04x}"),
                detail: format!(
                    "the SMSC refused part {} with command_status {status:#010x} ({})",
                    part + 1,
                    codes::command_status_name(status)
                ),
                permanent,
            })
        }
        SmppEvent::Requeue { reference } => {
            let entry = lock(in_flight).remove(&reference)?;
            Some(ConnectorEvent::Requeue {
                message_id: entry.message_id,
            })
        }
        SmppEvent::Receipt {
            message_id,
            state,
            error,
            ..
        } => {
            let (state, error_code) = receipt_state(state, error.as_deref());
            Some(ConnectorEvent::Receipt {
                connector: name.clone(),
                provider_id: message_id,
                state,
                error_code,
            })
        }
        SmppEvent::Inbound {
            source,
            destination,
            data_coding,
            payload,
        } => Some(ConnectorEvent::Inbound {
            connector: name.clone(),
            from: address_text(&source),
            to: address_text(&destination),
            body: decode_payload(data_coding, &payload),
        }),
        SmppEvent::Link(_) => None,
    }
}

/// What a carrier's receipt means for the part, with an error code for the failures: the
/// receipt's `err:` field when it has one, else the state.
pub fn receipt_state(
    state: rampart_smpp::ReceiptState,
    error: Option<&str>,
) -> (ReceiptState, Option<String>) {
    use rampart_smpp::ReceiptState as Smpp;
    let (mapped, name) = match state {
        Smpp::Delivered => return (ReceiptState::Delivered, None),
        Smpp::Accepted | Smpp::Enroute => return (ReceiptState::Pending, None),
        Smpp::Expired => (ReceiptState::Expired, "expired"),
        Smpp::Undelivered => (ReceiptState::Undelivered, "undelivered"),
        Smpp::Rejected => (ReceiptState::Undelivered, "rejected"),
        Smpp::Deleted => (ReceiptState::Undelivered, "deleted"),
        Smpp::Unknown => (ReceiptState::Undelivered, "unknown"),
    };
    // The err field comes from outside: keep it short and to plain characters.
    let err: String = error
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    let code = if err.is_empty() {
        format!("smpp_{name}")
    } else {
        format!("smpp_err_{err}")
    };
    (mapped, Some(code))
}

/// An address as text: international numbers with their `+`, anything else as sent.
pub fn address_text(address: &Address) -> String {
    let digits = !address.addr.is_empty() && address.addr.bytes().all(|b| b.is_ascii_digit());
    if address.ton == codes::TON_INTERNATIONAL && digits {
        format!("+{}", address.addr)
    } else {
        address.addr.clone()
    }
}

/// Decodes an inbound message's text: GSM-7 (the SMSC default alphabet, also as a message
/// class), UCS-2, and anything else as Latin-1, which every byte decodes under.
pub fn decode_payload(data_coding: u8, payload: &[u8]) -> String {
    match data_coding {
        codes::DATA_CODING_UCS2 => encoding::decode_ucs2(payload),
        gsm7 if codes::is_gsm7_data_coding(gsm7) => encoding::decode_gsm7_unpacked(payload),
        _ => payload.iter().map(|&b| char::from(b)).collect(),
    }
}

#[cfg(test)]
#[path = "smpp_tests.rs"]
mod tests;
