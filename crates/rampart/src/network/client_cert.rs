//! Client certificates (mutual TLS): the SHA-256 fingerprint of the leaf certificate a client
//! presented and the server verified, and the acceptor that attaches it to every request of the
//! connection. The fingerprint is computed once, after the handshake; each request then gets a
//! copy of 32 bytes as a request extension ([`PeerCertificate`]). Whether a key demands one is
//! decided in `app` (the key's `client_cert_sha256`).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::Request;
use axum_server::accept::Accept;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_rustls::server::TlsStream;
use tower::Service;

/// The SHA-256 of a DER certificate, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; 32]);

/// Why a text is not a certificate fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a client certificate fingerprint is the SHA-256 of the certificate: 64 hex digits, optionally in pairs separated by colons"
)]
pub struct FingerprintError;

impl CertFingerprint {
    /// A fingerprint no certificate is expected to have (all zero bits), for a requirement
    /// that cannot be read: failing closed.
    pub const UNMATCHABLE: CertFingerprint = CertFingerprint([0; 32]);

    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses 64 hex digits in either case, with or without colons between the pairs
    /// (`AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it). White space around the
    /// value is ignored.
    pub fn parse(text: &str) -> Result<Self, FingerprintError> {
        let text = text.trim();
        let digits: Vec<u8> = if text.contains(':') {
            // Colons only between pairs: `AB:CD`, never `ABC:D` or `AB::CD`.
            let mut digits = Vec::with_capacity(64);
            for pair in text.split(':') {
                if pair.len() != 2 {
                    return Err(FingerprintError);
                }
                digits.extend_from_slice(pair.as_bytes());
            }
            digits
        } else {
            text.as_bytes().to_vec()
        };
        if digits.len() != 64 {
            return Err(FingerprintError);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or(FingerprintError)?;
            let low = hex_value(pair[1]).ok_or(FingerprintError)?;
            *byte = (high << 4) | low;
        }
        Ok(Self(bytes))
    }

    /// 64 lowercase hex digits, no colons: the form stored and shown.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(64);
        for byte in self.0 {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        text
    }

    /// Whether `other` is the same fingerprint, compared in constant time.
    pub fn matches(&self, other: &CertFingerprint) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({})", self.to_hex())
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The request extension: the verified leaf certificate of the connection the request came
/// on. Absent when the client presented none (or on the plaintext listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCertificate(pub CertFingerprint);

/// Wraps the TLS acceptor: once the handshake is done, the leaf certificate the client
/// presented (rustls has verified it against the client CA by then, or refused the handshake)
/// is hashed, and every request on the connection carries the fingerprint.
#[derive(Clone)]
pub struct ClientCertAcceptor<A> {
    inner: A,
}

impl<A> ClientCertAcceptor<A> {
    pub fn new(inner: A) -> Self {
        Self { inner }
    }
}

impl<A, I, S, T> Accept<I, S> for ClientCertAcceptor<A>
where
    A: Accept<I, S, Stream = TlsStream<T>>,
    A::Future: Send + 'static,
    A::Service: Send + 'static,
    T: Send + 'static,
{
    type Stream = TlsStream<T>;
    type Service = WithPeerCertificate<A::Service>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| PeerCertificate(CertFingerprint::of_der(leaf.as_ref())));
            Ok((
                stream,
                WithPeerCertificate {
                    inner: service,
                    peer,
                },
            ))
        })
    }
}

/// A connection's service that puts the connection's [`PeerCertificate`] on every request.
#[derive(Clone)]
pub struct WithPeerCertificate<S> {
    inner: S,
    peer: Option<PeerCertificate>,
}

impl<S, B> Service<Request<B>> for WithPeerCertificate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // Always set (or cleared): nothing that came before may speak for the connection.
        match self.peer {
            Some(peer) => {
                request.extensions_mut().insert(peer);
            }
            None => {
                request.extensions_mut().remove::<PeerCertificate>();
            }
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_fingerprint_parses_in_either_case_with_or_without_colons() {
        let plain = CertFingerprint::parse(HEX).unwrap();
        assert_eq!(plain.to_hex(), HEX);
        assert_eq!(CertFingerprint::parse(&HEX.to_uppercase()).unwrap(), plain);
        let colons: Vec<String> = HEX
            .as_bytes()
            .chunks(2)
            .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
            .collect();
        assert_eq!(CertFingerprint::parse(&colons.join(":")).unwrap(), plain);
        assert_eq!(
            CertFingerprint::parse(&format!("  {HEX}\n")).unwrap(),
            plain
        );
    }

    #[test]
    fn anything_but_64_hex_digits_is_refused() {
        let short = &HEX[..62];
        let long = format!("{HEX}00");
        let not_hex = format!("{}zz", &HEX[..62]);
        let bad_colons = format!("{}:{}", &HEX[..3], &HEX[3..]);
        let double = format!("{}::{}", &HEX[..2], &HEX[2..]);
        let trailing = format!("{HEX}:");
        for bad in [
            "",
            short,
            &long,
            &not_hex,
            &bad_colons,
            &double,
            &trailing,
            "sha256:abc",
        ] {
            assert_eq!(CertFingerprint::parse(bad), Err(FingerprintError), "{bad}");
        }
        // A multi-byte character must not be taken for digits.
        let unicode = format!("{}é", &HEX[..62]);
        assert!(CertFingerprint::parse(&unicode).is_err());
    }

    #[test]
    fn the_fingerprint_of_a_certificate_is_its_sha256() {
        // SHA-256 of the empty input, a well-known value.
        assert_eq!(
            CertFingerprint::of_der(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let a = CertFingerprint::of_der(b"a");
        assert!(a.matches(&CertFingerprint::of_der(b"a")));
        assert!(!a.matches(&CertFingerprint::of_der(b"b")));
    }
}
