//! The sandbox connector: a simulated carrier, the default, so that everything works on first
//! start without a carrier contract. Most numbers are accepted and delivered after
//! `receipt_delay_ms`; a few test numbers (in the +1 500 555 range that SMS sandboxes
//! conventionally reserve) act out the other endings:
//!
//! | number         | what happens                                                       |
//! |----------------|--------------------------------------------------------------------|
//! | `+15005550001` | refused at submit: `failed`, error `sandbox_rejected`              |
//! | `+15005550002` | first attempt fails transiently, the retry is delivered            |
//! | `+15005550003` | accepted, then the receipt says `undelivered` (`sandbox_unreachable`) |
//! | `+15005550004` | accepted, receipt after `delayed_receipt_ms` (default 5 s)         |
//! | `+15005550005` | accepted, then the receipt says `expired`                          |
//! | `+15005550006` | accepted, and no receipt ever comes (stays `sent`)                 |
//!
//! With `sandbox.outbox_file` set, every accepted message is also appended to that file as a
//! JSON line: the sandbox's test phone.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connector::{
    BoxFuture, Connector, ConnectorEvent, ConnectorStatus, ConnectorUnavailable, Outbound,
    ReceiptState,
};
use super::lock;
use crate::config;

pub const REJECTED: &str = "+15005550001";
pub const RETRY_ONCE: &str = "+15005550002";
pub const UNDELIVERABLE: &str = "+15005550003";
pub const DELAYED: &str = "+15005550004";
pub const EXPIRES: &str = "+15005550005";
pub const SILENT: &str = "+15005550006";

struct Scheduled {
    due: Instant,
    seq: u64,
    event: ConnectorEvent,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// The simulated carrier.
pub struct Sandbox {
    name: Arc<str>,
    config: config::Sandbox,
    events: Mutex<Option<mpsc::Sender<ConnectorEvent>>>,
    receipts: Mutex<Option<mpsc::UnboundedSender<(Duration, ConnectorEvent)>>>,
    submitted: AtomicU64,
    refused: AtomicU64,
    /// The outbox file, opened on first use.
    outbox: Mutex<Option<std::fs::File>>,
}

impl Sandbox {
    pub fn new(
        name: &str,
        config: config::Sandbox,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Arc<Self> {
        let (receipts, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_receipt_clock(rx, events.clone()));
        Arc::new(Self {
            name: Arc::from(name),
            config,
            events: Mutex::new(Some(events)),
            receipts: Mutex::new(Some(receipts)),
            submitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            outbox: Mutex::new(None),
        })
    }

    /// Appends an accepted message to the outbox file, when one is configured.
    fn write_outbox(&self, message: &Outbound) {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let Some(path) = &self.config.outbox_file else {
            return;
        };
        let mut file = lock(&self.outbox);
        if file.is_none() {
            *file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| tracing::warn!(error = %e, "cannot open the sandbox outbox"))
                .ok();
        }
        let line = serde_json::json!({
            "message_id": message.message_id,
            "to": message.to,
            "from": message.from,
            "body": message.body,
        });
        if let Some(f) = file.as_mut()
            && let Err(e) = writeln!(f, "{line}")
        {
            tracing::warn!(error = %e, "cannot write the sandbox outbox");
        }
    }

    fn receipt_for(&self, to: &str) -> Option<(Duration, ReceiptState, Option<&'static str>)> {
        let normal = Duration::from_millis(self.config.receipt_delay_ms);
        match to {
            UNDELIVERABLE => Some((
                normal,
                ReceiptState::Undelivered,
                Some("sandbox_unreachable"),
            )),
            DELAYED => Some((
                Duration::from_millis(self.config.delayed_receipt_ms),
                ReceiptState::Delivered,
                None,
            )),
            EXPIRES => Some((normal, ReceiptState::Expired, Some("sandbox_expired"))),
            SILENT => None,
            _ => Some((normal, ReceiptState::Delivered, None)),
        }
    }

    fn schedule_receipt(&self, provider_id: String, to: &str) {
        let Some((delay, state, error_code)) = self.receipt_for(to) else {
            return;
        };
        let event = ConnectorEvent::Receipt {
            connector: self.name.clone(),
            provider_id,
            state,
            error_code: error_code.map(str::to_owned),
        };
        if let Some(tx) = lock(&self.receipts).as_ref() {
            let _ = tx.send((delay, event));
        }
    }

    fn events(&self) -> Option<mpsc::Sender<ConnectorEvent>> {
        lock(&self.events).clone()
    }
}

/// One task holds every pending receipt in a heap and sends each when due.
async fn run_receipt_clock(
    mut rx: mpsc::UnboundedReceiver<(Duration, ConnectorEvent)>,
    events: mpsc::Sender<ConnectorEvent>,
) {
    let mut heap: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next_due = heap.peek().map(|Reverse(s)| s.due);
        tokio::select! {
            incoming = rx.recv() => match incoming {
                Some((delay, event)) => {
                    seq += 1;
                    heap.push(Reverse(Scheduled { due: Instant::now() + delay, seq, event }));
                }
                None => return,
            },
            () = async {
                match next_due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(s)| s.due <= now) {
                    if let Some(Reverse(s)) = heap.pop()
                        && events.send(s.event).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    }
}

impl Connector for Sandbox {
    fn name(&self) -> &str {
        &self.name
    }

    fn submit(&self, message: Outbound) -> BoxFuture<'_, Result<(), ConnectorUnavailable>> {
        Box::pin(async move {
            let events = self
                .events()
                .ok_or_else(|| ConnectorUnavailable(self.name.to_string()))?;
            let refusal = match message.to.as_str() {
                REJECTED => Some((
                    "sandbox_rejected",
                    "the sandbox carrier refuses this test number",
                    true,
                )),
                RETRY_ONCE if message.attempt == 1 => Some((
                    "sandbox_busy",
                    "the sandbox carrier is busy; the retry will go through",
                    false,
                )),
                _ => None,
            };
            let event = if let Some((code, detail, permanent)) = refusal {
                self.refused.fetch_add(1, Ordering::Relaxed);
                ConnectorEvent::Refused {
                    message_id: message.message_id,
                    attempt: message.attempt,
                    code: code.into(),
                    detail: detail.into(),
                    permanent,
                }
            } else {
                self.submitted.fetch_add(1, Ordering::Relaxed);
                self.write_outbox(&message);
                let provider_ids: Vec<String> = (0..message.segments.max(1))
                    .map(|_| crate::store::new_id("sbx"))
                    .collect();
                for id in &provider_ids {
                    self.schedule_receipt(id.clone(), &message.to);
                }
                ConnectorEvent::Accepted {
                    message_id: message.message_id,
                    connector: self.name.clone(),
                    provider_ids,
                }
            };
            events
                .send(event)
                .await
                .map_err(|_| ConnectorUnavailable(self.name.to_string()))
        })
    }

    fn is_up(&self) -> bool {
        lock(&self.events).is_some()
    }

    fn status(&self) -> ConnectorStatus {
        ConnectorStatus {
            name: self.name.to_string(),
            kind: "sandbox",
            up: self.is_up(),
            in_flight: 0,
            window: None,
            submitted: self.submitted.load(Ordering::Relaxed),
            errors: self.refused.load(Ordering::Relaxed),
            tls: None,
            inbound_dropped: 0,
        }
    }

    fn resume(&self, awaiting: Vec<(String, String)>) {
        for (provider_id, to) in awaiting {
            self.schedule_receipt(provider_id, &to);
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            lock(&self.events).take();
            lock(&self.receipts).take();
        })
    }
}
