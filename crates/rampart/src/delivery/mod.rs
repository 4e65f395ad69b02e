//! Delivery: the durable queue worker that takes due messages from the store, routes each to a
//! connector, and records what connectors report (accepted, refused, receipts) in batches.
//!
//! The database is the queue: memory holds only the batch in hand, so a backlog of any size
//! drains without growing memory, and a crash loses nothing (messages left `sending` are
//! queued again at start: at-least-once towards carriers).

pub mod connector;
pub mod fleet;
pub mod router;
pub mod sandbox;
pub mod smpp;
pub mod smpp_config;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use self::connector::{ConnectorEvent, Outbound};
use self::router::Router;
use crate::clock::{Millis, SharedClock};
use crate::config;
use crate::data::Keyring;
use crate::store::{self, Store, StoreError};

/// Most events recorded in one store job.
const EVENT_BATCH: usize = 1024;

/// The running delivery worker.
pub struct Delivery {
    router: Arc<RwLock<Arc<Router>>>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    dispatcher: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    recorder: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

/// What the worker needs from the rest of the server.
#[derive(Clone)]
pub struct DeliveryDeps {
    pub store: Arc<Store>,
    pub keyring: Arc<Keyring>,
    pub clock: SharedClock,
    pub config: config::Delivery,
}

impl Delivery {
    /// Requeues interrupted sends, then starts the dispatcher and the event recorder.
    /// `events` is the receiving end of the channel the router's connectors report on.
    pub async fn start(
        deps: DeliveryDeps,
        router: Router,
        events: mpsc::Receiver<ConnectorEvent>,
    ) -> Result<Self, StoreError> {
        let now = deps.clock.now_ms();
        let requeued = deps
            .store
            .write(move |c| store::messages::requeue_unfinished_sends(c, now))
            .await?;
        if requeued > 0 {
            tracing::info!(requeued, "messages interrupted mid-send are queued again");
        }
        for connector in router.connectors() {
            let name = connector.name().to_owned();
            let awaiting = deps
                .store
                .read_blocking(move |c| store::messages::awaiting_receipts(c, &name))
                .await?;
            let mut pending = Vec::with_capacity(awaiting.len());
            for part in awaiting {
                let to = deps.keyring.decrypt_string(
                    &part.to_sealed,
                    format!("to:{}", part.message_id).as_bytes(),
                )?;
                pending.push((part.provider_id, to));
            }
            if !pending.is_empty() {
                connector.resume(pending);
            }
        }
        let router = Arc::new(RwLock::new(Arc::new(router)));
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let dispatcher = tokio::spawn(dispatch(
            deps.clone(),
            router.clone(),
            wake.clone(),
            stopped,
        ));
        let recorder = tokio::spawn(record(deps, events));
        Ok(Self {
            router,
            wake,
            stop,
            dispatcher: tokio::sync::Mutex::new(Some(dispatcher)),
            recorder: tokio::sync::Mutex::new(Some(recorder)),
        })
    }

    /// New messages are in the queue: look now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn router(&self) -> Arc<Router> {
        self.router.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Swaps the routing table (connectors and routes) without a restart.
    pub fn set_router(&self, router: Router) {
        if let Ok(mut current) = self.router.write() {
            *current = Arc::new(router);
        }
        self.wake();
    }

    /// Stops claiming, lets connectors finish what they hold, records their last events.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Some(handle) = self.dispatcher.lock().await.take() {
            let _ = handle.await;
        }
        let router = self.router();
        for connector in router.connectors() {
            connector.shutdown().await;
        }
        // Connectors dropped their event senders; the recorder drains and ends.
        drop(router);
        if let Ok(mut current) = self.router.write() {
            *current = Arc::new(Router::default());
        }
        if let Some(handle) = self.recorder.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
    }
}

/// Retry delay after `attempt` failed attempts: exponential, capped, with ±20% jitter so that
/// a burst of failures does not come back as a burst.
pub fn backoff(config: &config::Delivery, attempt: u32) -> Millis {
    let exp = config
        .retry_base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(config.retry_max_ms) as f64;
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    (capped * jitter) as Millis
}

async fn dispatch(
    deps: DeliveryDeps,
    router: Arc<RwLock<Arc<Router>>>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let limit = deps.config.claim_batch.max(1);
    while !*stop.borrow() {
        let now = deps.clock.now_ms();
        let claimed = match deps
            .store
            .write_background(move |c| store::messages::claim_due(c, now, limit))
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim due messages");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            let next = deps.store.read(store::messages::next_due_at).ok().flatten();
            let wait = next.map_or(1_000, |due| (due - deps.clock.now_ms()).clamp(1, 1_000));
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        metrics::counter!("rampart_messages_claimed_total").increment(claimed.len() as u64);
        let table = router.read().map(|r| r.clone()).unwrap_or_default();
        let mut unsent = Vec::new();
        for message in claimed {
            if let Some(outcome) = hand_over(&deps, &table, message).await {
                unsent.push(outcome);
            }
        }
        record_unsent(&deps, unsent).await;
    }
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

/// Longest wait of a message whose connectors are down before it is tried again.
const POSTPONE_MAX_MS: Millis = 10_000;

async fn hand_over(
    deps: &DeliveryDeps,
    router: &Router,
    message: store::messages::StoredMessage,
) -> Option<Unsent> {
    let id = message.id.clone();
    let attempt = message.attempts;
    let decrypted = deps
        .keyring
        .decrypt_string(&message.to_sealed, format!("to:{id}").as_bytes())
        .and_then(|to| {
            Ok((
                to,
                deps.keyring
                    .decrypt_string(&message.body_sealed, format!("body:{id}").as_bytes())?,
            ))
        });
    let (to, body) = match decrypted {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!(message_id = %id, error = %e, "message cannot be decrypted");
            return Some(refusal(
                id,
                attempt,
                "decrypt_failed",
                "the stored message cannot be decrypted",
                true,
            ));
        }
    };
    let Some(connector) = router.pick(&to) else {
        if router.has_route(&to) {
            return Some(Unsent::Postponed {
                message_id: id,
                attempt,
                code: "connectors_down",
                detail: "every connector on this route is down".into(),
            });
        }
        return Some(refusal(
            id,
            attempt,
            "no_route",
            "no route matches this destination",
            false,
        ));
    };
    let outbound = Outbound {
        message_id: id.clone(),
        to,
        from: message.sender,
        body,
        encoding: message.encoding,
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

fn refusal(id: String, attempt: u32, code: &str, detail: &str, permanent: bool) -> Unsent {
    Unsent::Refused(ConnectorEvent::Refused {
        message_id: id,
        attempt,
        code: code.into(),
        detail: detail.into(),
        permanent,
    })
}

/// Records, in one store job, what happened to the messages of a batch that were not sent.
async fn record_unsent(deps: &DeliveryDeps, unsent: Vec<Unsent>) {
    if unsent.is_empty() {
        return;
    }
    let (deps2, now) = (deps.clone(), deps.clock.now_ms());
    let result = deps
        .store
        .write_background(move |c| {
            for outcome in &unsent {
                match outcome {
                    Unsent::Refused(event) => apply(c, &deps2, std::slice::from_ref(event), now)?,
                    Unsent::Postponed {
                        message_id,
                        attempt,
                        code,
                        detail,
                    } => {
                        let wait = backoff(&deps2.config, *attempt).min(POSTPONE_MAX_MS);
                        store::messages::postpone(c, message_id, now + wait, code, detail, now)?;
                    }
                }
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record delivery failures");
    }
}

async fn record(deps: DeliveryDeps, mut events: mpsc::Receiver<ConnectorEvent>) {
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    while events.recv_many(&mut batch, EVENT_BATCH).await > 0 {
        let todo = std::mem::take(&mut batch);
        let (deps2, now) = (deps.clone(), deps.clock.now_ms());
        let count = todo.len();
        if let Err(e) = deps
            .store
            .write_background(move |c| apply(c, &deps2, &todo, now))
            .await
        {
            // The events are lost only from memory: the messages stay `sending`/`sent` in the
            // store and are requeued (or their receipts re-sent) after the next start.
            tracing::error!(error = %e, count, "cannot record delivery events");
        }
    }
}

fn apply(
    conn: &rusqlite::Connection,
    deps: &DeliveryDeps,
    events: &[ConnectorEvent],
    now: Millis,
) -> Result<(), StoreError> {
    use store::messages as m;
    for event in events {
        match event {
            ConnectorEvent::Accepted {
                message_id,
                connector,
                provider_ids,
            } => {
                m::mark_sent(conn, message_id, connector, provider_ids, now)?;
                metrics::counter!("rampart_messages_sent_total", "connector" => connector.to_string()).increment(1);
            }
            ConnectorEvent::Refused {
                message_id,
                attempt,
                code,
                detail,
                permanent,
            } => {
                if *permanent || *attempt >= deps.config.max_attempts {
                    m::mark_failed(conn, message_id, code, detail, now)?;
                    metrics::counter!("rampart_messages_failed_total").increment(1);
                } else {
                    m::mark_retry(
                        conn,
                        message_id,
                        now + backoff(&deps.config, *attempt),
                        code,
                        detail,
                        now,
                    )?;
                }
            }
            ConnectorEvent::Requeue { message_id } => {
                m::mark_retry(
                    conn,
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
                    m::apply_receipt(
                        conn,
                        connector,
                        provider_id,
                        state,
                        error_code.as_deref(),
                        now,
                    )?;
                }
            }
            ConnectorEvent::Inbound {
                connector,
                from,
                to,
                body,
            } => record_inbound(conn, deps, connector, from, to, body, now)?,
        }
    }
    Ok(())
}

/// Stores an inbound message for the account that owns the number it was sent to, encrypted;
/// a message to a number nobody owns is only counted.
fn record_inbound(
    conn: &rusqlite::Connection,
    deps: &DeliveryDeps,
    connector: &str,
    from: &str,
    to: &str,
    body: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let Some(owner) = store::routing::number_owner(conn, to)? else {
        metrics::counter!("rampart_inbound_unrouted_total").increment(1);
        tracing::warn!(connector, to = %crate::messaging::phone::mask(to), "inbound message to a number no account owns");
        return Ok(());
    };
    let id = store::new_id("inb");
    // The same spelling as outbound recipients, so one blind index finds both.
    let from = crate::messaging::PhoneNumber::parse(from)
        .map(|n| n.as_str().to_owned())
        .unwrap_or_else(|_| from.to_owned());
    let row = store::inbound::InboundRow {
        from_sealed: deps
            .keyring
            .encrypt(from.as_bytes(), format!("inbound-from:{id}").as_bytes())?,
        from_index: deps.keyring.blind_index(b"phone", from.as_bytes()),
        body_sealed: deps
            .keyring
            .encrypt(body.as_bytes(), format!("inbound-body:{id}").as_bytes())?,
        id,
        account_id: owner.account_id,
        to_number: owner.number,
        connector: connector.to_owned(),
        received_at: now,
    };
    store::inbound::insert(conn, &row)?;
    metrics::counter!("rampart_inbound_received_total", "connector" => connector.to_owned())
        .increment(1);
    Ok(())
}
