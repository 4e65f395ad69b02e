//! Running the server: its log never holds a secret, a full phone number or a message body,
//! and SIGTERM stops it cleanly.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{NORMAL_NUMBER, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_server_log_holds_no_api_key_phone_number_or_message_body() {
    // Debug level: everything the default `info` logs, and more.
    let mut app = spawn_app_with(&[("RAMPART_LOG", "debug")]);
    let marker = "Secret-Body-Marker-7f3a9c";
    let id = app
        .send_to(NORMAL_NUMBER, &format!("your code is {marker}"))
        .await;
    app.wait_for_status(&id, "delivered").await;
    // The paths that fail and retry, and the ones that see numbers in errors.
    let failed = app.send_to("+15005550001", marker).await;
    app.wait_for_status(&failed, "failed").await;
    let retried = app.send_to("+15005550002", marker).await;
    app.wait_for_status(&retried, "delivered").await;
    let bad = app
        .post_json(
            "/v1/messages",
            &app.key,
            &json!({"to": "+999123456789", "from": "Rampart", "body": marker}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    let listed = app
        .get(
            &format!("/v1/messages?to=%2B{}", &NORMAL_NUMBER[1..]),
            &app.key,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let (_, new_key) = app.create_key(&["messages:read"], None).await;
    assert_eq!(
        app.get("/v1/messages", &new_key).await.status,
        StatusCode::OK
    );
    let wrong = format!("{}{}", &app.key[..15], "x".repeat(app.key.len() - 15));
    assert_eq!(app.get("/v1/messages", &wrong).await.status.as_u16(), 401);

    app.terminate(Duration::from_secs(30)).await;
    let log = app.server_log();
    assert!(!log.trim().is_empty(), "the server's stderr was captured");
    let mut leaks = Vec::new();
    for (what, secret) in [
        ("the default API key", app.key.as_str()),
        ("the default key's secret part", &app.key[15..]),
        ("a created API key's secret part", &new_key[15..]),
        ("the phone number", &NORMAL_NUMBER[1..]),
        ("the invalid phone number", "999123456789"),
        ("the rejected test number", "15005550001"),
        ("the message body", marker),
    ] {
        if log.contains(secret) {
            leaks.push(what);
        }
    }
    assert!(leaks.is_empty(), "the log leaks {leaks:?}:\n{log}");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_with_exit_status_0() {
    let mut app = spawn_app();
    // An open keep-alive connection and a message in the pipeline must not hold shutdown up.
    let id = app.send_to(NORMAL_NUMBER, "before shutdown").await;
    assert_eq!(app.get("/readyz", "").await.status, StatusCode::OK);

    let status = app.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status after SIGTERM: {status:?}");

    // Whatever was acknowledged is still there on the next start.
    app.restart();
    app.wait_for_status(&id, "delivered").await;
}
