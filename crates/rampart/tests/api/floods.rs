//! Layer 1 against floods: oversized bodies answered 413 in a way clients read, the in-flight
//! cap shared by every route, connection caps per client, security headers on every answer.

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::helpers::{POLL_INTERVAL, TestApp, join_all, spawn_app, spawn_app_with};
use crate::raw::{self, RAW_DEADLINE};

const SIZES: [usize; 3] = [300 * 1024, 2 * 1024 * 1024, 20 * 1024 * 1024];

fn assert_payload_too_large(what: &str, status: u16, content_type: Option<&str>, body: &str) {
    assert_eq!(status, 413, "{what}: {body}");
    assert_eq!(content_type, Some("application/problem+json"), "{what}");
    let problem: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(problem["code"], "payload_too_large", "{what}: {body}");
}

#[tokio::test]
async fn oversized_bodies_over_http1_get_a_readable_413() {
    let app = spawn_app();
    for size in SIZES {
        let reply = raw::post_h1(&app, size, false).await;
        assert_payload_too_large(
            &format!("HTTP/1.1, {size} bytes"),
            reply.status,
            reply.header("content-type"),
            &reply.body,
        );
    }
}

#[tokio::test]
async fn oversized_bodies_with_expect_continue_get_413_and_no_continue() {
    let app = spawn_app();
    for size in SIZES {
        // `read_reply` fails on a 100 Continue.
        let reply = raw::post_h1(&app, size, true).await;
        assert_payload_too_large(
            &format!("HTTP/1.1 expect-continue, {size} bytes"),
            reply.status,
            reply.header("content-type"),
            &reply.body,
        );
    }
}

#[tokio::test]
async fn oversized_bodies_over_http2_get_a_readable_413() {
    let app = spawn_app();
    for size in SIZES {
        let response = app
            .client
            .post(app.url("/v1/messages"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .send()
            .await
            .unwrap_or_else(|e| panic!("HTTP/2, {size} bytes: {e:?}"));
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.expect("the 413's body");
        assert_payload_too_large(
            &format!("HTTP/2, {size} bytes"),
            status,
            content_type.as_deref(),
            &body,
        );
    }
    // The connection is still good for the next request.
    assert_eq!(app.get("/healthz", "").await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app();
    let ok = app.get("/healthz", "").await;
    let missing = app.get("/no/such/route", "").await;
    let too_large = app
        .post_raw(
            "/v1/messages",
            &app.key,
            Some("application/json"),
            vec![b' '; 300 * 1024],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    for reply in [&ok, &missing, &too_large] {
        let what = reply.status;
        assert_eq!(
            reply.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'"),
            "{what}"
        );
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{what}"
        );
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert!(
            reply
                .header("strict-transport-security")
                .is_some_and(|v| v.starts_with("max-age=")),
            "{what}"
        );
        assert_eq!(reply.header("server"), None, "{what}: no server banner");
    }
}

/// Starts a POST whose body never comes: the request holds an in-flight slot until the
/// connection is dropped (or the request deadline passes).
async fn stalled_post(
    app: &TestApp,
    path: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut stream = raw::connect(app, b"http/1.1").await.expect("a connection");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
        app.key
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    stream.flush().await.expect("flush");
    stream
}

#[tokio::test]
async fn the_in_flight_cap_is_shared_by_all_routes() {
    let app = spawn_app_with(&[("RAMPART_LIMITS__MAX_IN_FLIGHT_REQUESTS", "2")]);
    let first = stalled_post(&app, "/v1/messages").await;
    let second = stalled_post(&app, "/v1/api-keys").await;
    // Bounded wait until both hold their slots: then other routes are shed.
    let deadline = std::time::Instant::now() + RAW_DEADLINE;
    let shed = loop {
        let reply = app.get("/v1/messages", &app.key).await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            break reply;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert!(std::time::Instant::now() < deadline, "nothing was shed");
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    assert_eq!(shed.json()["code"], "overloaded");
    assert!(shed.header("retry-after").is_some(), "a Retry-After");
    let others = join_all((0..6).map(|i| {
        let path = if i % 2 == 0 {
            "/healthz"
        } else {
            "/v1/connectors"
        };
        app.get(path, &app.key)
    }))
    .await;
    for reply in &others {
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text
        );
        assert_eq!(reply.json()["code"], "overloaded");
    }
    drop((first, second));
    let deadline = std::time::Instant::now() + RAW_DEADLINE;
    loop {
        let reply = app.get("/healthz", "").await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text
        );
        assert!(
            std::time::Instant::now() < deadline,
            "slots never came back"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test]
async fn a_client_over_its_connection_cap_is_refused_before_tls() {
    let app = spawn_app_with(&[("RAMPART_LIMITS__MAX_CONNECTIONS_PER_IP", "3")]);
    // The test's own client may hold one; wait until it has none, by taking all three.
    let deadline = std::time::Instant::now() + RAW_DEADLINE;
    let mut held = Vec::new();
    while held.len() < 3 {
        match raw::connect(&app, b"http/1.1").await {
            Ok(stream) => held.push(stream),
            Err(_) => {
                assert!(std::time::Instant::now() < deadline, "could not open 3");
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
    assert!(
        raw::connect(&app, b"http/1.1").await.is_err(),
        "a fourth connection from the same client is closed before the handshake"
    );
    held.pop();
    let deadline = std::time::Instant::now() + RAW_DEADLINE;
    loop {
        if raw::connect(&app, b"http/1.1").await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place never freed"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = spawn_app();
    let mut stream = raw::connect(&app, b"http/1.1").await.expect("a connection");
    let head = format!(
        "GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
        "a".repeat(600 * 1024)
    );
    // The server may stop reading once it has answered.
    let (mut reader, mut writer) = tokio::io::split(stream);
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        tokio::time::sleep(RAW_DEADLINE).await;
    });
    let reply = tokio::time::timeout(RAW_DEADLINE, raw::read_reply(&mut reader, false))
        .await
        .expect("an answer in time");
    sending.abort();
    assert_eq!(reply.status, 431, "{reply:?}");
    stream = match raw::connect(&app, b"http/1.1").await {
        Ok(stream) => stream,
        Err(e) => panic!("the server still takes connections: {e}"),
    };
    drop(stream);
}

#[tokio::test]
async fn a_public_plaintext_listener_needs_an_explicit_opt_in() {
    let refused = crate::helpers::serve_refused(&[("RAMPART_PLAINTEXT_LISTEN", "0.0.0.0:0")]);
    assert!(
        refused.contains("plaintext_allow_public"),
        "the refusal names the setting: {refused}"
    );
    let loopback = spawn_app_with(&[("RAMPART_PLAINTEXT_LISTEN", "127.0.0.1:0")]);
    assert_eq!(loopback.get("/healthz", "").await.status, StatusCode::OK);
    let opted_in = spawn_app_with(&[
        ("RAMPART_PLAINTEXT_LISTEN", "0.0.0.0:0"),
        ("RAMPART_PLAINTEXT_ALLOW_PUBLIC", "true"),
    ]);
    assert_eq!(opted_in.get("/healthz", "").await.status, StatusCode::OK);
}
