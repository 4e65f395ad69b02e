//! The request deadline. A request that takes longer than the configured time is answered
//! 408, except one that has already handed a change to the store: cutting it off then would
//! tell the client "failed" about messages that are in fact accepted, and a client retrying
//! without an idempotency key would send them twice. Such a request waits for the commit and
//! answers with its outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::error::ApiError;

/// Set by a handler once its outcome no longer depends on the client waiting (it is about to
/// commit); from then on the deadline no longer cuts the request off.
#[derive(Clone, Default, Debug)]
pub struct Committing(Arc<AtomicBool>);

impl Committing {
    pub fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn started(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Answers 408 when the deadline passes, unless the handler began committing. A plain tower
/// layer (no boxing, no per-request clone of the stack): it sits on the path of every request.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    timeout: Duration,
}

impl DeadlineLayer {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service [`DeadlineLayer`] makes.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> Service<Request<B>> for Deadline<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let committing = Committing::default();
        request.extensions_mut().insert(committing.clone());
        DeadlineFuture {
            inner: self.inner.call(request),
            sleep: tokio::time::sleep(self.timeout),
            committing,
            waiting_for_commit: false,
        }
    }
}

pin_project! {
    /// The response, or a 408 once the deadline passed before the handler began committing.
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        committing: Committing,
        waiting_for_commit: bool,
    }
}

impl<F, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(response) = this.inner.poll(cx) {
            return Poll::Ready(response);
        }
        if !*this.waiting_for_commit && this.sleep.poll(cx).is_ready() {
            if !this.committing.started() {
                let timeout = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request took too long",
                );
                return Poll::Ready(Ok(timeout.into_response()));
            }
            metrics::counter!("rampart_http_deadline_waited_total").increment(1);
            *this.waiting_for_commit = true;
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use axum::Extension;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let slow = |begin: bool| {
            move |Extension(committing): Extension<Committing>| async move {
                if begin {
                    committing.begin();
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::ACCEPTED
            }
        };
        Router::new()
            .route("/committing", get(slow(true)))
            .route("/waiting", get(slow(false)))
            .layer(DeadlineLayer::new(Duration::from_secs(1)))
    }

    async fn status(path: &str) -> StatusCode {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        app().oneshot(request).await.unwrap().status()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_deadline_is_answered_408() {
        assert_eq!(status("/waiting").await, StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_began_committing_answers_with_the_commit_not_408() {
        assert_eq!(status("/committing").await, StatusCode::ACCEPTED);
    }
}
