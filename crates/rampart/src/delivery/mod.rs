//! Delivery: the durable queue worker that takes due messages from the store, routes each to a
//! connector, and records what connectors report (accepted, refused, receipts) in batches.
//!
//! The database is the queue: memory holds only the batch in hand, so a backlog of any size
//! drains without growing memory, and a crash loses nothing (messages left `sending` are
//! queued again at start: at-least-once towards carriers).

pub mod connector;
pub mod dispatcher;
pub mod fleet;
pub mod recorder;
pub mod router;
pub mod sandbox;
pub mod smpp;
pub mod smpp_config;
pub mod sync;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use self::connector::ConnectorEvent;
use self::dispatcher::{Dispatcher, Round};
use self::router::Router;
use crate::clock::{Millis, SharedClock};
use crate::config;
use crate::data::KeyringError;
use crate::data::sealing::{Field, Sealer};
use crate::store::{Store, StoreError};

/// What can go wrong while delivering.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A field could not be sealed or opened.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

/// What the worker needs from the rest of the server.
#[derive(Clone)]
pub struct DeliveryDeps {
    pub store: Arc<Store>,
    pub sealer: Sealer,
    pub clock: SharedClock,
    pub config: config::Delivery,
    /// Where keywords in inbound messages (STOP, START, HELP) go once recorded; `None` leaves
    /// them as plain inbound messages.
    pub keywords: Option<mpsc::Sender<recorder::InboundKeyword>>,
}

/// The running delivery worker.
pub struct Delivery {
    router: Arc<ArcSwap<Router>>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    dispatcher: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    recorder: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Delivery {
    /// Requeues interrupted sends, then starts the dispatcher and the event recorder.
    /// `events` is the receiving end of the channel the router's connectors report on; `wake`
    /// is notified by whoever queues new messages.
    pub async fn start(
        deps: DeliveryDeps,
        router: Router,
        events: mpsc::Receiver<ConnectorEvent>,
        wake: Arc<Notify>,
    ) -> Result<Self, DeliveryError> {
        let now = deps.clock.now_ms();
        let requeued = deps
            .store
            .write(move |tx| tx.requeue_unfinished_sends(now))
            .await?;
        if requeued > 0 {
            tracing::info!(requeued, "messages interrupted mid-send are queued again");
        }
        resume_receipts(&deps, &router).await?;
        let router = Arc::new(ArcSwap::from_pointee(router));
        let (stop, stopped) = watch::channel(false);
        let dispatcher = Dispatcher::new(deps.clone(), router.clone());
        let dispatcher = tokio::spawn(run_dispatcher(dispatcher, wake.clone(), stopped));
        let recorder = tokio::spawn(recorder::run(deps, events));
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
        self.router.load_full()
    }

    /// Swaps the routing table (connectors and routes) without a restart.
    pub fn set_router(&self, router: Router) {
        self.router.store(Arc::new(router));
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
        self.router.store(Arc::new(Router::default()));
        if let Some(handle) = self.recorder.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
    }
}

/// Tells simulated connectors which of their parts still await a receipt after a restart.
async fn resume_receipts(deps: &DeliveryDeps, router: &Router) -> Result<(), DeliveryError> {
    for connector in router.connectors() {
        let name = connector.name().to_owned();
        let awaiting = deps
            .store
            .read_blocking(move |tx| tx.awaiting_receipts(&name))
            .await?;
        let mut pending = Vec::with_capacity(awaiting.len());
        for part in awaiting {
            let to = deps.sealer.open_string(
                Field::MessageTo,
                &part.account_id,
                &part.message_id,
                &part.to_sealed,
            )?;
            pending.push((part.provider_id, to));
        }
        if !pending.is_empty() {
            connector.resume(pending);
        }
    }
    Ok(())
}

/// Claims and hands over batches until stopped; between batches, waits for new messages, the
/// next scheduled one, or a second at most.
async fn run_dispatcher(
    dispatcher: Dispatcher,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let wait_ms = match dispatcher.run_once().await {
            Ok(Round::Dispatched { .. }) => continue,
            Ok(Round::Idle { next_due }) => {
                let now = dispatcher.now();
                next_due.map_or(1_000, |due| (due - now).clamp(1, 1_000))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot claim due messages");
                metrics::counter!("rampart_delivery_errors_total").increment(1);
                500
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Takes a lock even if a thread panicked while holding it: every critical section in delivery
/// only inserts, removes or replaces whole values, so the data behind a poisoned lock is whole,
/// and dropping it instead would silently lose submissions and receipts.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
