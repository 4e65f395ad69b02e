//! Delivery's dispatcher and the queue state machine, driven by hand on a manual clock:
//! messages go in through the send use case, rounds run one at a time, and carrier answers are
//! recorded the way the recorder records them. (They live under `app` because they start from
//! the use cases; delivery itself knows nothing of them.) Nothing here waits on wall time. This file holds the bench;
//! the tests are in `claims` (dispatcher rounds), `answers` (what carriers report) and
//! `retention` (what an account's retention erases and deletes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::app::messages::{SendOutcome, SendRequest};
use crate::app::{Actor, App, Caller};
use crate::clock::{Clock, ManualClock, Millis, rfc3339};
use crate::config::{self, Config};
use crate::delivery::connector::{
    BoxFuture, Connector, ConnectorEvent, ConnectorStatus, ConnectorUnavailable, Outbound,
    ReceiptState,
};
use crate::delivery::dispatcher::{Dispatcher, POSTPONE_MAX_MS, Round};
use crate::delivery::router::{Route, Router};
use crate::delivery::{DeliveryDeps, recorder};
use crate::store::messages::MessageRecord;

mod answers;
mod billing;
mod claims;
mod retention;

const START: Millis = 1_700_000_000_000;
const UK_NUMBER: &str = "+447911123456";
const FRENCH_NUMBER: &str = "+33612345678";
const RETRY_BASE_MS: Millis = 4_000;
const MAX_ATTEMPTS: u32 = 3;
/// Early receipts kept per connector on the bench (small, so tests reach it).
const EARLY_RECEIPTS_CAP: usize = 50;
const EARLY_RECEIPTS_MAX_AGE_MS: Millis = 3_600_000;
/// Long enough for two GSM-7 segments.
const TWO_PART_BODY: &str = "This reminder is long enough to need two segments, because one segment holds only one hundred and sixty characters of the GSM seven-bit alphabet, and this has more.";

/// A carrier that keeps what it was handed, can be switched down, and can refuse submissions.
struct TestCarrier {
    name: &'static str,
    up: AtomicBool,
    failing: AtomicBool,
    handed: Mutex<Vec<Outbound>>,
}

impl TestCarrier {
    fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            up: AtomicBool::new(true),
            failing: AtomicBool::new(false),
            handed: Mutex::new(Vec::new()),
        })
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    fn fail_submissions(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn handed(&self) -> Vec<Outbound> {
        self.handed.lock().unwrap().clone()
    }
}

impl Connector for TestCarrier {
    fn name(&self) -> &str {
        self.name
    }

    fn submit(&self, message: Outbound) -> BoxFuture<'_, Result<(), ConnectorUnavailable>> {
        Box::pin(async move {
            if self.failing.load(Ordering::SeqCst) {
                return Err(ConnectorUnavailable(self.name.to_owned()));
            }
            self.handed.lock().unwrap().push(message);
            Ok(())
        })
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    fn status(&self) -> ConnectorStatus {
        ConnectorStatus {
            name: self.name.to_owned(),
            kind: "test",
            up: self.is_up(),
            in_flight: 0,
            window: None,
            submitted: self.handed.lock().unwrap().len() as u64,
            errors: 0,
            tls: None,
            inbound_dropped: 0,
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// An opened data directory, a dispatcher over it, and two carriers: `uk` for `+44` and
/// `world` for everything else.
struct Bench {
    app: App,
    clock: ManualClock,
    deps: DeliveryDeps,
    router: Arc<ArcSwap<Router>>,
    dispatcher: Dispatcher,
    uk: Arc<TestCarrier>,
    world: Arc<TestCarrier>,
    account: String,
    _dir: tempfile::TempDir,
}

fn route(prefix: &str, connector: &str) -> Route {
    Route {
        prefix: prefix.into(),
        connector: connector.into(),
        priority: 0,
    }
}

impl Bench {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        let config = Config {
            data_dir: dir.path().join("data"),
            delivery: config::Delivery {
                max_attempts: MAX_ATTEMPTS,
                retry_base_ms: RETRY_BASE_MS as u64,
                retry_max_ms: 600_000,
                claim_batch: 16,
                early_receipts_max_per_connector: EARLY_RECEIPTS_CAP,
                early_receipts_max_age_ms: EARLY_RECEIPTS_MAX_AGE_MS as u64,
            },
            // Longer than the shortest purge period, so retention tests meet a late retry.
            messaging: config::Messaging {
                idempotency_hours: 72,
                ..config::Messaging::default()
            },
            // Retention tests send thousands of sequential numbers to one range.
            pumping: config::Pumping {
                enabled: false,
                ..config::Pumping::default()
            },
            ..Config::default()
        };
        let shared = Arc::new(clock.clone());
        let app = App::open_with_clock(config, shared).unwrap();
        let account = app.create_account(&Actor::Operator, "bench").await.unwrap();
        let (uk, world) = (TestCarrier::new("uk"), TestCarrier::new("world"));
        let connectors: Vec<Arc<dyn Connector>> = vec![uk.clone(), world.clone()];
        let routes = vec![route("", "world"), route("+44", "uk")];
        let router = Arc::new(ArcSwap::from_pointee(Router::new(connectors, routes)));
        let deps = app.delivery_deps();
        let dispatcher = Dispatcher::new(deps.clone(), router.clone());
        Self {
            app,
            clock,
            deps,
            router,
            dispatcher,
            uk,
            world,
            account: account.id,
            _dir: dir,
        }
    }

    /// Only `+44` has a route: other destinations have none.
    fn route_uk_only(&self) {
        let connectors: Vec<Arc<dyn Connector>> = vec![self.uk.clone(), self.world.clone()];
        let table = Router::new(connectors, vec![route("+44", "uk")]);
        self.router.store(Arc::new(table));
    }

    fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    fn advance(&self, ms: Millis) {
        self.clock.advance(ms);
    }

    /// Advances the clock to `at` exactly.
    fn advance_to(&self, at: Millis) {
        assert!(at >= self.now(), "the clock only moves forwards");
        self.clock.advance(at - self.now());
    }

    async fn send_request(&self, request: SendRequest) -> String {
        let outcome = self
            .app
            .send_messages(&Caller::operator(&self.account), request)
            .await
            .unwrap();
        let SendOutcome::Accepted(accepted) = outcome else {
            panic!("a fresh send is accepted, not replayed");
        };
        accepted[0].id.clone()
    }

    async fn send(&self, to: &str, body: &str) -> String {
        self.send_request(SendRequest {
            to: vec![to.into()],
            from: "Rampart".into(),
            body: body.into(),
            ..SendRequest::default()
        })
        .await
    }

    async fn send_at(&self, to: &str, at: Millis) -> String {
        self.send_request(SendRequest {
            to: vec![to.into()],
            from: "Rampart".into(),
            body: "scheduled".into(),
            send_at: Some(rfc3339(at)),
            ..SendRequest::default()
        })
        .await
    }

    async fn round(&self) -> Round {
        self.dispatcher.run_once().await.unwrap()
    }

    async fn record(&self, events: Vec<ConnectorEvent>) {
        recorder::record(&self.deps, events).await.unwrap();
    }

    fn message(&self, id: &str) -> MessageRecord {
        self.deps
            .store
            .read(|tx| tx.get_message(&self.account, id))
            .unwrap()
            .unwrap_or_else(|| panic!("message {id} is stored"))
    }

    fn next_due(&self) -> Option<Millis> {
        self.deps.store.read(|tx| tx.next_due_at()).unwrap()
    }

    /// Provider ids of the parts sent through `connector` that still await a receipt.
    fn awaiting(&self, connector: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .deps
            .store
            .read(|tx| tx.awaiting_receipts(connector))
            .unwrap()
            .into_iter()
            .map(|part| part.provider_id)
            .collect();
        ids.sort();
        ids
    }
}

fn accepted(message_id: &str, connector: &str, provider_ids: &[&str]) -> ConnectorEvent {
    ConnectorEvent::Accepted {
        message_id: message_id.into(),
        connector: Arc::from(connector),
        provider_ids: provider_ids.iter().map(|id| (*id).to_owned()).collect(),
    }
}

fn receipt(
    connector: &str,
    provider_id: &str,
    state: ReceiptState,
    error_code: Option<&str>,
) -> ConnectorEvent {
    ConnectorEvent::Receipt {
        connector: Arc::from(connector),
        provider_id: provider_id.into(),
        state,
        error_code: error_code.map(str::to_owned),
    }
}

fn refused(message_id: &str, attempt: u32, permanent: bool) -> ConnectorEvent {
    ConnectorEvent::Refused {
        message_id: message_id.into(),
        attempt,
        code: "carrier_busy".into(),
        detail: "the carrier is busy".into(),
        permanent,
    }
}

/// The retry delay after `attempt` failed attempts, ±20%.
fn backoff_bounds(attempt: u32) -> (Millis, Millis) {
    let base = RETRY_BASE_MS * (1 << (attempt - 1));
    (base * 8 / 10, base * 12 / 10)
}
