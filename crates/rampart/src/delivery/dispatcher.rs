//! The dispatcher: one round claims a batch of due messages, opens each, picks a connector
//! through the router and hands it over. Messages that could not be handed over are recorded
//! in one store job: refused (no route, undecryptable) counts as an attempt, postponed
//! (every connector of the route down) does not.
//!
//! A round is a plain async call driven by the injected clock, so tests run it by hand.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::connector::{ConnectorEvent, Outbound};
use super::router::Router;
use super::{DeliveryDeps, DeliveryError, backoff, recorder};
use crate::clock::Millis;
use crate::data::sealing::Field;
use crate::messaging::Encoding;
use crate::store::StoreError;
use crate::store::messages::MessageRecord;

/// Longest wait of a message whose connectors are down before it is tried again.
pub const POSTPONE_MAX_MS: Millis = 10_000;

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Nothing was due; `next_due` is when the next queued message falls due, if any.
    Idle { next_due: Option<Millis> },
    /// `claimed` messages were taken off the queue; `unsent` of them did not reach a
    /// connector (refused or postponed).
    Dispatched { claimed: usize, unsent: usize },
}

/// Why a claimed message did not reach a connector.
enum Unsent {
    /// It cannot be sent (no route, undecryptable): counts as a failed attempt.
    Refused(ConnectorEvent),
    /// Its connectors are down or stopping: it waits, without counting as a failure, since
    /// no carrier has said anything about it.
    Postponed {
        message_id: String,
        attempt: u32,
        code: &'static str,
        detail: String,
    },
}

/// Claims due messages and hands them to connectors.
pub struct Dispatcher {
    deps: DeliveryDeps,
    router: Arc<ArcSwap<Router>>,
}

impl Dispatcher {
    pub fn new(deps: DeliveryDeps, router: Arc<ArcSwap<Router>>) -> Self {
        Self { deps, router }
    }

    /// The injected clock's time.
    pub fn now(&self) -> Millis {
        self.deps.clock.now_ms()
    }

    /// One round: claim a batch, hand each message over, record those not handed over.
    pub async fn run_once(&self) -> Result<Round, DeliveryError> {
        let now = self.now();
        let limit = self.deps.config.claim_batch.max(1);
        let claimed = self
            .deps
            .store
            .write_background(move |tx| tx.claim_due(now, limit))
            .await?;
        if claimed.is_empty() {
            let next_due = self.deps.store.read(|tx| tx.next_due_at())?;
            return Ok(Round::Idle { next_due });
        }
        let count = claimed.len();
        metrics::counter!("rampart_messages_claimed_total").increment(count as u64);
        let table = self.router.load_full();
        let mut unsent = Vec::new();
        for message in claimed {
            if let Some(outcome) = self.hand_over(&table, message).await {
                unsent.push(outcome);
            }
        }
        let unsent_count = unsent.len();
        self.record_unsent(unsent).await?;
        Ok(Round::Dispatched {
            claimed: count,
            unsent: unsent_count,
        })
    }

    async fn hand_over(&self, router: &Router, message: MessageRecord) -> Option<Unsent> {
        let id = message.id.clone();
        let attempt = message.attempts;
        let sealer = &self.deps.sealer;
        let account = &message.account_id;
        // Retention erases only messages in a final state, which are never claimed; should one
        // come here anyway, there is nothing to hand over.
        if message.body_erased_at.is_some() {
            return Some(refusal(
                id,
                attempt,
                "body_erased",
                "the message's body was erased under the account's retention",
            ));
        }
        let opened = sealer
            .open_string(Field::MessageTo, account, &id, &message.to_sealed)
            .and_then(|to| {
                let body =
                    sealer.open_string(Field::MessageBody, account, &id, &message.body_sealed)?;
                Ok((to, body))
            });
        let (to, body) = match opened {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "message cannot be decrypted");
                return Some(refusal(
                    id,
                    attempt,
                    "decrypt_failed",
                    "the stored message cannot be decrypted",
                ));
            }
        };
        let Some(encoding) = Encoding::parse(&message.encoding) else {
            tracing::error!(message_id = %id, "message has an unknown encoding");
            return Some(refusal(
                id,
                attempt,
                "corrupt",
                "the stored message is corrupt",
            ));
        };
        let sandbox = router.sandbox_for(&message.account_id);
        let Some(connector) = sandbox.or_else(|| router.pick(&to)) else {
            if router.has_route(&to) {
                return Some(Unsent::Postponed {
                    message_id: id,
                    attempt,
                    code: "connectors_down",
                    detail: "every connector on this route is down".into(),
                });
            }
            return Some(Unsent::Refused(ConnectorEvent::Refused {
                message_id: id,
                attempt,
                code: "no_route".into(),
                detail: "no route matches this destination (the account is live: test traffic \
                         belongs to an account in sandbox mode)"
                    .into(),
                permanent: false,
            }));
        };
        let outbound = Outbound {
            message_id: id.clone(),
            to,
            from: message.sender,
            body,
            encoding,
            segments: message.segments,
            valid_until: message.valid_until,
            attempt,
        };
        match connector.submit(outbound).await {
            Ok(()) => None,
            Err(e) => Some(Unsent::Postponed {
                message_id: id,
                attempt,
                code: "connector_unavailable",
                detail: e.to_string(),
            }),
        }
    }

    /// Records, in one store job, what happened to the messages of a batch that were not sent.
    async fn record_unsent(&self, unsent: Vec<Unsent>) -> Result<(), DeliveryError> {
        if unsent.is_empty() {
            return Ok(());
        }
        let (config, now) = (self.deps.config.clone(), self.now());
        let mut refused = Vec::new();
        let mut postponed = Vec::new();
        for outcome in unsent {
            match outcome {
                Unsent::Refused(event) => refused.push(event),
                Unsent::Postponed {
                    message_id,
                    attempt,
                    code,
                    detail,
                } => {
                    let wait = backoff(&config, attempt).min(POSTPONE_MAX_MS);
                    postponed.push((message_id, now + wait, code, detail));
                }
            }
        }
        self.deps
            .store
            .write_background(move |tx| {
                for (id, at, code, detail) in &postponed {
                    tx.postpone(id, *at, code, detail, now)?;
                }
                recorder::apply_refusals(tx, &config, &refused, now)?;
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(())
    }
}

fn refusal(id: String, attempt: u32, code: &str, detail: &str) -> Unsent {
    Unsent::Refused(ConnectorEvent::Refused {
        message_id: id,
        attempt,
        code: code.into(),
        detail: detail.into(),
        permanent: true,
    })
}
