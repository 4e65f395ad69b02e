//! The public face: [`SmppClient::spawn`] starts the background task that owns the link, and
//! [`SmppHandle`] submits messages, reads the status and shuts it down.

use std::{
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rusmpp::pdus::SubmitSm;
use tokio::{
    sync::{Semaphore, mpsc, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    LinkStatus, SmppConfig, SmppError, SmppEvent, Submission,
    outbound::{Encoding, build_submit_sms},
    stats::Stats,
    supervisor::run_supervisor,
    tls::tls_setup,
};

/// Longest single pause after a throttling refusal, however often it doubled.
const MAX_THROTTLE_PAUSE: Duration = Duration::from_secs(60);

/// A submission turned into PDUs, waiting for the link. `Debug` leaves the PDUs out: they
/// hold the numbers and the text.
pub(crate) struct Job {
    pub reference: u64,
    pub pdus: Vec<SubmitSm>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("reference", &self.reference)
            .field("pdus", &self.pdus.len())
            .finish()
    }
}

/// State shared by the handle, the supervisor and the submission tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SmppConfig,
    pub events: mpsc::Sender<SmppEvent>,
    pub stats: Stats,
    /// One permit per submission being sent: each has at most one `submit_sm` unanswered.
    pub window: Arc<Semaphore>,
    limiter: Option<DefaultDirectRateLimiter>,
    throttled_until: Mutex<Option<Instant>>,
    /// Cancelled when the client is shutting down.
    pub stopping: CancellationToken,
}

impl Shared {
    /// Reports an event; if the caller dropped its receiver there is no one left to tell.
    pub(crate) async fn emit(&self, event: SmppEvent) {
        if self.events.send(event).await.is_err() {
            tracing::debug!("SMPP event dropped: the receiver is gone");
        }
    }

    /// Pauses all sending for `pause` (capped), after the SMSC asked us to slow down.
    pub(crate) fn pause_sending(&self, pause: Duration) {
        let until = Instant::now() + pause.min(MAX_THROTTLE_PAUSE);
        // An `Option<Instant>` cannot be left half-written, so a poisoned lock is taken over.
        let mut throttled_until = self
            .throttled_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *throttled_until = Some(throttled_until.map_or(until, |current| current.max(until)));
    }

    /// Waits for the throttling pause and the rate limit. False if the client is stopping.
    pub(crate) async fn wait_for_turn(&self) -> bool {
        let turn = async {
            loop {
                let until = *self
                    .throttled_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match until {
                    Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                    _ => break,
                }
            }
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
        };
        tokio::select! {
            biased;
            () = self.stopping.cancelled() => false,
            () = turn => true,
        }
    }
}

/// Rampart's SMPP client. See [`SmppClient::spawn`].
#[derive(Debug)]
pub struct SmppClient;

impl SmppClient {
    /// Checks the configuration and starts the background task that binds to the SMSC (and
    /// rebinds after failures), sends submissions and reports [`SmppEvent`]s on `events`.
    ///
    /// Must be called inside a Tokio runtime. Keep `events` drained: a full channel slows the
    /// link down (receipts are answered only after their event is queued).
    pub fn spawn(
        config: SmppConfig,
        events: mpsc::Sender<SmppEvent>,
    ) -> Result<SmppHandle, SmppError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SmppError::NoRuntime)?;
        let tls = config.tls.as_ref().map(tls_setup).transpose()?;
        let limiter = config
            .max_rate
            .and_then(NonZeroU32::new)
            // A burst of one: evenly spaced submissions never exceed the cap in any second.
            .map(|rate| RateLimiter::direct(Quota::per_second(rate).allow_burst(NonZeroU32::MIN)));
        let encoding = Encoding {
            concatenation: config.concatenation,
            gsm7_packed: config.gsm7_packed,
        };
        let shared = Arc::new(Shared {
            window: Arc::new(Semaphore::new(config.window)),
            config,
            events,
            stats: Stats::new(std::time::Instant::now()),
            limiter,
            throttled_until: Mutex::new(None),
            stopping: CancellationToken::new(),
        });
        // One queued job at most: `submit` waits while the window is full or the link is down.
        let (jobs, jobs_receiver) = mpsc::channel(1);
        let (finished_sender, finished) = watch::channel(false);
        runtime.spawn(run_supervisor(
            Arc::clone(&shared),
            tls,
            jobs_receiver,
            finished_sender,
        ));
        Ok(SmppHandle {
            inner: Arc::new(HandleInner {
                jobs,
                shared,
                finished,
                encoding,
            }),
        })
    }
}

/// Handle to a running client. Cheap to clone; the client stops when
/// [`SmppHandle::shutdown`] is called or every clone is dropped.
#[derive(Debug, Clone)]
pub struct SmppHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    finished: watch::Receiver<bool>,
    encoding: Encoding,
}

impl SmppHandle {
    /// Queues a submission. Checks and encodes it first (errors for bad input come back
    /// here), then waits until the link is bound and the window has room: this wait is the
    /// backpressure, so callers should bound it with their own timeout. What happens next
    /// arrives as events carrying `submission.reference`; a submission still queued when the
    /// link drops comes back at once as [`SmppEvent::Requeue`].
    pub async fn submit(&self, submission: Submission) -> Result<(), SmppError> {
        if self.inner.shared.stopping.is_cancelled() {
            return Err(SmppError::ShutDown);
        }
        let pdus = build_submit_sms(&submission, self.inner.encoding)?;
        let job = Job {
            reference: submission.reference,
            pdus,
        };
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| SmppError::ShutDown)
    }

    /// A snapshot of the link and its counters.
    pub fn status(&self) -> LinkStatus {
        self.inner.shared.stats.snapshot(std::time::Instant::now())
    }

    /// Stops taking submissions, lets the `submit_sm` in flight finish (each within the
    /// response timeout), reports `Requeue` for everything not sent, unbinds cleanly and
    /// returns once the background task has ended.
    pub async fn shutdown(self) {
        self.inner.shared.stopping.cancel();
        let mut finished = self.inner.finished.clone();
        // An error means the task is gone already, which is what we wait for.
        let _ = finished.wait_for(|finished| *finished).await;
    }
}
