//! The request deadline. A request that takes longer than the configured time is answered
//! 408, except one that has already handed a change to the store: cutting it off then would
//! tell the client "failed" about messages that are in fact accepted, and a client retrying
//! without an idempotency key would send them twice. Such a request waits for the commit and
//! answers with its outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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

/// Middleware: answers 408 when `timeout` passes, unless the handler began committing.
pub async fn enforce(
    State(timeout): State<Duration>,
    mut request: Request,
    next: Next,
) -> Response {
    let committing = Committing::default();
    request.extensions_mut().insert(committing.clone());
    let response = next.run(request);
    tokio::pin!(response);
    tokio::select! {
        response = &mut response => response,
        () = tokio::time::sleep(timeout) => {
            if committing.started() {
                metrics::counter!("rampart_http_deadline_waited_total").increment(1);
                response.await
            } else {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request took too long",
                )
                .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use axum::{Extension, middleware};
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
            .layer(middleware::from_fn_with_state(
                Duration::from_secs(1),
                enforce,
            ))
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
