//! Accounts are sealed from each other: another account's key cannot see, cancel or revoke
//! anything of ours, and listings never mix accounts. Account B is made with the CLI while the
//! server runs.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{NORMAL_NUMBER, Reply, id_of, rfc3339_from_now, spawn_app};

fn assert_not_found(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "{what} must look absent to another account: {}",
        reply.text
    );
    assert_eq!(reply.problem_code(), "not_found", "{what}");
}

#[tokio::test]
async fn another_accounts_key_cannot_see_or_touch_our_messages_or_keys() {
    let app = spawn_app();
    let account_b = app.cli(&["account", "create", "--name", "tenant b"]);
    assert!(
        !account_b.is_empty() && !account_b.contains(' '),
        "{account_b}"
    );
    let key_b = app.cli(&["apikey", "create", "--account", &account_b, "--scopes", "*"]);
    assert!(key_b.starts_with("rk_"), "the CLI prints the key: {key_b}");

    // A's messages: one delivered, one scheduled far ahead (so a cancel would succeed).
    let delivered = app.send_to(NORMAL_NUMBER, "for account A only").await;
    app.wait_for_status(&delivered, "delivered").await;
    let scheduled = id_of(
        &app.send(&json!({
            "to": NORMAL_NUMBER, "from": "Rampart", "body": "A, later",
            "send_at": rfc3339_from_now(time::Duration::hours(1)),
        }))
        .await[0],
    );
    let (a_key_id, a_key) = app.create_key(&["messages:read"], None).await;

    for id in [&delivered, &scheduled] {
        assert_not_found(
            &app.get(&format!("/v1/messages/{id}"), &key_b).await,
            "GET A's message",
        );
        assert_not_found(
            &app.post_json(&format!("/v1/messages/{id}/cancel"), &key_b, &json!({}))
                .await,
            "cancel A's message",
        );
    }
    assert_eq!(app.message(&scheduled).await["status"], "queued");

    for id in [a_key_id.as_str(), &app.key[..15]] {
        assert_not_found(
            &app.get(&format!("/v1/api-keys/{id}"), &key_b).await,
            "GET A's key",
        );
        assert_not_found(
            &app.delete(&format!("/v1/api-keys/{id}"), &key_b).await,
            "DELETE A's key",
        );
    }
    assert_eq!(app.get("/v1/messages", &a_key).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/messages", &app.key).await.status,
        StatusCode::OK
    );

    // Listings stay within each account.
    let b_sent = app
        .post_json(
            "/v1/messages",
            &key_b,
            &json!({"to": NORMAL_NUMBER, "from": "TenantB", "body": "for account B only"}),
        )
        .await;
    assert_eq!(b_sent.status, StatusCode::ACCEPTED, "{}", b_sent.text);
    let b_message = id_of(&b_sent.json()["messages"][0]);

    let a_list: Vec<String> = app.list_all("", 200).await.iter().map(id_of).collect();
    assert!(!a_list.contains(&b_message), "A sees B's message");
    assert!(a_list.contains(&delivered) && a_list.contains(&scheduled));
    let by_number = app
        .list_all(&format!("to=%2B{}&", &NORMAL_NUMBER[1..]), 200)
        .await;
    assert!(
        by_number.iter().all(|m| id_of(m) != b_message),
        "A's filter by number shows B's message"
    );

    let b_list = app.get("/v1/messages?limit=200", &key_b).await;
    let b_ids: Vec<String> = b_list.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(
        b_ids,
        vec![b_message.clone()],
        "B sees only its own message"
    );

    let b_keys = app.get("/v1/api-keys", &key_b).await;
    assert_eq!(b_keys.status, StatusCode::OK, "{}", b_keys.text);
    assert!(
        !b_keys.text.contains(&a_key_id) && !b_keys.text.contains(&app.key[..15]),
        "B lists A's keys: {}",
        b_keys.text
    );
    let b_read_from_a = app
        .get(&format!("/v1/messages/{b_message}"), &app.key)
        .await;
    assert_not_found(&b_read_from_a, "A reading B's message");
}

#[tokio::test]
async fn the_same_idempotency_key_in_two_accounts_makes_two_separate_sends() {
    let app = spawn_app();
    let account_b = app.cli(&["account", "create", "--name", "tenant b"]);
    let key_b = app.cli(&[
        "apikey",
        "create",
        "--account",
        &account_b,
        "--scopes",
        "messages:send,messages:read",
    ]);
    let request = json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "same request"});
    let headers = [("idempotency-key", "shared-key-1")];

    let a = app
        .post_json_with_headers("/v1/messages", &app.key, &request, &headers)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let b = app
        .post_json_with_headers("/v1/messages", &key_b, &request, &headers)
        .await;
    assert_eq!(b.status, StatusCode::ACCEPTED, "{}", b.text);
    assert_ne!(
        b.header("idempotent-replayed"),
        Some("true"),
        "B's first use of the key is not a replay of A's"
    );
    let (a_id, b_id) = (
        id_of(&a.json()["messages"][0]),
        id_of(&b.json()["messages"][0]),
    );
    assert_ne!(a_id, b_id, "B got A's message");
    let b_reads = app.get(&format!("/v1/messages/{b_id}"), &key_b).await;
    assert_eq!(b_reads.status, StatusCode::OK, "{}", b_reads.text);
}
