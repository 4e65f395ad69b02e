//! Caps on open connections, applied before the TLS handshake: past the total cap or the cap per
//! client address a new connection is closed at once, so a flood of idle or half-open connections
//! cannot exhaust memory or file descriptors. Each admitted connection is closed once it has had
//! no request in flight for the idle timeout, and closes with a lingering close (see
//! `connection`). (Per-request limits, deadlines and load shedding live in `http`.)

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::ip::client_network;
use axum_server::accept::Accept;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection::{Activity, Limited, Tracked};

/// The caps and timeouts of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionCaps {
    /// The listener's name in metrics (`https` or `plaintext`).
    pub listener: &'static str,
    /// Open connections at once, from all clients.
    pub max_total: usize,
    /// Open connections at once from one client address (an IPv6 client: its /64).
    pub max_per_ip: usize,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
}

/// Wraps an acceptor so that at most `max_total` connections are open at once, at most
/// `max_per_ip` of them from one client.
#[derive(Clone)]
pub struct ConnectionLimit<A> {
    inner: A,
    permits: Arc<Semaphore>,
    per_ip: Arc<PerIpCounter>,
    idle_timeout: Duration,
    listener: &'static str,
}

impl<A> ConnectionLimit<A> {
    pub fn new(inner: A, caps: ConnectionCaps) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(caps.max_total.max(1))),
            per_ip: Arc::new(PerIpCounter::new(caps.max_per_ip)),
            idle_timeout: caps.idle_timeout,
            listener: caps.listener,
        }
    }
}

/// What the cap needs to know about an incoming connection.
pub trait PeerIp {
    /// The client's address, if the socket still knows it.
    fn peer_ip(&self) -> Option<IpAddr>;
}

impl PeerIp for TcpStream {
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|addr| addr.ip())
    }
}

/// A connection's places under both caps, given back when it is dropped; while it lives, the
/// connection counts in `rampart_connections_open`.
pub struct Slot {
    pub(super) _total: OwnedSemaphorePermit,
    pub(super) _per_ip: Option<IpSlot>,
    open: metrics::Gauge,
}

impl Slot {
    pub(super) fn new(
        total: OwnedSemaphorePermit,
        per_ip: Option<IpSlot>,
        listener: &'static str,
    ) -> Self {
        let open = metrics::gauge!("rampart_connections_open", "listener" => listener);
        open.increment(1.0);
        Self {
            _total: total,
            _per_ip: per_ip,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

impl<I, S, A> Accept<I, S> for ConnectionLimit<A>
where
    I: PeerIp,
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Limited<A::Stream>;
    type Service = Tracked<A::Service>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(total) = self.permits.clone().try_acquire_owned() else {
            return refuse("total", "connection limit reached");
        };
        let per_ip = match stream.peer_ip() {
            Some(ip) => match self.per_ip.try_acquire(ip) {
                Some(slot) => Some(slot),
                None => return refuse("per_ip", "connection limit for this client reached"),
            },
            None => None,
        };
        let slot = Slot::new(total, per_ip, self.listener);
        let idle_timeout = self.idle_timeout;
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let activity = Arc::new(Activity::new());
            Ok((
                Limited::new(stream, slot, activity.clone(), idle_timeout),
                Tracked::new(service, activity),
            ))
        })
    }
}

fn refuse<T: Send + 'static>(
    cap: &'static str,
    why: &'static str,
) -> Pin<Box<dyn Future<Output = io::Result<T>> + Send>> {
    metrics::counter!("rampart_connections_refused_total", "cap" => cap).increment(1);
    Box::pin(std::future::ready(Err(io::Error::other(why))))
}

/// Open connections per client; an entry exists only while its count is above zero.
pub struct PerIpCounter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIpCounter {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more connection from `ip`, or `None` at the cap.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let client = client_network(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(client).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            counter: self.clone(),
            client,
        })
    }

    /// Connections open from `ip`'s client now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&client_network(ip)).copied().unwrap_or(0)
    }

    fn release(&self, client: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&client);
            }
        }
    }
}

/// One connection's place under its client's cap.
pub struct IpSlot {
    counter: Arc<PerIpCounter>,
    client: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.counter.release(self.client);
    }
}

/// Whether a plaintext listener may bind `addr`: loopback only, unless the operator said the
/// plaintext port may be public (behind a TLS-terminating proxy on another host, say).
pub fn plaintext_bind_allowed(addr: std::net::SocketAddr, allow_public: bool) -> bool {
    allow_public || addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_no_more_than_its_cap_of_connections() {
        let counter = Arc::new(PerIpCounter::new(2));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let first = counter.try_acquire(ip).expect("first connection");
        let _second = counter.try_acquire(ip).expect("second connection");
        assert!(counter.try_acquire(ip).is_none(), "third is over the cap");
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(
            counter.try_acquire(other).is_some(),
            "another client is not affected"
        );
        drop(first);
        assert_eq!(counter.open_from(ip), 1);
        assert!(
            counter.try_acquire(ip).is_some(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn a_client_whose_connections_all_closed_leaves_no_entry() {
        let counter = Arc::new(PerIpCounter::new(4));
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let slots: Vec<_> = (0..4).filter_map(|_| counter.try_acquire(ip)).collect();
        assert_eq!(slots.len(), 4);
        drop(slots);
        let open = counter.open.lock().unwrap();
        assert!(open.is_empty(), "no entry left behind: {open:?}");
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_cap() {
        let counter = Arc::new(PerIpCounter::new(1));
        let _held = counter
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(
            counter
                .try_acquire("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_none()
        );
        assert!(
            counter
                .try_acquire("2001:db8:1:3::1".parse().unwrap())
                .is_some()
        );
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_the_ipv4_client() {
        let counter = Arc::new(PerIpCounter::new(1));
        let _held = counter.try_acquire("192.0.2.1".parse().unwrap()).unwrap();
        assert!(
            counter
                .try_acquire("::ffff:192.0.2.1".parse().unwrap())
                .is_none()
        );
    }

    #[test]
    fn plaintext_binds_only_loopback_unless_allowed() {
        let public: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let loopback: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let loopback6: std::net::SocketAddr = "[::1]:8080".parse().unwrap();
        assert!(!plaintext_bind_allowed(public, false));
        assert!(plaintext_bind_allowed(public, true));
        assert!(plaintext_bind_allowed(loopback, false));
        assert!(plaintext_bind_allowed(loopback6, false));
    }
}
