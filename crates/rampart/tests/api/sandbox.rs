//! Each ending the sandbox carrier acts out for its test numbers (see
//! `src/delivery/sandbox.rs`): refused, retried, undelivered, expired, delayed, and silent.

use crate::helpers::{NORMAL_NUMBER, POLL_INTERVAL, STATUS_DEADLINE, spawn_app};

#[tokio::test]
async fn the_rejecting_test_number_fails_with_sandbox_rejected() {
    let app = spawn_app();
    let id = app.send_to("+15005550001", "refused").await;
    let message = app.wait_for_status(&id, "failed").await;
    assert_eq!(message["error_code"], "sandbox_rejected", "{message}");
    assert_eq!(message["attempts"], 1, "a permanent refusal is not retried");
}

#[tokio::test]
async fn the_busy_test_number_is_delivered_on_the_second_attempt() {
    let app = spawn_app();
    let id = app.send_to("+15005550002", "try again").await;
    let message = app.wait_for_status(&id, "delivered").await;
    assert_eq!(message["attempts"], 2, "{message}");
    assert!(message.get("error_code").is_none(), "{message}");
}

#[tokio::test]
async fn the_unreachable_test_number_ends_undelivered() {
    let app = spawn_app();
    let id = app.send_to("+15005550003", "nobody home").await;
    let message = app.wait_for_status(&id, "undelivered").await;
    assert_eq!(message["error_code"], "sandbox_unreachable", "{message}");
    assert!(message["sent_at"].is_string(), "it was sent: {message}");
}

#[tokio::test]
async fn the_expiring_test_number_ends_expired() {
    let app = spawn_app();
    let id = app.send_to("+15005550005", "too slow").await;
    let message = app.wait_for_status(&id, "expired").await;
    assert!(message["error_code"].is_string(), "{message}");
}

#[tokio::test]
async fn the_delayed_test_number_is_sent_first_and_delivered_later() {
    let app = spawn_app();
    let id = app.send_to("+15005550004", "slow receipt").await;
    // The receipt is held back (1.5 s in tests): the message is seen `sent` on its way.
    let sent = app.wait_for_status(&id, "sent").await;
    assert!(sent.get("completed_at").is_none(), "{sent}");
    let delivered = app.wait_for_status(&id, "delivered").await;
    assert_eq!(delivered["attempts"], 1, "{delivered}");
}

#[tokio::test]
async fn the_silent_test_number_stays_sent() {
    let app = spawn_app();
    let silent = app.send_to("+15005550006", "no receipt").await;
    let normal = app.send_to(NORMAL_NUMBER, "receipt").await;
    app.wait_for_status(&silent, "sent").await;
    app.wait_for_status(&normal, "delivered").await;
    // Poll a while longer: no receipt ever moves it on.
    let deadline = std::time::Instant::now() + STATUS_DEADLINE / 15;
    while std::time::Instant::now() < deadline {
        assert_eq!(app.message(&silent).await["status"], "sent");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test]
async fn a_live_account_without_a_route_fails_its_messages_with_no_route_and_sandbox_mode_delivers_them()
 {
    let app = crate::helpers::spawn_app_with(&[("RAMPART_DELIVERY__MAX_ATTEMPTS", "2")]);
    let account = app.account_id();
    let listed = app.cli(&["account", "list"]);
    assert!(
        listed.ends_with("\tsandbox"),
        "new accounts start in sandbox mode: {listed}"
    );
    let said = app.cli(&["account", "mode", "--account", &account, "--live"]);
    assert!(said.contains("is live"), "{said}");
    // The server takes the change with the routing directory, within a second.
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let id = app.send_to(NORMAL_NUMBER, "no carrier for me").await;
    let message = app.wait_for_status(&id, "failed").await;
    assert_eq!(message["error_code"], "no_route", "{message}");

    app.cli(&["account", "mode", "--account", &account, "--sandbox"]);
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let id = app.send_to(NORMAL_NUMBER, "simulated").await;
    app.wait_for_status(&id, "delivered").await;
    let trail = app
        .get("/v1/audit-events?action=account.mode", &app.operator_key())
        .await;
    assert_eq!(
        trail.json()["data"].as_array().map(Vec::len),
        Some(2),
        "{}",
        trail.text
    );
}
