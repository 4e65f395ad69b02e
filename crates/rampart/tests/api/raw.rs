//! A raw TLS client, for what reqwest cannot do: `Expect: 100-continue`, a body the server may
//! refuse while it is still being sent, headers a byte at a time, connections left idle.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::helpers::TestApp;

/// How long a raw exchange may take at most.
pub const RAW_DEADLINE: Duration = Duration::from_secs(15);

/// A TLS connection to the app offering `alpn` (`b"http/1.1"` or `b"h2"`).
pub async fn connect(app: &TestApp, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    connect_with(&connector(app, alpn)?, app).await
}

/// A TLS connection made by `connector`, which resumes the sessions it made before.
pub async fn connect_with(
    connector: &TlsConnector,
    app: &TestApp,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(app.addr).await?;
    let name = ServerName::try_from("localhost").expect("a server name");
    connector.connect(name, tcp).await
}

/// A client trusting the app's certificate and offering `alpn`.
pub fn connector(app: &TestApp, alpn: &[u8]) -> std::io::Result<TlsConnector> {
    let pem = std::fs::read(app.data_dir.join("tls").join("cert.pem"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("a PEM certificate")).expect("a root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// An HTTP/1.1 answer: status, lowercased header lines, body.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 answer with a `content-length` (skipping any `100 Continue`, which the
/// caller may forbid by passing `allow_continue = false`).
pub async fn read_reply<R: AsyncRead + Unpin>(reader: &mut R, allow_continue: bool) -> RawReply {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = buffer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4);
        if let Some(head_end) = head_end {
            let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let status: u16 = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP answer: {head}"));
            if status == 100 {
                assert!(allow_continue, "the server sent 100 Continue");
                buffer.drain(..head_end);
                continue;
            }
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or_else(|| panic!("no content-length in {head}"));
            while buffer.len() < head_end + length {
                let n = reader.read(&mut chunk).await.expect("read the body");
                assert!(n > 0, "connection closed inside the body: {head}");
                buffer.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
            return RawReply {
                status,
                headers,
                body,
            };
        }
        let n = reader.read(&mut chunk).await.unwrap_or_else(|e| {
            panic!(
                "reading the answer failed after {:?}: {e}",
                String::from_utf8_lossy(&buffer)
            )
        });
        assert!(
            n > 0,
            "the server closed without answering; got {:?}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// POSTs `size` bytes of JSON-ish body over HTTP/1.1 and returns the answer. With `expect`,
/// the body is sent only after a `100 Continue` (which must not come for an oversized body);
/// without, the body is written while the answer is read, as a client that does not wait.
pub async fn post_h1(app: &TestApp, size: usize, expect: bool) -> RawReply {
    let stream = connect(app, b"http/1.1").await.expect("a TLS connection");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {size}\r\n{}\r\n",
        app.key,
        if expect {
            "expect: 100-continue\r\n"
        } else {
            ""
        }
    );
    writer
        .write_all(head.as_bytes())
        .await
        .expect("send headers");
    let sending = (!expect).then(|| {
        tokio::spawn(async move {
            let chunk = vec![b' '; 64 * 1024];
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                // The server may stop reading once it answered: a failed write is expected.
                if writer.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
            let _ = writer.flush().await;
            // Keep the write side open until the test is done reading.
            tokio::time::sleep(RAW_DEADLINE).await;
        })
    });
    let reply = tokio::time::timeout(RAW_DEADLINE, read_reply(&mut reader, false))
        .await
        .expect("an answer in time");
    if let Some(sending) = sending {
        sending.abort();
    }
    reply
}
