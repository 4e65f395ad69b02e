//! Refuses a body whose declared length is over the limit before a byte of it is read: no
//! `100 Continue` is sent, and the connection layer closes (lingering) or resets the stream
//! after the 413, so the client reads the answer instead of a reset. A plain tower layer: it
//! sits on the path of every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderValue, Request, Version, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::extract;

#[derive(Clone, Copy, Debug)]
pub struct RefuseOversizedLayer {
    max_body_bytes: u64,
}

impl RefuseOversizedLayer {
    pub fn new(max_body_bytes: usize) -> Self {
        Self {
            max_body_bytes: max_body_bytes as u64,
        }
    }
}

impl<S> Layer<S> for RefuseOversizedLayer {
    type Service = RefuseOversized<S>;

    fn layer(&self, inner: S) -> RefuseOversized<S> {
        RefuseOversized {
            inner,
            max_body_bytes: self.max_body_bytes,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RefuseOversized<S> {
    inner: S,
    max_body_bytes: u64,
}

impl<S, B> Service<Request<B>> for RefuseOversized<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = MaybeRefused<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_none_or(|length| length <= self.max_body_bytes) {
            return MaybeRefused::Served {
                inner: self.inner.call(request),
            };
        }
        metrics::counter!("rampart_http_oversized_bodies_total").increment(1);
        let mut response = extract::payload_too_large().into_response();
        if request.version() <= Version::HTTP_11 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        MaybeRefused::Refused {
            response: Some(response),
        }
    }
}

pin_project! {
    /// The inner service's answer, or the 413 made without calling it.
    #[project = MaybeRefusedProjection]
    pub enum MaybeRefused<F> {
        Served { #[pin] inner: F },
        Refused { response: Option<Response> },
    }
}

impl<F, E> Future for MaybeRefused<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            MaybeRefusedProjection::Served { inner } => inner.poll(cx),
            MaybeRefusedProjection::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| extract::payload_too_large().into_response()))),
        }
    }
}
