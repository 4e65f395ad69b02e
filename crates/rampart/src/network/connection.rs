//! One admitted connection: it holds its places under the connection caps, is closed once it
//! has had no request in flight for the idle timeout (HTTP/1.1 keep-alive and HTTP/2 alike,
//! whatever pings go over it), and closes with a lingering close: after the server's last
//! answer it stops writing but reads and discards what the client still sends for a moment,
//! so a client still uploading a refused body reads the answer instead of a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::limits::Slot;

/// How long a closing connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// How much a closing connection reads at most before it closes anyway.
const LINGER_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Milliseconds standing for "no request has ended yet".
const NEVER: u64 = u64::MAX;

/// Requests in flight on one connection, and when the last one ended. The idle timeout runs
/// only from the end of the first request: before it, the TLS handshake timeout and the
/// first-request timeout bound the connection (it may be still in its handshake).
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `started` to the end of the last request, or `NEVER`.
    last_done_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(NEVER),
        }
    }

    /// When the connection becomes idle for `timeout`; `None` while a request is in flight
    /// or before the first one ended.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.last_done_ms.load(Ordering::Acquire) {
            NEVER => None,
            last => Some(self.started + Duration::from_millis(last) + timeout),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Marks a request in flight until dropped.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let elapsed = self.0.started.elapsed().as_millis();
        let elapsed = u64::try_from(elapsed).unwrap_or(NEVER - 1).min(NEVER - 1);
        // The later of two ends wins; `NEVER` (the start value) is replaced by any end.
        let _ = self
            .0
            .last_done_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                (last == NEVER || last < elapsed).then_some(elapsed)
            });
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's service: counts its requests in flight for the idle timeout.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: Service<R>, R> Service<R> for Tracked<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let busy = self.activity.begin();
        TrackedFuture {
            inner: self.inner.call(request),
            _busy: busy,
        }
    }
}

pin_project! {
    /// A response in the making; the request counts as in flight until it is ready.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        _busy: Busy,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// A stream that holds its connection's places until it is dropped, ends when the connection
/// is idle too long, and lingers when shut down.
pub struct Limited<S> {
    stream: S,
    _slot: Slot,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    /// Set once the write side is shut: the end of the lingering close.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<S> Limited<S> {
    pub fn new(stream: S, slot: Slot, activity: Arc<Activity>, idle_timeout: Duration) -> Self {
        Self {
            stream,
            _slot: slot,
            activity,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            linger: None,
        }
    }

    /// Ready once the connection has been idle for the timeout.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            match self.activity.idle_deadline(self.idle_timeout) {
                Some(deadline) if deadline <= now => return Poll::Ready(()),
                Some(deadline) => self.idle.as_mut().reset(deadline),
                None => self.idle.as_mut().reset(now + self.idle_timeout),
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => {}
            ready => return ready,
        }
        match this.poll_idle(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                metrics::counter!("rampart_connections_idle_closed_total").increment(1);
                // End of stream: the protocol layer closes the connection.
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Shuts the write side, then reads and discards until the client closes its side, the
    /// linger time is up or enough was read.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            match Pin::new(&mut this.stream).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            this.linger = Some((Box::pin(tokio::time::sleep(LINGER)), 0));
        }
        let Some((until, drained)) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            let mut discard = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut discard) {
                Poll::Ready(Ok(())) if !discard.filled().is_empty() => {
                    *drained += discard.filled().len();
                    if *drained >= LINGER_MAX_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                // The client closed its side (or the socket failed): nothing more to wait for.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match until.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Ok(())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::Semaphore;

    use super::*;

    fn limited(io: DuplexStream, idle: Duration) -> (Limited<DuplexStream>, Arc<Activity>) {
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let slot = Slot::new(permit, None, "test");
        let activity = Arc::new(Activity::new());
        (Limited::new(io, slot, activity.clone(), idle), activity)
    }

    #[tokio::test]
    async fn a_closing_connection_reads_what_the_client_still_sends() {
        let (server, mut client) = tokio::io::duplex(1024);
        let (mut server, _) = limited(server, Duration::from_secs(60));
        // More than the pipe holds: the client can finish only if the server keeps reading.
        let uploading = tokio::spawn(async move {
            let sent = client.write_all(&[b'x'; 64 * 1024]).await;
            drop(client);
            sent
        });
        server.shutdown().await.unwrap();
        drop(server);
        assert!(
            uploading.await.unwrap().is_ok(),
            "the client's upload was not cut"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_after_its_last_request_ends() {
        let (server, _client) = tokio::io::duplex(1024);
        let (mut server, activity) = limited(server, Duration::from_secs(1));
        drop(activity.begin());
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), server.read(&mut buf)).await;
        assert_eq!(read.unwrap().unwrap(), 0, "the idle connection ends");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_not_idle_while_a_request_is_in_flight() {
        let (server, _client) = tokio::io::duplex(1024);
        let (mut server, activity) = limited(server, Duration::from_secs(1));
        drop(activity.begin());
        let _busy = activity.begin();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), server.read(&mut buf)).await;
        assert!(read.is_err(), "still open while a request is in flight");
    }
}
