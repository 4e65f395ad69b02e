//! The recorder: what connectors report (accepted, refused, link dropped, receipts, inbound
//! messages) is written to the store in batches, one store job per batch.

use tokio::sync::mpsc;

use super::connector::ConnectorEvent;
use super::{DeliveryDeps, DeliveryError, backoff};
use crate::clock::Millis;
use crate::config;
use crate::data::sealing::{Field, Sealer};
use crate::messaging::PhoneNumber;
use crate::messaging::keywords::Keyword;
use crate::messaging::phone::mask;
use crate::store::inbound::InboundRecord;
use crate::store::{StoreError, Tx};

/// Most events recorded in one store job.
const EVENT_BATCH: usize = 1024;

/// Records events until every connector has dropped its sender.
pub async fn run(deps: DeliveryDeps, mut events: mpsc::Receiver<ConnectorEvent>) {
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    while events.recv_many(&mut batch, EVENT_BATCH).await > 0 {
        let todo = std::mem::take(&mut batch);
        let count = todo.len();
        if let Err(e) = record(&deps, todo).await {
            // The events are lost only from memory: the messages stay `sending`/`sent` in the
            // store and are requeued (or their receipts re-sent) after the next start.
            tracing::error!(error = %e, count, "cannot record delivery events");
            metrics::counter!("rampart_delivery_errors_total").increment(1);
        }
    }
}

/// A keyword an inbound message was (STOP, START, HELP), stored and committed, for whoever
/// acts on it (opt-outs and replies live above delivery).
#[derive(Clone)]
pub struct InboundKeyword {
    pub account_id: String,
    /// The stored inbound message.
    pub inbound_id: String,
    /// Who sent it (E.164 when it parses).
    pub from: String,
    /// Our number that received it, as the account owns it.
    pub to_number: String,
    pub keyword: Keyword,
}

impl std::fmt::Debug for InboundKeyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundKeyword")
            .field("inbound_id", &self.inbound_id)
            .field("from", &mask(&self.from))
            .field("keyword", &self.keyword)
            .finish_non_exhaustive()
    }
}

/// Records one batch of events in one store job; keywords among its inbound messages are
/// handed on only once the batch is committed.
pub async fn record(deps: &DeliveryDeps, events: Vec<ConnectorEvent>) -> Result<(), DeliveryError> {
    let (sealer, config, now) = (
        deps.sealer.clone(),
        deps.config.clone(),
        deps.clock.now_ms(),
    );
    let keywords = deps
        .store
        .write_background(move |tx| apply(tx, &sealer, &config, &events, now))
        .await?;
    if let Some(to) = &deps.keywords {
        for keyword in keywords {
            // A carrier flooding keywords must not grow memory: past the queue they are only
            // stored as inbound messages.
            if to.try_send(keyword).is_err() {
                metrics::counter!("rampart_inbound_keywords_dropped_total").increment(1);
                tracing::warn!("an inbound keyword was not acted on: its queue is full");
            }
        }
    }
    Ok(())
}

fn apply(
    tx: &Tx<'_>,
    sealer: &Sealer,
    config: &config::Delivery,
    events: &[ConnectorEvent],
    now: Millis,
) -> Result<Vec<InboundKeyword>, DeliveryError> {
    let mut keywords = Vec::new();
    // Connectors that reported receipts in this batch: their early receipts are trimmed after.
    let mut receipt_connectors: Vec<&str> = Vec::new();
    for event in events {
        match event {
            ConnectorEvent::Accepted {
                message_id,
                connector,
                provider_ids,
            } => {
                tx.mark_sent(message_id, connector, provider_ids, now)?;
                metrics::counter!("rampart_messages_sent_total", "connector" => connector.to_string()).increment(1);
            }
            ConnectorEvent::Refused { .. } => {
                apply_refusals(tx, config, std::slice::from_ref(event), now)?;
            }
            ConnectorEvent::Requeue { message_id } => {
                tx.mark_retry(
                    message_id,
                    now,
                    "link_dropped",
                    "the link dropped before the carrier answered",
                    now,
                )?;
            }
            ConnectorEvent::Receipt {
                connector,
                provider_id,
                state,
                error_code,
            } => {
                if let Some(state) = state.as_part_state() {
                    tx.apply_receipt(connector, provider_id, state, error_code.as_deref(), now)?;
                    if !receipt_connectors.contains(&&**connector) {
                        receipt_connectors.push(connector);
                    }
                }
            }
            ConnectorEvent::Inbound {
                connector,
                from,
                to,
                body,
            } => {
                if let Some(keyword) = record_inbound(tx, sealer, connector, from, to, body, now)? {
                    keywords.push(keyword);
                }
            }
        }
    }
    for connector in receipt_connectors {
        trim_early_receipts(tx, config, connector, now)?;
    }
    Ok(keywords)
}

/// Keeps `early_receipts` bounded in rows and age: receipts for ids never recorded (a confused
/// or hostile carrier, or a man in the middle of plaintext SMPP) must not grow the database.
fn trim_early_receipts(
    tx: &Tx<'_>,
    config: &config::Delivery,
    connector: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let max_age = Millis::try_from(config.early_receipts_max_age_ms).unwrap_or(Millis::MAX);
    let dropped = tx.trim_early_receipts(
        connector,
        now.saturating_sub(max_age),
        config.early_receipts_max_per_connector,
    )?;
    if dropped > 0 {
        metrics::counter!("rampart_early_receipts_dropped_total", "connector" => connector.to_owned())
            .increment(dropped as u64);
        tracing::warn!(
            connector,
            dropped,
            "receipts for unknown carrier ids dropped (too old, or too many kept)"
        );
    }
    Ok(())
}

/// Refusals: retried with backoff until attempts run out, or failed at once when permanent.
pub fn apply_refusals(
    tx: &Tx<'_>,
    config: &config::Delivery,
    events: &[ConnectorEvent],
    now: Millis,
) -> Result<(), StoreError> {
    for event in events {
        let ConnectorEvent::Refused {
            message_id,
            attempt,
            code,
            detail,
            permanent,
        } = event
        else {
            continue;
        };
        if *permanent || *attempt >= config.max_attempts {
            tx.mark_failed(message_id, code, detail, now)?;
            metrics::counter!("rampart_messages_failed_total").increment(1);
        } else {
            let at = now + backoff(config, *attempt);
            tx.mark_retry(message_id, at, code, detail, now)?;
        }
    }
    Ok(())
}

/// Stores an inbound message for the account that owns the number it was sent to, sealed;
/// a message to a number nobody owns is only counted. A keyword message is stored too, and
/// named in the answer.
fn record_inbound(
    tx: &Tx<'_>,
    sealer: &Sealer,
    connector: &str,
    from: &str,
    to: &str,
    body: &str,
    now: Millis,
) -> Result<Option<InboundKeyword>, DeliveryError> {
    let Some(owner) = tx.number_owner(to)? else {
        metrics::counter!("rampart_inbound_unrouted_total").increment(1);
        tracing::warn!(connector, to = %mask(to), "inbound message to a number no account owns");
        return Ok(None);
    };
    let id = crate::store::new_id("inb");
    // The same spelling as outbound recipients, so one blind index finds both.
    let from = PhoneNumber::parse(from)
        .map(|n| n.as_str().to_owned())
        .unwrap_or_else(|_| from.to_owned());
    let account = owner.account_id.as_str();
    let row = InboundRecord {
        from_sealed: sealer.seal(Field::InboundFrom, account, &id, from.as_bytes())?,
        from_index: sealer.phone_index(account, &from),
        body_sealed: sealer.seal(Field::InboundBody, account, &id, body.as_bytes())?,
        id,
        account_id: owner.account_id.clone(),
        to_number: owner.number,
        connector: connector.to_owned(),
        received_at: now,
        body_erased_at: None,
    };
    tx.insert_inbound(&row)?;
    metrics::counter!("rampart_inbound_received_total", "connector" => connector.to_owned())
        .increment(1);
    Ok(Keyword::parse(body).map(|keyword| InboundKeyword {
        account_id: row.account_id,
        inbound_id: row.id,
        from,
        to_number: row.to_number,
        keyword,
    }))
}
