//! TLS as a client sees it: ALPN offers HTTP/2 and HTTP/1.1, TLS 1.2 is still served, and a
//! certificate replaced on disk reaches new connections while open ones keep working. Raw
//! tokio-rustls clients show which certificate the server presents. (That TLS 1.0/1.1 and
//! non-AEAD suites are refused cannot be shown with rustls as a client, which offers neither:
//! `scripts/sslyze.sh` checks that against the live server, and a unit test in
//! `network::tls` checks the configuration.)

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::helpers::{POLL_INTERVAL, TestApp, spawn_app};

/// How long the server may take to notice new certificate files (it looks every second).
const RELOAD_DEADLINE: Duration = Duration::from_secs(15);
/// How long one read of an answer may take.
const READ_DEADLINE: Duration = Duration::from_secs(10);

const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

fn cert_path(app: &TestApp) -> std::path::PathBuf {
    app.data_dir.join("tls").join("cert.pem")
}

fn served_cert_file(app: &TestApp) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(cert_path(app)).expect("the server's certificate file")
}

/// A TLS connection to the server as `localhost`, trusting only `trusted`, offering `alpn`
/// (and only `versions`, when given).
async fn connect(
    app: &TestApp,
    trusted: &[&CertificateDer<'static>],
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots.add((*cert).clone()).expect("a usable trust anchor");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = if versions.is_empty() {
        builder.with_safe_default_protocol_versions()
    } else {
        builder.with_protocol_versions(versions)
    }
    .expect("client protocol versions");
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(app.addr).await?;
    let name = ServerName::try_from("localhost").expect("a server name");
    tokio::time::timeout(
        READ_DEADLINE,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap_or_else(|_| panic!("no TLS handshake within {READ_DEADLINE:?}"))
}

fn peer_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("the server presented a certificate")
        .clone()
        .into_owned()
}

/// `GET /healthz` over an HTTP/1.1 connection that stays open; returns the status line.
async fn healthz_http1(stream: &mut TlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("the request is written");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).into_owned();
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .map(|(_, value)| value.trim().parse::<usize>().expect("a length"))
                .unwrap_or_else(|| panic!("no content-length in {head}"));
            if answer.len() >= end + 4 + length {
                return head.lines().next().unwrap_or_default().to_owned();
            }
        }
        let read = tokio::time::timeout(READ_DEADLINE, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("the connection reads");
        assert!(read > 0, "the server closed the kept-alive connection");
        answer.extend_from_slice(&chunk[..read]);
    }
}

/// Writes a new self-signed `localhost` pair over the server's files, as a deployment would
/// (write aside, then rename: key first, so the pair is whole once the certificate lands).
fn replace_certificate(dir: &Path) -> CertificateDer<'static> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let key_tmp = dir.join("key.pem.new");
    let cert_tmp = dir.join("cert.pem.new");
    crate::helpers::write_private(&key_tmp, certified.signing_key.serialize_pem());
    fs::write(&cert_tmp, certified.cert.pem()).expect("write the certificate");
    fs::rename(&key_tmp, dir.join("key.pem")).expect("replace the key");
    fs::rename(&cert_tmp, dir.join("cert.pem")).expect("replace the certificate");
    certified.cert.der().clone()
}

/// Polls until the server's log has a line holding every one of `needles`.
async fn wait_for_log_line(app: &TestApp, needles: &[&str]) {
    let deadline = Instant::now() + RELOAD_DEADLINE;
    loop {
        let log = app.server_log();
        if log
            .lines()
            .any(|line| needles.iter().all(|needle| line.contains(needle)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needles:?}; log:\n{log}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test]
async fn alpn_negotiates_http2_and_http1_and_tls_1_2_is_still_served() {
    let app = spawn_app();
    let cert = served_cert_file(&app);

    let h2 = connect(&app, &[&cert], &[H2, HTTP1], &[])
        .await
        .expect("a handshake offering h2");
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(H2));
    assert_eq!(
        h2.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    let mut http1 = connect(&app, &[&cert], &[HTTP1], &[])
        .await
        .expect("a handshake offering only http/1.1");
    assert_eq!(http1.get_ref().1.alpn_protocol(), Some(HTTP1));
    assert_eq!(healthz_http1(&mut http1).await, "HTTP/1.1 200 OK");

    let mut tls12 = connect(&app, &[&cert], &[HTTP1], &[&rustls::version::TLS12])
        .await
        .expect("a TLS 1.2 handshake");
    assert_eq!(
        tls12.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let suite = format!("{:?}", tls12.get_ref().1.negotiated_cipher_suite());
    assert!(suite.contains("ECDHE") && suite.contains("GCM"), "{suite}");
    assert_eq!(healthz_http1(&mut tls12).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_to_new_connections_while_open_ones_keep_working()
{
    let app = spawn_app();
    let old = served_cert_file(&app);
    // An HTTP/1.1 connection kept alive across the swap, and the harness's HTTP/2 client, which
    // trusts only the old certificate: it can succeed afterwards only on its open connection.
    let mut kept = connect(&app, &[&old], &[HTTP1], &[])
        .await
        .expect("a connection before the swap");
    assert_eq!(peer_cert(&kept), old);
    assert_eq!(healthz_http1(&mut kept).await, "HTTP/1.1 200 OK");
    assert_eq!(app.get("/healthz", "").await.status, StatusCode::OK);

    let new = replace_certificate(&app.data_dir.join("tls"));
    assert_ne!(new, old);
    let deadline = Instant::now() + RELOAD_DEADLINE;
    loop {
        let fresh = connect(&app, &[&old, &new], &[HTTP1], &[])
            .await
            .expect("a new connection during the swap");
        if peer_cert(&fresh) == new {
            break;
        }
        assert_eq!(peer_cert(&fresh), old, "neither certificate was served");
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate; log:\n{}",
            app.server_log()
        );
        // The open connection is used all along, as a busy client would.
        assert_eq!(healthz_http1(&mut kept).await, "HTTP/1.1 200 OK");
        tokio::time::sleep(POLL_INTERVAL).await;
    }

    let mut fresh = connect(&app, &[&new], &[H2, HTTP1], &[])
        .await
        .expect("a new connection trusting only the new certificate");
    assert_eq!(peer_cert(&fresh), new);
    assert_eq!(fresh.get_ref().1.alpn_protocol(), Some(H2));
    fresh.shutdown().await.ok();
    assert!(
        connect(&app, &[&old], &[HTTP1], &[]).await.is_err(),
        "a new connection must not get the old certificate"
    );

    assert_eq!(healthz_http1(&mut kept).await, "HTTP/1.1 200 OK");
    assert_eq!(
        peer_cert(&kept),
        old,
        "an open connection keeps its certificate"
    );
    assert_eq!(app.get("/healthz", "").await.status, StatusCode::OK);
    wait_for_log_line(&app, &["TLS certificate reloaded", "files changed"]).await;
}

#[tokio::test]
async fn a_bad_pair_is_refused_and_the_current_certificate_kept_until_sighup_loads_a_good_one() {
    let mut app = spawn_app();
    let dir = app.data_dir.join("tls");
    let old = served_cert_file(&app);
    let good = fs::read(dir.join("key.pem")).expect("the key");

    // A key that does not match the certificate: refused, logged, the old pair stays served.
    let stranger =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    crate::helpers::write_private(
        &dir.join("key.pem.new"),
        stranger.signing_key.serialize_pem(),
    );
    fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).expect("replace the key");
    wait_for_log_line(&app, &["TLS certificate not reloaded", "files changed"]).await;
    let fresh = connect(&app, &[&old], &[HTTP1], &[])
        .await
        .expect("the old certificate is still served");
    assert_eq!(peer_cert(&fresh), old);
    assert_eq!(app.get("/healthz", "").await.status, StatusCode::OK);

    // SIGHUP loads the files as they are, here the repaired pair; the server keeps running.
    fs::write(dir.join("key.pem"), good).expect("restore the key");
    app.signal("HUP");
    wait_for_log_line(&app, &["TLS certificate reloaded", "SIGHUP"]).await;
    let mut fresh = connect(&app, &[&old], &[HTTP1], &[])
        .await
        .expect("the repaired pair is served");
    assert_eq!(healthz_http1(&mut fresh).await, "HTTP/1.1 200 OK");
    assert!(app.is_running(), "SIGHUP must not stop the server");
}
